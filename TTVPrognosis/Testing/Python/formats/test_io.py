"""Reading segmentations from every supported format gives the same numbers; bad files give clear errors."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.io import image_to_itk, read_image, read_segmentation, write_image, write_segmentation
from TTVPrognosisLib.formats.segments import ROLE_TAG, VERIFIED_TAG, LabelVolume, Segment
from TTVPrognosisLib.geometry import Geometry, GeometryError, reference_grid_warnings
from TTVPrognosisLib.measure.volumetry import measure
from TTVPrognosisLib.mrml import nodes as mrml
from TTVPrognosisLib.pipeline import measure_file

EXPECTED_TTV_VOXELS = 1000 + 105 + 1


@pytest.fixture
def geometry() -> Geometry:
    """Oblique, anisotropic (what NIfTI, NRRD and Slicer must all carry through)."""
    angle = 0.3
    matrix = np.eye(4)
    matrix[:3, :3] = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]) \
        @ np.diag([0.8, 0.8, 2.0])
    matrix[:3, 3] = [12.5, -40.0, 7.0]
    return Geometry(matrix, (30, 40, 50))


@pytest.fixture
def lesion_labels(geometry) -> np.ndarray:
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[2:7, 3:13, 4:24] = 1
    labels[20:23, 30:37, 40:45] = 2
    labels[15, 15, 15] = 3
    return labels


def slicer_segmentation_file(volume: LabelVolume, path, collapse: bool = True) -> None:
    """Write with Slicer's own storage node (slicer-core), as the Slicer application does."""
    scene = slicer.vtkMRMLScene()
    node = mrml.segmentation_node_from_label_volume(volume, scene)
    if collapse:
        node.GetSegmentation().CollapseBinaryLabelmaps(False)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.WriteData(node)


def test_same_numbers_from_slicer_seg_nrrd_labelmap_nrrd_and_nifti(tmp_path, geometry, lesion_labels):
    segments = [Segment(str(value), f"Lesion {value}", 0, value) for value in (1, 2, 3)]
    volume = LabelVolume([lesion_labels], geometry, segments)
    slicer_segmentation_file(volume, tmp_path / "lesions.seg.nrrd")
    write_image(lesion_labels, geometry, tmp_path / "lesions.nrrd")
    write_image((lesion_labels > 0).astype(np.uint8), geometry, tmp_path / "lesions.nii.gz")
    results = {name: measure_file(tmp_path / name) for name in ("lesions.seg.nrrd", "lesions.nrrd", "lesions.nii.gz")}
    voxel_ml = geometry.voxel_volume_ml
    for name, result in results.items():
        assert result.ttv_ml == pytest.approx(EXPECTED_TTV_VOXELS * voxel_ml, rel=1e-6), name  # NIfTI: float32
        assert [lesion.voxel_count for lesion in result.lesions] == [1000, 105, 1], name
    reference = results["lesions.nrrd"]
    for result in results.values():
        for ours, theirs in zip(result.lesions, reference.lesions):
            assert ours.max_diameter_mm == pytest.approx(theirs.max_diameter_mm, abs=1e-4)
            assert ours.longest_axial_diameter_mm == pytest.approx(theirs.longest_axial_diameter_mm, abs=1e-4)
            np.testing.assert_allclose(ours.centroid_ras, theirs.centroid_ras, atol=1e-3)
    assert [segment.name for segment in results["lesions.seg.nrrd"].segments] == ["Lesion 1", "Lesion 2", "Lesion 3"]


