"""One patient's report from results already computed: pictures drawn, content built, PDF and HTML written.

The CLI (``ttvprognosis report``), the batch (``--reports DIR``) and the Slicer panel all end here, so the
three write the same document. The callers read and compare the files (:mod:`..pipeline`), keeping the lesion
label maps; this module only looks at them. :func:`write_outcome_report` is the panel's entry: it needs no
matplotlib for the HTML report (pictures then come from the caller, e.g. Slicer's ScreenCapture).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..formats.io import ImageVolume, require_writable_folder
from ..formats.segments import LabelVolume
from ..measure.volumetry import Measurement, liver_union
from ..prognosis.model import SurvivalModel, load_model
from ..prognosis.scores import ScoreResult
from ..prognosis.section import survival_curves
from ..response.comparison import Comparison
from .content import KeyImage, ReportContent, build_content
from .key_images import KeyLesion, axial_slice, key_lesions, label_maps
from .provenance import Provenance


@dataclass
class TimePointData:
    """A time point's segmentation and (optionally) CT, as read; the report looks at both."""

    segmentation: LabelVolume
    image: ImageVolume | None = None


@dataclass
class ReportOptions:
    """How the pictures are drawn and what the report may show."""

    window_hu: tuple[float, float] = (150.0, 75.0)
    exclude: Sequence[str] = ()
    liver: Sequence[str] = ()
    case_label: str = ""
    model: SurvivalModel | None = None
    scores: list[ScoreResult] = field(default_factory=list)
    scores_note: str = ""  # which scan the scores were computed on, and why
    lesion: Sequence[str] = ()  # --lesion-segment patterns (the liver drawn is the one measured with them)


def report_content(result: Measurement | Comparison, prognosis: dict | None, provenance: Provenance,
                   baseline: TimePointData, followup: TimePointData | None = None,
                   options: ReportOptions | None = None) -> ReportContent:
    """The whole report with its pictures (needs matplotlib and the lesion label maps in ``result``)."""
    from .figures import KeyImagePanels, key_image_png, survival_chart_png

    options = options or ReportOptions()
    content = build_content(result, prognosis, provenance, options.case_label, options.scores,
                            scores_note=options.scores_note)
    comparison = result if isinstance(result, Comparison) else None
    measurements = (comparison.baseline, comparison.followup) if comparison else (result, None)
    labels = [None if m is None or data is None else label_maps(m, data.segmentation.geometry)
              for m, data in zip(measurements, (baseline, followup))]
    livers = [None if data is None else liver_union(data.segmentation, exclude=options.exclude, liver=options.liver,
                                                    lesion=options.lesion)
              for data in (baseline, followup)]
    liver_images = [None if liver is None else liver.as_image() for liver in livers]
    for key in key_lesions(result):
        panels = []
        for index, (measurement, data, point) in enumerate(zip(
                measurements, (baseline, followup), (key.baseline_point_ras, key.followup_point_ras))):
            if measurement is None or data is None or point is None:
                panels.append(None)
                continue
            ids = ((key.baseline_id,) if key.baseline_id else ()) if index == 0 else key.followup_ids
            panels.append(axial_slice(labels[index], point, key.field_mm, ids, data.image, liver_images[index],
                                      _caption(key, index)))
        content.key_images.append(KeyImage(key.title, key.kind,
                                           key_image_png(KeyImagePanels(key.title, *panels), options.window_hu)))
    content.overview_png = _overview(measurements, (baseline, followup), livers)
    if prognosis and prognosis["overall_survival"]:
        model = options.model or load_model()
        ttv = prognosis["baseline_ttv_ml"]
        curves = survival_curves(ttv, model)
        months = next(iter(curves.values()))[0]
        content.survival_png = survival_chart_png(curves, model.survival_band(months, ttv), model.time_origin,
                                                  model.model_id)
    return content


def _caption(key: KeyLesion, index: int) -> str:
    """Which lesion the panel shows, or that the place the other scan maps to holds none."""
    ids = ((key.baseline_id,) if key.baseline_id else ()) if index == 0 else key.followup_ids
    return "lesion " + " + ".join(str(number) for number in ids) if ids else "no lesion here"


