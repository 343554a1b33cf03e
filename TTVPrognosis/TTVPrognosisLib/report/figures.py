"""The report's pictures as PNG bytes: key images, the overview projection, the survival chart (matplotlib).

matplotlib is imported only here and only when a picture is drawn (Slicer does not bundle it; the HTML
report then takes pictures from the caller). Figures use the Agg canvas directly, not pyplot, so drawing in
worker processes or threads shares no global state, and PNGs carry no software version or date: the same
inputs give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..geometry import Geometry
from .key_images import SlicePanel

DEFAULT_WINDOW_HU = (150.0, 75.0)  # width, level: a liver window for portal-venous CT
DPI = 200
LESION_COLOUR = "#ffd400"
OTHER_LESION_COLOUR = "#ff7f0e"
LIVER_COLOUR = "#7fd17f"
PATIENT_COLOUR = "#1f4e9c"
REFERENCE_STYLES = ("#4d4d4d", "#7a7a7a", "#a6a6a6")


def _new_figure(width_in: float, height_in: float):
    """A figure on its own Agg canvas (no pyplot state); fonts set for a small printed figure."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise InputError("Drawing the report's pictures needs matplotlib: pip install matplotlib (or write the "
                         "HTML report with pictures you provide).") from error
    figure = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def parse_window(text: str) -> tuple[float, float]:
    """``"150,75"`` (width, level in HU) to numbers; refuses a width that is not positive."""
    try:
        width, level = (float(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"'{text}' is not a window: give WIDTH,LEVEL in HU, e.g. 150,75 (the liver window)."
                         ) from None
    if not (np.isfinite(width) and np.isfinite(level)) or width <= 0:
        raise InputError(f"Window '{text}': the width must be a positive number of HU and the level a number.")
    return width, level


# --------------------------------------------------------------------------------------------------------
# Key images
# --------------------------------------------------------------------------------------------------------

@dataclass
class KeyImagePanels:
    """What one key image shows: a title and one panel per time point (None: no such time point)."""

    title: str
    baseline: SlicePanel | None
    followup: SlicePanel | None


def key_image_png(panels: KeyImagePanels, window_hu: tuple[float, float] = DEFAULT_WINDOW_HU) -> bytes:
    """Baseline beside follow-up: the CT slice, the lesion's contour, other lesions, scale bar, label."""
    shown = [(name, panel) for name, panel in (("Baseline", panels.baseline), ("Follow-up", panels.followup))
             if panel is not None]
    figure = _new_figure(2.1 * len(shown), 2.5)
    figure.suptitle(panels.title, fontsize=8, y=0.985)
    for index, (name, panel) in enumerate(shown):
        axes = figure.add_axes((0.015 + index / len(shown), 0.01, 1.0 / len(shown) - 0.03, 0.84))
        _draw_panel(axes, panel, name, window_hu)
    return png_bytes(figure)


def _draw_panel(axes, panel: SlicePanel, name: str, window_hu: tuple[float, float]) -> None:
    size = panel.lesion_mask.shape[0]
    half = size * panel.pixel_mm / 2.0
    extent = (-half, half, half, -half)  # mm from the centre; rows run downwards (posterior)
    width, level = window_hu
    if panel.ct_hu is not None:
        axes.imshow(panel.ct_hu, cmap="gray", vmin=level - width / 2.0, vmax=level + width / 2.0, extent=extent,
                    interpolation="nearest")
    else:
        background = np.where(panel.liver_mask, 0.35, 0.0) if panel.liver_mask is not None else np.zeros((size, size))
        axes.imshow(background, cmap="gray", vmin=0.0, vmax=1.0, extent=extent, interpolation="nearest")
    centres = (np.arange(size) - (size - 1) / 2.0) * panel.pixel_mm
    if panel.ct_hu is not None and panel.liver_mask is not None and panel.liver_mask.any():
        axes.contour(centres, centres, panel.liver_mask.astype(float), levels=[0.5], colors=LIVER_COLOUR,
                     linewidths=0.6, alpha=0.8)
    if panel.other_lesions_mask.any():
        axes.contour(centres, centres, panel.other_lesions_mask.astype(float), levels=[0.5],
                     colors=OTHER_LESION_COLOUR, linewidths=0.8)
    if panel.lesion_mask.any():
        axes.contour(centres, centres, panel.lesion_mask.astype(float), levels=[0.5], colors=LESION_COLOUR,
                     linewidths=1.4)
    axes.set_xlim(-half, half)
    axes.set_ylim(half, -half)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(f"{name}: {panel.caption}", fontsize=6.5, pad=2)
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=1.6, foreground="black")]
    text = {"fontsize": 6, "color": "white", "va": "center", "path_effects": outline}
    axes.text(-half * 0.96, 0, "R", ha="left", **text)
    axes.text(half * 0.96, 0, "L", ha="right", **text)
    axes.text(-half * 0.96, -half * 0.9, f"S {panel.slice_s_mm:+.1f} mm", ha="left", **text)
    if panel.ct_hu is not None:
        axes.text(half * 0.96, -half * 0.9, f"W {window_hu[0]:g} / L {window_hu[1]:g}", ha="right", **text)
    else:
        axes.text(half * 0.96, -half * 0.9, "no CT given", ha="right", **text)
    _scale_bar(axes, half, outline)


