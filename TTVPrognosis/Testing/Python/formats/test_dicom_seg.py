"""DICOM SEG files written by highdicom from a synthetic CT series: TTV equal to the voxel truth, roles from
the coded properties, fractional SEGs at 0.5, and damaged SEGs refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from synthetic_dicom import SeriesGrid, ellipsoid_volume, write_seg, write_series
from TTVPrognosisLib.cli import main
from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.io import read_segmentation
from TTVPrognosisLib.measure.volumetry import measure

pytest.importorskip("highdicom")

GRID = SeriesGrid(shape_kji=(14, 24, 28), spacing_ijk=(0.8, 0.9, 2.5), origin_lps=(-11.0, -10.0, 0.0))
VOXEL_ML = 0.8 * 0.9 * 2.5 / 1000
LIVER = {"label": "Segment 3", "category": ("123037004", "SCT", "Anatomical Structure"),
         "type": ("10200004", "SCT", "Liver")}
KIDNEY = {"label": "Segment 4", "category": ("123037004", "SCT", "Anatomical Structure"),
          "type": ("64033007", "SCT", "Kidney")}


@pytest.fixture
def case(tmp_path):
    """CT series, two lesions that overlap, the liver around them and a kidney apart (voxel truths)."""
    first = ellipsoid_volume(GRID, (-2.0, 0.0, 14.0), (4.0, 3.5, 6.0))
    second = ellipsoid_volume(GRID, (2.0, 1.0, 17.0), (3.0, 3.0, 5.0))
    liver = ellipsoid_volume(GRID, (0.0, 0.0, 15.0), (10.0, 9.0, 14.0))
    kidney = ellipsoid_volume(GRID, (0.0, 8.0, 4.0), (3.0, 2.0, 3.0)) & ~liver
    paths = write_series(tmp_path / "ct", np.where(liver, 60.0, -100.0), GRID, intercept=-1024)
    return tmp_path, paths, {"first": first, "second": second, "liver": liver, "kidney": kidney}


def write_case_seg(case, name="seg.dcm", **options) -> Path:
    folder, paths, truth = case
    return write_seg(folder / name, paths, [truth["first"], truth["second"], truth["liver"], truth["kidney"]],
                     [{"label": "Metastasis A"}, {"label": "Metastasis B"}, LIVER, KIDNEY], **options)


def test_binary_seg_gives_the_voxel_truth(case):
    _, _, truth = case
    volume = read_segmentation(write_case_seg(case))
    assert [segment.name for segment in volume.segments] == ["Metastasis A", "Metastasis B", "Segment 3", "Segment 4"]
    assert np.any(truth["first"] & truth["second"]) and len(volume.layers) >= 3  # overlaps kept in other layers
    result = measure(volume)
    lesions = truth["first"] | truth["second"]
    assert result.ttv_ml == pytest.approx(lesions.sum() * VOXEL_ML, rel=1e-9)
    assert result.liver_volume_ml == pytest.approx(truth["liver"].sum() * VOXEL_ML, rel=1e-9)
    roles = {segment.name: segment.role for segment in result.segments}
    assert roles == {"Metastasis A": "lesion", "Metastasis B": "lesion", "Segment 3": "liver", "Segment 4": "other"}
    for segment, mask in zip(volume.segments, ("first", "second", "liver", "kidney")):
        assert volume.mask([segment]).sum() == truth[mask].sum()


def test_seg_with_every_frame_and_on_the_ct(case, capsys):
    folder, _, truth = case
    path = write_case_seg(case, omit_empty_frames=False)
    assert main(["measure", str(path), "--image", str(folder / "ct"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ttv_ml"] == pytest.approx((truth["first"] | truth["second"]).sum() * VOXEL_ML, rel=1e-9)
    assert all(warning.startswith("Not counted as lesions") for warning in document["warnings"])  # the coded kidney


def test_a_folder_holding_the_ct_and_its_seg_measures_the_seg(case, capsys):
    folder, _, truth = case
    write_case_seg(case, name="ct/zz_segmentation.dcm")
    assert main(["measure", str(folder / "ct"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ttv_ml"] == pytest.approx(
        (truth["first"] | truth["second"]).sum() * VOXEL_ML, rel=1e-9)


def test_fractional_seg_is_counted_from_one_half(case):
    folder, paths, truth = case
    distance = np.random.default_rng(3).choice([0.2, 0.49, 0.51, 0.9], size=GRID.shape_kji)
    probability = np.where(truth["first"], distance, 0.0)
    path = write_seg(folder / "fractional.dcm", paths, [probability], [{"label": "Tumour"}], fractional=True)
    volume = read_segmentation(path)
    assert any("at least half" in warning for warning in volume.warnings)
    inside = truth["first"] & (distance >= 0.5)
    assert measure(volume).ttv_ml == pytest.approx(inside.sum() * VOXEL_ML, rel=1e-9)


def _more_frames_than_described(dataset):
    dataset.NumberOfFrames = int(dataset.NumberOfFrames) + 2


def _frame_description_lost(dataset):
    del dataset.PerFrameFunctionalGroupsSequence[3]


def _frames_cut_off(dataset):
    dataset.PixelData = dataset.PixelData[: len(dataset.PixelData) // 2]


def _frame_between_planes(dataset):
    position = dataset.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0]
    position.ImagePositionPatient = [*position.ImagePositionPatient[:2], float(position.ImagePositionPatient[2]) + 1.1]


def _frame_repeated(dataset):
    groups = dataset.PerFrameFunctionalGroupsSequence
    groups[1].PlanePositionSequence[0].ImagePositionPatient = groups[0].PlanePositionSequence[0].ImagePositionPatient


def _frame_of_unknown_segment(dataset):
    dataset.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence[0].ReferencedSegmentNumber = 9


SEG_DAMAGES = {
    "frames missing": (_more_frames_than_described, "frames were lost"),
    "frame description lost": (_frame_description_lost, "frames were lost"),
    "pixel data cut off": (_frames_cut_off, "truncated"),
    "frame between planes": (_frame_between_planes, "between the planes"),
    "frame repeated": (_frame_repeated, "two frames of segment"),
    "unknown segment": (_frame_of_unknown_segment, "segment 9"),
}


@pytest.mark.parametrize("damage", SEG_DAMAGES)
def test_damaged_seg_is_refused(case, damage, capsys):
    path = write_case_seg(case)
    dataset = pydicom.dcmread(path)
    change, message = SEG_DAMAGES[damage]
    change(dataset)
    dataset.save_as(path)
    with pytest.raises(InputError, match=message):
        read_segmentation(path)
    assert main(["measure", str(path), "--json"]) == 1
    assert capsys.readouterr().err.startswith("Error: ")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.999])
def test_a_seg_file_cut_short_is_refused(case, keep, capsys):
    path = write_case_seg(case)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    code = main(["measure", str(path), "--json"])
    captured = capsys.readouterr()
    assert code == 1 and captured.err.startswith("Error: "), captured.out


def test_seg_placed_on_its_ct_and_checked_against_it(case):
    folder, paths, truth = case
    path = write_case_seg(case)
    volume = read_segmentation(path, reference_image=folder / "ct")
    assert volume.geometry.shape_kji == GRID.shape_kji
    assert measure(volume).ttv_ml == pytest.approx((truth["first"] | truth["second"]).sum() * VOXEL_ML, rel=1e-9)
    write_series(folder / "other", np.zeros(GRID.shape_kji), GRID)  # another scan: its own frame of reference
    with pytest.raises(InputError, match="not the scan the DICOM SEG"):
        read_segmentation(path, reference_image=folder / "other")
    paths[0].unlink()  # an end slice: positions cannot show it, the SEG's list of images can
    with pytest.raises(InputError, match="lacks 1 of the slices"):
        read_segmentation(path, reference_image=folder / "ct")


def test_seg_without_slice_spacing_and_gaps_needs_its_ct(case):
    """Frames on every other slice, no SpacingBetweenSlices: 5 mm could be read; the thickness says 2.5 mm."""
    folder, paths, truth = case
    sparse = truth["first"].copy()
    sparse[1::2] = False
    path = write_seg(folder / "sparse.dcm", paths, [sparse], [{"label": "Tumour"}])
    dataset = pydicom.dcmread(path)
    del dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices
    dataset.save_as(path)
    with pytest.raises(InputError, match="--image"):
        read_segmentation(path)
    volume = read_segmentation(path, reference_image=folder / "ct")
    assert measure(volume).ttv_ml == pytest.approx(sparse.sum() * VOXEL_ML, rel=1e-9)
    assert volume.warnings == []
