"""Bring the follow-up scan into the baseline's frame (rigid or affine, SimpleITK), and say when that failed.

Lesion matching needs to know where a follow-up voxel was at baseline. Patients lie differently on the
table and scanners put the origin anywhere, so the follow-up is registered to the baseline:

- **CTs** (both time points): Mattes mutual information on soft-tissue-windowed HU, on a region cropped
  around the liver (when liver masks exist, else the whole scan) and binned down to about 3 mm voxels, so a
  512 x 512 x 300 scan costs about as much as a small test volume. Started from the liver masks'
  centroids (or the centres of the scans), rigid first, then affine when asked.
- **Liver masks** only: each mask becomes the fraction of every block of about 5 mm
  (:data:`MASK_SPACING_MM`) that lies inside the liver. Masks are smooth, so these fractions keep the
  liver's shape and position to well under a block, and a liver with its margin is about 100 000 blocks.
  The start is taken from the masks' moments: their centres of mass aligned, and also their principal axes when
  those are well defined (second moments at least :data:`.mask_fit.AXES_MIN_GAP` apart) and within the plausible
  rotation; of the two, the start with the smaller fit error is kept. From there the smoothed fractions
  are fitted by least squares at the baseline liver's edge (Levenberg-Marquardt, :class:`.mask_fit.MaskFit`): a
  few steps, each moving the liver as far as the error's curvature says, where a gradient descent on the
  same error takes dozens of small ones. Rigid first, then affine when asked.
  **Shortcut**: when the start already overlaps almost perfectly (block Dice >= :data:`SHORTCUT_OVERLAP`),
  it is the answer and nothing is fitted. That is the same liver mask moved by whole voxels (a follow-up
  segmentation copied or propagated from the baseline, or synthetic data); segmentations of the same liver
  on other grids stay near 0.98, and a shift of a fifth of a voxel or a rotation of 0.1-0.25 degrees
  already brings it below the threshold; where it is taken, it agrees with the fitted answer within 0.1 mm
  (``test_registration.py`` checks both). Livers whose volumes differ by more than
  :data:`SHORTCUT_VOLUME_DIFFERENCE` (1 %) cannot reach it (their block Dice is at most 0.995), so for
  them that overlap is not computed at all. ``register_masks(..., spacing_mm=2.0,
  shortcut=False)`` is the same fit on a fine grid, for comparison.
- Nothing to register with, or the user says the scans are aligned (``--no-registration``): identity.

Whether it worked is checked, not assumed (:data:`QUALITY_LIMITS`): the optimiser must finish, the
baseline region must mostly map inside the follow-up scan, the transform must be plausible for one patient
(rotation <= 30 degrees, affine scaling within 0.75-1.33), the registered CTs must correlate (Pearson r of
windowed HU over the baseline's body >= 0.6; unrelated images and wrong solutions such as a flipped or
90-degree-rotated scan stay <= 0.45 on the synthetic test volumes, true pairs reach >= 0.95; not yet
calibrated on real longitudinal pairs), and when both liver masks exist their Dice overlap after
registration must be >= 0.5 (on 3 or 5 mm blocks, within 0.002 of the full-resolution Dice). A failed
registration is reported with its reasons and the identity transform is returned instead, so lesions are
matched unregistered and the caller warns.

Reproducible, to the last digit: the CT registration runs on one ITK thread (:data:`REGISTRATION_THREADS`;
with more, the metric adds the threads' partial sums in whatever order they finish, which changed the
result in the 10th digit from run to run), its random samples have a fixed seed, and the liver-mask fit is
plain numpy. So a resumed batch writes the same numbers as an uninterrupted one. The cost: none with liver
masks (a small region), about +50 % for a whole scan without them when the machine has cores to spare (none
in a batch with one worker per core).

The result's matrix maps follow-up RAS points to baseline RAS points (4 x 4, mm).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..formats.io import ImageVolume
from ..response.mask_fit import MaskBlocks, MaskFit, principal_axes_rotation
from .itk_steps import (
    CROP_MARGIN_MM,
    HU_WINDOW,
    REGISTRATION_THREADS,
    WORKING_SPACING_MM,
    _block_overlaps,
    _centre_initial,
    _ct_method,
    _image_centre_lps,
    _itk_transform_from_ras,
    _optimise,
    _ras_matrix_of,
    _threads,
    _working_ct,
)

RIGID = "rigid"
AFFINE = "affine"
MODES = (RIGID, AFFINE)

REGISTERED = "registered"
FAILED = "failed"
SKIPPED = "skipped"
UNAVAILABLE = "unavailable"

METHOD_CT = "CT"
METHOD_LIVER = "liver masks"
METHOD_NONE = "none"

MASK_SPACING_MM = 5.0  # liver masks are registered as inside-fractions of blocks of about this size
BODY_HU_WINDOWED = -250.0  # inside the body on the windowed image (fat is about -100 HU)
MASK_MIN_SAMPLES = 50  # fewer edge blocks than this: too small a mask to register
SHORTCUT_OVERLAP = 0.999  # block Dice of the start above which it is taken as the answer
SHORTCUT_VOLUME_DIFFERENCE = 0.01  # livers whose volumes differ more cannot reach that Dice: not even tried
# WORKING_SPACING_MM, CROP_MARGIN_MM, HU_WINDOW and REGISTRATION_THREADS are set with the SimpleITK steps
# (itk_steps.py) and imported above.

QUALITY_LIMITS = {
    "min_overlap_fraction": 0.5,  # of the baseline region that maps inside the follow-up image
    "max_rotation_deg": 30.0,
    "min_scale": 0.75,
    "max_scale": 1.0 / 0.75,
    "min_correlation": 0.6,  # Pearson r of windowed HU inside the body after registration (CT)
    "min_liver_dice": 0.5,  # liver masks after registration (when both exist)
}



@dataclass
class RegistrationResult:
    """Follow-up-to-baseline transform (RAS, 4x4) and how it was obtained and checked."""

    followup_to_baseline_ras: np.ndarray
    status: str
    method: str
    mode: str = RIGID
    metric_value: float | None = None
    diagnostics: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def registered(self) -> bool:
        return self.status == REGISTERED

    @property
    def baseline_to_followup_ras(self) -> np.ndarray:
        return np.linalg.inv(self.followup_to_baseline_ras)

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "method": self.method,
            "mode": self.mode,
            "followup_to_baseline_ras": np.asarray(self.followup_to_baseline_ras).tolist(),
            "rotation_deg": rotation_angle_deg(self.followup_to_baseline_ras),
            "translation_mm": [float(v) for v in np.asarray(self.followup_to_baseline_ras)[:3, 3]],
            "metric_value": self.metric_value,
            "diagnostics": dict(self.diagnostics),
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


def identity_result(status: str, method: str = METHOD_NONE, warning: str | None = None) -> RegistrationResult:
    """No registration: follow-up coordinates are taken as baseline coordinates."""
    return RegistrationResult(np.eye(4), status, method, warnings=[warning] if warning else [])


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """Rotation angle of the closest rotation to the 3x3 part (polar decomposition), in degrees."""
    linear = np.asarray(matrix, dtype=float)[:3, :3]
    u, _, vt = np.linalg.svd(linear)
    rotation = u @ vt
    cosine = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cosine)))


def transform_problems(matrix: np.ndarray) -> list[str]:
    """Why a follow-up-to-baseline matrix cannot be the same patient's anatomy (empty when plausible)."""
    problems = []
    linear = np.asarray(matrix, dtype=float)[:3, :3]
    if not np.all(np.isfinite(matrix)):
        return ["the transform has non-finite values"]
    if np.linalg.det(linear) <= 0:
        problems.append("the transform mirrors the anatomy")
    angle = rotation_angle_deg(matrix)
    if angle > QUALITY_LIMITS["max_rotation_deg"]:
        problems.append(f"rotation of {angle:.0f} degrees (more than {QUALITY_LIMITS['max_rotation_deg']:.0f})")
    scales = np.linalg.svd(linear, compute_uv=False)
    if scales.min() < QUALITY_LIMITS["min_scale"] or scales.max() > QUALITY_LIMITS["max_scale"]:
        problems.append(f"scaling of {scales.min():.2f}-{scales.max():.2f} (allowed "
                        f"{QUALITY_LIMITS['min_scale']:.2f}-{QUALITY_LIMITS['max_scale']:.2f})")
    return problems


