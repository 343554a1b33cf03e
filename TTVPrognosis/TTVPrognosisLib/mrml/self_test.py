"""The in-Slicer self-test's checks, kept out of the module file so that it stays a thin panel.

Each function drives the module's logic facade as the panel and the Python console do and raises
AssertionError with what differed. ``TTVPrognosisTest`` in TTVPrognosis.py calls them inside Slicer; they
need the application's scene and readers, so the headless suite does not run them.
"""

from __future__ import annotations

import csv
import os
import tempfile

import slicer

from ..errors import InputError
from ..formats.demo_data import DEMO_LESIONS, demo_time_point
from ..formats.segments import ROLE_TAG
from ..measure.volumetry import measure
from . import nodes as mrml
from .panel_logic import BASELINE, FOLLOWUP


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def load_demo_time_point(scene, followup: bool):
    """(CT node, segmentation node, LabelVolume truth) of the embedded demo case."""
    image, segmentation = demo_time_point(followup=followup)
    name = FOLLOWUP if followup else BASELINE
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{name} CT")
    slicer.util.updateVolumeFromArray(volume_node, image.voxels)
    volume_node.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
    segmentation_node = mrml.segmentation_node_from_label_volume(segmentation, scene, f"{name} segmentation")
    return volume_node, segmentation_node, segmentation


def compute_ttv_matches_library(logic, scene) -> None:
    baseline_volume, baseline_segmentation, baseline_labels = load_demo_time_point(scene, followup=False)
    followup_volume, followup_segmentation, followup_labels = load_demo_time_point(scene, followup=True)
    parameter_node = logic.getParameterNode()
    parameter_node.baselineVolume = baseline_volume
    parameter_node.baselineSegmentation = baseline_segmentation
    parameter_node.followupVolume = followup_volume
    parameter_node.followupSegmentation = followup_segmentation
    outcome = logic.computeTTV(parameter_node)
    comparison = outcome.comparison
    _check(abs(comparison.baseline.ttv_ml - measure(baseline_labels).ttv_ml) < 1e-9, "baseline TTV differs")
    _check(abs(comparison.followup.ttv_ml - measure(followup_labels).ttv_ml) < 1e-9, "follow-up TTV differs")
    _check(comparison.recist.response == "PR", f"RECIST {comparison.recist.response}, expected PR")
    _check(parameter_node.lesionTable.GetNumberOfRows()
           == comparison.baseline.lesion_count + comparison.followup.lesion_count, "lesion table rows")
    _check(parameter_node.matchedLesionTable.GetNumberOfRows() == len(comparison.lesion_table()),
           "matched lesion table rows")
    _check(parameter_node.survivalTable.GetNumberOfRows() > 0, "empty survival table")
    _check(parameter_node.survivalChart.GetNumberOfPlotSeriesNodes() == 4, "survival chart series")
    _check("Follow-up TTV" in logic.summaryHtml(outcome), "summary without the follow-up TTV")
    _check("5-year overall survival" in logic.prognosisHtml(outcome), "prognosis without 5-year survival")


def review_workflow(logic, scene) -> None:
    volume_node, _, truth = load_demo_time_point(scene, followup=False)
    parameter_node = logic.getParameterNode()
    parameter_node.baselineVolume = volume_node
    segmentation_node = logic.createReviewSegmentation(parameter_node)
    mrml.add_segment_from_mask(segmentation_node, truth.layers[0] > 0, truth.geometry, "Liver", {ROLE_TAG: "liver"})
    for lesion in DEMO_LESIONS[:2]:
        logic.addLesionAtPoint(parameter_node, lesion.centre_ras)
    rows = logic.lesionRows(parameter_node)
    _check([row.name for row in rows] == ["Lesion 1", "Lesion 2"], f"lesion rows {[row.name for row in rows]}")
    outcome = logic.computeTTV(parameter_node)
    _check(any("not marked verified" in warning for warning in outcome.warnings), "no unverified warning")
    for row in rows:
        logic.setLesionVerified(parameter_node, row.segment_id, True)
    _check(not logic.computeTTV(parameter_node).warnings, "warnings after verifying every lesion")
    try:
        logic.addLesionAtPoint(parameter_node, DEMO_LESIONS[0].centre_ras)
    except InputError:
        pass
    else:
        raise AssertionError("a click inside an existing lesion was accepted")
    _check(len(logic.lesionRows(parameter_node)) == 2, "a refused click changed the lesions")


def process_cohort(logic, scene, save_node) -> None:
    folder = tempfile.mkdtemp()
    paths = {}
    for name in ("baseline", "followup"):  # written by Slicer: slicerio and pynrrd are not bundled with it
        node = mrml.segmentation_node_from_label_volume(demo_time_point(followup=name == "followup")[1], scene)
        paths[name] = os.path.join(folder, f"{name}.seg.nrrd")
        _check(bool(save_node(node, paths[name])), f"Slicer could not save {paths[name]}")
        scene.RemoveNode(node)
    manifest = os.path.join(folder, "cohort.csv")
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "baseline_segmentation", "followup_segmentation"])
        writer.writerow(["P1", paths["baseline"], paths["followup"]])
        writer.writerow(["P2", os.path.join(folder, "missing.seg.nrrd"), ""])
    result, table = logic.processCohort(manifest, os.path.join(folder, "results.csv"), showProgress=False)
    _check((result.succeeded, result.failed) == (1, 1), f"succeeded/failed {result.succeeded}/{result.failed}")
    _check(table.GetNumberOfRows() == 2, "cohort table rows")


def missing_segmentation_is_reported(logic) -> None:
    try:
        logic.computeTTV(logic.getParameterNode())
    except InputError:
        return
    raise AssertionError("Compute TTV without a baseline segmentation raised no error")
