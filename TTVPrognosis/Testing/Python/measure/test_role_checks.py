"""An organ is never counted as tumour: organ-sized and enclosing "lesions" are refused, whatever their names,
and the LiTS / MSD / nnU-Net label map (1 = liver, 2 = tumour) is recognised from what it holds."""

from __future__ import annotations

import numpy as np
import pytest

from shared_data import LABEL_FILE_CASES, ircad_segmentation
from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import demo_time_point
from TTVPrognosisLib.formats.segments import LabelVolume, Segment
from TTVPrognosisLib.geometry import Geometry
from TTVPrognosisLib.measure.role_checks import ORGAN_SIZED_ML
from TTVPrognosisLib.measure.volumetry import measure, total_tumor_volume_ml
from TTVPrognosisLib.pipeline import measure_file


def demo_truth() -> tuple[LabelVolume, np.ndarray, np.ndarray]:
    """The demo baseline: its liver and lesion masks (the truth) and the volume as the demo writes it."""
    _, volume = demo_time_point(followup=False)
    return volume, volume.layers[0] > 0, volume.layers[1] > 0


def untagged(volume: LabelVolume, names: dict[str, str]) -> LabelVolume:
    """The same layers with segments renamed and without this module's role tags (as another tool writes them)."""
    return LabelVolume(volume.layers, volume.geometry,
                       [Segment(segment.segment_id, names.get(segment.segment_id, segment.name), segment.layer,
                                segment.label_value) for segment in volume.segments], "renamed")


@pytest.mark.parametrize("liver_name", ["Liver mask", "liver_mask", "Lever", "Leber", "Foie", "Hígado", "Fegato",
                                        "liver remnant"])
def test_renamed_liver_segments_are_the_liver(liver_name):
    volume, liver, lesions = demo_truth()
    result = measure(untagged(volume, {"Liver": liver_name}))
    voxel_ml = volume.geometry.voxel_volume_ml
    assert result.ttv_ml == pytest.approx(np.count_nonzero(lesions) * voxel_ml)
    assert result.liver_volume_ml == pytest.approx(np.count_nonzero(liver) * voxel_ml)
    assert result.segments[0].role == "liver"


def test_unnamed_liver_enclosing_lesions_is_refused_naming_the_segment_and_options():
    volume, _, _ = demo_truth()
    with pytest.raises(InputError) as refused:
        measure(untagged(volume, {"Liver": "Segment_1"}))
    message = str(refused.value)
    assert "'Segment_1'" in message and "--liver-segment 'Segment_1'" in message
    assert "--exclude-segment 'Segment_1'" in message and "--lesion-segment" in message
    # The user's word settles it.
    result = measure(untagged(volume, {"Liver": "Segment_1"}), liver=["Segment_1"])
    assert result.segments[0].role == "liver" and result.lesion_count > 0


def box_volume(shape=(60, 100, 100), spacing=(2.0, 1.0, 1.0)) -> Geometry:
    matrix = np.diag([*spacing[::-1], 1.0])
    return Geometry(matrix, shape)


def test_liver_with_tumours_cut_out_of_its_label_is_refused_as_enclosing():
    """A label map where label 1 surrounds labels 2 and 3 (disjoint voxels): 1 encloses them."""
    geometry = box_volume()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[5:40, 10:80, 10:80] = 1  # 35 * 70 * 70 * 2 mm3 = 343 mL: not organ-sized, but it encloses
    labels[10:15, 20:30, 20:30] = 2
    labels[20:30, 50:60, 50:60] = 3
    volume = LabelVolume([labels], geometry, [Segment(str(v), f"Label {v}", 0, v) for v in (1, 2, 3)], "map")
    with pytest.raises(InputError, match=r"'Label 1' encloses lesion segment 'Label [23]'"):
        measure(volume)
    result = measure(volume, exclude=["1"])
    assert result.ttv_ml == pytest.approx((5 * 10 * 10 + 10 * 10 * 10) * geometry.voxel_volume_ml)


def test_unnamed_organ_sized_segment_is_refused_and_a_confirmed_one_is_counted():
    geometry = box_volume((80, 120, 120))
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[0:80, 10:110, 10:110] = 1  # 80 * 100 * 100 * 2 mm3 = 1600 mL, no other segment
    volume = LabelVolume([labels], geometry, [Segment("1", "Segment_1", 0, 1)], "big")
    assert np.count_nonzero(labels) * geometry.voxel_volume_ml > ORGAN_SIZED_ML
    with pytest.raises(InputError, match=r"1600 mL.*'Segment_1'.*organ-sized"):
        measure(volume)
    with pytest.raises(InputError, match="organ-sized"):
        total_tumor_volume_ml(volume)
    confirmed = measure(volume, lesion=["segment_*"])
    assert confirmed.ttv_ml == pytest.approx(1600.0)
    assert any("organ-sized" in warning for warning in confirmed.warnings)