def register_followup(baseline_image: ImageVolume | None, followup_image: ImageVolume | None,
                      baseline_liver: ImageVolume | None = None, followup_liver: ImageVolume | None = None,
                      mode: str = RIGID, enabled: bool = True) -> RegistrationResult:
    """Register with what is available: CTs (helped by liver masks), else liver masks, else nothing.

    Liver masks are boolean :class:`ImageVolume` objects on their segmentation's grid; an empty mask counts
    as missing. Never raises for a failed registration: the result says what happened.
    """
    _check_mode(mode)
    if not enabled:
        return identity_result(SKIPPED, warning=None)
    livers = (_present(baseline_liver), _present(followup_liver))
    if baseline_image is not None and followup_image is not None:
        return register_images(baseline_image, followup_image, livers[0], livers[1], mode=mode)
    if livers[0] is not None and livers[1] is not None:
        return register_masks(livers[0], livers[1], mode=mode)
    return identity_result(UNAVAILABLE, warning=(
        "The scans were not registered: that needs both CTs (--baseline-image/--followup-image) or a liver "
        "segment at both time points. Lesions were matched in scanner coordinates, which is right only when "
        "both scans are already aligned."))


def register_images(fixed: ImageVolume, moving: ImageVolume, fixed_liver: ImageVolume | None = None,
                    moving_liver: ImageVolume | None = None, mode: str = RIGID) -> RegistrationResult:
    """Register the follow-up CT (``moving``) to the baseline CT (``fixed``); see the module docstring."""
    _check_mode(mode)
    return _guarded(METHOD_CT, mode, lambda: _register_images(fixed, moving, fixed_liver, moving_liver, mode))


