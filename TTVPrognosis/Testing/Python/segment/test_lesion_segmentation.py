"""One-click lesion segmentation on a synthetic CT with known lesions: accuracy, bounds and bad clicks.

The case (synthetic_ct.make_synthetic_ct, seed 0) has 14 lesions of 5-80 mm on a 1 x 1 x 2.5 mm grid with
15 HU noise: hypo- and hyperdense, three at the liver edge, and two touching pairs (labels 5+6 of the same
density, 4+8 of opposite densities).
"""

from __future__ import annotations

import ast
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from synthetic_ct import SyntheticCase, SyntheticLesion, click_point_ras, dice, make_synthetic_ct
from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.geometry import Geometry
from TTVPrognosisLib.segment.lesion import (
    DEFAULT_SETTINGS,
    HYPERDENSE,
    HYPODENSE,
    LesionSegmentationResult,
    segment_lesion,
)

HERE = Path(__file__).resolve().parent
LIB = HERE.parents[2] / "TTVPrognosisLib"
TOUCHING_SAME_DENSITY = (5, 6)


@pytest.fixture(scope="module")
def case() -> SyntheticCase:
    return make_synthetic_ct(seed=0)


def lesion(case: SyntheticCase, label: int) -> SyntheticLesion:
    return case.lesions[label - 1]


def click(case: SyntheticCase, label: int) -> np.ndarray:
    return click_point_ras(case.lesion_mask(label), case.geometry)


def segment(case: SyntheticCase, points, liver: bool = True,
            existing: np.ndarray | None = None) -> LesionSegmentationResult:
    result = segment_lesion(case.ct_kji, case.geometry, points, case.liver_mask_kji if liver else None,
                            existing)
    assert result.voxel_count > 0, "a result is never an empty segment"
    return result


def test_lesions_from_10_mm_reach_the_dice_target(case):
    scores = {}
    for item in case.lesions:
        if item.diameter_mm >= 10.0:
            result = segment(case, [click(case, item.label)])
            scores[item.label] = dice(result.full_mask(), case.lesion_mask(item.label))
    assert statistics.median(scores.values()) >= 0.85, scores
    assert min(scores.values()) >= 0.75, scores


@pytest.mark.parametrize(("label", "polarity"), [(4, HYPODENSE), (2, HYPERDENSE), (11, HYPERDENSE)])
def test_density_is_told_from_the_surrounding_liver(case, label, polarity):
    result = segment(case, [click(case, label)])
    assert result.polarity == polarity == lesion(case, label).polarity
    assert result.intensity.contrast_hu > 25.0


@pytest.mark.parametrize("label", [1, 2, 4])
def test_without_liver_mask_large_lesions_are_found(case, label):
    """Label 1 is 80 mm with a necrotic centre under the click; its rim must not be taken for liver."""
    result = segment(case, [click(case, label)], liver=False)
    assert dice(result.full_mask(), case.lesion_mask(label)) >= 0.9


@pytest.mark.parametrize("label", [3, 7, 9])
def test_edge_lesion_is_bounded_by_the_liver_mask(case, label):
    assert lesion(case, label).placement == "liver edge"
    result = segment(case, [click(case, label)])
    assert not (result.full_mask() & ~case.liver_mask_kji).any()
    assert dice(result.full_mask(), case.lesion_mask(label)) >= 0.75


def test_touching_neighbour_of_same_density_is_cut_off(case):
    first, second = TOUCHING_SAME_DENSITY
    assert lesion(case, second).neighbour_label == first
    result = segment(case, [click(case, second)])
    mask = result.full_mask()
    assert dice(mask, case.lesion_mask(second)) >= 0.85
    assert (mask & case.lesion_mask(first)).sum() < 0.05 * case.lesion_mask(first).sum()
    assert any("narrow neck" in warning for warning in result.warnings)


def test_existing_lesion_is_never_included(case):
    first, second = TOUCHING_SAME_DENSITY
    existing = case.lesion_mask(second)
    result = segment(case, [click(case, first)], existing=existing)
    assert not (result.full_mask() & existing).any()
    assert dice(result.full_mask(), case.lesion_mask(first)) >= 0.85
    assert any("already segmented" in warning for warning in result.warnings)


def test_points_in_two_touching_lesions_keep_both(case):
    first, second = TOUCHING_SAME_DENSITY
    both = case.lesion_mask(first) | case.lesion_mask(second)
    result = segment(case, [click(case, first), click(case, second)])
    assert dice(result.full_mask(), both) >= 0.85


def test_opposite_density_neighbours_do_not_mix(case):
    hypodense, hyperdense = 4, 8
    result = segment(case, [click(case, hyperdense)])
    assert (result.full_mask() & case.lesion_mask(hypodense)).sum() == 0