def _scale_bar(axes, half_mm: float, outline) -> None:
    """A bar of a round length (5, 10, 20 or 50 mm), at most a quarter of the field wide, bottom left."""
    length = max([value for value in (5.0, 10.0, 20.0, 50.0) if value <= half_mm / 2.0] or [5.0])
    x0, y0 = -half_mm * 0.92, half_mm * 0.86
    axes.plot([x0, x0 + length], [y0, y0], color="white", linewidth=2.2, solid_capstyle="butt", path_effects=outline)
    axes.text(x0 + length / 2.0, y0 - half_mm * 0.05, f"{length:g} mm", color="white", fontsize=6, ha="center",
              va="bottom", path_effects=outline)


# --------------------------------------------------------------------------------------------------------
# Overview: projection of the liver and all lesions
# --------------------------------------------------------------------------------------------------------

@dataclass
class Projection:
    """A front view (projection along the axis nearest anterior-posterior) of one time point."""

    name: str
    liver_thickness_mm: np.ndarray | None  # (rows = superior..inferior, columns = patient right..left)
    lesion_ids: np.ndarray  # where lesions lie behind one another the largest (lowest id) is shown
    labels_at: list[tuple[int, float, float]]  # lesion id, x mm, y mm
    extent: tuple[float, float, float, float]


def front_projection(name: str, geometry: Geometry, lesion_labels_full: np.ndarray, liver_full: np.ndarray | None,
                     centroids_ras: Sequence[Sequence[float]]) -> Projection:
    """Project along the grid axis closest to anterior-posterior; shown with superior up, patient right left."""
    directions = geometry.direction_ras  # columns: i, j, k unit vectors in RAS
    ijk_axis = {anatomy: int(np.argmax(np.abs(directions[anatomy]))) for anatomy in range(3)}
    depth_ijk, vertical_ijk, horizontal_ijk = ijk_axis[1], ijk_axis[2], ijk_axis[0]
    if len({depth_ijk, vertical_ijk, horizontal_ijk}) < 3:  # strongly oblique grid: take the grid's own axes
        depth_ijk, vertical_ijk, horizontal_ijk = 1, 2, 0
    to_kji = {axis: 2 - axis for axis in range(3)}
    depth, vertical, horizontal = to_kji[depth_ijk], to_kji[vertical_ijk], to_kji[horizontal_ijk]
    spacing = geometry.spacing

    def view(array: np.ndarray) -> np.ndarray:
        moved = array if vertical < horizontal else array.T  # the projection keeps the other two axes in order
        if directions[2, vertical_ijk] > 0:  # superior at the top
            moved = moved[::-1]
        if directions[0, horizontal_ijk] > 0:  # patient right on the image's left
            moved = moved[:, ::-1]
        return moved

    empty = np.iinfo(np.int32).max
    labels = lesion_labels_full.astype(np.int32)
    labels[labels == 0] = empty
    front = view(labels.min(axis=depth))
    front[front == empty] = 0
    liver = None if liver_full is None else view(liver_full.sum(axis=depth) * spacing[depth_ijk])
    occupied = front > 0 if liver is None else (front > 0) | (liver > 0)
    row_margin = int(np.ceil(10.0 / spacing[vertical_ijk]))
    column_margin = int(np.ceil(10.0 / spacing[horizontal_ijk]))
    if occupied.any():  # crop to the liver and lesions with a 10 mm margin
        used_rows, used_columns = np.flatnonzero(occupied.any(axis=1)), np.flatnonzero(occupied.any(axis=0))
        top, bottom = max(used_rows[0] - row_margin, 0), min(used_rows[-1] + row_margin + 1, front.shape[0])
        left, right = max(used_columns[0] - column_margin, 0), min(used_columns[-1] + column_margin + 1, front.shape[1])
    else:
        top, bottom, left, right = 0, front.shape[0], 0, front.shape[1]
    front = front[top:bottom, left:right]
    liver = None if liver is None else liver[top:bottom, left:right]
    rows, columns = front.shape
    height, width = rows * spacing[vertical_ijk], columns * spacing[horizontal_ijk]
    placed = []
    for lesion_id, centroid in enumerate(centroids_ras, start=1):
        kji = geometry.kji_from_ras(np.asarray([centroid]))[0]
        row = kji[vertical] if directions[2, vertical_ijk] <= 0 else geometry.shape_kji[vertical] - 1 - kji[vertical]
        column = (kji[horizontal] if directions[0, horizontal_ijk] <= 0
                  else geometry.shape_kji[horizontal] - 1 - kji[horizontal])
        placed.append((lesion_id, (column - left + 0.5) * spacing[horizontal_ijk],
                       (row - top + 0.5) * spacing[vertical_ijk]))
    return Projection(name, liver, front, placed, (0.0, width, height, 0.0))