def test_touching_metastases_are_not_enclosure():
    """Lesion segments that touch along a face (two large, and a small satellite on a larger one): not refused."""
    geometry = box_volume()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[10:30, 10:40, 10:40] = 1
    labels[10:30, 10:40, 40:60] = 2  # shares a face with 1
    labels[35:45, 60:90, 60:90] = 3
    labels[38:42, 63:70, 90:94] = 4  # a satellite on 3's side
    volume = LabelVolume([labels], geometry, [Segment(str(v), f"Lesion {v}", 0, v) for v in (1, 2, 3, 4)])
    result = measure(volume)
    assert result.ttv_ml == pytest.approx(np.count_nonzero(labels) * geometry.voxel_volume_ml)


def lits_label_map() -> tuple[LabelVolume, float, float]:
    """The demo baseline as a LiTS/MSD/nnU-Net label map: 1 = liver (without the tumours), 2 = tumour."""
    volume, liver, lesions = demo_truth()
    labels = np.where(lesions, 2, np.where(liver, 1, 0)).astype(np.uint8)
    map_volume = LabelVolume([labels], volume.geometry, [Segment("1", "Label 1", 0, 1), Segment("2", "Label 2", 0, 2)],
                             "lits.nii.gz")
    voxel_ml = volume.geometry.voxel_volume_ml
    return map_volume, np.count_nonzero(lesions) * voxel_ml, np.count_nonzero(liver) * voxel_ml


def test_lits_convention_is_recognised_with_a_warning_and_can_be_overridden():
    volume, ttv, liver_ml = lits_label_map()
    result = measure(volume)
    assert result.ttv_ml == pytest.approx(ttv)  # 53 mL, not liver + tumour
    assert 40 < result.ttv_ml < 70
    assert result.liver_volume_ml == pytest.approx(liver_ml - ttv)  # label 1 is the liver without its tumours
    assert [segment.role for segment in result.segments] == ["liver", "lesion"]
    warning = next(warning for warning in result.warnings if "LiTS" in warning)
    assert "--liver-segment 1" in warning and "--exclude-segment 1" in warning
    assert total_tumor_volume_ml(volume) == pytest.approx(ttv)
    # Saying what the labels are replaces the guess.
    assert measure(volume, exclude=["1"]).liver_volume_ml is None
    both = measure(volume, lesion=["1", "2"])
    assert both.ttv_ml == pytest.approx(liver_ml)
    assert not any("LiTS" in warning for warning in both.warnings)


def test_two_lesion_labels_that_do_not_enclose_are_not_a_convention():
    geometry = box_volume()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[10:20, 10:20, 10:20] = 1
    labels[30:40, 50:60, 50:60] = 2
    volume = LabelVolume([labels], geometry, [Segment("1", "Label 1", 0, 1), Segment("2", "Label 2", 0, 2)])
    result = measure(volume)
    assert result.lesion_count == 2 and [segment.role for segment in result.segments] == ["lesion", "lesion"]


def test_kits_kidney_label_is_recognised_as_an_organ_but_not_as_the_liver(shared_data):
    """KiTS19 case 1: label 1 (kidneys, 475 mL) encloses label 2 (tumour): left out, not a liver volume."""
    case = LABEL_FILE_CASES[0]
    result = measure_file(case.path)
    truth = measure_file(case.path, exclude=["1"])
    assert result.ttv_ml == pytest.approx(truth.ttv_ml)
    assert result.liver_volume_ml is None
    assert result.segments[0].role == "other"
    assert any("KiTS" in warning for warning in result.warnings)


@pytest.mark.parametrize("case", ["ircad01", "ircad06", "ircad08", "ircad17"])
def test_real_tumours_pass_the_checks_without_names(shared_data, tmp_path, case):
    """3D-IRCADb tumour masks with their names removed (and the liver left out): none is organ-sized and
    none encloses another, so all are counted; the named liver is the liver."""
    volume = ircad_segmentation(case, tmp_path)
    names = {segment.segment_id: f"Segment_{index}" for index, segment in enumerate(volume.segments)
             if segment.name.startswith("livertumor")}
    unnamed = untagged(volume, names)
    result = measure(unnamed)
    assert result.ttv_ml == pytest.approx(measure(volume).ttv_ml)
    assert result.ttv_ml > 5