def test_slicer_seg_nrrd_with_overlapping_segments_in_layers(tmp_path, geometry):
    first = np.zeros(geometry.shape_kji, dtype=np.uint8)
    second = np.zeros(geometry.shape_kji, dtype=np.uint8)
    liver = np.zeros(geometry.shape_kji, dtype=np.uint8)
    first[5:15, 5:15, 5:15] = 1
    second[10:20, 10:20, 10:20] = 1
    liver[0:25, 0:30, 0:30] = 1
    volume = LabelVolume([first, second, liver], geometry,
                         [Segment("a", "Lesion A", 0, 1, {VERIFIED_TAG: "1", ROLE_TAG: "lesion"}),
                          Segment("b", "Lesion B", 1, 1), Segment("liver", "Liver", 2, 1)])
    path = tmp_path / "overlap.seg.nrrd"
    slicer_segmentation_file(volume, path)
    read_back = read_segmentation(path)
    assert len(read_back.layers) == 3, "overlapping segments must stay in separate layers"
    result = measure(read_back)
    assert sum(lesion.voxel_count for lesion in result.lesions) == 1875
    assert result.liver_volume_ml == pytest.approx(25 * 30 * 30 * geometry.voxel_volume_ml)
    tagged = next(segment for segment in result.segments if segment.name == "Lesion A")
    assert tagged.verified


def test_slicer_cropped_seg_nrrd_keeps_positions(tmp_path, geometry, lesion_labels):
    """Slicer may store only the segments' extent: positions must still be right."""
    scene = slicer.vtkMRMLScene()
    volume = LabelVolume([lesion_labels], geometry, [Segment("2", "Lesion 2", 0, 2)])
    node = mrml.segmentation_node_from_label_volume(volume, scene)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetCropToMinimumExtent(True)
    storage.SetFileName(str(tmp_path / "cropped.seg.nrrd"))
    assert storage.WriteData(node)
    read_back = read_segmentation(tmp_path / "cropped.seg.nrrd")
    assert read_back.geometry.shape_kji != geometry.shape_kji
    lesion = measure(read_back).lesions[0]
    expected = geometry.ras_from_kji(np.argwhere(lesion_labels == 2).mean(axis=0))[0]
    np.testing.assert_allclose(lesion.centroid_ras, expected, atol=1e-6)
    assert reference_grid_warnings(read_back.geometry, geometry) == []


def test_our_seg_nrrd_round_trip_keeps_names_tags_layers(tmp_path, geometry, lesion_labels):
    liver = (np.indices(geometry.shape_kji)[0] < 25).astype(np.uint8)
    volume = LabelVolume([liver, lesion_labels], geometry,
                         [Segment("liver", "Liver", 0, 1, {ROLE_TAG: "liver"}),
                          Segment("l1", "Lesion 1", 1, 1, {VERIFIED_TAG: "1"}), Segment("l2", "Lesion 2", 1, 2),
                          Segment("l3", "Lesion 3", 1, 3)])
    path = tmp_path / "ours.seg.nrrd"
    write_segmentation(volume, path)
    read_back = read_segmentation(path)
    assert [(s.segment_id, s.name, s.layer, s.label_value) for s in read_back.segments] == \
        [(s.segment_id, s.name, s.layer, s.label_value) for s in volume.segments]
    assert read_back.segments[0].tags[ROLE_TAG] == "liver"
    assert read_back.segments[1].verified
    np.testing.assert_allclose(read_back.geometry.ijk_to_ras, geometry.ijk_to_ras, atol=1e-9)
    for ours, theirs in zip(read_back.layers, volume.layers):
        np.testing.assert_array_equal(ours, theirs)
    # Slicer itself reads the file with the same segments.
    scene = slicer.vtkMRMLScene()
    mrml.register_segmentation_converters()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    assert node.GetSegmentation().GetNumberOfSegments() == 4
    assert mrml.measure_segmentation_node(node).ttv_ml == pytest.approx(measure(volume).ttv_ml)


