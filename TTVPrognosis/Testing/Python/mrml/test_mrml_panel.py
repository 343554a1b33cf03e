"""The panel's MRML behaviour on slicer-core (no Qt): one modification, results tied to inputs, the region
path of Add lesion, undo states, observers released, placement settings restored, the lesion table cache."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import slicer
import vtk

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import DEMO_LESIONS, demo_time_point
from TTVPrognosisLib.formats.segments import LabelVolume
from TTVPrognosisLib.mrml import lesion_region, result_state, review
from TTVPrognosisLib.mrml import nodes as mrml
from TTVPrognosisLib.mrml.lesion_table import LesionRowCache
from TTVPrognosisLib.mrml.observations import NodeObservations, PlacementSession
from TTVPrognosisLib.mrml.panel_logic import CancelledError, PanelLogic, first_ct_volume
from TTVPrognosisLib.segment.editing import on_grid
from TTVPrognosisLib.segment.lesion import DEFAULT_SETTINGS, reach_kji

NODE_PARAMETERS = ("baselineVolume", "baselineSegmentation", "followupVolume", "followupSegmentation",
                   "segmentEditorNode", "lesionPoints", "summaryTable", "lesionTable", "responseTable",
                   "matchedLesionTable", "survivalTable", "survivalCurveTable", "survivalChart", "scoreTable")
VALUE_PARAMETERS = {"excludedSegments": "", "registerFollowup": True, "reviewTimePoint": "Baseline",
                    "nodePositivePrimary": "Unknown", "diseaseFreeIntervalMonths": -1.0, "ceaNgMl": -1.0,
                    "krasMutated": "Unknown", "extrahepaticDisease": "Unknown"}


class WrapperLikeParameterNode:
    """What Slicer's parameterNodeWrapper does, on slicer-core: every write is a MRML write to a scripted module
    node (node references, parameters), which fires a ModifiedEvent; StartModify/EndModify pass through."""

    def __init__(self, scene):
        object.__setattr__(self, "parameterNode", scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode"))
        object.__setattr__(self, "_values", dict(VALUE_PARAMETERS))
        object.__setattr__(self, "_scene", scene)

    def __getattr__(self, name):
        if name in NODE_PARAMETERS:
            return self.parameterNode.GetNodeReference(name)
        return self._values[name]

    def __setattr__(self, name, value):
        if name in NODE_PARAMETERS:
            self.parameterNode.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        else:
            self._values[name] = value
            self.parameterNode.SetParameter(name, str(value))

    def StartModify(self):
        return self.parameterNode.StartModify()

    def EndModify(self, wasModifying):
        return self.parameterNode.EndModify(wasModifying)


@pytest.fixture
def scene(monkeypatch):
    scene = slicer.vtkMRMLScene()
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    return scene


def load(scene, followup: bool, liver_only: bool = False):
    image, segmentation = demo_time_point(followup=followup)
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    slicer.util.updateVolumeFromArray(volume_node, image.voxels)
    volume_node.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
    if liver_only:
        segmentation = LabelVolume([segmentation.layers[0]], segmentation.geometry, [segmentation.segments[0]])
    return volume_node, mrml.segmentation_node_from_label_volume(segmentation, scene), image


def panel_inputs(scene, followup: bool = True):
    parameter_node = WrapperLikeParameterNode(scene)
    parameter_node.baselineVolume, parameter_node.baselineSegmentation, _ = load(scene, followup=False)
    if followup:
        parameter_node.followupVolume, parameter_node.followupSegmentation, _ = load(scene, followup=True)
    return parameter_node


def segment_mask(segmentation_node, segment_id, volume_node, image):
    volume = on_grid(mrml.label_volume_from_segmentation_node(segmentation_node, volume_node), image.geometry)
    segment = next(item for item in volume.segments if item.segment_id == segment_id)
    return volume.layers[segment.layer] == segment.label_value


# --- Compute TTV ----------------------------------------------------------------------------------------------


def test_survival_curves_are_scatter_series_against_months(scene):
    parameter_node = panel_inputs(scene, followup=False)
    PanelLogic().computeTTV(parameter_node)
    chart = parameter_node.survivalChart
    assert chart.GetNumberOfPlotSeriesNodes() == 4
    for index in range(chart.GetNumberOfPlotSeriesNodes()):
        series = chart.GetNthPlotSeriesNode(index)
        assert series.GetPlotType() == series.PlotTypeScatter, "a line series ignores the X column"
        assert series.GetMarkerStyle() == series.MarkerStyleNone
        assert series.GetXColumnName() == "Months"
        months = series.GetTableNode().GetTable().GetColumnByName("Months")
        assert months.GetValue(months.GetNumberOfValues() - 1) >= 60


def test_compute_ttv_modifies_the_parameter_node_once_and_locks_the_tables(scene):
    parameter_node = panel_inputs(scene)
    events = []
    parameter_node.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda caller, event: events.append(1))
    PanelLogic().computeTTV(parameter_node)
    assert len(events) == 1, f"{len(events)} ModifiedEvents; the panel re-reads its inputs at each"
    tables = [parameter_node.summaryTable, parameter_node.lesionTable, parameter_node.scoreTable]
    assert all(table.GetLocked() for table in tables)
    table_events = []
    parameter_node.summaryTable.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda caller, event: table_events.append(1))
    events.clear()
    PanelLogic().computeTTV(parameter_node)
    assert len(events) <= 1 and len(table_events) == 1


def test_cancelled_compute_leaves_the_previous_results(scene):
    parameter_node = panel_inputs(scene)
    logic = PanelLogic()
    logic.computeTTV(parameter_node)
    rows_before = parameter_node.lesionTable.GetNumberOfRows()
    parameter_node.excludedSegments = "Lesion 1"

    def cancel_at_registration(text):
        if text.startswith("Registering"):
            raise CancelledError()

    with pytest.raises(CancelledError):
        logic.computeTTV(parameter_node, step=cancel_at_registration)
    assert parameter_node.lesionTable.GetNumberOfRows() == rows_before
    assert not result_state.shown_results(parameter_node).up_to_date, "results of other inputs are not current"


def test_results_belong_to_their_inputs_and_survive_a_saved_scene(scene):
    parameter_node = panel_inputs(scene, followup=False)
    assert not result_state.shown_results(parameter_node).computed
    PanelLogic().computeTTV(parameter_node)
    shown = result_state.shown_results(parameter_node)
    assert shown.computed and shown.up_to_date and "TTV" in shown.summary_html
    parameter_node.krasMutated = "Yes"
    changed = result_state.shown_results(parameter_node)
    assert not changed.up_to_date and changed.summary_html.startswith(result_state.OUT_OF_DATE_NOTE)
    parameter_node.krasMutated = "Unknown"
    assert result_state.shown_results(parameter_node).up_to_date
    result_state.mark_inputs_edited(parameter_node.summaryTable)
    assert not result_state.shown_results(parameter_node).up_to_date

    PanelLogic().computeTTV(parameter_node)
    scene.SetSaveToXMLString(1)
    scene.Commit()
    reopened = slicer.vtkMRMLScene()
    reopened.SetLoadFromXMLString(1)
    reopened.SetSceneXMLString(scene.GetSceneXMLString())
    reopened.Import()
    summary = reopened.GetNodeByID(parameter_node.summaryTable.GetID())
    assert summary.GetAttribute(result_state.SUMMARY_ATTRIBUTE) == shown.summary_html
    assert summary.GetAttribute(result_state.INPUTS_ATTRIBUTE) == result_state.inputs_signature(parameter_node)


def test_a_labelmap_is_never_the_default_ct_nor_measured_as_one(scene):
    scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    assert first_ct_volume(scene) is None
    ct = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    assert first_ct_volume(scene) is ct
    parameter_node = panel_inputs(scene, followup=False)
    parameter_node.baselineVolume = scene.GetFirstNodeByName("labels")
    with pytest.raises(InputError, match="labelmap"):
        PanelLogic().computeTTV(parameter_node)
    assert PanelLogic().reviewNodes(parameter_node)[0] is None


# --- Add lesion in a region, undo -----------------------------------------------------------------------------


def test_region_add_lesion_gives_the_whole_grid_segment_bit_for_bit(scene):
    volume_node, _, image = load(scene, followup=False)
    whole = load(scene, followup=False, liver_only=True)[1]
    region = mrml.segmentation_node_from_label_volume(
        on_grid(mrml.label_volume_from_segmentation_node(whole), image.geometry), scene)
    for lesion in DEMO_LESIONS:
        whole_id, whole_result = review.add_lesion_at_points_to_node(whole, volume_node, [lesion.centre_ras])
        region_id, region_result = lesion_region.add_lesion_in_region(region, volume_node, [lesion.centre_ras])
        assert whole.GetSegmentation().GetSegment(whole_id).GetName() == \
            region.GetSegmentation().GetSegment(region_id).GetName()
        assert np.array_equal(segment_mask(whole, whole_id, volume_node, image),
                              segment_mask(region, region_id, volume_node, image))
        assert region_result.intensity == whole_result.intensity


def test_region_add_lesion_reads_nothing_outside_its_box(scene):
    """Voxels outside the box are made absurd (bone in the CT, liver everywhere): the result must not change."""
    volume_node, _, image = load(scene, followup=False)
    point = DEMO_LESIONS[1].centre_ras
    clean = load(scene, followup=False, liver_only=True)[1]
    expected_id, _ = review.add_lesion_at_points_to_node(clean, volume_node, [point])
    expected = segment_mask(clean, expected_id, volume_node, image)

    box = reach_kji(image.geometry, [point], DEFAULT_SETTINGS, lesion_region.FIRST_REACH_ENLARGEMENTS)
    outside = np.ones(image.geometry.shape_kji, dtype=bool)
    outside[box] = False
    assert outside.mean() > 0.5, "the box should be a small part of the scan"
    corrupted_ct = image.voxels.copy()
    corrupted_ct[outside] = 3000
    corrupted_volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    slicer.util.updateVolumeFromArray(corrupted_volume, corrupted_ct)
    corrupted_volume.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
    _, segmentation = demo_time_point(followup=False)
    liver = segmentation.layers[0].copy()
    liver[outside] = 1
    corrupted = mrml.segmentation_node_from_label_volume(
        LabelVolume([liver], segmentation.geometry, [segmentation.segments[0]]), scene)
    region_id, _ = lesion_region.add_lesion_in_region(corrupted, corrupted_volume, [point])
    assert np.array_equal(segment_mask(corrupted, region_id, corrupted_volume, image), expected)


def test_add_split_and_delete_record_an_undo_state(scene):
    volume_node, _, image = load(scene, followup=False)
    segmentation_node = load(scene, followup=False, liver_only=True)[1]
    history = slicer.vtkSegmentationHistory()
    history.SetSegmentation(segmentation_node.GetSegmentation())
    logic = PanelLogic()
    parameter_node = WrapperLikeParameterNode(scene)
    parameter_node.baselineVolume, parameter_node.baselineSegmentation = volume_node, segmentation_node
    with pytest.raises(InputError):
        logic.addLesionAtPoint(parameter_node, (500.0, 500.0, 500.0), history.SaveState)
    assert history.GetNumberOfStates() == 0, "a refused click leaves no undo step"
    logic.addLesionAtPoint(parameter_node, DEMO_LESIONS[0].centre_ras, history.SaveState)
    assert history.GetNumberOfStates() == 1 and segmentation_node.GetSegmentation().GetNumberOfSegments() == 2
    history.RestorePreviousState()
    assert segmentation_node.GetSegmentation().GetNumberOfSegments() == 1, "undo removes the added lesion"

    segment_id, _ = lesion_region.add_lesion_in_region(segmentation_node, volume_node, [DEMO_LESIONS[0].centre_ras])
    two_islands = segment_mask(segmentation_node, segment_id, volume_node, image)
    two_islands[:, :, :3] = False
    two_islands[5:8, 5:8, 0] = True
    mrml.add_segment_from_mask(segmentation_node, two_islands, image.geometry, "Lesion 9")
    nine = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName("Lesion 9")
    before = history.GetNumberOfStates()
    assert len(logic.splitLesion(parameter_node, nine, history.SaveState)) == 2
    assert history.GetNumberOfStates() == before + 1
    logic.deleteLesion(parameter_node, nine, history.SaveState)
    assert history.GetNumberOfStates() == before + 2
    count = segmentation_node.GetSegmentation().GetNumberOfSegments()
    history.RestorePreviousState()
    assert segmentation_node.GetSegmentation().GetNumberOfSegments() == count + 1, "undo brings the deleted back"


def test_segment_editor_logic_undo_takes_the_state_saved_before_add_lesion(scene):
    """Slicer 5.10+ keeps the editor's history in vtkSlicerSegmentEditorLogic (5.8: in the Qt widget)."""
    volume_node, _, _ = load(scene, followup=False)
    segmentation_node = load(scene, followup=False, liver_only=True)[1]
    scene.RegisterNodeClass(slicer.vtkMRMLSegmentEditorNode())
    editor_node = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    editor_logic = slicer.vtkSlicerSegmentEditorLogic()
    editor_logic.SetMRMLScene(scene)
    editor_logic.SetSegmentEditorNode(editor_node)
    editor_logic.SetSegmentationNode(segmentation_node)
    assert not editor_logic.CanUndo()
    lesion_region.add_lesion_in_region(segmentation_node, volume_node, [DEMO_LESIONS[2].centre_ras],
                                       before_change=editor_logic.SaveStateForUndo)
    assert editor_logic.CanUndo()
    editor_logic.Undo()
    assert segmentation_node.GetSegmentation().GetNumberOfSegments() == 1


