"""The region of interest (ROI) and the grids it is worked on: the box around the clicks, its smoothing and
noise, block (coarse) grids and the index helpers between them.

Every later step works on a :class:`_Roi`; keeping boxes, strides and block averages here keeps the
intensity model, growing and separation free of index arithmetic. Why an enlarged ROI is coarsened is
told in ``lesion`` ("Speed: large lesions on a coarse grid").
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from ..geometry import Geometry
from .settings import SegmentationSettings

SOFT_TISSUE_RANGE_HU = (-200.0, 300.0)
NOISE_SAMPLE_LIMIT = 200_000
COARSE_MIN_RADIUS_VOXELS = 10


@dataclass(frozen=True)
class _Roi:
    """A box of the CT array, with the smoothed intensities and where the lesion may be.

    On a coarse grid each voxel stands for a block of ``stride`` CT voxels (a partial block at the far end
    of an axis); ``spacing`` is the grid's own, ``box_shape`` the box's extent in CT voxels. ``sigma_mm``
    is the smoothing of ``smoothed`` (0 before smoothing).
    """

    start: np.ndarray
    box_shape: tuple[int, int, int]
    stride: np.ndarray
    raw: np.ndarray
    smoothed: np.ndarray
    allowed: np.ndarray
    restricted_to_liver: bool
    open_faces: tuple[bool, ...]
    noise_hu: float
    smoothed_noise_hu: float
    spacing: np.ndarray
    context_values: np.ndarray
    sigma_mm: float = 0.0

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return _box_slices(self.start, self.box_shape)

    @property
    def is_coarse(self) -> bool:
        return bool(np.any(self.stride > 1))

    @property
    def ct_spacing(self) -> np.ndarray:
        return self.spacing / self.stride


def _box_slices(start: Sequence[int], shape: Sequence[int]) -> tuple[slice, slice, slice]:
    return tuple(slice(int(a), int(a) + int(n)) for a, n in zip(start, shape))


def _bounding_box(mask: np.ndarray, margin: int | np.ndarray) -> tuple[slice, slice, slice]:
    """Box around the mask's voxels, grown by ``margin`` voxels (per axis if an array) and clipped."""
    found = ndi.find_objects(mask.astype(np.uint8))[0]
    margins = np.broadcast_to(np.asarray(margin, dtype=int), (3,))
    return tuple(slice(max(s.start - int(m), 0), min(s.stop + int(m), n))
                 for s, m, n in zip(found, margins, mask.shape))


def _cut_roi(ct_kji: np.ndarray, geometry: Geometry, seeds: np.ndarray, half_size_mm: float,
             liver_mask_kji: np.ndarray | None, existing_lesions_kji: np.ndarray | None,
             context: np.ndarray) -> _Roi:
    """Cut the box around the seeds at full resolution and mark where the lesion may grow (not smoothed)."""
    spacing = geometry.spacing[::-1]
    shape = np.asarray(geometry.shape_kji)
    half_voxels = np.ceil(half_size_mm / spacing).astype(int)
    start = np.maximum(seeds.min(axis=0) - half_voxels, 0)
    stop = np.minimum(seeds.max(axis=0) + half_voxels + 1, shape)
    slices = _box_slices(start, stop - start)
    raw = ct_kji[slices].astype(np.float32)
    allowed = np.ones(raw.shape, dtype=bool)
    if liver_mask_kji is not None:
        allowed &= liver_mask_kji[slices].astype(bool)
    if existing_lesions_kji is not None:
        allowed &= ~existing_lesions_kji[slices].astype(bool)
    open_faces = tuple(flag for axis in range(3) for flag in (start[axis] > 0, stop[axis] < shape[axis]))
    return _Roi(start, tuple(int(n) for n in raw.shape), np.ones(3, dtype=int), raw, raw, allowed,
                liver_mask_kji is not None, open_faces, 0.0, 0.0, spacing, context)


def _working_grid(roi: _Roi, first: _Roi, previous: np.ndarray, settings: SegmentationSettings) -> _Roi:
    """The smoothed grid an enlarged ROI is segmented on: coarsened when it holds many voxels.

    Only a region that reached the first ROI's border gets here. When it is a large lesion, the questions
    of its shape (opening, holes, necks) are answered on a grid of about ``max_roi_voxels`` voxels for a
    fraction of the cost, and its edge is then redrawn at full resolution (:func:`_refined`); the grid is
    never so coarse that the region found so far (``previous``) spans fewer than COARSE_MIN_RADIUS_VOXELS
    voxels of radius (a small lesion that leaked keeps the full resolution its necks need). Noise can only
    be measured on the CT's own grid (block averages are less noisy), so a coarse grid takes the first ROI's.
    """
    stride = _coarsening(roi.raw.shape, roi.spacing, settings.max_roi_voxels)
    radius_mm = _equivalent_radius(previous, roi.spacing)
    stride = np.minimum(stride, np.maximum(1, np.floor(radius_mm / COARSE_MIN_RADIUS_VOXELS / roi.spacing)))
    if np.all(stride == 1):
        return _smoothed(roi, settings.smoothing_mm)
    return _smoothed(_coarsened(roi, stride.astype(int), first.noise_hu), settings.smoothing_mm)


