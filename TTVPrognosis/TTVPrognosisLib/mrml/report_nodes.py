"""The panel's "Save report": the same patient report as ``ttvprognosis report``, from the panel's nodes.

With matplotlib the report is drawn here exactly as on the command line (key images from the CTs and the
segmentations, overview, survival chart), after checking that the numbers are the ones the panel shows.
Without it (Slicer does not bundle matplotlib) the HTML report is written with the pictures the panel captured
(``key_images``; where to look: :func:`..report.key_images.key_lesions` of ``outcome.result``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import InputError
from ..mrml.nodes import time_point_from_nodes
from ..mrml.workflow import Outcome
from ..pipeline import compare_volumes
from ..report.patient_report import (
    ReportOptions,
    TimePointData,
    report_content,
    write_outcome_report,
    write_report,
)
from ..report.provenance import Provenance, report_date


def can_draw_pictures() -> bool:
    """True when matplotlib is importable (then the report's pictures are drawn here)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def save_report(outcome: Outcome, html_path: str | os.PathLike | None, pdf_path: str | os.PathLike | None,
                baseline_segmentation, baseline_volume=None, followup_segmentation=None, followup_volume=None,
                exclude: Sequence[str] = (), register: bool = True, key_images: Sequence[tuple[str, bytes]] = (),
                window_hu: tuple[float, float] = (150.0, 75.0), case_label: str = "", date: str | None = None
                ) -> list:
    """Write the report of ``outcome`` (from :func:`..mrml.workflow.compute_outcome` on the same nodes)."""
    provenance = Provenance([], _version(), report_date(date).strftime("%Y-%m-%d %H:%M UTC"),
                            _settings(baseline_segmentation, baseline_volume, followup_segmentation,
                                      followup_volume, register, exclude, window_hu))
    if not can_draw_pictures():
        return write_outcome_report(outcome, html_path, pdf_path, provenance, key_images, case_label=case_label)
    from ..measure.volumetry import measure

    baseline = time_point_from_nodes(baseline_segmentation, baseline_volume)
    if followup_segmentation is None:
        result = measure(baseline[0], exclude=exclude, keep_labels=True)
        data = [TimePointData(*baseline), None]
    else:
        followup = time_point_from_nodes(followup_segmentation, followup_volume)
        result = compare_volumes(baseline[0], followup[0], exclude=exclude, keep_labels=True,
                                 baseline_image=baseline[1], followup_image=followup[1], register=register)
        data = [TimePointData(*baseline), TimePointData(*followup)]
    _require_same_numbers(outcome, result)
    options = ReportOptions(window_hu=window_hu, exclude=tuple(exclude), case_label=case_label,
                            scores=list(outcome.scores), scores_note=outcome.scores_note)
    content = report_content(result, outcome.prognosis, provenance, data[0], data[1], options)
    content.warnings += [warning for warning in outcome.warnings if warning not in content.warnings]
    return write_report(content, pdf_path, html_path)


def _require_same_numbers(outcome: Outcome, result) -> None:
    """The report must show the numbers the panel shows: refuse when the nodes changed since Compute TTV."""
    before = outcome.result
    pairs = [(before.baseline, result.baseline), (before.followup, result.followup)] \
        if outcome.comparison is not None and hasattr(result, "followup") else [(outcome.baseline, result)]
    for shown, now in pairs:
        if shown.lesion_count != now.lesion_count or abs(shown.ttv_ml - now.ttv_ml) > 1e-9 * max(shown.ttv_ml, 1.0):
            raise InputError("The segmentations changed since Compute TTV; press Compute TTV again, then save the "
                             "report.")


def _settings(baseline_segmentation, baseline_volume, followup_segmentation, followup_volume, register: bool,
              exclude: Sequence[str], window_hu: tuple[float, float]) -> dict[str, str]:
    def name(node) -> str:
        if node is None:
            return "none"
        storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
        file_name = storage.GetFileName() if storage is not None else None
        return f"{node.GetName()}" + (f" ({os.path.basename(file_name)})" if file_name else "")

    return {"Inputs": "nodes of the Slicer scene", "Baseline segmentation": name(baseline_segmentation),
            "Baseline CT": name(baseline_volume), "Follow-up segmentation": name(followup_segmentation),
            "Follow-up CT": name(followup_volume),
            "Registration": ("rigid" if register else "off") if followup_segmentation is not None
            else "not applicable (one time point)",
            "Excluded segments": ", ".join(exclude) or "none",
            "CT window (W/L, HU)": f"{window_hu[0]:g} / {window_hu[1]:g}"}


def _version() -> str:
    from .. import __version__

    return __version__