# --- observers, placement, lesion table ---------------------------------------------------------------------


def test_observed_node_is_freed_after_scene_close(scene):
    calls = []
    observations = NodeObservations([vtk.vtkCommand.ModifiedEvent], lambda caller, event: calls.append(1))
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    observations.observe(node)
    node.Modified()
    assert calls == [1]
    alive = weakref.ref(node)
    observations.observe(None)
    scene.Clear(1)
    del node
    gc.collect()
    assert alive() is None, "the released node is still referenced"


def test_vtk_observation_mixin_keeps_a_removed_node_alive(scene):
    """Why the panel does not use VTKObservationMixin.removeObserver for per-node observations."""
    mixin = slicer.util.VTKObservationMixin()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    method = lambda caller, event: None  # noqa: E731
    mixin.addObserver(node, vtk.vtkCommand.ModifiedEvent, method)
    mixin.removeObserver(node, vtk.vtkCommand.ModifiedEvent, method)
    alive = weakref.ref(node)
    scene.Clear(1)
    del node
    gc.collect()
    assert alive() is not None


def test_placement_settings_are_restored_and_leaving_place_mode_is_reported(scene):
    selection = scene.AddNewNodeByClass("vtkMRMLSelectionNode")
    interaction = scene.AddNewNodeByClass("vtkMRMLInteractionNode")
    selection.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsLineNode")
    selection.SetActivePlaceNodeID("vtkMRMLMarkupsLineNode1")
    interaction.SetPlaceModePersistence(0)
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    stopped = []
    session = PlacementSession(selection, interaction, lambda: stopped.append(1))
    session.start(points)
    assert (selection.GetActivePlaceNodeID(), interaction.GetPlaceModePersistence()) == (points.GetID(), 1)
    assert interaction.GetCurrentInteractionMode() == interaction.Place
    session.stop()
    assert selection.GetActivePlaceNodeClassName() == "vtkMRMLMarkupsLineNode"
    assert selection.GetActivePlaceNodeID() == "vtkMRMLMarkupsLineNode1"
    assert interaction.GetPlaceModePersistence() == 0 and interaction.GetCurrentInteractionMode() != interaction.Place
    session.start(points)
    interaction.SetCurrentInteractionMode(interaction.ViewTransform)  # the user pressed Escape
    assert stopped == [1] and not session.active and interaction.GetPlaceModePersistence() == 0