def _overview(measurements, data: Sequence[TimePointData | None], livers) -> bytes | None:
    from .figures import front_projection, overview_png

    projections = []
    for name, measurement, time_point, liver in zip(("Baseline", "Follow-up"), measurements, data, livers):
        if measurement is None or time_point is None or (measurement.lesion_labels is None and liver is None):
            continue
        geometry = time_point.segmentation.geometry
        labels = (measurement.lesion_labels.full() if measurement.lesion_labels is not None
                  else _zeros(geometry.shape_kji))
        liver_full = None
        if liver is not None:
            liver_full = _zeros(geometry.shape_kji, bool)
            liver_full[tuple(slice(a, a + n) for a, n in zip(liver.start_kji, liver.mask.shape))] = liver.mask
        title = f"{name}: {measurement.lesion_count} lesion(s), {measurement.ttv_ml:.1f} mL"
        projections.append(front_projection(title, geometry, labels, liver_full,
                                            [lesion.centroid_ras for lesion in measurement.lesions]))
    return overview_png(projections) if projections else None


def _zeros(shape, dtype=None):
    import numpy as np

    return np.zeros(shape, dtype=dtype or np.int32)


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------

def write_report(content: ReportContent, pdf_path: str | os.PathLike | None = None,
                 html_path: str | os.PathLike | None = None) -> list[Path]:
    """Write the PDF and/or HTML report (each whole to a temporary file, then renamed); returns the paths."""
    from .html_report import report_html

    if pdf_path is None and html_path is None:
        raise InputError("Name a PDF or an HTML file to write the report to.")
    written = []
    for path in (pdf_path, html_path):
        if path is not None:
            require_writable_folder(path)
    if pdf_path is not None:
        from .pdf import report_pdf

        written.append(_write_atomically(Path(pdf_path), report_pdf(content)))
    if html_path is not None:
        written.append(_write_atomically(Path(html_path), report_html(content).encode("utf-8")))
    return written


def _write_atomically(path: Path, data: bytes) -> Path:
    temporary = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise InputError(f"Could not write the report '{path}' ({error.strerror or error}).") from error
    return path


def write_outcome_report(outcome, html_path: str | os.PathLike | None = None,
                         pdf_path: str | os.PathLike | None = None, provenance: Provenance | None = None,
                         key_images: Sequence[tuple[str, bytes]] = (), overview_png: bytes | None = None,
                         case_label: str = "") -> list[Path]:
    """The Slicer panel's "Save report": the report of ``outcome`` (``mrml.workflow.compute_outcome``).

    ``key_images`` are (title, PNG bytes) pictures the caller took (e.g. slice views captured with Slicer's
    ScreenCapture logic at the centres :func:`.key_images.key_lesions` gives); ``overview_png`` likewise. The
    survival chart is drawn when matplotlib is installed and left out of the HTML otherwise (the survival table
    is always there). A PDF needs matplotlib. ``provenance`` lists the inputs (the panel passes the nodes'
    file names and settings); without it the report says the inputs came from the Slicer scene.
    """
    from .provenance import report_date

    if provenance is None:
        provenance = Provenance([], _version(), report_date().strftime("%Y-%m-%d %H:%M UTC"),
                                {"inputs": "nodes of the Slicer scene (not files)"})
    content = build_content(outcome.result, outcome.prognosis, provenance, case_label, outcome.scores,
                            outcome.warnings, getattr(outcome, "scores_note", ""))
    content.key_images = [KeyImage(title, "caller", png) for title, png in key_images]
    if not content.key_images:
        content.key_lesions_without_pictures = [key.title for key in key_lesions(outcome.result)]
    content.overview_png = overview_png
    if outcome.prognosis and outcome.prognosis["overall_survival"]:
        content.survival_png = _survival_png_if_possible(outcome.prognosis)
    if pdf_path is not None and not _has_matplotlib():
        raise InputError("A PDF report needs matplotlib, which this Python does not have. Write the HTML report, "
                         "or install matplotlib (in Slicer: slicer.util.pip_install('matplotlib')).")
    return write_report(content, pdf_path, html_path)


def _version() -> str:
    from .. import __version__

    return __version__


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _survival_png_if_possible(prognosis: dict) -> bytes | None:
    if not _has_matplotlib():
        return None
    from .figures import survival_chart_png

    model = load_model()
    if prognosis["model_id"] != model.model_id:
        return None  # another model's curves cannot be redrawn from the section alone
    ttv = prognosis["baseline_ttv_ml"]
    curves = survival_curves(ttv, model)
    months = next(iter(curves.values()))[0]
    return survival_chart_png(curves, model.survival_band(months, ttv), model.time_origin, model.model_id)