def _coarsened(roi: _Roi, stride: np.ndarray, noise_hu: float) -> _Roi:
    """The ROI on a grid of ``stride`` blocks: the mean HU of each block's allowed voxels (of all when it has
    none), allowed where most of the block is."""
    fraction = _block_mean(roi.allowed.astype(np.float32), stride)
    if fraction.min() == 1.0:
        raw = _block_mean(roi.raw, stride)
    else:
        total = _block_mean(roi.raw * roi.allowed, stride)
        raw = np.where(fraction > 0, total / np.maximum(fraction, 1e-6), _block_mean(roi.raw, stride))
    raw = raw.astype(np.float32)
    return replace(roi, stride=stride.astype(int), raw=raw, smoothed=raw, allowed=fraction >= 0.5,
                   spacing=roi.spacing * stride, noise_hu=noise_hu)


def _block_mean(values: np.ndarray, stride: np.ndarray) -> np.ndarray:
    """Mean of each block of ``stride`` voxels; a partial block at the far end of an axis averages what it has.

    Summing the strided views (one per offset in the block) is several times faster than ``reduceat``.
    """
    shape = np.asarray(values.shape)
    total = np.zeros(-(-shape // stride), dtype=np.float32)
    for offset in itertools.product(*(range(int(f)) for f in stride)):
        view = values[tuple(slice(o, None, int(f)) for o, f in zip(offset, stride))]
        total[tuple(slice(0, n) for n in view.shape)] += view
    counts = [np.diff(np.append(np.arange(0, n, int(f)), n)).astype(np.float32) for n, f in zip(shape, stride)]
    return total / (counts[0][:, None, None] * counts[1][None, :, None] * counts[2][None, None, :])


def _coarsening(shape: Sequence[int], spacing: np.ndarray, budget: int) -> np.ndarray:
    """Integer strides that bring a box to about ``budget`` voxels, coarsening fine axes first.

    Where a region splits, or where a large lesion's shape leaks, is a question of its shape, which a grid
    of ~1.5 mm answers as well as the original 0.7 mm one, for a fraction of the cost.
    """
    factor = int(np.ceil((float(np.prod(shape)) / budget) ** (1.0 / 3.0)))
    return np.maximum(1, np.round(factor * spacing.min() / spacing)).astype(int)


def _block_any(mask: np.ndarray, stride: np.ndarray) -> np.ndarray:
    """True for each block of ``stride`` voxels that holds any True voxel."""
    if np.all(stride == 1):
        return mask
    padded_shape = [int(np.ceil(n / f)) * f for n, f in zip(mask.shape, stride)]
    padded = np.zeros(padded_shape, dtype=bool)
    padded[tuple(slice(0, n) for n in mask.shape)] = mask
    blocks = padded.reshape(padded_shape[0] // stride[0], stride[0], padded_shape[1] // stride[1], stride[1],
                            padded_shape[2] // stride[2], stride[2])
    return blocks.any(axis=(1, 3, 5))


def _block_expand(coarse: np.ndarray, stride: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Each coarse voxel repeated over its block, cropped to ``shape``."""
    fine = coarse
    for axis, factor in enumerate(stride):
        fine = np.repeat(fine, int(factor), axis=axis)
    return fine[tuple(slice(0, n) for n in shape)]


def _grid_seeds(grid: _Roi, seeds: np.ndarray) -> np.ndarray:
    """Seeds (CT indices) as indices of the grid's voxels."""
    return (seeds - grid.start) // grid.stride


def _moved_into(grid: _Roi, region: np.ndarray, start: np.ndarray) -> np.ndarray:
    """A full-resolution region found in a smaller ROI, placed onto this (larger) grid: the warm start after
    enlarging. On a coarse grid a block belongs to it when most of its voxels do (any, for a region too thin
    to hold a majority anywhere)."""
    moved = np.zeros(grid.box_shape, dtype=bool)
    moved[_box_slices(start - grid.start, region.shape)] = region
    if grid.is_coarse:
        fraction = _block_mean(moved.astype(np.float32), grid.stride)
        moved = fraction >= 0.5 if (fraction >= 0.5).any() else fraction > 0
    return moved & grid.allowed


def _smoothed(roi: _Roi, sigma_mm: float) -> _Roi:
    """The ROI with its image smoothed by a Gaussian of ``sigma_mm`` and the matching noise levels.

    On a coarse grid the block average already did part of the smoothing, so the Gaussian adds only the
    rest of the variance; the noise of the CT is kept and the smoothed noise follows from the kernel.
    """
    ct_sigma = sigma_mm / roi.ct_spacing
    box_variance = (roi.stride.astype(float) ** 2 - 1.0) / 12.0
    sigma_voxels = np.sqrt(np.maximum(ct_sigma ** 2 - box_variance, 0.0)) / roi.stride
    smoothed = _smooth_image(roi.raw, roi.allowed, sigma_voxels)
    if roi.is_coarse:
        noise = roi.noise_hu
        smoothed_noise = noise * np.sqrt(_kernel_terms(ct_sigma)[1])
    else:
        noise, smoothed_noise = _noise_levels(roi.raw, smoothed, roi.allowed, sigma_voxels)
    return replace(roi, smoothed=smoothed, noise_hu=noise, smoothed_noise_hu=smoothed_noise, sigma_mm=sigma_mm)


def _smooth_image(raw: np.ndarray, allowed: np.ndarray, sigma_voxels: np.ndarray) -> np.ndarray:
    """Gaussian smoothing in which voxels where the lesion may not grow take no part.

    Where the lesion may not grow (outside the liver mask, existing lesions) is left out of the average
    (normalised convolution): otherwise fat blurred across the liver edge makes a dark seam along the whole
    liver surface that a hypodense lesion at the edge leaks into.
    """
    if allowed.all():
        return ndi.gaussian_filter(raw, sigma_voxels, mode="nearest")
    weights = allowed.astype(np.float32)
    total = ndi.gaussian_filter(raw * weights, sigma_voxels, mode="nearest")
    weight = ndi.gaussian_filter(weights, sigma_voxels, mode="nearest")
    return np.where(weight > 1e-3, total / np.maximum(weight, 1e-3), raw).astype(np.float32)


def _smoothed_box(roi: _Roi, box: tuple[slice, slice, slice], sigma_mm: float) -> np.ndarray:
    """The full-resolution ROI's image smoothed as :func:`_smoothed` would, computed only over ``box``
    (with a margin as wide as the kernel, so the values agree)."""
    sigma_voxels = sigma_mm / roi.spacing
    margin = np.ceil(4.0 * sigma_voxels).astype(int) + 1
    outer = tuple(slice(max(b.start - int(m), 0), min(b.stop + int(m), n))
                  for b, m, n in zip(box, margin, roi.box_shape))
    smoothed = _smooth_image(roi.raw[outer], roi.allowed[outer], sigma_voxels)
    return smoothed[tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer))]


def _noise_levels(raw: np.ndarray, smoothed: np.ndarray, allowed: np.ndarray,
                  sigma_voxels: np.ndarray) -> tuple[float, float]:
    """Noise of the raw CT and of the smoothed image, from the robust spread of raw minus smoothed.

    The smoothing kernel's impulse response tells how much of the noise the residual holds and how much
    survives smoothing, so no flat patch of tissue needs to be found.
    """
    soft_tissue = allowed & (smoothed > SOFT_TISSUE_RANGE_HU[0]) & (smoothed < SOFT_TISSUE_RANGE_HU[1])
    residual = (raw - smoothed)[soft_tissue]
    if residual.size < 50:
        return 0.0, 0.0
    residual = residual[:: max(1, residual.size // NOISE_SAMPLE_LIMIT)]
    spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    centre, energy = _kernel_terms(sigma_voxels)
    noise = spread / np.sqrt(max(1.0 - 2.0 * centre + energy, 1e-6))
    return noise, noise * np.sqrt(energy)


def _kernel_terms(sigma_voxels: np.ndarray) -> tuple[float, float]:
    """Centre weight and energy (sum of squares) of the Gaussian kernel: how white noise passes through it."""
    impulse = np.zeros((15, 15, 15))
    impulse[7, 7, 7] = 1.0
    kernel = ndi.gaussian_filter(impulse, sigma_voxels, mode="constant")
    return float(kernel[7, 7, 7]), float((kernel ** 2).sum())


def _touches_open_face(region: np.ndarray, open_faces: Sequence[bool]) -> bool:
    """True when the region reaches a ROI face that is not the image border (it may continue outside)."""
    for axis in range(3):
        for side, is_open in zip((0, -1), open_faces[2 * axis:2 * axis + 2]):
            if is_open and np.take(region, side, axis=axis).any():
                return True
    return False


def _equivalent_radius(region: np.ndarray, spacing: np.ndarray) -> float:
    volume = float(np.count_nonzero(region)) * float(np.prod(spacing))
    return (3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0)


def _seed_ball(shape: Sequence[int], spacing: np.ndarray, seeds: np.ndarray, radius_mm: float) -> np.ndarray:
    """Voxels of an array of ``shape`` within ``radius_mm`` of any seed (at least the seed voxels themselves)."""
    ball = np.zeros(shape, dtype=bool)
    offsets = _ball_offsets(radius_mm, spacing)
    for seed in seeds:
        points = seed + offsets
        inside = np.all((points >= 0) & (points < np.asarray(ball.shape)), axis=1)
        ball[tuple(points[inside].T)] = True
    return ball


def _ball_offsets(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    half = np.floor(radius_mm / spacing).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij"), axis=-1).reshape(-1, 3)
    return grid[((grid * spacing) ** 2).sum(axis=1) <= radius_mm ** 2 + 1e-9]
