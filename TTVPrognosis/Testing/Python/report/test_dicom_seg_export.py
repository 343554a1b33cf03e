"""export-seg: a DICOM SEG on the CT series, read back with pydicom and highdicom to the same TTV and roles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from TTVPrognosisLib.cli import main
from TTVPrognosisLib.formats.demo_data import ellipsoid_mask
from TTVPrognosisLib.formats.io import read_image, read_segmentation, write_segmentation
from TTVPrognosisLib.formats.segments import ROLE_LESION, ROLE_TAG, VERIFIED_TAG, LabelVolume, Segment
from TTVPrognosisLib.geometry import Geometry
from TTVPrognosisLib.measure.volumetry import measure

pydicom = pytest.importorskip("pydicom")
highdicom = pytest.importorskip("highdicom")

SHAPE_KJI = (12, 40, 48)
SPACING = (0.8, 0.8, 2.5)  # i, j (PixelSpacing), k (slice step)
ORIGIN_LPS = (-20.0, -15.0, 30.0)


def write_ct_series(folder, shape_kji=SHAPE_KJI, spacing=SPACING, origin_lps=ORIGIN_LPS, shuffle=True,
                    steps=None) -> dict:
    """A small axial CT series (one file per slice, written in shuffled order) with the UIDs it used."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    uids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
    rng = np.random.default_rng(7)
    order = rng.permutation(shape_kji[0]) if shuffle else np.arange(shape_kji[0])
    positions = np.cumsum([0.0, *steps]) if steps is not None else np.arange(shape_kji[0]) * spacing[2]
    for k in order:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Synthetic", "SYN001", "19600101", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = uids["study"], uids["series"], uids["frame"]
        ds.StudyID, ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "1", "20260101", "120000", "A1"
        ds.ReferringPhysicianName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "", "CT", 3, int(k) + 1
        ds.PositionReferenceIndicator, ds.Manufacturer = "", "synthetic"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin_lps[0], origin_lps[1], origin_lps[2] + float(positions[k])]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = shape_kji[1], shape_kji[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.PixelData = np.full(shape_kji[1:], 60, dtype=np.int16).tobytes()
        ds.save_as(folder / f"slice{int(k):03d}.dcm", enforce_file_format=True)
    return uids


def segmentation_on(geometry: Geometry) -> LabelVolume:
    """Liver plus two lesions (one verified) on ``geometry``; lesions overlap each other by a few voxels."""
    centre = geometry.ras_from_kji(np.array([[s / 2.0 for s in geometry.shape_kji]]))[0]
    liver = ellipsoid_mask(geometry, centre, (16.0, 13.0, 12.0))
    first = ellipsoid_mask(geometry, centre + np.array([4.0, 0.0, 0.0]), (5.0, 4.0, 5.0))
    second = ellipsoid_mask(geometry, centre + np.array([-5.0, 2.0, 0.0]), (4.0, 4.0, 5.0))
    return LabelVolume([liver.astype(np.uint8), first.astype(np.uint8), second.astype(np.uint8)], geometry,
                       [Segment("Liver", "Liver", 0, 1),
                        Segment("Lesion_1", "Lesion 1", 1, 1, {ROLE_TAG: ROLE_LESION, VERIFIED_TAG: "1"}),
                        Segment("Lesion_2", "Lesion 2", 2, 1, {ROLE_TAG: ROLE_LESION, VERIFIED_TAG: "0"})], "synthetic")


def read_back_ttv_ml(seg_path) -> tuple[float, dict]:
    """TTV from the SEG's own frames (highdicom), and each segment's description text by label."""
    seg = highdicom.seg.segread(seg_path)
    lesion_numbers = [number for number in seg.segment_numbers
                      if seg.get_segment_description(number).segmented_property_type.value == "14799000"]
    volume = seg.get_volume(segment_numbers=lesion_numbers, combine_segments=False)
    union = np.asarray(volume.array).any(axis=-1)
    voxel_ml = abs(np.linalg.det(volume.affine[:3, :3])) / 1000.0
    texts = {seg.get_segment_description(n).segment_label: seg.get_segment_description(n).SegmentDescription
             for n in seg.segment_numbers}
    return int(np.count_nonzero(union)) * voxel_ml, texts


@pytest.fixture
def ct_case(tmp_path):
    uids = write_ct_series(tmp_path / "ct")
    image = read_image(tmp_path / "ct")
    volume = segmentation_on(image.geometry)
    write_segmentation(volume, tmp_path / "seg.seg.nrrd")
    return tmp_path, uids, volume


def test_export_reads_back_with_references_roles_and_the_same_ttv(ct_case, capsys):
    folder, uids, _ = ct_case
    expected = measure(read_segmentation(folder / "seg.seg.nrrd"))
    assert main(["export-seg", str(folder / "seg.seg.nrrd"), "--image", str(folder / "ct"), "--output",
                 str(folder / "out.dcm"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["referenced_series_instance_uid"] == uids["series"]
    dataset = pydicom.dcmread(folder / "out.dcm")
    assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert dataset.FrameOfReferenceUID == uids["frame"]
    assert dataset.StudyInstanceUID == uids["study"]
    assert dataset.ReferencedSeriesSequence[0].SeriesInstanceUID == uids["series"]
    assert len(dataset.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == SHAPE_KJI[0]
    codes = {item.SegmentLabel: (item.SegmentedPropertyCategoryCodeSequence[0].CodeValue,
                                 item.SegmentedPropertyTypeCodeSequence[0].CodeValue)
             for item in dataset.SegmentSequence}
    assert codes == {"Liver": ("91723000", "10200004"), "Lesion 1": ("49755003", "14799000"),
                     "Lesion 2": ("49755003", "14799000")}
    ttv_ml, texts = read_back_ttv_ml(folder / "out.dcm")
    assert ttv_ml == pytest.approx(expected.ttv_ml, rel=1e-9)
    assert expected.ttv_ml > 0
    assert texts == {"Liver": "TTVPrognosis role=liver; verified=no",
                     "Lesion 1": "TTVPrognosis role=lesion; verified=yes",
                     "Lesion 2": "TTVPrognosis role=lesion; verified=no"}


def test_a_cropped_and_flipped_segmentation_is_placed_exactly(ct_case):
    folder, _, volume = ct_case
    geometry = volume.geometry
    occupied = np.argwhere(np.any([layer > 0 for layer in volume.layers], axis=0))
    start = tuple(int(v) for v in occupied.min(axis=0) - 1)
    shape = tuple(int(v) for v in occupied.max(axis=0) + 2 - np.asarray(start))
    assert min(start) > 0 and all(n < full for n, full in zip(shape, SHAPE_KJI)), "a real crop of the CT's grid"
    crop = tuple(slice(a, a + n) for a, n in zip(start, shape))
    cropped_geometry = geometry.cropped(start, shape)
    flip = np.eye(4)  # the same voxels indexed from the other end of k
    flip[2, 2], flip[2, 3] = -1.0, shape[0] - 1
    flipped = Geometry(cropped_geometry.ijk_to_ras @ flip, shape)
    layers = [layer[crop][::-1].copy() for layer in volume.layers]
    assert sum(int(np.count_nonzero(layer)) for layer in layers) == sum(int(np.count_nonzero(layer))
                                                                       for layer in volume.layers)
    moved = LabelVolume(layers, flipped, volume.segments, "cropped and flipped")
    write_segmentation(moved, folder / "moved.seg.nrrd")
    assert main(["export-seg", str(folder / "moved.seg.nrrd"), "--image", str(folder / "ct"), "--output",
                 str(folder / "moved.dcm")]) == 0
    ttv_ml, _ = read_back_ttv_ml(folder / "moved.dcm")
    assert ttv_ml == pytest.approx(measure(volume).ttv_ml, rel=1e-9)


def test_a_segmentation_off_the_ct_grid_is_refused(ct_case, capsys):
    folder, _, volume = ct_case
    shifted = volume.geometry.ijk_to_ras.copy()
    shifted[:3, 3] += [0.3, 0.0, 0.0]  # a third of a voxel: not on the CT's lattice
    moved = LabelVolume(volume.layers, Geometry(shifted, volume.geometry.shape_kji), volume.segments, "shifted")
    write_segmentation(moved, folder / "shifted.seg.nrrd")
    assert main(["export-seg", str(folder / "shifted.seg.nrrd"), "--image", str(folder / "ct"), "--output",
                 str(folder / "shifted.dcm")]) == 1
    assert "not on the CT's voxel grid" in capsys.readouterr().err
    assert not (folder / "shifted.dcm").exists()


def test_uneven_slices_and_existing_outputs_are_refused(tmp_path, capsys):
    write_ct_series(tmp_path / "uneven", steps=[2.5] * 5 + [5.0] + [2.5] * 5)
    geometry = Geometry.from_spacing_origin_direction(SPACING, ORIGIN_LPS, np.eye(3).ravel(), SHAPE_KJI)
    write_segmentation(segmentation_on(geometry), tmp_path / "seg.seg.nrrd")
    assert main(["export-seg", str(tmp_path / "seg.seg.nrrd"), "--image", str(tmp_path / "uneven"), "--output",
                 str(tmp_path / "out.dcm")]) == 1
    assert "not evenly spaced" in capsys.readouterr().err
    (tmp_path / "exists.dcm").write_bytes(b"keep me")
    assert main(["export-seg", str(tmp_path / "seg.seg.nrrd"), "--image", str(tmp_path / "uneven"), "--output",
                 str(tmp_path / "exists.dcm")]) == 1
    assert (tmp_path / "exists.dcm").read_bytes() == b"keep me"


def test_segment_names_outside_ascii_are_kept(tmp_path):
    from TTVPrognosisLib.report.dicom_seg_export import export_dicom_seg

    write_ct_series(tmp_path / "ct")
    volume = segmentation_on(read_image(tmp_path / "ct").geometry)
    volume.segments[1].name = "L\u00e4sion 1 \u2013 Leber"
    export_dicom_seg(volume, tmp_path / "ct", tmp_path / "out.dcm")
    labels = [item.SegmentLabel for item in pydicom.dcmread(tmp_path / "out.dcm").SegmentSequence]
    assert labels == ["Liver", "L\u00e4sion 1 \u2013 Leber", "Lesion 2"]


def test_measurements_as_structured_report(ct_case, capsys):
    folder, _, _ = ct_case
    expected = measure(read_segmentation(folder / "seg.seg.nrrd"))
    assert main(["export-seg", str(folder / "seg.seg.nrrd"), "--image", str(folder / "ct"), "--output",
                 str(folder / "out.dcm"), "--sr", str(folder / "sr.dcm")]) == 0
    report = highdicom.sr.srread(folder / "sr.dcm")
    seg = pydicom.dcmread(folder / "out.dcm")
    groups = report.content.get_image_measurement_groups()
    ttv = [group for group in groups if group.tracking_identifier == "Total tumour volume (TTV)"]
    assert len(ttv) == 1
    assert ttv[0].get_measurements()[0].value == pytest.approx(expected.ttv_ml, rel=1e-9)
    lesions = {group.tracking_identifier: group for group in groups if group.tracking_identifier.startswith("Lesion")}
    assert len(lesions) == expected.lesion_count
    for lesion in expected.lesions:
        values = sorted(float(item.value) for item in lesions[f"Lesion {lesion.lesion_id}"].get_measurements())
        assert values == pytest.approx(sorted([lesion.volume_ml, lesion.max_diameter_mm,
                                               lesion.longest_axial_diameter_mm]))
    segments = report.content.get_volumetric_roi_measurement_groups()
    assert len(segments) == 2
    assert all(group.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID for group in segments)