def test_dicom_folder_of_mask_slices(tmp_path, geometry, lesion_labels):
    image = image_to_itk((lesion_labels > 0).astype(np.uint8) * 255, Geometry(np.diag([0.8, 0.8, 2.0, 1.0]),
                                                                           geometry.shape_kji))
    folder = tmp_path / "mask"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for index in range(image.GetDepth()):
        slice_image = image[:, :, index]
        position = image.TransformIndexToPhysicalPoint((0, 0, index))
        slice_image.SetMetaData("0020|0032", "\\".join(f"{value:.4f}" for value in position))
        slice_image.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")  # without it a slice has no place (refused)
        slice_image.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1")
        slice_image.SetMetaData("0020|0013", str(index))
        writer.SetFileName(str(folder / f"slice{index:03d}.dcm"))
        writer.Execute(slice_image)
    result = measure_file(folder)
    assert sum(lesion.voxel_count for lesion in result.lesions) == EXPECTED_TTV_VOXELS
    assert result.segments[0].name == "Label 255"


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="File not found"):
        read_segmentation(tmp_path / "nothing.seg.nrrd")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "lesions.txt"
    path.write_text("1 2 3")
    with pytest.raises(InputError, match="not a supported segmentation format"):
        read_segmentation(path)


@pytest.mark.parametrize("name", ["lesions.nii.gz", "lesions.nrrd", "lesions.seg.nrrd", "lesions.mha"])
def test_corrupt_files(tmp_path, geometry, lesion_labels, name):
    good = tmp_path / f"good-{name}"
    if name.endswith(".seg.nrrd"):
        write_segmentation(LabelVolume([lesion_labels], geometry, [Segment("1", "Lesion 1", 0, 1)]), good)
    else:
        write_image(lesion_labels, geometry, good)
    corrupt = tmp_path / name
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match=r"damaged|incomplete|Could not read"):
        read_segmentation(corrupt)
    garbage = tmp_path / f"garbage-{name}"
    garbage.write_bytes(gzip.compress(b"this is not an image") if name.endswith(".gz") else b"\x00\x01 nonsense")
    with pytest.raises(InputError):
        read_segmentation(garbage)


def test_intensity_image_is_not_a_segmentation(tmp_path, geometry):
    ct = np.random.default_rng(0).normal(40.0, 20.0, geometry.shape_kji).astype(np.float32)
    write_image(ct, geometry, tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match=r"fractional values.*intensity image"):
        read_segmentation(tmp_path / "ct.nii.gz")
    write_image(np.round(ct).astype(np.int16) - 1000, geometry, tmp_path / "ct.nrrd")
    with pytest.raises(InputError, match="negative values"):
        read_segmentation(tmp_path / "ct.nrrd")


def test_float_image_with_whole_numbers_is_read_with_a_warning(tmp_path, geometry, lesion_labels):
    write_image(lesion_labels.astype(np.float32), geometry, tmp_path / "float.nii.gz")
    result = measure_file(tmp_path / "float.nii.gz")
    assert sum(lesion.voxel_count for lesion in result.lesions) == EXPECTED_TTV_VOXELS
    assert any("floating point" in warning for warning in result.warnings)


def test_vector_image_is_refused(tmp_path, geometry):
    image = sitk.Compose([image_to_itk(np.zeros(geometry.shape_kji, np.uint8), geometry)] * 3)
    sitk.WriteImage(image, str(tmp_path / "rgb.nrrd"))
    with pytest.raises(InputError, match="values per voxel"):
        read_segmentation(tmp_path / "rgb.nrrd")
    with pytest.raises(InputError, match="values per voxel"):
        read_image(tmp_path / "rgb.nrrd")


def test_two_dimensional_image_is_refused(tmp_path):
    sitk.WriteImage(sitk.Image(10, 10, sitk.sitkUInt8), str(tmp_path / "slice.nrrd"))
    with pytest.raises(InputError, match="2-D image"):
        read_segmentation(tmp_path / "slice.nrrd")


def test_reference_image_of_another_scan_is_an_error(tmp_path, geometry, lesion_labels):
    write_image(lesion_labels, geometry, tmp_path / "lesions.nrrd")
    elsewhere = Geometry(geometry.ijk_to_ras + np.array([[0, 0, 0, 500.0], [0] * 4, [0] * 4, [0] * 4]),
                         geometry.shape_kji)
    write_image(np.zeros(geometry.shape_kji, np.int16), elsewhere, tmp_path / "other_ct.nrrd")
    with pytest.raises(GeometryError, match="do not overlap"):
        measure_file(tmp_path / "lesions.nrrd", tmp_path / "other_ct.nrrd")


