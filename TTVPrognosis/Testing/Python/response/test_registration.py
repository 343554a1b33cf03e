"""Registration: recovers a known rigid motion, and detects failure (unrelated images) instead of guessing.

A failed registration must be reported with its reasons, fall back to the identity (unregistered
matching), and warn; it must never hand matching a wrong transform silently. The fast liver-mask path
(coarse blocks, moments start, shortcut) must agree with the full fit on a fine grid, and every path must
give the same numbers on every run (a resumed batch must equal an uninterrupted one).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_matching import LESIONS, SCANNER_FROM_PATIENT, moved_pair  # noqa: F401 (fixture)

from TTVPrognosisLib import cli
from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import (
    LIVER_CENTRE_RAS,
    LIVER_RADII_MM,
    axis_aligned_geometry,
    demo_time_point,
    ellipsoid_mask,
    rigid_ras,
    write_demo_case,
)
from TTVPrognosisLib.formats.io import ImageVolume
from TTVPrognosisLib.geometry import Geometry
from TTVPrognosisLib.pipeline import compare_volumes, liver_mask
from TTVPrognosisLib.response.registration import (
    FAILED,
    REGISTERED,
    SHORTCUT_OVERLAP,
    SKIPPED,
    UNAVAILABLE,
    register_followup,
    register_images,
    register_masks,
    rotation_angle_deg,
    transform_problems,
)

CENTRES = np.array([spec[0] for spec in LESIONS.values()])


def registration_error_mm(result) -> float:
    """Largest distance at the lesion centres between the true and the recovered follow-up-to-baseline map."""
    in_followup_scanner = CENTRES @ SCANNER_FROM_PATIENT[:3, :3].T + SCANNER_FROM_PATIENT[:3, 3]
    matrix = result.followup_to_baseline_ras
    back = in_followup_scanner @ matrix[:3, :3].T + matrix[:3, 3]
    return float(np.linalg.norm(back - CENTRES, axis=1).max())


def disagreement_mm(first, second, points=CENTRES) -> float:
    """Largest distance between where two follow-up-to-baseline maps send the same points."""
    one, two = first.followup_to_baseline_ras, second.followup_to_baseline_ras
    return float(np.linalg.norm(points @ one[:3, :3].T + one[:3, 3] - (points @ two[:3, :3].T + two[:3, 3]),
                                axis=1).max())


@pytest.fixture(scope="module")
def livers(moved_pair):  # noqa: F811
    (_, baseline), (_, followup) = moved_pair
    return liver_mask(baseline), liver_mask(followup)


@pytest.mark.parametrize(("use_livers", "mode", "limit_mm"), [(True, "rigid", 1.5), (False, "rigid", 1.5),
                                                             (True, "affine", 2.5)])
def test_ct_registration_recovers_the_known_motion(moved_pair, livers, use_livers, mode, limit_mm):  # noqa: F811
    (baseline_ct, _), (followup_ct, _) = moved_pair
    masks = livers if use_livers else (None, None)
    result = register_images(baseline_ct, followup_ct, *masks, mode=mode)
    assert result.status == REGISTERED and not result.problems and not result.warnings
    assert registration_error_mm(result) < limit_mm
    assert rotation_angle_deg(result.followup_to_baseline_ras) == pytest.approx(
        rotation_angle_deg(SCANNER_FROM_PATIENT), abs=1.0)
    assert result.diagnostics["correlation"] > 0.9
    assert (result.diagnostics.get("liver_dice", 1.0) > 0.9) and result.diagnostics["seconds"] < 10
    json.dumps(result.to_dict())


def test_liver_masks_are_registered_when_there_are_no_cts(livers):
    result = register_followup(None, None, *livers)
    assert result.status == REGISTERED and result.method == "liver masks"
    assert registration_error_mm(result) < 1.0  # 0.1 mm: the ellipsoidal liver's shape pins the rotation here
    assert result.diagnostics["liver_dice"] > 0.95 and not result.diagnostics["shortcut"]
    assert result.diagnostics["iterations"] <= 10 and result.diagnostics["seconds"] < 2
    affine = register_followup(None, None, *livers, mode="affine")
    assert affine.status == REGISTERED and registration_error_mm(affine) < 1.5  # 0.4 mm when written
    json.dumps(affine.to_dict())


def test_fast_liver_registration_agrees_with_the_full_fit(livers):
    """12 degrees and 56 mm apart, on different grids: 5 mm blocks and a moments start (the default) against the
    fit on 2 mm blocks that always optimises; both against the truth."""
    fast = register_masks(*livers)
    full = register_masks(*livers, spacing_mm=2.0, shortcut=False)
    assert fast.status == full.status == REGISTERED
    assert min(fast.diagnostics["working_spacing_mm"]) >= 4.0 and max(full.diagnostics["working_spacing_mm"]) <= 3.0
    assert disagreement_mm(fast, full) < 1.0  # at the lesions; 0.02 mm when written
    assert registration_error_mm(full) < 1.0
    assert not fast.diagnostics["shortcut"] and fast.diagnostics["start_overlap"] < SHORTCUT_OVERLAP


def whole_voxel_shift(mask: ImageVolume, shift_ijk) -> tuple[ImageVolume, np.ndarray]:
    """The same mask moved by whole voxels in the scanner; and the true follow-up-to-baseline matrix."""
    moved = np.eye(4)
    moved[:3, 3] = mask.geometry.ijk_to_ras[:3, :3] @ np.asarray(shift_ijk, dtype=float)
    return ImageVolume(mask.voxels, Geometry(moved @ mask.geometry.ijk_to_ras, mask.geometry.shape_kji)), \
        np.linalg.inv(moved)


def test_shortcut_only_for_the_same_liver_and_then_agrees_with_the_fit(livers):
    baseline = livers[0]
    followup, truth = whole_voxel_shift(baseline, (7, -4, 3))  # e.g. a segmentation copied to the follow-up
    quick = register_masks(baseline, followup)
    full = register_masks(baseline, followup, spacing_mm=2.0, shortcut=False)
    assert quick.diagnostics["shortcut"] and quick.diagnostics["iterations"] == 0
    assert quick.status == REGISTERED and quick.diagnostics["liver_dice"] == 1.0
    assert np.allclose(quick.followup_to_baseline_ras, truth, atol=1e-6)  # a translation, exactly
    assert disagreement_mm(quick, full) < 0.1 and not full.diagnostics["shortcut"]
    # The same liver turned by 1 degree (drawn again on the baseline grid) is no longer "almost perfect".
    grid = baseline.geometry
    turned = Geometry(np.linalg.inv(rigid_ras((0.0, 0.0, 1.0), (0.0, 0.0, 0.0))) @ grid.ijk_to_ras, grid.shape_kji)
    drawn = ImageVolume(ellipsoid_mask(turned, LIVER_CENTRE_RAS, LIVER_RADII_MM), grid)
    again = register_masks(baseline, drawn)
    assert not again.diagnostics["shortcut"] and again.diagnostics["start_overlap"] < SHORTCUT_OVERLAP
    assert disagreement_mm(again, register_masks(baseline, drawn, spacing_mm=2.0, shortcut=False)) < 1.0
    assert rotation_angle_deg(again.followup_to_baseline_ras) == pytest.approx(1.0, abs=0.3)


def test_livers_of_other_volumes_skip_the_shortcut_check(livers):
    """A follow-up liver 9 % smaller cannot overlap almost perfectly: that overlap is not computed, the fit runs."""
    baseline = livers[0]
    grid = baseline.geometry
    smaller = ImageVolume(ellipsoid_mask(grid, LIVER_CENTRE_RAS, np.multiply(LIVER_RADII_MM, 0.97)), grid)
    result = register_masks(baseline, smaller)
    assert result.diagnostics["liver_volume_ratio"] == pytest.approx(0.97 ** 3, abs=0.01)
    assert result.diagnostics["start_overlap"] is None and not result.diagnostics["shortcut"]
    assert result.status == REGISTERED and result.diagnostics["stop_condition"].startswith("converged")
    assert rotation_angle_deg(result.followup_to_baseline_ras) < 0.5
    assert np.abs(result.followup_to_baseline_ras[:3, 3]).max() < 1.0  # same centre: no shift worth a mm


def test_registration_gives_the_same_numbers_every_time(moved_pair, livers):  # noqa: F811
    (baseline_ct, _), (followup_ct, _) = moved_pair
    for register in (lambda: register_images(baseline_ct, followup_ct, *livers),
                     lambda: register_images(baseline_ct, followup_ct),
                     lambda: register_masks(*livers, mode="affine")):
        first, second = register(), register()
        assert first.status == REGISTERED
        assert np.array_equal(first.followup_to_baseline_ras, second.followup_to_baseline_ras)
        assert first.metric_value == second.metric_value


def unrelated_images() -> dict[str, ImageVolume]:
    """Images that are not the baseline patient's abdomen."""
    rng = np.random.default_rng(7)
    grid = axis_aligned_geometry((50, 100, 100), (2.0, 2.0, 3.0))
    head = np.full(grid.shape_kji, -1000.0)
    head[ellipsoid_mask(grid, (0.0, 0.0, 0.0), (80.0, 95.0, 70.0))] = 900.0  # skull
    head[ellipsoid_mask(grid, (0.0, 0.0, 0.0), (72.0, 87.0, 62.0))] = 35.0  # brain
    return {
        "noise": ImageVolume(rng.normal(0.0, 300.0, grid.shape_kji).astype(np.int16), grid, "noise"),
        "head": ImageVolume((head + rng.normal(0.0, 10.0, head.shape)).astype(np.int16), grid, "head"),
    }


