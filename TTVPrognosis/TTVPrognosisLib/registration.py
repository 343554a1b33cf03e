"""Bring the follow-up scan into the baseline's frame (rigid or affine, SimpleITK), and say when that failed.

Lesion matching needs to know where a follow-up voxel was at baseline. Patients lie differently on the
table and scanners put the origin anywhere, so the follow-up is registered to the baseline:

- **CTs** (both time points): Mattes mutual information on soft-tissue-windowed HU, on a region cropped
  around the liver (when liver masks exist, else the whole scan) and binned down to about 3 mm voxels, so a
  512 x 512 x 300 scan costs about as much as a small test volume. Started from the liver masks'
  centroids (or the body's centres of mass), rigid first, then affine when asked.
- **Liver masks** only: the two smoothed masks are registered with mean squares (started from their
  centres of mass).
- Nothing to register with, or the user says the scans are aligned (``--no-registration``): identity.

Whether it worked is checked, not assumed (:data:`QUALITY_LIMITS`): the optimiser must finish, the
baseline region must mostly map inside the follow-up scan, the transform must be plausible for one patient
(rotation <= 30 degrees, affine scaling within 0.75-1.33), the registered CTs must correlate (Pearson r of
windowed HU over the baseline's body >= 0.6; unrelated images and wrong solutions such as a flipped or
90-degree-rotated scan stay <= 0.45 on the synthetic test volumes, true pairs reach >= 0.95; not yet
calibrated on real longitudinal pairs), and when both liver masks exist their Dice overlap after
registration must be >= 0.5. A failed registration is reported with its reasons and
the identity transform is returned instead, so lesions are matched unregistered and the caller warns.

The result's matrix maps follow-up RAS points to baseline RAS points (4 x 4, mm).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .geometry import Geometry
from .io import ImageVolume, image_to_itk

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

WORKING_SPACING_MM = 3.0  # images are binned down to about this voxel size
CROP_MARGIN_MM = 25.0  # around the liver masks' bounding box
HU_WINDOW = (-300.0, 500.0)  # air and bone clipped so that soft tissue drives the metric
BODY_HU = -400.0  # above this: inside the body (for centring)
BODY_HU_WINDOWED = -250.0  # inside the body on the windowed image (fat is about -100 HU)
SAMPLING_FRACTION = 0.25
RANDOM_SEED = 20240531
MASK_SMOOTHING_MM = 4.0

QUALITY_LIMITS = {
    "min_overlap_fraction": 0.5,  # of the baseline region that maps inside the follow-up image
    "max_rotation_deg": 30.0,
    "min_scale": 0.75,
    "max_scale": 1.0 / 0.75,
    "min_correlation": 0.6,  # Pearson r of windowed HU inside the body after registration (CT)
    "min_liver_dice": 0.5,  # liver masks after registration (when both exist)
}

LPS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


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


def register_masks(fixed_liver: ImageVolume, moving_liver: ImageVolume, mode: str = RIGID) -> RegistrationResult:
    """Register the follow-up liver mask to the baseline liver mask (no CTs needed)."""
    _check_mode(mode)
    return _guarded(METHOD_LIVER, mode, lambda: _register_masks(fixed_liver, moving_liver, mode))


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
    import SimpleITK as sitk

    use_livers = fixed_liver is not None and moving_liver is not None
    fixed_image = _working_ct(fixed, fixed_liver if use_livers else None)
    moving_image = _working_ct(moving, moving_liver if use_livers else None)
    if use_livers:
        fixed_mask = _working_mask(fixed_liver, fixed_image)
        moving_mask = _working_mask(moving_liver, moving_image, own_grid=True)
        initial = _centre_initial(_centroid_lps(fixed_mask), _centroid_lps(moving_mask))
    else:
        fixed_mask = moving_mask = None
        initial = _centre_initial(_centroid_lps(sitk.Cast(fixed_image > BODY_HU, sitk.sitkUInt8)),
                                  _centroid_lps(sitk.Cast(moving_image > BODY_HU, sitk.sitkUInt8)))

    def configure(method):
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)

    result = _run(fixed_image, moving_image, initial, mode, configure, METHOD_CT)
    result.diagnostics["used_liver_masks"] = use_livers
    if result.status == REGISTERED and not result.problems:
        transform = _itk_transform_from_ras(result.baseline_to_followup_ras)
        _check_ct(fixed_image, moving_image, transform, result)
        if use_livers:
            _check_livers(fixed_mask, moving_mask, transform, result)
    return result


def _register_masks(fixed_liver: ImageVolume, moving_liver: ImageVolume, mode: str) -> RegistrationResult:
    import SimpleITK as sitk

    fixed_mask = _working_mask(fixed_liver, None, own_grid=True)
    moving_mask = _working_mask(moving_liver, None, own_grid=True)
    fixed_smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(fixed_mask, sitk.sitkFloat32), MASK_SMOOTHING_MM)
    moving_smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(moving_mask, sitk.sitkFloat32), MASK_SMOOTHING_MM)
    initial = _centre_initial(_centroid_lps(fixed_mask), _centroid_lps(moving_mask))

    def configure(method):
        method.SetMetricAsMeanSquares()

    result = _run(fixed_smooth, moving_smooth, initial, mode, configure, METHOD_LIVER, sampling=0.5, fine=True)
    if result.status == REGISTERED and not result.problems:
        _check_livers(fixed_mask, moving_mask, _itk_transform_from_ras(result.baseline_to_followup_ras), result)
    return result


# --- internals ------------------------------------------------------------------------------------------

def _check_mode(mode: str) -> None:
    if mode not in MODES:
        from .errors import InputError

        raise InputError(f"Registration mode must be one of {', '.join(MODES)}, got '{mode}'.")


def _present(mask: ImageVolume | None) -> ImageVolume | None:
    return mask if mask is not None and np.any(mask.voxels) else None


def _box_in(grid: Geometry, mask: ImageVolume, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index box (start, stop in k, j, i) of ``grid`` that holds the mask's bounding box plus a margin."""
    occupied = np.argwhere(mask.voxels)
    low, high = occupied.min(axis=0), occupied.max(axis=0)
    corners = np.array([[k, j, i] for k in (low[0], high[0]) for j in (low[1], high[1]) for i in (low[2], high[2])])
    kji = grid.kji_from_ras(mask.geometry.ras_from_kji(corners))
    margin = margin_mm / grid.spacing[::-1]
    start = np.clip(np.floor(kji.min(axis=0) - margin).astype(int), 0, None)
    stop = np.minimum(np.ceil(kji.max(axis=0) + margin).astype(int) + 1, grid.shape_kji)
    return start, stop


