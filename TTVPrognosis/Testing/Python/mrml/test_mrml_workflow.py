"""What Compute TTV does in the panel, run on slicer-core nodes (the Slicer module only gathers inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from TTVPrognosisLib.formats.demo_data import demo_time_point
from TTVPrognosisLib.formats.segments import VERIFIED_TAG, LabelVolume, Segment
from TTVPrognosisLib.measure.volumetry import measure
from TTVPrognosisLib.mrml import nodes as mrml
from TTVPrognosisLib.mrml import workflow as mrml_workflow
from TTVPrognosisLib.mrml.panel_logic import PanelLogic as TTVPanelLogic
from TTVPrognosisLib.report.html import prognosis_html, summary_html


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def load(scene, followup: bool):
    image, segmentation = demo_time_point(followup=followup)
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    slicer.util.updateVolumeFromArray(volume_node, image.voxels)
    volume_node.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
    return volume_node, mrml.segmentation_node_from_label_volume(segmentation, scene), segmentation


def result_nodes(scene) -> mrml_workflow.ResultNodes:
    tables = {name: scene.AddNewNodeByClass("vtkMRMLTableNode", name)
              for name in ("summary", "lesions", "response", "matched_lesions", "survival", "survival_curves",
                           "scores")}
    return mrml_workflow.ResultNodes(**tables, survival_chart=scene.AddNewNodeByClass("vtkMRMLPlotChartNode"))


def test_compare_predict_and_score_fill_every_node(scene):
    baseline_volume, baseline_node, baseline = load(scene, followup=False)
    followup_volume, followup_node, followup = load(scene, followup=True)
    clinical = mrml_workflow.clinical_inputs_from_panel("Yes", 8.0, -1.0, "No", "Unknown")
    outcome = mrml_workflow.compute_outcome(baseline_node, baseline_volume, followup_node, followup_volume,
                                            clinical=clinical)
    assert outcome.comparison is not None
    assert outcome.baseline.ttv_ml == pytest.approx(measure(baseline).ttv_ml)
    assert outcome.comparison.followup.ttv_ml == pytest.approx(measure(followup).ttv_ml)
    assert outcome.comparison.registration.status == "registered"
    assert outcome.comparison.recist.response == "PR"
    assert outcome.prognosis["baseline_ttv_ml"] == pytest.approx(outcome.baseline.ttv_ml)
    assert [score.score for score in outcome.scores] == ["Fong clinical risk score", "GAME score"]
    assert not outcome.scores[0].computable and "CEA" in outcome.scores[0].status
    assert outcome.warnings == [], "the demo segments are tagged verified"
    nodes = result_nodes(scene)
    mrml_workflow.write_outcome(outcome, nodes, scene)
    assert nodes.summary.GetNumberOfColumns() == 4
    assert nodes.matched_lesions.GetNumberOfRows() == 5
    assert nodes.survival.GetNumberOfRows() == len(outcome.prognosis["overall_survival"])
    assert nodes.survival_chart.GetNumberOfPlotSeriesNodes() == 4
    assert nodes.scores.GetNumberOfRows() > 0
    summary = summary_html(outcome.result, outcome.warnings)
    assert "Follow-up TTV" in summary and "RECIST 1.1: <b>PR</b>" in summary
    prognosis = prognosis_html(outcome.prognosis)
    assert "5-year overall survival" in prognosis and "Research" in prognosis


def test_scores_come_from_the_follow_up_and_the_panel_says_so(scene):
    """Fong and GAME are preoperative: with a follow-up (after induction therapy) they use its measurements."""
    baseline_volume, baseline_node, _ = load(scene, followup=False)
    followup_volume, followup_node, _ = load(scene, followup=True)
    clinical = mrml_workflow.clinical_inputs_from_panel("No", 24.0, 5.0, "No", "No")
    outcome = mrml_workflow.compute_outcome(baseline_node, baseline_volume, followup_node, followup_volume,
                                            clinical=clinical)
    followup = outcome.comparison.followup
    assert outcome.baseline.lesion_count != followup.lesion_count, "the demo's lesion counts differ"
    fong_items = {item.name: item.value for item in outcome.scores[0].items}
    assert fong_items["number of liver lesions"] == followup.lesion_count
    assert fong_items["largest lesion diameter (mm)"] == pytest.approx(followup.largest_axial_diameter_mm)
    assert outcome.scores_time_point == "followup" and "follow-up scan" in outcome.scores_note
    panel = TTVPanelLogic.prognosisHtml(outcome)
    assert "follow-up scan" in panel and "complete local treatment" in panel and "conditional on" in panel
    assert "Who this is for" in panel and "IQR of the CAIRO5 cohort" in panel
    nodes = result_nodes(scene)
    mrml_workflow.write_outcome(outcome, nodes, scene)
    first_row = [nodes.scores.GetCellText(0, column) for column in range(3)]
    assert first_row == ["Fong clinical risk score", "scan", "follow-up (after induction therapy)"]
    baseline_only = mrml_workflow.compute_outcome(baseline_node, baseline_volume, clinical=clinical)
    assert baseline_only.scores_time_point == "baseline"
    assert {item.name: item.value for item in baseline_only.scores[0].items}["number of liver lesions"] == \
        outcome.baseline.lesion_count


def test_baseline_only_then_empty_baseline_clears_stale_results(scene):
    baseline_volume, baseline_node, _ = load(scene, followup=False)
    nodes = result_nodes(scene)
    followup_volume, followup_node, _ = load(scene, followup=True)
    mrml_workflow.write_outcome(mrml_workflow.compute_outcome(baseline_node, baseline_volume, followup_node,
                                                              followup_volume), nodes, scene)
    baseline_only = mrml_workflow.compute_outcome(baseline_node, baseline_volume)
    assert baseline_only.comparison is None and baseline_only.prognosis is not None
    mrml_workflow.write_outcome(baseline_only, nodes, scene)
    assert nodes.matched_lesions.GetNumberOfColumns() == 0, "no stale follow-up results"
    liver_only = LabelVolume([np.ones((4, 4, 4), np.uint8)], demo_time_point(False)[1].geometry.cropped(
        (0, 0, 0), (4, 4, 4)), [Segment("liver", "Liver", 0, 1)])
    empty = mrml_workflow.compute_outcome(mrml.segmentation_node_from_label_volume(liver_only, scene))
    assert empty.prognosis is None and empty.scores == []
    mrml_workflow.write_outcome(empty, nodes, scene)
    assert nodes.survival_chart.GetNumberOfPlotSeriesNodes() == 0
    assert "No prognosis" in prognosis_html(empty.prognosis)


def test_unverified_lesions_are_reported(scene):
    volume_node, node, _ = load(scene, followup=False)
    segmentation = node.GetSegmentation()
    segmentation.GetSegment(segmentation.GetNthSegmentID(1)).SetTag(VERIFIED_TAG, "0")
    outcome = mrml_workflow.compute_outcome(node, volume_node)
    assert len(outcome.warnings) == 1 and "Lesion 1" in outcome.warnings[0]


@pytest.mark.parametrize("values, expected", [
    (("Yes", 0.0, 250.0, "no", "Unknown"), (True, 0.0, 250.0, False, None)),
    (("Unknown", -1.0, -1.0, "Unknown", "Yes"), (None, None, None, None, True)),
])
def test_clinical_inputs_from_panel(values, expected):
    clinical = mrml_workflow.clinical_inputs_from_panel(*values)
    assert (clinical.node_positive_primary, clinical.disease_free_interval_months, clinical.cea_ng_ml,
            clinical.kras_mutated, clinical.extrahepatic_disease) == expected


@pytest.mark.parametrize("scale_mm", [0.2, 10.0])  # TTV below the model's range (0.5 mL) and far above it
def test_ttv_outside_the_model_range_still_fills_the_panel(scene, scale_mm):
    """The prognosis says why there is no prediction; every other result is still shown (no exception)."""
    segmentation = demo_time_point(followup=False)[1]
    matrix = segmentation.geometry.ijk_to_ras.copy()
    matrix[:3, :3] *= scale_mm / np.cbrt(segmentation.geometry.voxel_volume_mm3)
    scaled = LabelVolume(segmentation.layers, type(segmentation.geometry)(matrix, segmentation.geometry.shape_kji),
                         segmentation.segments)
    # At 10 mm voxels the lesions are organ-sized (over 1 L): counted only when named as lesions.
    outcome = mrml_workflow.compute_outcome(mrml.segmentation_node_from_label_volume(scaled, scene), lesion=["Lesion*"])
    assert outcome.prognosis is not None and outcome.prognosis["overall_survival"] == []
    assert outcome.prognosis["errors"], "the reason is reported"
    nodes = result_nodes(scene)
    mrml_workflow.write_outcome(outcome, nodes, scene)
    assert nodes.summary.GetNumberOfRows() > 0 and nodes.scores.GetNumberOfRows() > 0
    assert nodes.survival_chart.GetNumberOfPlotSeriesNodes() == 0
