"""The MRML path on the real slicer-core wheel: segmentation nodes in, measurements and tables out."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import demo_time_point
from TTVPrognosisLib.formats.segments import LabelVolume, Segment
from TTVPrognosisLib.measure.volumetry import measure
from TTVPrognosisLib.mrml import nodes as mrml
from TTVPrognosisLib.mrml import results as mrml_results


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture
def demo_baseline():
    return demo_time_point(followup=False)


def ct_node(scene, image):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    slicer.util.updateVolumeFromArray(node, image.voxels)
    node.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
    return node


def test_converter_registration_is_idempotent():
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    mrml.register_segmentation_converters()
    count = len(factory.GetConverterRules())
    mrml.register_segmentation_converters()
    assert len(factory.GetConverterRules()) == count


def test_labelmap_node_measures_like_the_file_path(scene, demo_baseline):
    image, volume = demo_baseline
    node = mrml.segmentation_node_from_label_volume(volume, scene)
    from_node = mrml.measure_segmentation_node(node, ct_node(scene, image))
    direct = measure(volume)
    assert from_node.ttv_ml == pytest.approx(direct.ttv_ml, rel=1e-12)
    assert from_node.liver_volume_ml == pytest.approx(direct.liver_volume_ml, rel=1e-12)
    assert [lesion.voxel_count for lesion in from_node.lesions] == [lesion.voxel_count for lesion in direct.lesions]
    for ours, theirs in zip(from_node.lesions, direct.lesions):
        np.testing.assert_allclose(ours.centroid_ras, theirs.centroid_ras, atol=1e-6)
        assert ours.max_diameter_mm == pytest.approx(theirs.max_diameter_mm, abs=1e-6)
    assert from_node.warnings == []
    assert all(segment.verified for segment in from_node.segments)


def test_closed_surface_source_is_converted_in_a_copy(scene, demo_baseline):
    image, volume = demo_baseline
    node = mrml.segmentation_node_from_label_volume(volume, scene)
    reference = ct_node(scene, image)
    node.CreateClosedSurfaceRepresentation()
    segmentation = node.GetSegmentation()
    segmentation.SetSourceRepresentationName(mrml.CLOSED_SURFACE)
    segmentation.RemoveRepresentation(mrml.BINARY_LABELMAP)
    result = mrml.measure_segmentation_node(node, reference)
    direct = measure(volume)
    # Surfaces are smoothed, so voxelising them back on the CT grid gives close, not equal, volumes.
    assert result.ttv_ml == pytest.approx(direct.ttv_ml, rel=0.05)
    assert result.lesion_count == direct.lesion_count
    assert segmentation.GetSourceRepresentationName() == mrml.CLOSED_SURFACE
    assert not segmentation.ContainsRepresentation(mrml.BINARY_LABELMAP), "the user's node must not change"


def test_empty_segmentation_node_gives_zero_with_warning(scene):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Empty")
    result = mrml.measure_segmentation_node(node)
    assert result.ttv_ml == 0.0
    assert any("No lesion segments" in warning for warning in result.warnings)


def test_no_segmentation_selected_is_a_clear_error():
    with pytest.raises(InputError, match="No segmentation selected"):
        mrml.measure_segmentation_node(None)


def test_reference_volume_from_another_place_is_an_error(scene, demo_baseline):
    image, volume = demo_baseline
    node = mrml.segmentation_node_from_label_volume(volume, scene)
    far_away = ct_node(scene, image)
    matrix = image.geometry.ijk_to_ras.copy()
    matrix[2, 3] += 1000.0
    far_away.SetIJKToRASMatrix(mrml.numpy_to_matrix(matrix))
    with pytest.raises(InputError, match="do not overlap"):
        mrml.measure_segmentation_node(node, far_away)


def test_add_segment_from_mask_leaves_other_segments_alone(scene, demo_baseline):
    image, volume = demo_baseline
    node = mrml.segmentation_node_from_label_volume(volume, scene)
    before = mrml.label_volume_from_segmentation_node(node)
    before_masks = {s.name: before.layers[s.layer] == s.label_value for s in before.segments}
    mask = np.zeros(image.geometry.shape_kji, dtype=bool)
    mask[30:33, 100:104, 100:104] = True
    segment_id = mrml.add_segment_from_mask(node, mask, image.geometry, "Lesion 6", {"TTVPrognosis.Role": "lesion"})
    after = mrml.label_volume_from_segmentation_node(node)
    assert [s.name for s in after.segments][-1] == "Lesion 6"
    assert node.GetSegmentation().GetSegment(segment_id).GetName() == "Lesion 6"
    shift = np.round(image.geometry.kji_from_ras(after.geometry.origin_ras)[0]).astype(int) - \
        np.round(image.geometry.kji_from_ras(before.geometry.origin_ras)[0]).astype(int)
    assert not shift.any()
    for segment in after.segments[:-1]:
        np.testing.assert_array_equal(after.layers[segment.layer] == segment.label_value, before_masks[segment.name])
    with pytest.raises(InputError, match="empty"):
        mrml.add_segment_from_mask(node, np.zeros_like(mask), image.geometry, "Nothing")
    assert node.GetSegmentation().GetNumberOfSegments() == len(after.segments)


def test_result_tables_for_a_comparison(scene):
    from TTVPrognosisLib.response.comparison import compare

    baseline = measure(demo_time_point(followup=False)[1])
    followup = measure(demo_time_point(followup=True)[1])
    summary = scene.AddNewNodeByClass("vtkMRMLTableNode")
    lesions = scene.AddNewNodeByClass("vtkMRMLTableNode")
    mrml_results.write_result_tables(compare(baseline, followup), summary, lesions)
    assert lesions.GetNumberOfRows() == baseline.lesion_count + followup.lesion_count
    assert lesions.GetColumnName(2) == "Volume (mL)"
    assert float(lesions.GetCellText(0, 2)) == pytest.approx(baseline.lesions[0].volume_ml, abs=1e-3)
    assert lesions.GetCellText(baseline.lesion_count, 0) == "Follow-up"
    assert [summary.GetColumnName(index) for index in range(4)] == ["Measure", "Baseline", "Follow-up", "Change"]
    assert summary.GetCellText(0, 0) == "TTV (mL)"
    assert summary.GetCellText(0, 3).startswith(f"{followup.ttv_ml - baseline.ttv_ml:+.2f} (")


def test_result_tables_for_one_measurement_and_for_no_lesions(scene, demo_baseline):
    _, volume = demo_baseline
    summary = scene.AddNewNodeByClass("vtkMRMLTableNode")
    lesions = scene.AddNewNodeByClass("vtkMRMLTableNode")
    mrml_results.write_result_tables(measure(volume), summary, lesions)
    assert summary.GetNumberOfColumns() == 2
    empty = LabelVolume([np.zeros((2, 2, 2), np.uint8)], volume.geometry.cropped((0, 0, 0), (2, 2, 2)),
                        [Segment("1", "Lesion", 0, 1)])
    mrml_results.write_result_tables(measure(empty), summary, lesions)
    assert lesions.GetNumberOfRows() == 0
    assert summary.GetCellText(0, 1) == "0.00"


def test_slicer_terminology_of_a_segment_node_decides_its_role(scene, demo_baseline):
    """An unnamed segment coded as Liver in Slicer's terminology is the liver (it would otherwise be refused as
    enclosing the lesions); Slicer's default "Tissue" decides nothing."""
    _, volume = demo_baseline
    renamed = LabelVolume(volume.layers, volume.geometry,
                          [Segment(segment.segment_id, "Segment_1" if segment.segment_id == "Liver" else segment.name,
                                   segment.layer, segment.label_value) for segment in volume.segments], "renamed")
    node = mrml.segmentation_node_from_label_volume(renamed, scene)
    with pytest.raises(InputError, match="'Segment_1' encloses"):
        mrml.measure_segmentation_node(node)
    segmentation = node.GetSegmentation()
    liver = "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure" \
            "~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^"
    tissue = "Segmentation category and type - 3D Slicer General Anatomy list~SCT^85756007^Tissue~SCT^85756007^" \
             "Tissue~^^~Anatomic codes - DICOM master list~^^~^^"
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        segment.SetTag("TerminologyEntry", liver if segment.GetName() == "Segment_1" else tissue)
    result = mrml.measure_segmentation_node(node)
    assert result.ttv_ml == pytest.approx(measure(volume).ttv_ml)
    roles = {segment.name: segment.role for segment in result.segments}
    assert roles["Segment_1"] == "liver" and roles["Lesion 1"] == "lesion"