def _to_itk(voxels: np.ndarray, geometry: Geometry, start=None, stop=None, dtype=None):
    """ITK image of the (cropped) array; cropping comes first, so a big scan is never copied whole as float."""
    if start is not None:
        voxels = voxels[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]]
        geometry = geometry.cropped(start, voxels.shape)
    if voxels.dtype == bool:
        voxels = voxels.view(np.uint8)
    return image_to_itk(np.ascontiguousarray(voxels, dtype=dtype), geometry)


def _bin_down(image):
    """Average blocks of voxels down to about WORKING_SPACING_MM (no aliasing, no interpolation)."""
    import SimpleITK as sitk

    factors = [max(1, round(WORKING_SPACING_MM / spacing)) for spacing in image.GetSpacing()]
    if all(factor == 1 for factor in factors):
        return image
    return sitk.BinShrink(image, factors)


def _working_ct(image: ImageVolume, liver: ImageVolume | None):
    """Windowed float CT, cropped around the liver when given, binned down to about 3 mm."""
    import SimpleITK as sitk

    start = stop = None
    if liver is not None:
        start, stop = _box_in(image.geometry, liver, CROP_MARGIN_MM)
        if np.any(stop <= start):
            start = stop = None  # the mask lies outside this CT: reported by the checks, not here
    itk = _bin_down(_to_itk(image.voxels, image.geometry, start, stop))  # binned in the stored type (int16)
    return sitk.Clamp(itk, sitk.sitkFloat32, HU_WINDOW[0], HU_WINDOW[1])


def _working_mask(mask: ImageVolume, reference, own_grid: bool = False):
    """Binary mask as an ITK image: on its own grid (cropped, binned) or resampled onto ``reference``."""
    import SimpleITK as sitk

    start, stop = _box_in(mask.geometry, mask, CROP_MARGIN_MM)
    itk = _bin_down(_to_itk(mask.voxels, mask.geometry, start, stop, dtype=np.float32))
    if not own_grid and reference is not None:
        itk = sitk.Resample(itk, reference, sitk.Transform(), sitk.sitkLinear, 0.0)
    return sitk.Cast(itk > 0.5, sitk.sitkUInt8)


def _centroid_lps(mask) -> np.ndarray | None:
    import SimpleITK as sitk

    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(mask)
    if not statistics.HasLabel(1):
        return None
    return np.asarray(statistics.GetCentroid(1), dtype=float)


