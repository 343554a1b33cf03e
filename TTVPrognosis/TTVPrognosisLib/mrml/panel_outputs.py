"""What the panel's Save report and Export DICOM SEG buttons write, decided without widgets.

The panel asks for a file name and shows errors; everything else is here so that it can be tested on
slicer-core: which buttons are usable, default file names, the report's files from the chosen name, which
outcome the report shows (never one of other inputs than the results on screen), and the folder of the CT's
DICOM files (Slicer keeps their instance UIDs on the volume node; its DICOM database knows the files).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import InputError
from ..report.dicom_seg_export import export_dicom_seg
from . import result_state
from .nodes import time_point_from_nodes
from .report_nodes import can_draw_pictures, save_report

DICOM_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"  # set by Slicer's DICOM scalar volume plugin, space-separated
REPORT_FILTERS = {True: "PDF report (*.pdf);;HTML report (*.html)", False: "HTML report (*.html)"}
SEG_FILTER = "DICOM Segmentation (*.dcm)"
MATPLOTLIB_PURPOSE = ("A PDF report with drawn key images and the survival chart (without it, Save report writes "
                      "an HTML report with pictures captured from the slice views)")
NO_PICTURES_NOTE = ("Key images are left out: matplotlib is not installed and the slice views could not be captured "
                    "(no CT selected, or no Slicer views). Install matplotlib and save the report again for pictures.")


def importable(package: str) -> bool:
    """True when ``package`` can be imported now (also right after ``slicer.util.pip_install``)."""
    importlib.invalidate_caches()
    return importlib.util.find_spec(package) is not None


def install_question(package: str, purpose: str) -> str:
    return (f"{purpose} needs the Python package '{package}', which Slicer does not bundle. Install it now? "
            f"(It is downloaded from the Python Package Index, so an internet connection is needed.)")


@dataclass(frozen=True)
class OutputButtons:
    report_enabled: bool
    report_tip: str
    seg_enabled: bool
    seg_tip: str


def is_from_dicom(volume_node) -> bool:
    return bool(volume_node is not None and (volume_node.GetAttribute(DICOM_UIDS_ATTRIBUTE) or "").split())


def output_buttons(shown: result_state.ShownResults, review_volume, review_segmentation) -> OutputButtons:
    """Save report needs current results; Export DICOM SEG a reviewed segmentation on a CT loaded from DICOM."""
    if not shown.computed:
        report = (False, "Press Compute TTV first: the report shows its results.")
    elif not shown.up_to_date:
        report = (False, "The inputs changed after Compute TTV: press Compute TTV again, then save the report.")
    else:
        report = (True, "Write the patient report (PDF with matplotlib, else HTML) of the results shown.")
    if review_segmentation is None:
        seg = (False, "Select the segmentation under review first.")
    elif not is_from_dicom(review_volume):
        seg = (False, "The CT under review was not loaded from DICOM; a DICOM SEG must reference DICOM CT slices.")
    else:
        seg = (True, "Write the segmentation under review as a DICOM Segmentation object on its CT series.")
    return OutputButtons(*report, *seg)


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9 ._-]+", "_", name or "").strip(" ._")
    return cleaned or "TTV"


def default_report_name(segmentation_name: str, pdf: bool) -> str:
    return f"{_safe_name(segmentation_name)} TTV report.{'pdf' if pdf else 'html'}"


def default_seg_name(segmentation_name: str) -> str:
    return f"{_safe_name(segmentation_name)} SEG.dcm"


def _with_suffix(chosen: str, suffix: str) -> str:
    """The chosen name, with ``suffix`` added when it has none; an added suffix must not overwrite a file (the
    file dialog only asked about the name as typed)."""
    if os.path.splitext(chosen)[1]:
        return chosen
    path = chosen + suffix
    if os.path.exists(path):
        raise InputError(f"'{path}' exists already; choose another file name.")
    return path


def report_paths(chosen: str, can_draw: bool) -> tuple[str | None, str | None]:
    """(html_path, pdf_path) from the name chosen in the file dialog: exactly one file, the one chosen."""
    path = _with_suffix(chosen, ".pdf" if can_draw else ".html")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".pdf":
        if not can_draw:
            raise InputError("A PDF report needs matplotlib, which Slicer does not bundle. Save an .html report, or "
                             "accept installing matplotlib when asked.")
        return None, path
    if suffix in (".html", ".htm"):
        return path, None
    raise InputError(f"The report file name must end in .pdf or .html, not '{suffix}'.")


def report_outcome(parameter_node, kept: tuple | None, compute: Callable[[], object]):
    """The outcome the report shows: the one Compute TTV kept for these inputs, or (results of a reopened
    scene) the same inputs computed again. Refused when the results on screen are missing or out of date."""
    shown = result_state.shown_results(parameter_node)
    if not shown.computed:
        raise InputError("Press Compute TTV first; the report shows its results.")
    if not shown.up_to_date:
        raise InputError("The inputs changed after Compute TTV; press Compute TTV again, then save the report.")
    if kept is not None and kept[0] == result_state.inputs_signature(parameter_node):
        return kept[1]
    return compute()


def save_panel_report(logic, parameter_node, chosen: str,
                      capture: Callable[[object], Sequence[tuple[str, bytes]]] | None = None) -> list:
    """Write the report chosen in the panel (``logic``: the module's PanelLogic, which keeps the last outcome).
    Without matplotlib, ``capture(outcome)`` gives the key images (Slicer's slice views); without pictures the
    report says why."""
    can_draw = can_draw_pictures()
    html_path, pdf_path = report_paths(chosen, can_draw)
    outcome = report_outcome(parameter_node, logic.lastOutcome, lambda: logic.computeOutcome(parameter_node))
    key_images = list(capture(outcome)) if capture is not None and not can_draw else []
    if not can_draw and not key_images:
        outcome = dataclasses.replace(outcome, warnings=[*outcome.warnings, NO_PICTURES_NOTE])
    exclude = logic.excludedSegmentNames(parameter_node.excludedSegments)
    return save_report(outcome, html_path, pdf_path, parameter_node.baselineSegmentation,
                       parameter_node.baselineVolume, parameter_node.followupSegmentation,
                       parameter_node.followupVolume, exclude=exclude, register=parameter_node.registerFollowup,
                       key_images=key_images)


def dicom_folder(volume_node, file_for_instance: Callable[[str], str]) -> str:
    """The one folder holding the DICOM files of ``volume_node`` (``file_for_instance``: instance UID -> file,
    "" when unknown, as ``slicer.dicomDatabase.fileForInstance``)."""
    name = volume_node.GetName() if volume_node is not None else "none"
    uids = (volume_node.GetAttribute(DICOM_UIDS_ATTRIBUTE) or "").split() if volume_node is not None else []
    if not uids:
        raise InputError(f"The CT '{name}' was not loaded from DICOM; load the CT series through the DICOM module "
                         f"to export a DICOM SEG on it.")
    files = [file_for_instance(uid) or "" for uid in uids]
    missing = sum(1 for path in files if not path or not os.path.isfile(path))
    if missing:
        raise InputError(f"{missing} of the {len(uids)} DICOM files of '{name}' are no longer in Slicer's DICOM "
                         f"database or on disk; import the CT series again.")
    folders = sorted({os.path.dirname(os.path.abspath(path)) for path in files})
    if len(folders) != 1:
        raise InputError(f"The DICOM files of '{name}' lie in {len(folders)} folders; put the series in one folder "
                         f"and use `ttvprognosis export-seg SEGMENTATION --image FOLDER --output SEG.dcm`.")
    return folders[0]


def seg_path(chosen: str, ct_folder: str) -> str:
    path = _with_suffix(chosen, ".dcm")
    if os.path.dirname(os.path.abspath(path)) == os.path.abspath(ct_folder):
        raise InputError("Save the DICOM SEG outside the CT's own DICOM folder (Slicer's database keeps it there).")
    return path


def export_panel_seg(logic, parameter_node, chosen: str, file_for_instance: Callable[[str], str]):
    """The segmentation under review (``logic.reviewNodes``) as DICOM SEG on the DICOM series of its CT, without
    the excluded segments; returns the ExportSummary."""
    review_volume, review_segmentation = logic.reviewNodes(parameter_node)
    if review_segmentation is None:
        raise InputError("Select the segmentation under review first.")
    folder = dicom_folder(review_volume, file_for_instance)
    path = seg_path(chosen, folder)
    label_volume, _ = time_point_from_nodes(review_segmentation, review_volume, read_voxels=False)
    return export_dicom_seg(label_volume, folder, path, exclude=logic.excludedSegmentNames(
        parameter_node.excludedSegments))


def seg_message(summary) -> str:
    """What the panel tells after an export: the file, its segments and the TTV it holds, and any warnings."""
    lines = [f"Wrote {summary.path}: {len(summary.segments)} segment(s) on CT series {summary.series_instance_uid}, "
             f"TTV {summary.ttv_ml:.2f} mL."]
    lines += [f"Segment {row['number']}: {row['label']} ({row['role']}, "
              f"{'verified' if row['verified'] else 'not verified'})" for row in summary.segments]
    lines += [f"Warning: {warning}" for warning in summary.warnings]
    return "\n".join(lines)
