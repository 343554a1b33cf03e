"""The SimpleITK steps of a registration: working images, starts, block overlaps, the optimiser, matrices.

Split from :mod:`.registration`, which decides what to register and whether the result can be trusted; this
module only turns arrays into ITK images, runs ITK and converts its transforms. It knows nothing of
:class:`.registration.RegistrationResult`, so the two never import each other in a circle.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..formats.io import ImageVolume, image_to_itk
from ..geometry import LPS_TO_RAS, Geometry
from ..measure.volumetry import nonzero_box
from .mask_fit import mask_box

WORKING_SPACING_MM = 3.0  # CTs are binned down to about this voxel size (and masks, to check their Dice)
CROP_MARGIN_MM = 25.0  # around the liver masks' bounding box
HU_WINDOW = (-300.0, 500.0)  # air and bone clipped so that soft tissue drives the metric
SAMPLING_FRACTION = 0.25
CT_MAX_SAMPLES = 100_000  # per level of the CT registration
RANDOM_SEED = 20240531
REGISTRATION_THREADS = 1  # ITK threads while a CT registration runs: 1 makes its results reproducible


def _box_in(grid: Geometry, mask: ImageVolume, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Index box (start, stop in k, j, i) of ``grid`` that holds the mask's bounding box plus a margin."""
    box = mask_box(mask)
    low = np.array([part.start for part in box])
    high = np.array([part.stop - 1 for part in box])
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


def _image_centre_lps(image) -> np.ndarray:
    """Centre of an ITK image's grid (LPS). Without liver masks the scans' centres are aligned first (as before:
    the former "body" centroid thresholded the windowed CT below its window, so it was the grid's centre).
    The body's own centre of mass (windowed HU above BODY_HU_WINDOWED) was tried: on a 512 x 512 x 129
    synthetic pair it ended 4.3 mm from the truth at the lesions, against 1.7 mm from the centres."""
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint([(size - 1) / 2.0 for size in image.GetSize()]))


def _centre_initial(fixed_centre: np.ndarray | None, moving_centre: np.ndarray | None, rotation=None):
    """Rigid transform that puts the moving centre onto the fixed centre (rotation about the fixed centre)."""
    import SimpleITK as sitk

    transform = sitk.Euler3DTransform()
    if fixed_centre is not None and moving_centre is not None:
        transform.SetCenter([float(v) for v in fixed_centre])
        transform.SetTranslation([float(v) for v in moving_centre - fixed_centre])
        if rotation is not None:
            transform.SetMatrix([float(v) for v in np.asarray(rotation).ravel()])
    return transform


def _block_overlaps(fixed_image, moving_image, transform) -> tuple[float, float]:
    """How well two fraction images coincide once the follow-up's is moved onto the baseline's grid.

    Returns the Dice of the fractions (the smaller fraction summed over blocks; 1 when they coincide) and
    the Dice of the masks (blocks more than half inside; the follow-up interpolated linearly, then cut).
    The latter is the liver Dice: on the synthetic livers of the tests it is within 0.002 of the Dice of the
    full-resolution masks, with 3 mm blocks and with 5 mm blocks alike.
    """
    import SimpleITK as sitk

    reference = _where_either_can_be_inside(fixed_image, moving_image, transform)
    if reference is None:
        return 0.0, 0.0
    fixed = sitk.GetArrayViewFromImage(reference)
    moved_image = sitk.Resample(moving_image, reference, transform, sitk.sitkLinear, 0.0)
    moved = sitk.GetArrayViewFromImage(moved_image)
    total = float(fixed.sum(dtype=np.float64)) + float(moved.sum(dtype=np.float64))
    soft = 2.0 * float(np.minimum(fixed, moved).sum(dtype=np.float64)) / total if total else 0.0
    fixed_mask, moved_mask = fixed > 0.5, moved > 0.5
    count = int(np.count_nonzero(fixed_mask)) + int(np.count_nonzero(moved_mask))
    dice = 2.0 * int(np.count_nonzero(fixed_mask & moved_mask)) / count if count else 0.0
    return soft, dice


