"""The HTML report: one self-contained file (pictures embedded as base64 PNG), standard library only.

It says what the PDF says (both lay out one :class:`.content.ReportContent`) and needs neither matplotlib
nor a PDF library, so Slicer can write it with pictures it captured itself.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from .content import ReportContent, no_key_images_text

STYLE = """
body { font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 10pt; max-width: 60em; margin: 1.5em auto;
       color: #111; }
h1 { font-size: 15pt; margin-bottom: 0.2em; }
h2 { font-size: 12pt; color: #1f4e9c; margin-top: 1.4em; border-bottom: 1px solid #ccc; }
.notice { color: #b00020; font-weight: bold; border: 2px solid #b00020; padding: 0.4em; margin: 0.6em 0; }
table { border-collapse: collapse; margin: 0.4em 0; }
th, td { padding: 0.15em 0.7em; text-align: right; border-bottom: 1px solid #e3e3e3; }
th:first-child, td:first-child { text-align: left; }
.keyimages { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; width: 29em; }
figure img { width: 100%; }
figcaption { font-size: 9pt; }
.small { font-size: 8.5pt; color: #333; }
.warning { color: #b35900; }
code { font-size: 8pt; }
"""


def _escape(value) -> str:
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_escape(cell)}</th>" for cell in headers)
    body = "".join("<tr>" + "".join(f"<td>{_escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(png: bytes | None, alt: str) -> str:
    if png is None:
        return f"<p class='small'>{_escape(alt)}: no picture.</p>"
    data = base64.b64encode(png).decode("ascii")
    return f"<img src='data:image/png;base64,{data}' alt='{_escape(alt)}'>"


def report_html(content: ReportContent) -> str:
    """The whole report as one HTML document."""
    parts = [f"<h1>{_escape(content.title)}</h1>"]
    if content.case_label:
        parts.append(f"<p>Case: <b>{_escape(content.case_label)}</b></p>")
    parts += [f"<p>{_escape(label)}: {_escape(value)}</p>" for label, value in content.provenance.identifiers.items()]
    parts.append(f"<p class='small'>Report date: {_escape(content.provenance.date_utc)}</p>")
    parts.append(f"<p class='notice'>{_escape(content.notice)}</p>")
    parts += ["<h2>Key numbers</h2>", _table(content.summary_headers, content.summary_rows)]
    if content.response_rows:
        parts += ["<h2>Response: TTV, RECIST 1.1 and Tumour Burden Score side by side</h2>",
                  _table(content.response_headers, content.response_rows)]
    parts.append(_table(content.target_headers, content.target_rows))
    parts += [f"<p>{_escape(fact)}</p>" for fact in content.facts]
    parts.append("<h2>Prognosis (research use only)</h2>")
    if content.survival_png is not None:
        parts.append(f"<figure style='width:40em'>{_image(content.survival_png, 'Survival chart')}</figure>")
    parts.append(_table(content.survival_headers, content.survival_rows))
    parts += [f"<p class='small'>{_escape(line)}</p>" for line in content.model_lines]
    if content.overview_png is not None:
        parts += ["<h2>Overview</h2>",
                  f"<figure style='width:40em'>{_image(content.overview_png, 'Overview')}</figure>"]
    parts.append(f"<h2>Key images ({len(content.key_images)}): {content.key_image_subject}</h2>")
    parts.append(f"<p class='small'>{_escape(content.key_image_note)}</p>")
    figures = [f"<figure class='keyimage'>{_image(key.png, key.title)}<figcaption>{_escape(key.title)}</figcaption>"
               f"</figure>" for key in content.key_images]
    parts.append(f"<div class='keyimages'>{''.join(figures)}</div>" if figures
                 else f"<p>{_escape(no_key_images_text(content))}</p>")
    parts.append("<h2>Warnings</h2>")
    parts += [f"<p class='warning'>{_escape(warning)}</p>" for warning in content.warnings] or ["<p>None.</p>"]
    if content.scores:
        parts.append("<h2>Clinical scores</h2>")
        parts += [f"<p>{_escape(line)}</p>" for line in content.scores]
    provenance = content.provenance
    parts += ["<h2>Provenance</h2>",
              f"<p>Tool: TTVPrognosis {_escape(provenance.tool_version)}; report date {_escape(provenance.date_utc)}."
              f"</p>", _table(["Input", "File", "SHA-256"], provenance.rows())]
    parts += [f"<p class='small'>{_escape(key)}: {_escape(value)}</p>" for key, value in provenance.settings.items()]
    parts.append(f"<p class='notice'>{_escape(content.notice)}</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_escape(content.title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(part for part in parts if part) + "\n</body></html>\n")