def overview_png(projections: Sequence[Projection]) -> bytes:
    """Front views side by side: liver as an X-ray-like thickness image, lesions coloured and numbered."""
    from matplotlib.colors import ListedColormap

    aspect = max((p.extent[2] - p.extent[3]) / max(p.extent[1] - p.extent[0], 1e-6) for p in projections)
    panel_width = 3.2
    figure = _new_figure(panel_width * len(projections), min(max(panel_width * 0.84 * aspect + 0.55, 1.8), 5.0))
    figure.suptitle("All lesions, front view through the liver", fontsize=8.5,
                    y=1.0 - 0.08 / figure.get_figheight(), va="top")
    palette = ListedColormap(["#e41a1c", "#ff7f00", "#ffd400", "#4daf4a", "#377eb8", "#984ea3", "#f781bf"])
    for index, projection in enumerate(projections):
        axes = figure.add_axes((0.02 + index / len(projections), 0.02, 1.0 / len(projections) - 0.04,
                                1.0 - 0.5 / figure.get_figheight()))
        axes.set_facecolor("black")
        if projection.liver_thickness_mm is not None:
            axes.imshow(projection.liver_thickness_mm, cmap="gray", extent=projection.extent, interpolation="bilinear",
                        vmin=0.0, vmax=max(float(projection.liver_thickness_mm.max()), 1.0) * 1.3)
        if projection.lesion_ids.any():
            colours = np.ma.masked_where(projection.lesion_ids == 0, (projection.lesion_ids - 1) % palette.N)
            axes.imshow(colours, cmap=palette, vmin=0, vmax=palette.N - 1, extent=projection.extent,
                        interpolation="nearest", alpha=0.9)
        for lesion_id, x_mm, y_mm in projection.labels_at:
            axes.annotate(str(lesion_id), (x_mm, y_mm), color="white", fontsize=7, ha="center", va="center",
                          fontweight="bold")
        axes.set_xlim(projection.extent[0], projection.extent[1])
        axes.set_ylim(projection.extent[2], projection.extent[3])
        axes.set_aspect("equal")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(projection.name, fontsize=8, pad=3)
        axes.text(0.02, 0.5, "R", transform=axes.transAxes, color="white", fontsize=7, va="center")
        axes.text(0.98, 0.5, "L", transform=axes.transAxes, color="white", fontsize=7, va="center", ha="right")
    return png_bytes(figure)


# --------------------------------------------------------------------------------------------------------
# Survival chart
# --------------------------------------------------------------------------------------------------------

def survival_chart_png(curves: dict, band: tuple[np.ndarray, np.ndarray], time_origin: str, model_id: str) -> bytes:
    """The patient's curve with its 95 % band beside the 3, 50 and 300 mL reference curves.

    ``curves`` as :func:`..prognosis.section.survival_curves` gives them (the patient's first); ``band`` the
    (low, high) band on the patient's months.
    """
    figure = _new_figure(6.2, 3.3)
    axes = figure.add_axes((0.1, 0.15, 0.62, 0.75))
    names = list(curves)
    months, patient = curves[names[0]]
    axes.fill_between(months, band[0] * 100.0, band[1] * 100.0, color=PATIENT_COLOUR, alpha=0.18, linewidth=0,
                      label="95 % band")
    for name, colour in zip(names[1:], REFERENCE_STYLES):
        reference_months, survival = curves[name]
        axes.plot(reference_months, survival * 100.0, color=colour, linewidth=1.0, linestyle="--", label=name)
    axes.plot(months, patient * 100.0, color=PATIENT_COLOUR, linewidth=2.0, label=names[0])
    axes.set_ylim(0, 100)
    axes.set_xlim(0, float(months[-1]))
    axes.set_xticks(np.arange(0, float(months[-1]) + 1e-9, 12.0))
    axes.set_xlabel(f"Months from {time_origin}", fontsize=8)
    axes.set_ylabel("Overall survival (%)", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(color="#dddddd", linewidth=0.5)
    axes.set_title(f"Overall survival by baseline TTV (model {model_id})", fontsize=8.5)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return png_bytes(figure)