def register_masks(fixed_liver: ImageVolume, moving_liver: ImageVolume, mode: str = RIGID,
                   spacing_mm: float = MASK_SPACING_MM, shortcut: bool = True) -> RegistrationResult:
    """Register the follow-up liver mask to the baseline liver mask (no CTs needed).

    ``spacing_mm`` is the block size the masks are registered at; ``shortcut=False`` always optimises
    (see the module docstring).
    """
    _check_mode(mode)

    def register() -> RegistrationResult:
        with _threads(REGISTRATION_THREADS):  # small images: one thread, none left waiting on a busy machine
            return _register_masks(fixed_liver, moving_liver, mode, spacing_mm, shortcut)

    return _guarded(METHOD_LIVER, mode, register)


def _guarded(method_name: str, mode: str, register) -> RegistrationResult:
    """Run a registration; an ITK error anywhere (e.g. a scan too small to smooth) is a reported failure."""
    started = time.perf_counter()
    try:
        result = register()
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        result = RegistrationResult(np.eye(4), FAILED, method_name, mode,
                                    problems=[f"the images could not be prepared or registered ({reason})"])
    result.diagnostics["seconds"] = round(time.perf_counter() - started, 3)
    return _finish(result)


def _register_images(fixed: ImageVolume, moving: ImageVolume, fixed_liver: ImageVolume | None,
                     moving_liver: ImageVolume | None, mode: str) -> RegistrationResult:
    use_livers = fixed_liver is not None and moving_liver is not None
    fixed_image = _working_ct(fixed, fixed_liver if use_livers else None)
    moving_image = _working_ct(moving, moving_liver if use_livers else None)
    if use_livers:
        fixed_blocks, moving_blocks = MaskBlocks.of(fixed_liver, WORKING_SPACING_MM, CROP_MARGIN_MM), \
            MaskBlocks.of(moving_liver, WORKING_SPACING_MM, CROP_MARGIN_MM)
        initial = _centre_initial(fixed_blocks.centroid_lps(), moving_blocks.centroid_lps())
    else:
        initial = _centre_initial(_image_centre_lps(fixed_image), _image_centre_lps(moving_image))

    result = _run(fixed_image, moving_image, initial, mode, lambda: _ct_method(fixed_image), METHOD_CT)
    result.diagnostics["used_liver_masks"] = use_livers
    if result.status == REGISTERED and not result.problems:
        transform = _itk_transform_from_ras(result.baseline_to_followup_ras)
        _check_ct(fixed_image, moving_image, transform, result)
        if use_livers:
            _check_livers(_block_overlaps(fixed_blocks.image(), moving_blocks.image(), transform)[1], result)
    return result


