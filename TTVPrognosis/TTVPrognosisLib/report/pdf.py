"""The PDF report: A4 pages laid out with matplotlib's PDF backend (no further PDF library needed).

Page 1 holds the numbers (key numbers, TTV / RECIST 1.1 / TBS side by side, targets, prognosis with the
survival chart, the model's population); page 2 the overview and the key images (more pages when there are
more than fit); the last page the warnings, clinical scores and provenance. Everything is placed at fixed
positions computed from the content, text is real text (searchable, extractable) in embedded TrueType fonts,
and no creation date is written, so the same content gives the same bytes.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

from .. import __version__
from .content import ReportContent, no_key_images_text
from .figures import DPI as PICTURE_DPI

PAGE_IN = (8.27, 11.69)  # A4 portrait
MARGIN_IN = 0.5
LINE_IN = 0.16  # one line of 8-point text
WRAP_CHARACTERS = 118
KEY_IMAGES_FIRST_PAGE = 6
KEY_IMAGES_PER_PAGE = 8
NOTICE_COLOUR = "#b00020"


class _Page:
    """A page with a cursor moving down from the top (inches from the top edge)."""

    def __init__(self, pages, title: str, footer: str) -> None:
        self.pages = pages
        self.title = title
        self.footer = footer
        self._start()

    def _start(self) -> None:
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=PAGE_IN)
        self.y = MARGIN_IN
        self.figure.text(MARGIN_IN / PAGE_IN[0], 1 - 0.3 / PAGE_IN[1], self.title, fontsize=7, color="#555555")
        self.figure.text(1 - MARGIN_IN / PAGE_IN[0], 0.3 / PAGE_IN[1], self.footer, fontsize=7, color="#555555",
                         ha="right")

    def need(self, height_in: float) -> None:
        """Go on on a new page when less than ``height_in`` is left on this one."""
        if self.room() < height_in:
            self.save()
            self._start()

    def _xy(self, x_in: float, y_in: float) -> tuple[float, float]:
        return x_in / PAGE_IN[0], 1 - y_in / PAGE_IN[1]

    def text(self, text: str, size: float = 8, weight: str = "normal", colour: str = "black", indent: float = 0.0,
             wrap: int = WRAP_CHARACTERS) -> None:
        for line in textwrap.wrap(text, wrap) or [""]:
            self.need(LINE_IN * size / 8.0 * 1.05)
            self.figure.text(*self._xy(MARGIN_IN + indent, self.y), line, fontsize=size, fontweight=weight,
                             color=colour, va="top")
            self.y += LINE_IN * size / 8.0 * 1.05
        self.y += 0.02

    def heading(self, text: str) -> None:
        self.need(0.6)  # a heading is never the last line of a page
        self.y += 0.08
        self.text(text, size=10.5, weight="bold", colour="#1f4e9c")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], width_in: float | None = None) -> None:
        """Columns sized by their longest cell; the first left-aligned, the others right-aligned."""
        if not rows:
            return
        width_in = width_in or PAGE_IN[0] - 2 * MARGIN_IN
        lengths = [max(len(str(cell)) for cell in column) + 2 for column in zip(headers, *rows)]
        scale = width_in / max(sum(lengths), 1)
        widths = [min(length * scale, length * 0.075) for length in lengths]
        self.need(LINE_IN * min(len(rows) + 1, 4))
        for index, line in enumerate([headers, *rows]):
            self.need(LINE_IN)
            x = MARGIN_IN
            for column, (cell, width) in enumerate(zip(line, widths)):
                right = column > 0
                self.figure.text(*self._xy(x + (width - 0.05 if right else 0.0), self.y), str(cell), fontsize=8,
                                 va="top", ha="right" if right else "left",
                                 fontweight="bold" if index == 0 else "normal")
                x += width
            self.y += LINE_IN
            if index == 0:
                self.figure.add_artist(_rule(self._xy(MARGIN_IN, self.y - 0.02), self._xy(x, self.y - 0.02)))
        self.y += 0.06

    def image(self, png: bytes, x_in: float, width_in: float, centre: bool = False) -> float:
        """Place a PNG at the cursor's height, at most ``width_in`` wide and never larger than drawn (its text
        keeps its size); returns its height in inches (the cursor does not move)."""
        from matplotlib.image import imread

        pixels = imread(io.BytesIO(png), format="png")
        natural_in = pixels.shape[1] / PICTURE_DPI
        if centre:
            x_in += max(width_in - natural_in, 0.0) / 2.0
        width_in = min(width_in, natural_in)
        height_in = width_in * pixels.shape[0] / pixels.shape[1]
        left, top = self._xy(x_in, self.y)
        axes = self.figure.add_axes((left, top - height_in / PAGE_IN[1], width_in / PAGE_IN[0], height_in / PAGE_IN[1]))
        axes.imshow(pixels, interpolation="none")
        axes.set_axis_off()
        return height_in

    def room(self) -> float:
        return PAGE_IN[1] - MARGIN_IN - self.y

    def save(self) -> None:
        self.pages.savefig(self.figure)


def _rule(start: tuple[float, float], end: tuple[float, float]):
    from matplotlib.lines import Line2D

    return Line2D([start[0], end[0]], [start[1], end[1]], linewidth=0.5, color="#888888")


def report_pdf(content: ReportContent) -> bytes:
    """The report as PDF bytes."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    buffer = io.BytesIO()
    header = f"{content.title}" + (f" - {content.case_label}" if content.case_label else "")
    footer = f"TTVPrognosis {__version__} - {content.provenance.date_utc} - research use only"
    with matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans", "svg.hashsalt": "ttvprognosis"}), \
            PdfPages(buffer, metadata={"Title": content.title, "Creator": f"TTVPrognosis {__version__}",
                                       "Producer": f"TTVPrognosis {__version__}", "CreationDate": None}) as pages:
        _numbers_page(_Page(pages, header, footer), content)
        _provenance_section(_picture_pages(pages, header, footer, content), content)
    return buffer.getvalue()