def test_result_is_cropped_to_a_region_of_interest(case):
    label = 10
    result = segment(case, [click(case, label)])
    assert result.roi_enlargements == 0
    half_size_voxels = np.ceil(DEFAULT_SETTINGS.initial_roi_half_size_mm / case.geometry.spacing[::-1])
    assert np.all(np.asarray(result.mask_kji.shape) <= 2 * half_size_voxels + 1)
    full = result.full_mask()
    assert full.shape == case.ct_kji.shape and full.sum() == result.voxel_count
    corner = result.roi_geometry.ras_from_kji([0, 0, 0])
    assert np.allclose(corner, case.geometry.ras_from_kji(result.roi_start_kji))
    assert result.volume_ml == pytest.approx(result.voxel_count * case.geometry.voxel_volume_ml)


def test_region_of_interest_grows_around_a_large_lesion(case):
    result = segment(case, [click(case, 1)])
    assert result.roi_enlargements >= 1
    assert dice(result.full_mask(), case.lesion_mask(1)) >= 0.9


def test_large_lesion_on_a_coarse_grid_matches_the_full_resolution_path(case):
    """Label 2 (60 mm) outgrows the first ROI, so its shape is found on a coarse grid and its edge redrawn at
    full resolution; switching the coarse grid off gives the full-resolution reference."""
    label = 2
    coarse = segment(case, [click(case, label)])
    assert coarse.grid_stride_kji != (1, 1, 1)
    full_resolution = replace(DEFAULT_SETTINGS, max_roi_voxels=10 ** 9)
    reference = segment_lesion(case.ct_kji, case.geometry, [click(case, label)], case.liver_mask_kji,
                               settings=full_resolution)
    assert reference.grid_stride_kji == (1, 1, 1)
    assert dice(coarse.full_mask(), reference.full_mask()) >= 0.97
    assert dice(coarse.full_mask(), case.lesion_mask(label)) >= 0.9


def test_inputs_are_not_modified(case):
    ct, liver, existing = case.ct_kji.copy(), case.liver_mask_kji.copy(), case.lesion_mask(6)
    existing_copy = existing.copy()
    segment(case, [click(case, 5)], existing=existing)
    assert np.array_equal(ct, case.ct_kji) and np.array_equal(liver, case.liver_mask_kji)
    assert np.array_equal(existing, existing_copy)


def test_same_lesion_on_a_grid_stored_the_other_way_round(case):
    """Flipping the array along i and j with a matching matrix is the same image: same RAS result."""
    label = 4
    reference = segment(case, [click(case, label)]).full_mask()
    matrix = case.geometry.ijk_to_ras.copy()
    shape_ijk = np.asarray(case.geometry.shape_ijk)
    matrix[:3, 3] = case.geometry.ras_from_ijk([shape_ijk[0] - 1, shape_ijk[1] - 1, 0])[0]
    matrix[:3, 0] *= -1.0
    matrix[:3, 1] *= -1.0
    flipped = Geometry(matrix, case.geometry.shape_kji)
    result = segment_lesion(case.ct_kji[:, ::-1, ::-1], flipped, [click(case, label)],
                            case.liver_mask_kji[:, ::-1, ::-1])
    assert dice(result.full_mask()[:, ::-1, ::-1], reference) >= 0.99


# --- bad input: a clear message and no segment --------------------------------------------------------


def outside_image(case: SyntheticCase) -> np.ndarray:
    return case.geometry.bounds_ras()[1] + 50.0


@pytest.mark.parametrize(("where", "with_liver", "message"), [
    (outside_image, True, "outside the CT image"),
    (lambda case: case.outside_liver_point_ras, True, "outside the liver mask"),
    (lambda case: case.air_point_ras, False, "air or lung"),
    (lambda case: case.bone_point_ras, False, "bone"),
    (lambda case: case.parenchyma_point_ras(), True, "cannot be told apart"),
])
def test_bad_click_is_refused_with_a_clear_message(case, where, with_liver, message):
    with pytest.raises(InputError, match=message):
        segment(case, [where(case)], liver=with_liver)


def test_click_outside_the_image_gives_the_images_ras_bounds(case):
    low, high = case.geometry.bounds_ras()
    with pytest.raises(InputError) as raised:
        segment(case, [outside_image(case)])
    message = str(raised.value)
    for axis, lo, hi in zip("RAS", low, high):
        assert f"{axis} {lo:.1f} to {hi:.1f}" in message


def test_click_inside_an_existing_lesion_is_refused(case):
    with pytest.raises(InputError, match="already segmented"):
        segment(case, [click(case, 4)], existing=case.lesion_mask(4))


@pytest.mark.parametrize("points", [[], [[1.0, 2.0]], [[np.nan, 0.0, 0.0]]])
def test_malformed_points_are_refused(case, points):
    with pytest.raises(InputError):
        segment(case, points)


def test_mask_on_another_grid_is_refused(case):
    with pytest.raises(InputError, match="resample"):
        segment_lesion(case.ct_kji, case.geometry, [click(case, 4)], case.liver_mask_kji[1:])


def test_sources_parse_as_python_3_9():
    """Slicer 5.8 runs Python 3.9: no match statements, parenthesised context managers and the like."""
    for path in (*sorted((LIB / "segment").glob("*.py")), HERE.parent / "synthetic_ct.py", Path(__file__)):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))
