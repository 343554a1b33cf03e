"""Save report and Export DICOM SEG as the panel drives them, on slicer-core (the file dialog and the buttons
need Qt): which button is usable when, default names, the report's file from the chosen name, the outcome it
shows, the CT's DICOM folder from instance UIDs, and the library functions the panel calls with its arguments."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import slicer
from test_mrml_panel import WrapperLikeParameterNode, load

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.segments import ROLE_LESION, ROLE_TAG, LabelVolume, Segment
from TTVPrognosisLib.mrml import nodes as mrml
from TTVPrognosisLib.mrml import panel_outputs, report_nodes, result_state, slice_capture
from TTVPrognosisLib.mrml.panel_logic import PanelLogic
from TTVPrognosisLib.report import dicom_seg_export
from TTVPrognosisLib.report.content import RESEARCH_NOTICE
from TTVPrognosisLib.report.key_images import key_lesions

MODULE_FILE = Path(__file__).resolve().parents[3] / "TTVPrognosis.py"


@pytest.fixture
def scene(monkeypatch):
    scene = slicer.vtkMRMLScene()
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    return scene


def computed_panel(scene, followup: bool = True):
    parameter_node = WrapperLikeParameterNode(scene)
    parameter_node.baselineVolume, parameter_node.baselineSegmentation, _ = load(scene, followup=False)
    if followup:
        parameter_node.followupVolume, parameter_node.followupSegmentation, _ = load(scene, followup=True)
    logic = PanelLogic()
    logic.computeTTV(parameter_node)
    return logic, parameter_node


# --- which button is usable when ----------------------------------------------------------------------------


def dicom_volume(scene, uids="1.2.3 1.2.4"):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    if uids is not None:
        node.SetAttribute(panel_outputs.DICOM_UIDS_ATTRIBUTE, uids)
    return node


@pytest.mark.parametrize("computed, up_to_date, report_on", [(False, True, False), (True, False, False),
                                                             (True, True, True)])
def test_save_report_is_usable_only_with_current_results(scene, computed, up_to_date, report_on):
    shown = result_state.ShownResults("", "", up_to_date=up_to_date, computed=computed)
    buttons = panel_outputs.output_buttons(shown, None, None)
    assert buttons.report_enabled is report_on
    assert ("Compute TTV" in buttons.report_tip) is not report_on


def test_export_seg_is_usable_only_for_a_segmentation_on_a_dicom_ct(scene):
    shown = result_state.ShownResults("", "", up_to_date=True, computed=False)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    assert panel_outputs.output_buttons(shown, dicom_volume(scene), segmentation).seg_enabled
    for volume, seg in ((dicom_volume(scene), None), (dicom_volume(scene, None), segmentation),
                        (dicom_volume(scene, "  "), segmentation), (None, segmentation)):
        buttons = panel_outputs.output_buttons(shown, volume, seg)
        assert not buttons.seg_enabled and buttons.seg_tip


# --- file names -----------------------------------------------------------------------------------------------


def test_default_names_come_from_the_segmentation_and_are_safe_file_names():
    assert panel_outputs.default_report_name("Patient 7 baseline", pdf=True) == "Patient 7 baseline TTV report.pdf"
    assert panel_outputs.default_report_name("a/b:c", pdf=False) == "a_b_c TTV report.html"
    assert panel_outputs.default_report_name("", pdf=False) == "TTV TTV report.html"
    assert panel_outputs.default_seg_name("../Seg") == "Seg SEG.dcm"


def test_report_paths_write_exactly_the_file_chosen(tmp_path):
    assert panel_outputs.report_paths(str(tmp_path / "r.pdf"), can_draw=True) == (None, str(tmp_path / "r.pdf"))
    assert panel_outputs.report_paths(str(tmp_path / "r.HTML"), can_draw=False) == (str(tmp_path / "r.HTML"), None)
    assert panel_outputs.report_paths(str(tmp_path / "r"), can_draw=False) == (str(tmp_path / "r.html"), None)
    assert panel_outputs.report_paths(str(tmp_path / "r"), can_draw=True) == (None, str(tmp_path / "r.pdf"))
    with pytest.raises(InputError, match="matplotlib"):
        panel_outputs.report_paths(str(tmp_path / "r.pdf"), can_draw=False)
    with pytest.raises(InputError, match=r"\.pdf or \.html"):
        panel_outputs.report_paths(str(tmp_path / "r.docx"), can_draw=True)
    (tmp_path / "kept.html").write_text("earlier report")
    with pytest.raises(InputError, match="exists"):  # the dialog asked about "kept", not "kept.html"
        panel_outputs.report_paths(str(tmp_path / "kept"), can_draw=False)
    assert (tmp_path / "kept.html").read_text() == "earlier report"


# --- the DICOM folder ---------------------------------------------------------------------------------------


def test_dicom_folder_is_the_one_folder_of_the_ct_files(scene, tmp_path):
    (tmp_path / "series").mkdir()
    (tmp_path / "other").mkdir()
    files = {}
    for uid, folder in (("1.2.3", "series"), ("1.2.4", "series"), ("1.2.5", "other")):
        files[uid] = str(tmp_path / folder / uid)
        Path(files[uid]).write_bytes(b"")
    lookup = lambda uid: files.get(uid, "")  # noqa: E731 - as slicer.dicomDatabase.fileForInstance: "" if unknown
    assert panel_outputs.dicom_folder(dicom_volume(scene, "1.2.3 1.2.4"), lookup) == str(tmp_path / "series")
    with pytest.raises(InputError, match="2 folders"):
        panel_outputs.dicom_folder(dicom_volume(scene, "1.2.3 1.2.5"), lookup)
    with pytest.raises(InputError, match="1 of the 3 DICOM files"):
        panel_outputs.dicom_folder(dicom_volume(scene, "1.2.3 1.2.4 9.9"), lookup)
    Path(files["1.2.4"]).unlink()  # in the database, deleted from disk
    with pytest.raises(InputError, match="no longer"):
        panel_outputs.dicom_folder(dicom_volume(scene, "1.2.3 1.2.4"), lookup)
    with pytest.raises(InputError, match="not loaded from DICOM"):
        panel_outputs.dicom_folder(dicom_volume(scene, None), lookup)


def test_export_seg_from_the_panel_reads_back_to_the_ttv_and_refuses_the_ct_folder(scene, tmp_path):
    pytest.importorskip("highdicom")
    pydicom = pytest.importorskip("pydicom")
    from synthetic_dicom import SeriesGrid, ellipsoid_volume, write_series
    from TTVPrognosisLib.formats.io import read_image, read_segmentation
    from TTVPrognosisLib.measure.volumetry import measure

    grid = SeriesGrid(shape_kji=(10, 32, 36))
    paths = write_series(tmp_path / "ct", np.full(grid.shape_kji, 60, dtype=np.int16), grid)
    files = {str(pydicom.dcmread(path).SOPInstanceUID): str(path) for path in paths}
    image = read_image(tmp_path / "ct")
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    slicer.util.updateVolumeFromArray(volume_node, image.voxels)
    volume_node.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
    volume_node.SetAttribute(panel_outputs.DICOM_UIDS_ATTRIBUTE, " ".join(files))
    lesion = ellipsoid_volume(grid, grid.position(5) + np.array([12.0, 14.0, 0.0]), (5.0, 4.0, 6.0))
    labels = LabelVolume([lesion.astype(np.uint8), np.roll(lesion, 12, axis=2).astype(np.uint8)], image.geometry,
                         [Segment("L1", "Lesion 1", 0, 1, {ROLE_TAG: ROLE_LESION}),
                          Segment("L2", "Skip me", 1, 1, {ROLE_TAG: ROLE_LESION})], "synthetic")
    parameter_node = SimpleNamespace(reviewTimePoint="Baseline", baselineVolume=volume_node,
                                     baselineSegmentation=mrml.segmentation_node_from_label_volume(labels, scene),
                                     excludedSegments="Skip me")
    with pytest.raises(InputError, match="outside the CT's own DICOM folder"):
        panel_outputs.export_panel_seg(PanelLogic(), parameter_node, str(tmp_path / "ct" / "seg"), files.get)
    assert len(list((tmp_path / "ct").iterdir())) == len(paths)
    summary = panel_outputs.export_panel_seg(PanelLogic(), parameter_node, str(tmp_path / "out"), files.get)
    assert summary.path == tmp_path / "out.dcm" and [row["label"] for row in summary.segments] == ["Lesion 1"]
    expected = measure(labels, exclude=["Skip me"]).ttv_ml
    assert summary.ttv_ml == pytest.approx(expected, rel=1e-9) and expected > 0
    assert measure(read_segmentation(tmp_path / "out.dcm")).ttv_ml == pytest.approx(expected, rel=1e-9)
    assert pydicom.dcmread(tmp_path / "out.dcm").FrameOfReferenceUID == pydicom.dcmread(paths[0]).FrameOfReferenceUID
    assert "Segment 1: Lesion 1 (lesion, not verified)" in panel_outputs.seg_message(summary)


# --- the report -----------------------------------------------------------------------------------------------


def test_report_outcome_is_the_kept_one_or_refused_when_out_of_date(scene):
    logic, parameter_node = computed_panel(scene, followup=False)
    kept = logic.lastOutcome
    assert kept[0] == result_state.inputs_signature(parameter_node)
    never = lambda: pytest.fail("computed again although the kept outcome is current")  # noqa: E731
    assert panel_outputs.report_outcome(parameter_node, kept, never) is kept[1]
    recomputed = panel_outputs.report_outcome(parameter_node, None, lambda: logic.computeOutcome(parameter_node))
    assert recomputed.baseline.ttv_ml == kept[1].baseline.ttv_ml  # a reopened scene: same inputs, same numbers
    result_state.mark_inputs_edited(parameter_node.summaryTable)
    with pytest.raises(InputError, match="press Compute TTV again"):
        panel_outputs.report_outcome(parameter_node, kept, never)
    with pytest.raises(InputError, match="Press Compute TTV first"):
        panel_outputs.report_outcome(WrapperLikeParameterNode(scene), None, never)


def test_save_report_without_matplotlib_writes_html_with_the_captured_pictures(scene, tmp_path, monkeypatch):
    logic, parameter_node = computed_panel(scene)
    monkeypatch.setattr(panel_outputs, "can_draw_pictures", lambda: False)
    monkeypatch.setattr(report_nodes, "can_draw_pictures", lambda: False)
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                        "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    asked = []
    written = panel_outputs.save_panel_report(logic, parameter_node, str(tmp_path / "report"),
                                              lambda outcome: asked.append(outcome) or [("Target 1", png)])
    assert [str(path) for path in written] == [str(tmp_path / "report.html")]
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert asked == [logic.lastOutcome[1]]
    assert RESEARCH_NOTICE in text and text.count("<figure class='keyimage'>") == 1
    assert f"{logic.lastOutcome[1].baseline.ttv_ml:.2f}" in text
    assert panel_outputs.NO_PICTURES_NOTE not in text
    panel_outputs.save_panel_report(logic, parameter_node, str(tmp_path / "bare.html"), lambda outcome: [])
    bare = (tmp_path / "bare.html").read_text(encoding="utf-8")
    assert panel_outputs.NO_PICTURES_NOTE in bare
    # the key-image section names the lesions it could not picture, instead of "nothing to show"
    assert "No pictures could be made here of the key lesions (" in bare
    assert "No target, new or disappeared lesion to show." not in bare


def test_save_report_with_matplotlib_draws_the_pdf_and_never_captures(scene, tmp_path):
    pytest.importorskip("matplotlib")
    logic, parameter_node = computed_panel(scene)
    written = panel_outputs.save_panel_report(logic, parameter_node, str(tmp_path / "report.pdf"),
                                              lambda outcome: pytest.fail("captured although matplotlib draws"))
    assert [str(path) for path in written] == [str(tmp_path / "report.pdf")]
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    panel_outputs.save_panel_report(logic, parameter_node, str(tmp_path / "report.html"))
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    keys = key_lesions(logic.lastOutcome[1].result)
    assert keys and text.count("<figure class='keyimage'>") == len(keys)  # as the in-Slicer self-test expects


# --- what the panel calls exists with the arguments it passes -----------------------------------------------


def test_the_functions_the_panel_calls_take_its_arguments():
    source = MODULE_FILE.read_text()
    for call in ("panel_outputs.save_panel_report(self.logic, p, path, lambda outcome: capture_key_images(",
                 "outcome, p.baselineVolume, p.followupVolume, p.baselineSegmentation, p.followupSegmentation))",
                 "panel_outputs.export_panel_seg(\n                    self.logic, self._parameterNode, path, "
                 "slicer.dicomDatabase.fileForInstance)",
                 "panel_outputs.output_buttons(shown, volumeNode, segmentationNode)",
                 "panel_outputs.default_report_name(", "panel_outputs.default_seg_name(",
                 "panel_outputs.REPORT_FILTERS[drawn]", "panel_outputs.MATPLOTLIB_PURPOSE",
                 "panel_outputs.SEG_FILTER", "panel_outputs.seg_message(",
                 "panel_outputs.importable(package)", "panel_outputs.install_question(package, purpose)"):
        assert call in source, call
    signature = inspect.signature
    signature(panel_outputs.save_panel_report).bind(PanelLogic(), None, "path", print)
    signature(slice_capture.capture_key_images).bind(None, None, None, None, None)
    signature(panel_outputs.export_panel_seg).bind(PanelLogic(), None, "path", print)
    # and what panel_outputs calls in the library, with the keywords it passes
    signature(report_nodes.save_report).bind(None, None, None, None, None, None, None, exclude=[], register=True,
                                             key_images=[])
    signature(dicom_seg_export.export_dicom_seg).bind(None, "folder", "path", exclude=[])
    signature(mrml.time_point_from_nodes).bind(None, None, read_voxels=False)
    assert {"lastOutcome", "computeOutcome", "reviewNodes", "excludedSegmentNames"} <= set(dir(PanelLogic))


def test_slice_capture_keeps_pixels_square_and_gives_nothing_without_slice_views(scene):
    assert slice_capture._square_pixels(60.0, (400, 200, 1)) == (120.0, 60.0)
    assert slice_capture._square_pixels(60.0, (300, 600, 1)) == (60.0, 120.0)
    logic, parameter_node = computed_panel(scene)
    if hasattr(slicer, "app"):
        pytest.skip("this slicer module has an application: the capture needs its views")
    assert slice_capture.capture_key_images(logic.lastOutcome[1], parameter_node.baselineVolume, None,
                                            parameter_node.baselineSegmentation, None) == []