def upside_down(image: ImageVolume) -> ImageVolume:
    """The same scan turned head-to-foot and back-to-front (180 degrees about R): a wrong-orientation file."""
    return ImageVolume(np.ascontiguousarray(image.voxels[::-1, ::-1, :]), image.geometry, "upside down")


@pytest.mark.parametrize("name", ["noise", "head", "upside down", "rotated 90 degrees"])
def test_unrelated_or_wrongly_oriented_images_are_detected(moved_pair, name):  # noqa: F811
    (baseline_ct, _), _ = moved_pair
    if name == "upside down":
        followup_ct = upside_down(baseline_ct)
    elif name == "rotated 90 degrees":
        followup_ct = ImageVolume(baseline_ct.voxels, Geometry(rigid_ras((0.0, 0.0, 90.0), (0.0, 0.0, 0.0))
                                                               @ baseline_ct.geometry.ijk_to_ras,
                                                               baseline_ct.geometry.shape_kji))
    else:
        followup_ct = unrelated_images()[name]
    result = register_images(baseline_ct, followup_ct)
    assert result.status == FAILED and result.problems
    assert np.array_equal(result.followup_to_baseline_ras, np.eye(4))  # fallback: unregistered
    assert "rejected_followup_to_baseline_ras" in result.diagnostics
    assert any("WITHOUT registration" in warning for warning in result.warnings)