def test_reference_image_on_another_grid_gives_a_warning(tmp_path, geometry, lesion_labels):
    write_image(lesion_labels, geometry, tmp_path / "lesions.nrrd")
    finer = Geometry(geometry.ijk_to_ras @ np.diag([0.5, 0.5, 0.5, 1.0]), tuple(2 * n for n in geometry.shape_kji))
    write_image(np.zeros(finer.shape_kji, np.int16), finer, tmp_path / "ct.nrrd")
    result = measure_file(tmp_path / "lesions.nrrd", tmp_path / "ct.nrrd")
    assert any("another voxel grid" in warning for warning in result.warnings)
    assert sum(lesion.voxel_count for lesion in result.lesions) == EXPECTED_TTV_VOXELS


def test_failed_write_keeps_the_existing_file(tmp_path, geometry, lesion_labels, monkeypatch):
    import slicerio

    path = tmp_path / "result.seg.nrrd"
    volume = LabelVolume([lesion_labels], geometry, [Segment("1", "Lesion 1", 0, 1)])
    write_segmentation(volume, path)
    before = path.read_bytes()

    def write_half_then_fail(file_name, document, **options):
        with open(file_name, "wb") as handle:
            handle.write(b"NRRD0004\n# interrupted")
        raise OSError("disk full")

    monkeypatch.setattr(slicerio, "write_segmentation", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_segmentation(volume, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["result.seg.nrrd"]


def test_a_folder_without_dicom_is_one_clear_message(tmp_path, capfd):
    """Our message only: ITK's own "No Series were found" warning would go to the terminal beside it."""
    with pytest.raises(InputError, match="holds no DICOM series"):
        read_segmentation(tmp_path)
    assert "No Series" not in capfd.readouterr().err


def test_slicer_fields_the_tool_does_not_use_are_written_back(tmp_path):
    """Adding a lesion rewrites the file: colours, terminology, name flags and conversion parameters stay."""
    import slicerio

    voxels = np.zeros((2, 6, 5, 4), dtype=np.uint8)
    voxels[0, 1:4, 1:4, 1:3] = 1
    voxels[1, 2:3, 2:3, 1:2] = 1
    terminology = {"contextName": "Segmentation category and type - 3D Slicer General Anatomy list",
                   "category": ["SCT", "49755003", "Morphologically Altered Structure"],
                   "type": ["SCT", "4147007", "Mass"]}
    document = {"voxels": voxels, "ijkToLPS": np.diag([1.5, 1.5, 2.5, 1.0]), "encoding": "gzip",
                "conversionParameters": [{"name": "Smoothing factor", "value": "0.7", "description": "x"}],
                "segments": [{"id": "Liver", "name": "Liver", "layer": 0, "labelValue": 1, "color": [0.1, 0.2, 0.3],
                              "nameAutoGenerated": False},
                             {"id": "Lesion_1", "name": "Lesion 1", "layer": 1, "labelValue": 1,
                              "color": [0.4, 0.5, 0.6], "terminology": terminology}]}
    slicerio.write_segmentation(str(tmp_path / "in.seg.nrrd"), document)
    volume = read_segmentation(tmp_path / "in.seg.nrrd")
    write_segmentation(volume, tmp_path / "out.seg.nrrd")
    written = slicerio.read_segmentation(str(tmp_path / "out.seg.nrrd"), skip_voxels=True)
    assert written["conversionParameters"] == document["conversionParameters"]
    liver, lesion = written["segments"]
    assert liver["color"] == [0.1, 0.2, 0.3] and liver["nameAutoGenerated"] is False
    assert lesion["color"] == [0.4, 0.5, 0.6] and lesion["terminology"]["type"] == terminology["type"]
    assert [layer.tolist() for layer in read_segmentation(tmp_path / "out.seg.nrrd").layers] == \
        [layer.tolist() for layer in volume.layers]