def _register_masks(fixed_liver: ImageVolume, moving_liver: ImageVolume, mode: str, spacing_mm: float,
                    shortcut: bool) -> RegistrationResult:
    fixed_blocks, moving_blocks = MaskBlocks.of(fixed_liver, spacing_mm, CROP_MARGIN_MM), \
        MaskBlocks.of(moving_liver, spacing_mm, CROP_MARGIN_MM)
    fixed_image, moving_image = fixed_blocks.image(), moving_blocks.image()
    fixed_centre, fixed_covariance = fixed_blocks.moments_lps()
    moving_centre, moving_covariance = moving_blocks.moments_lps()
    initial = _centre_initial(fixed_centre, moving_centre)
    volume_ratio = moving_blocks.volume_mm3() / max(fixed_blocks.volume_mm3(), 1e-12)
    overlap = dice = None
    if shortcut and abs(volume_ratio - 1.0) <= SHORTCUT_VOLUME_DIFFERENCE:
        overlap, dice = _block_overlaps(fixed_image, moving_image, initial)
    start_name = "centre"
    took_shortcut = overlap is not None and overlap >= SHORTCUT_OVERLAP
    result = RegistrationResult(np.eye(4), REGISTERED, METHOD_LIVER, mode)
    result.diagnostics["working_size"] = list(fixed_image.GetSize())
    result.diagnostics["working_spacing_mm"] = [round(s, 3) for s in fixed_image.GetSpacing()]
    baseline_to_followup = _ras_matrix_of(initial)
    if took_shortcut:
        result.diagnostics["iterations"] = 0
        result.diagnostics["stop_condition"] = (
            f"not optimised: the {start_name} start already overlaps almost perfectly (block Dice "
            f"{overlap:.4f} >= {SHORTCUT_OVERLAP})")
    else:
        fit = MaskFit(fixed_blocks, moving_blocks)
        if fit.edge_blocks < MASK_MIN_SAMPLES:
            result.status = FAILED
            result.problems.append(f"the liver masks are too small to register ({fit.edge_blocks} edge blocks of "
                                   f"{spacing_mm:g} mm)")
            return result
        rotation = principal_axes_rotation(fixed_covariance, moving_covariance, QUALITY_LIMITS["max_rotation_deg"])
        if rotation is not None:
            axes_start = _ras_matrix_of(_centre_initial(fixed_centre, moving_centre, rotation))
            if fit.error(axes_start) < fit.error(baseline_to_followup):
                baseline_to_followup, start_name = axes_start, "principal axes"
        baseline_to_followup, iterations, stop = fit.run(baseline_to_followup, affine=False)
        if mode == AFFINE:
            baseline_to_followup, more, stop = fit.run(baseline_to_followup, affine=True)
            iterations += more
        result.metric_value = fit.mean_square
        result.diagnostics["iterations"] = iterations
        result.diagnostics["stop_condition"] = stop
        dice = _block_overlaps(fixed_image, moving_image, _itk_transform_from_ras(baseline_to_followup))[1]
    result.followup_to_baseline_ras = np.linalg.inv(baseline_to_followup)
    result.diagnostics["start"] = start_name
    result.diagnostics["start_overlap"] = None if overlap is None else round(float(overlap), 4)
    result.diagnostics["liver_volume_ratio"] = round(float(volume_ratio), 4)
    result.diagnostics["shortcut"] = bool(took_shortcut)
    result.problems.extend(transform_problems(result.followup_to_baseline_ras))
    if not result.problems:
        _check_livers(dice, result)
    return result


# --- internals ------------------------------------------------------------------------------------------

def _check_mode(mode: str) -> None:
    if mode not in MODES:
        from ..errors import InputError

        raise InputError(f"Registration mode must be one of {', '.join(MODES)}, got '{mode}'.")


