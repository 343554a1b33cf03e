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
from ..report.content import RESEARCH_NOTICE
from ..report.key_images import key_lesions
from . import nodes as mrml
from . import panel_outputs, result_state
from .report_nodes import can_draw_pictures
from .sample_data import SAMPLE_CATEGORY, SAMPLE_NAME, load_demo_time_point
from .slice_capture import capture_key_images


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def run_all(widget, logic_class, delay, folder: str) -> None:
    """The whole in-Slicer self-test (``widget()``: the module's panel once selected): the panel driven as a
    user would, then the logic as the Python console does."""
    import SampleData

    slicer.mrmlScene.Clear()
    source = next(item for item in SampleData.SampleDataLogic.sampleDataSourcesByCategory(SAMPLE_CATEGORY)
                  if item.sampleName == SAMPLE_NAME)
    slicer.util.selectModule("TTVPrognosis")
    panel_as_a_user(widget(), source, delay, os.path.join(folder, "TTVPrognosisSelfTest.mrb"))
    for message, check in LOGIC_CHECKS:
        slicer.mrmlScene.Clear()
        delay(message)
        check(logic_class(), slicer.mrmlScene)
    delay("Test passed")


def panel_as_a_user(widget, source, delay, scene_path: str) -> None:
    """Drive the panel's widgets as a radiologist would; needs the Slicer application (the module's self-test).

    Load the demo from Sample Data, choose the inputs, create a segmentation, click on a lesion with Add lesion,
    verify, enter clinical inputs, Compute TTV, check the tables; close the scene (the panel empties), reopen
    the saved scene: the clinical inputs, the results and the lesion survive.
    """
    delay("Load the demo case from Sample Data and choose the inputs")
    baseline_ct, followup_ct, baseline_segmentation, followup_segmentation = source.customDownloader(source)
    ui, parameter_node = widget.ui, widget._parameterNode
    for selector, node in ((ui.baselineVolumeSelector, baseline_ct), (ui.followupVolumeSelector, followup_ct),
                           (ui.followupSegmentationSelector, followup_segmentation)):
        selector.setCurrentNode(node)
    ui.createSegmentationButton.click()  # a new, empty baseline segmentation to add lesions to
    review_node = parameter_node.baselineSegmentation
    _check(review_node is not None and review_node is not baseline_segmentation, "no new segmentation selected")
    review_node.GetSegmentation().CopySegmentFromSegmentation(baseline_segmentation.GetSegmentation(), "Liver")
    delay("Add lesion: click on the largest demo lesion")
    ui.addLesionButton.click()
    parameter_node.lesionPoints.AddControlPoint(list(DEMO_LESIONS[0].centre_ras))
    delay("Segmenting", 500)  # the click is handled once the markups event is over
    _check(ui.lesionTableWidget.rowCount == 1, f"lesion table after a click: {ui.addLesionStatusLabel.text}")
    _check(ui.segmentEditorWidget.undoEnabled, "the editor's undo is off")
    ui.addLesionButton.click()
    ui.verifyAllButton.click()
    ui.krasComboBox.currentText, ui.ceaSpinBox.value = "Yes", 12.0
    _check(parameter_node.krasMutated == "Yes" and parameter_node.ceaNgMl == 12.0, "clinical inputs not bound")
    delay("Compute TTV")
    ui.computeButton.click()
    check_panel_results(parameter_node, ui.summaryLabel.text)
    _check(ui.saveReportButton.enabled, "Save report is off after Compute TTV")
    _check(not ui.exportSegButton.enabled, "Export DICOM SEG is on for a CT that was not loaded from DICOM")
    delay("Save report (as the button does, without its file dialog)")
    check_saved_report(widget.logic, parameter_node, os.path.join(os.path.dirname(scene_path), "report-panel.html"))
    _check(bool(slicer.util.saveScene(scene_path)), f"could not save {scene_path}")
    delay("Close the scene, then reopen it")
    slicer.mrmlScene.Clear(0)
    _check(ui.lesionTableWidget.rowCount == 0, "lesions of a closed scene still listed")
    _check(ui.summaryLabel.text == result_state.NO_RESULTS_SUMMARY, "results of a closed scene still shown")
    slicer.util.loadScene(scene_path)
    delay("Reopened", 200)
    parameter_node = widget._parameterNode
    _check((parameter_node.krasMutated, ui.krasComboBox.currentText) == ("Yes", "Yes"), "KRAS lost on reopening")
    _check(parameter_node.ceaNgMl == 12.0, "CEA lost on reopening")
    check_panel_results(parameter_node, ui.summaryLabel.text)
    _check(ui.lesionTableWidget.rowCount == 1, "the added lesion is not listed after reopening")
    _check(widget.logic.lastOutcome is None, "the outcome of the closed scene is still kept")
    delay("Save report from the reopened scene's results")
    check_saved_report(widget.logic, parameter_node, os.path.join(os.path.dirname(scene_path), "report-reopened.html"))


def check_saved_report(logic, parameter_node, path: str) -> None:
    """Save report writes an HTML report with the panel's numbers, the research-use notice and its key images
    (drawn with matplotlib, or captured from the Red slice view: one per key lesion and time point)."""
    if os.path.exists(path):
        os.remove(path)
    p = parameter_node
    written = panel_outputs.save_panel_report(logic, p, path, lambda outcome: capture_key_images(
        outcome, p.baselineVolume, p.followupVolume, p.baselineSegmentation, p.followupSegmentation))
    _check([str(item) for item in written] == [path], f"report files {written}")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    _check(RESEARCH_NOTICE in text, "the report has no research-use notice")
    outcome = logic.lastOutcome[1] if logic.lastOutcome else logic.computeOutcome(p)
    _check(f"{outcome.baseline.ttv_ml:.2f}" in text, "the report does not show the baseline TTV")
    keys = key_lesions(outcome.result)
    expected = len(keys) if can_draw_pictures() else sum(
        (key.baseline_point_ras is not None) + (key.followup_point_ras is not None) for key in keys)
    _check(text.count("<figure class='keyimage'>") == expected, f"key images: {text.count('keyimage')} "
           f"for {len(keys)} key lesion(s)")


def check_panel_results(parameter_node, summary_text: str) -> None:
    """The tables a Compute TTV of the panel test fills, and a summary that is current."""
    _check(parameter_node.lesionTable is not None and parameter_node.lesionTable.GetNumberOfRows() >= 2,
           "lesion table (baseline and follow-up lesions)")
    _check(parameter_node.matchedLesionTable.GetNumberOfRows() > 0, "matched lesion table")
    _check(parameter_node.scoreTable.GetNumberOfRows() > 0, "clinical score table")
    _check("TTV" in summary_text and result_state.OUT_OF_DATE_NOTE not in summary_text, "summary not current")


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


def process_cohort(logic, scene) -> None:
    save_node = slicer.util.saveNode
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


def missing_segmentation_is_reported(logic, scene=None) -> None:
    try:
        logic.computeTTV(logic.getParameterNode())
    except InputError:
        return
    raise AssertionError("Compute TTV without a baseline segmentation raised no error")


LOGIC_CHECKS = (("Compute TTV on the demo pair", compute_ttv_matches_library),
                ("Add lesions by clicking, verify, and compute", review_workflow),
                ("Process a two-patient cohort from the console", process_cohort),
                ("No baseline segmentation selected", missing_segmentation_is_reported))