def test_lesion_table_cache_matches_the_full_measure_and_measures_only_changed_layers(scene):
    volume_node, segmentation_node, _ = load(scene, followup=False)
    cache = LesionRowCache()
    rows = cache.rows(segmentation_node, volume_node)
    full = review.lesion_rows(segmentation_node, volume_node)
    assert [row.name for row in rows] == [row.name for row in full]
    for cached, measured in zip(rows, full):
        assert cached.volume_ml == measured.volume_ml
        assert cached.max_diameter_mm == pytest.approx(measured.max_diameter_mm, abs=1e-9)
        assert cached.longest_axial_diameter_mm == pytest.approx(measured.longest_axial_diameter_mm, abs=1e-9)
        assert np.allclose(cached.centroid_ras, measured.centroid_ras, atol=1e-9)
    measured_layers = cache.layers_measured
    review.set_segment_verified(segmentation_node, rows[0].segment_id, False)
    again = cache.rows(segmentation_node, volume_node, ["Lesion 2", "Lesion 2 typed hal"])
    assert cache.layers_measured == measured_layers, "a tick or an exclusion measures nothing again"
    assert not again[0].verified and "Lesion 2" not in [row.name for row in again]
    liver_only = load(scene, followup=False, liver_only=True)[1]
    cache.rows(liver_only, volume_node)
    before = cache.layers_measured
    lesion_region.add_lesion_in_region(liver_only, volume_node, [DEMO_LESIONS[0].centre_ras])
    after_add = cache.rows(liver_only, volume_node)
    assert cache.layers_measured - before <= 1 and [row.name for row in after_add] == ["Lesion 1"]


def test_layers_read_in_place_equal_the_resampled_ones_and_the_node_is_untouched(scene, monkeypatch):
    volume_node, segmentation_node, _ = load(scene, followup=False)
    del_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName("Lesion 2")
    segmentation_node.RemoveSegment(del_id)
    lesion_region.add_lesion_in_region(segmentation_node, volume_node, [DEMO_LESIONS[1].centre_ras])  # a cropped layer
    modified = segmentation_node.GetSegmentation().GetMTime()
    fast = mrml.label_volume_from_segmentation_node(segmentation_node, volume_node)
    assert segmentation_node.GetSegmentation().GetMTime() == modified
    monkeypatch.setattr(mrml, "_pasted_on", lambda layer, geometry: None)
    resampled = mrml.label_volume_from_segmentation_node(segmentation_node, volume_node)
    assert np.allclose(fast.geometry.ijk_to_ras, resampled.geometry.ijk_to_ras) and len(fast.layers) > 2
    for pasted, reference in zip(fast.layers, resampled.layers):
        assert pasted.dtype == reference.dtype and np.array_equal(pasted, reference)
    assert [segment.label_value for segment in fast.segments] == [segment.label_value for segment in resampled.segments]