def test_optimiser_errors_are_reported_not_raised():
    ct, _ = demo_time_point(False)
    grid = axis_aligned_geometry((3, 4, 4), (2.0, 2.0, 2.0))
    result = register_images(ct, ImageVolume(np.full(grid.shape_kji, 40, np.int16), grid))
    assert result.status == FAILED and "optimiser stopped with an error" in result.problems[0]


def test_failed_registration_falls_back_to_unregistered_matching_with_warnings(moved_pair):  # noqa: F811
    (baseline_ct, baseline), (_, followup) = moved_pair
    comparison = compare_volumes(baseline, followup, baseline_image=baseline_ct,
                                 followup_image=unrelated_images()["noise"])
    assert comparison.registration.status == FAILED
    assert not comparison.lesion_matching.registered
    assert any("WITHOUT registration" in warning for warning in comparison.warnings)
    # The moved follow-up cannot be matched unregistered: lesions look new, and the verdict says why to doubt it.
    assert comparison.recist.response == "PD"
    assert any("not registered" in warning for warning in comparison.warnings)
    document = comparison.to_dict()
    assert document["registration"]["status"] == FAILED and document["registration"]["problems"]


def test_implausible_transforms_are_named():
    assert transform_problems(np.eye(4)) == []
    assert transform_problems(rigid_ras((0.0, 0.0, 25.0), (80.0, 0.0, 0.0))) == []
    assert "rotation of 90 degrees" in transform_problems(rigid_ras((0.0, 0.0, 90.0), (0.0, 0.0, 0.0)))[0]
    assert any("mirrors" in problem for problem in transform_problems(np.diag([-1.0, 1.0, 1.0, 1.0])))
    assert any("scaling" in problem for problem in transform_problems(np.diag([2.0, 1.0, 1.0, 1.0])))