def _centre_initial(fixed_centre: np.ndarray | None, moving_centre: np.ndarray | None):
    """Rigid transform that puts the moving centre onto the fixed centre (rotation about the fixed centre)."""
    import SimpleITK as sitk

    transform = sitk.Euler3DTransform()
    if fixed_centre is not None and moving_centre is not None:
        transform.SetCenter([float(v) for v in fixed_centre])
        transform.SetTranslation([float(v) for v in moving_centre - fixed_centre])
    return transform


def _registration_method(configure, sampling: float, fine: bool):
    """Multi-resolution gradient descent; ``fine`` steps on longer (flat metrics such as smoothed masks)."""
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    configure(method)
    method.SetMetricSamplingStrategy(method.RANDOM)  # random points within voxels also smooth the metric
    method.SetMetricSamplingPercentage(sampling, RANDOM_SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=4.0, minStep=0.001 if fine else 0.01,
                                                    numberOfIterations=100, relaxationFactor=0.7 if fine else 0.6,
                                                    gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([WORKING_SPACING_MM, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def _run(fixed, moving, initial, mode: str, configure, method_name: str, sampling: float = SAMPLING_FRACTION,
         fine: bool = False) -> RegistrationResult:
    """Rigid (then affine) registration; exceptions and implausible transforms become ``problems``."""
    import SimpleITK as sitk

    result = RegistrationResult(np.eye(4), FAILED, method_name, mode)
    result.diagnostics["working_size"] = list(fixed.GetSize())
    result.diagnostics["working_spacing_mm"] = [round(s, 3) for s in fixed.GetSpacing()]
    try:
        method = _registration_method(configure, sampling, fine)
        method.SetInitialTransform(initial, inPlace=False)
        transform = method.Execute(fixed, moving)
        iterations = method.GetOptimizerIteration()
        metric = method.GetMetricValue()
        if mode == AFFINE:
            rigid = sitk.Euler3DTransform(transform) if transform.GetName() == "Euler3DTransform" else \
                sitk.Euler3DTransform(sitk.CompositeTransform(transform).GetNthTransform(0))
            affine = sitk.AffineTransform(3)
            affine.SetCenter(rigid.GetCenter())
            affine.SetMatrix(rigid.GetMatrix())
            affine.SetTranslation(rigid.GetTranslation())
            method = _registration_method(configure, sampling, fine)
            method.SetInitialTransform(affine, inPlace=False)
            transform = method.Execute(fixed, moving)
            iterations += method.GetOptimizerIteration()
            metric = method.GetMetricValue()
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


def _ras_matrix_of(transform) -> np.ndarray:
    """4x4 RAS matrix of an ITK rigid/affine transform (which maps fixed LPS points to moving LPS points)."""
    import SimpleITK as sitk

    if transform.GetName() == "CompositeTransform":
        transform = sitk.CompositeTransform(transform).GetNthTransform(0)
    if transform.GetName() == "Euler3DTransform":
        transform = sitk.Euler3DTransform(transform)
    elif transform.GetName() == "AffineTransform":
        transform = sitk.AffineTransform(transform)
    linear = np.asarray(transform.GetMatrix(), dtype=float).reshape(3, 3)
    centre = np.asarray(transform.GetCenter(), dtype=float)
    translation = np.asarray(transform.GetTranslation(), dtype=float)
    lps = np.eye(4)
    lps[:3, :3] = linear
    lps[:3, 3] = centre + translation - linear @ centre
    return LPS_FLIP @ lps @ LPS_FLIP


def _itk_transform_from_ras(baseline_to_followup_ras: np.ndarray):
    """ITK affine transform (fixed LPS -> moving LPS) from a baseline-to-follow-up RAS matrix."""
    import SimpleITK as sitk

    lps = LPS_FLIP @ np.asarray(baseline_to_followup_ras, dtype=float) @ LPS_FLIP
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in lps[:3, 3]])
    return transform


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


def _check_livers(fixed_mask, moving_mask, transform, result: RegistrationResult) -> None:
    import SimpleITK as sitk

    fixed_array = sitk.GetArrayFromImage(fixed_mask) > 0
    moved = sitk.GetArrayFromImage(sitk.Resample(moving_mask, fixed_mask, transform, sitk.sitkNearestNeighbor,
                                                 0)) > 0
    total = int(fixed_array.sum()) + int(moved.sum())
    dice = 2.0 * int(np.logical_and(fixed_array, moved).sum()) / total if total else 0.0
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
