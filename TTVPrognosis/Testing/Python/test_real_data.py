"""Real lesion labels from ../shared/data measured and checked against SimpleITK's reference values.

Voxel counts must agree exactly; diameters between voxel centres to 0.01 mm (same definition as ITK's
Feret diameter); centroids to 0.01 mm. Skipped when the shared data is absent.
"""

from __future__ import annotations

import numpy as np
import pytest

from shared_data import IRCAD_CASES, LABEL_FILE_CASES, ReferenceCase, ircad_segmentation, reference_case
from TTVPrognosisLib.formats.io import read_segmentation, write_segmentation
from TTVPrognosisLib.measure.volumetry import Measurement, measure
from TTVPrognosisLib.pipeline import measure_file


def assert_matches_reference(result: Measurement, reference: ReferenceCase, per_lesion: bool = True) -> None:
    voxel_count = sum(lesion.voxel_count for lesion in result.lesions)
    assert voxel_count == reference.ttv_voxel_count
    assert result.ttv_ml == pytest.approx(reference.ttv_ml, rel=1e-6, abs=1e-6)  # reference rounded to 1e-6 mL
    assert result.lesion_count == reference.lesion_count
    if not per_lesion:
        return
    assert len(reference.lesions) == result.lesion_count
    for expected in reference.lesions:
        distances = [np.linalg.norm(np.array(lesion.centroid_ras) - expected.centroid_ras) for lesion in result.lesions]
        lesion = result.lesions[int(np.argmin(distances))]
        assert min(distances) < 0.01
        assert lesion.voxel_count == expected.voxel_count
        assert lesion.max_diameter_mm == pytest.approx(expected.feret_diameter_mm, abs=0.01)
        assert lesion.longest_axial_diameter_mm == pytest.approx(expected.axial_diameter_mm, abs=0.01)


@pytest.mark.parametrize("case", LABEL_FILE_CASES, ids=lambda case: case.case)
def test_label_image_files_match_reference(shared_data, case):
    result = measure_file(case.path, exclude=case.exclude)
    assert_matches_reference(result, reference_case(case.case))


@pytest.mark.parametrize("case", sorted(IRCAD_CASES))
def test_ircad_tumour_masks_match_reference(shared_data, tmp_path, case):
    """DICOM mask series (values 0/255 or 0/1) -> one segment per tumour mask; liver mask -> liver role."""
    volume = ircad_segmentation(case, tmp_path)
    reference = reference_case(case)
    result = measure(volume)
    per_lesion = len(reference.lesions) == reference.lesion_count
    assert_matches_reference(result, reference, per_lesion=per_lesion)
    assert result.liver_volume_ml > 500


def test_ircad_through_seg_nrrd_file(shared_data, tmp_path):
    """The same patient written as a Slicer .seg.nrrd (7 tumour layers + liver) gives the same numbers."""
    volume = ircad_segmentation("ircad01", tmp_path)
    path = tmp_path / "ircad01.seg.nrrd"
    write_segmentation(volume, path)
    assert_matches_reference(measure(read_segmentation(path)), reference_case("ircad01"))


def test_kits_axial_axis_is_not_k(shared_data):
    """KiTS stores the superior-inferior axis first: axial slices must be taken along i, not k."""
    result = measure_file(LABEL_FILE_CASES[0].path, exclude=["1"])
    assert result.axial_axis == "i"
    assert result.slice_thickness_mm == pytest.approx(0.5)
    assert result.segments[0].role == "excluded"