def test_what_is_registered_depends_on_what_is_available(livers):
    assert register_followup(None, None, None, None, enabled=False).status == SKIPPED
    unavailable = register_followup(None, None, livers[0], None)
    assert unavailable.status == UNAVAILABLE and "scanner coordinates" in unavailable.warnings[0]
    with pytest.raises(InputError, match="rigid, affine"):
        register_followup(None, None, mode="deformable")


def test_cli_compare_json_and_no_registration(tmp_path, capsys):
    paths = write_demo_case(tmp_path / "case")
    arguments = ["compare", str(paths["baseline_segmentation"]), str(paths["followup_segmentation"]),
                 "--baseline-image", str(paths["baseline_image"]), "--followup-image", str(paths["followup_image"]),
                 "--json"]
    assert cli.main(arguments) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["registration"]["status"] == REGISTERED
    assert document["recist"]["response"] in ("CR", "PR", "SD", "PD")
    assert set(document["recist"]) >= {"target_lesions", "baseline_sum_mm", "followup_sum_mm", "percent_change",
                                       "response", "new_lesion_ids"}
    assert set(document["tbs"]) >= {"baseline", "followup", "baseline_zone", "followup_zone"}
    assert set(document["lesion_matching"]) >= {"pairs", "new", "disappeared", "merged", "split"}
    assert cli.main([*arguments[:-1], "--no-registration"]) == 0
    text = capsys.readouterr().out
    assert "Registration: not done" in text and f"RECIST 1.1: {document['recist']['response']}" in text
    assert "Tumour burden score" in text and "Matched lesions" in text
    assert cli.build_parser().parse_args([*arguments, "--registration", "affine"]).registration == "affine"



def test_mask_moments_match_the_weighted_block_positions():
    """Moments from marginal sums equal the weighted mean and covariance of every block's LPS position."""
    from TTVPrognosisLib.geometry import LPS_TO_RAS
    from TTVPrognosisLib.response.mask_fit import MaskBlocks

    rng = np.random.default_rng(1)
    fractions = np.abs(rng.normal(size=(20, 25, 22))).astype(np.float32)
    fractions[fractions < 0.8] = 0.0
    grid = Geometry(rigid_ras((10.0, 20.0, 30.0), (5.0, 6.0, 7.0)) @ np.diag([2.0, 1.5, 3.0, 1.0]), fractions.shape)
    centre, covariance = MaskBlocks(fractions, grid, None).moments_lps()
    kji = np.argwhere(fractions > 0)
    weights = fractions[tuple(kji.T)].astype(float)
    points = (LPS_TO_RAS @ grid.ijk_to_ras @ np.column_stack([kji[:, ::-1], np.ones(len(kji))]).T)[:3].T
    expected_centre = np.average(points, axis=0, weights=weights)
    expected_covariance = np.cov(points.T, aweights=weights, bias=True)
    assert np.allclose(centre, expected_centre, atol=1e-9)
    assert np.allclose(covariance, expected_covariance, atol=1e-8)


def test_a_scan_in_the_wrong_units_fails_to_register_without_exhausting_memory(livers):
    """A follow-up saved in micrometre-sized voxels made 5 mm blocks and their margin absurdly many (hundreds
    of GiB); blocks and margin are now bounded by the mask, and the registration is a reported failure."""
    baseline = livers[0]
    matrix = baseline.geometry.ijk_to_ras.copy()
    matrix[:3, :4] *= 1e-4
    tiny = ImageVolume(baseline.voxels, Geometry(matrix, baseline.geometry.shape_kji))
    result = register_masks(baseline, tiny)
    assert result.status == FAILED and result.problems