def _present(mask: ImageVolume | None) -> ImageVolume | None:
    return mask if mask is not None and np.any(mask.voxels) else None


def _run(fixed, moving, initial, mode: str, make_method, method_name: str) -> RegistrationResult:
    """Rigid (then affine) registration; exceptions and implausible transforms become ``problems``."""
    result = RegistrationResult(np.eye(4), FAILED, method_name, mode)
    result.diagnostics["working_size"] = list(fixed.GetSize())
    result.diagnostics["working_spacing_mm"] = [round(s, 3) for s in fixed.GetSpacing()]
    try:
        transform, method, iterations, metric = _optimise(fixed, moving, initial, mode == AFFINE, make_method)
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
        result.problems.append(f"the optimiser stopped with an error ({reason})")
        return result
    baseline_to_followup = _ras_matrix_of(transform)
    result.followup_to_baseline_ras = np.linalg.inv(baseline_to_followup)
    result.metric_value = float(metric)
    result.diagnostics["iterations"] = int(iterations)
    result.diagnostics["stop_condition"] = method.GetOptimizerStopConditionDescription()
    result.problems.extend(transform_problems(result.followup_to_baseline_ras))
    result.status = REGISTERED
    return result


def _check_ct(fixed, moving, transform, result: RegistrationResult) -> None:
    """Overlap of the baseline region with the follow-up image, and HU correlation after registration."""
    import SimpleITK as sitk

    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    inside = sitk.GetArrayFromImage(sitk.Resample(ones, fixed, transform, sitk.sitkNearestNeighbor, 0)) > 0
    overlap = float(inside.mean())
    result.diagnostics["overlap_fraction"] = round(overlap, 3)
    if overlap < QUALITY_LIMITS["min_overlap_fraction"]:
        result.problems.append(f"only {overlap * 100:.0f} % of the baseline region maps inside the follow-up scan")
        return
    fixed_array = sitk.GetArrayFromImage(fixed)
    body = inside & (fixed_array > BODY_HU_WINDOWED)  # air agrees with air in any pair of scans: leave it out
    moving_array = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, transform, sitk.sitkLinear, HU_WINDOW[0]))
    correlation = _pearson(fixed_array[body], moving_array[body])
    result.diagnostics["correlation"] = None if correlation is None else round(correlation, 3)
    if correlation is None or correlation < QUALITY_LIMITS["min_correlation"]:
        shown = "undefined" if correlation is None else f"{correlation:.2f}"
        result.problems.append(f"the registered CTs do not look alike (correlation {shown}, needs "
                               f">= {QUALITY_LIMITS['min_correlation']:.2f})")


def _check_livers(dice: float, result: RegistrationResult) -> None:
    result.diagnostics["liver_dice"] = round(dice, 3)
    if dice < QUALITY_LIMITS["min_liver_dice"]:
        result.problems.append(f"the liver masks overlap poorly after registration (Dice {dice:.2f}, needs "
                               f">= {QUALITY_LIMITS['min_liver_dice']:.2f})")


def _pearson(first: np.ndarray, second: np.ndarray) -> float | None:
    if first.size < 10:
        return None
    first = first.astype(float) - first.mean()
    second = second.astype(float) - second.mean()
    denominator = np.sqrt((first ** 2).sum() * (second ** 2).sum())
    return None if denominator == 0 else float((first * second).sum() / denominator)


def _finish(result: RegistrationResult) -> RegistrationResult:
    """Failed: keep the rejected transform in the diagnostics, return identity, and warn."""
    if result.problems:
        rejected = result.followup_to_baseline_ras
        result.diagnostics["rejected_followup_to_baseline_ras"] = np.asarray(rejected).tolist()
        result.followup_to_baseline_ras = np.eye(4)
        result.status = FAILED
        result.warnings.append(
            f"Registration of the follow-up to the baseline ({result.method}) failed: {'; '.join(result.problems)}. "
            f"Lesions were matched WITHOUT registration (scanner coordinates); check the matched lesions, and new "
            f"or disappeared lesions in particular, before trusting RECIST. If the scans are already aligned, use "
            f"--no-registration.")
    return result