def _where_either_can_be_inside(fixed_image, moving_image, transform):
    """The part of the baseline's fraction image outside which both fractions are 0 (None if both are empty).

    That is the baseline's non-zero box joined with the follow-up's non-zero box (one block wider: linear
    interpolation reaches that far) mapped onto the baseline grid. Resampling only there gives the same sums
    as on the whole grid, whose margin is mostly empty.
    """
    import SimpleITK as sitk

    boxes = []
    fixed_box = nonzero_box(sitk.GetArrayViewFromImage(fixed_image))
    if fixed_box is not None:
        boxes.append((np.array([part.start for part in fixed_box]), np.array([part.stop for part in fixed_box])))
    moving_box = nonzero_box(sitk.GetArrayViewFromImage(moving_image))
    if moving_box is not None:
        moving_to_fixed_ijk = np.linalg.solve(_itk_lps_matrix(transform) @ _index_to_lps(fixed_image),
                                              _index_to_lps(moving_image))
        corners = np.array([[box.start - 1 if high == 0 else box.stop for box, high in zip(moving_box[::-1], bits)]
                            for bits in ((i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1))], dtype=float)
        ijk = corners @ moving_to_fixed_ijk[:3, :3].T + moving_to_fixed_ijk[:3, 3]
        boxes.append((np.floor(ijk.min(axis=0))[::-1].astype(int), np.ceil(ijk.max(axis=0))[::-1].astype(int) + 1))
    if not boxes:
        return None
    size_kji = np.array(fixed_image.GetSize()[::-1])
    start = np.clip(np.min([box[0] for box in boxes], axis=0), 0, size_kji)
    stop = np.clip(np.max([box[1] for box in boxes], axis=0), 0, size_kji)
    if np.any(stop <= start):
        return fixed_image if fixed_box is not None else None
    return sitk.RegionOfInterest(fixed_image, [int(n) for n in (stop - start)[::-1]], [int(n) for n in start[::-1]])


def _index_to_lps(image) -> np.ndarray:
    """4x4 matrix from an ITK image's (i, j, k) indices to LPS mm."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3) * np.asarray(image.GetSpacing())
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def _itk_lps_matrix(transform) -> np.ndarray:
    """4x4 LPS matrix (fixed point -> moving point) of an ITK rigid/affine transform."""
    return LPS_TO_RAS @ _ras_matrix_of(transform) @ LPS_TO_RAS


def _ct_method(fixed):
    """Mattes mutual information on random samples, two levels (about 6 and 3 mm): CT texture is sharp.

    Each level samples SAMPLING_FRACTION of its voxels, but no more than CT_MAX_SAMPLES: that changes nothing
    for a region around the liver (some 200 000 voxels at 3 mm) and halves the time of a whole-abdomen scan
    without liver masks (2 million voxels; on a 512 x 512 x 129 synthetic pair with two threads 3.7 s ->
    1.8 s, 1.7 -> 1.1 mm from the truth at the lesions; on the one thread that reproducibility takes, 3.4 s).
    """
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)  # random points within voxels also smooth the metric
    voxels = float(np.prod(fixed.GetSize()))
    shrink_factors = [2, 1]
    method.SetMetricSamplingPercentagePerLevel(
        [min(SAMPLING_FRACTION, CT_MAX_SAMPLES * factor ** 3 / voxels) for factor in shrink_factors], RANDOM_SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=4.0, minStep=0.01, numberOfIterations=100,
                                                    relaxationFactor=0.6, gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(shrink_factors)
    method.SetSmoothingSigmasPerLevel([WORKING_SPACING_MM, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


@contextlib.contextmanager
def _threads(count: int):
    """ITK's default thread count set to ``count`` for what runs inside (restored after).

    The registration's metric takes its threads from the global default (the method's own
    SetNumberOfThreads is not enough), and its threads' partial sums meet in whatever order they finish.
    """
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(count)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def _optimise(fixed, moving, initial, then_affine: bool, make_method):
    """Rigid (then affine) optimisation from ``initial``: (transform, last method, iterations, metric value).

    ITK errors are raised as ``RuntimeError``; the caller (``registration._run``) reports them.
    """
    import SimpleITK as sitk

    method = make_method()
    method.SetInitialTransform(initial, inPlace=False)
    with _threads(REGISTRATION_THREADS):
        transform = method.Execute(fixed, moving)
    iterations = method.GetOptimizerIteration()
    metric = method.GetMetricValue()
    if then_affine:
        rigid = sitk.Euler3DTransform(transform) if transform.GetName() == "Euler3DTransform" else \
            sitk.Euler3DTransform(sitk.CompositeTransform(transform).GetNthTransform(0))
        affine = sitk.AffineTransform(3)
        affine.SetCenter(rigid.GetCenter())
        affine.SetMatrix(rigid.GetMatrix())
        affine.SetTranslation(rigid.GetTranslation())
        method = make_method()
        method.SetInitialTransform(affine, inPlace=False)
        with _threads(REGISTRATION_THREADS):
            transform = method.Execute(fixed, moving)
        iterations += method.GetOptimizerIteration()
        metric = method.GetMetricValue()
    return transform, method, iterations, metric


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
    return LPS_TO_RAS @ lps @ LPS_TO_RAS


def _itk_transform_from_ras(baseline_to_followup_ras: np.ndarray):
    """ITK affine transform (fixed LPS -> moving LPS) from a baseline-to-follow-up RAS matrix."""
    import SimpleITK as sitk

    lps = LPS_TO_RAS @ np.asarray(baseline_to_followup_ras, dtype=float) @ LPS_TO_RAS
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in lps[:3, 3]])
    return transform