def _numbers_page(page: _Page, content: ReportContent) -> None:
    page.text(content.title, size=13, weight="bold")
    if content.case_label:
        page.text(f"Case: {content.case_label}", size=9)
    for label, value in content.provenance.identifiers.items():
        page.text(f"{label}: {value}", size=9)
    page.text(f"Report date: {content.provenance.date_utc}", size=8, colour="#333333")
    page.text(content.notice, size=9, weight="bold", colour=NOTICE_COLOUR)
    page.heading("Key numbers")
    page.table(content.summary_headers, content.summary_rows, width_in=5.6)
    if content.response_rows:
        page.heading("Response: TTV, RECIST 1.1 and Tumour Burden Score side by side")
        page.table(content.response_headers, content.response_rows)
    if content.target_rows:
        page.table(content.target_headers, content.target_rows, width_in=5.6)
    for fact in content.facts:
        page.text(fact)
    page.heading("Prognosis (research use only)")
    if content.survival_png is not None:
        page.need(4.9 * 0.55)
        height = page.image(content.survival_png, MARGIN_IN, 4.9)
        if content.survival_rows:
            saved = page.y
            page.y += 0.3
            _table_at(page, 5.4, content.survival_headers, content.survival_rows)
            page.y = saved
        page.y += height + 0.05
    elif content.survival_rows:
        page.table(content.survival_headers, content.survival_rows, width_in=3.0)
    for line in content.model_lines:
        page.text(line, size=7.5)
    page.save()


def _table_at(page: _Page, x_in: float, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A small table to the right of a picture (the survival numbers beside the chart)."""
    widths = (0.5, 1.05, 0.75)
    for index, line in enumerate([headers, *rows]):
        x = x_in
        for cell, width in zip(line, widths):
            page.figure.text(*page._xy(x + width, page.y), str(cell), fontsize=7, va="top", ha="right",
                             fontweight="bold" if index == 0 else "normal")
            x += width
        page.y += LINE_IN * 0.9


def _picture_pages(pages, header: str, footer: str, content: ReportContent) -> _Page:
    """Overview and key images; returns the last page, not yet saved (the provenance may fit below)."""
    page = _Page(pages, header, footer)
    if content.overview_png is not None:
        page.need(3.5)
        page.heading("Overview")
        height = page.image(content.overview_png, MARGIN_IN, PAGE_IN[0] - 2 * MARGIN_IN, centre=True)
        page.y += height + 0.05
    page.heading(f"Key images ({len(content.key_images)}): {content.key_image_subject}")
    page.text(content.key_image_note, size=7.5)
    if not content.key_images:
        page.text(no_key_images_text(content))
    column_width = (PAGE_IN[0] - 2 * MARGIN_IN - 0.2) / 2
    placed_on_page = 0
    for index, key in enumerate(content.key_images):
        column = placed_on_page % 2
        needed = column_width * 0.58
        if column == 0 and page.room() < needed:
            page.need(needed)
            page.heading("Key images (continued)")
            placed_on_page = 0
        x = MARGIN_IN + column * (column_width + 0.2)
        if key.png is not None:
            height = page.image(key.png, x, column_width)
        else:
            saved = page.y
            page.figure.text(*page._xy(x, page.y), textwrap.fill(f"{key.title}: no picture", 60), fontsize=8, va="top")
            page.y = saved
            height = 0.5
        if column == 1 or index == len(content.key_images) - 1:
            page.y += height + 0.08
        placed_on_page += 1
    return page


def _provenance_section(page: _Page, content: ReportContent) -> None:
    page.heading("Warnings")
    for warning in content.warnings or ["None."]:
        page.text(f"- {warning}", size=7.5)
    if content.scores:
        page.heading("Clinical scores (from the measured lesions and the clinical values given)")
        for line in content.scores:
            page.text(line)
    page.heading("Provenance")
    provenance = content.provenance
    page.text(f"Tool: TTVPrognosis {provenance.tool_version}; report date {provenance.date_utc}.")
    for role, name, checksum in provenance.rows():
        page.text(f"{role}: {name}", size=7.5)
        page.text(f"SHA-256 {checksum}", size=7, colour="#333333", indent=0.2)
    for key, value in provenance.settings.items():
        page.text(f"{key}: {value}", size=7.5)
    page.text(content.notice, size=9, weight="bold", colour=NOTICE_COLOUR)
    page.save()
