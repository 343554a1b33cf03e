"""Region growing and morphology (step 3 of ``lesion``): the clicked part of the threshold band, opened to
cut thin leaks and hole-filled; and the edge of a region found on a coarse grid, redrawn at full resolution.

The morphology (exact ball openings by distance maps, hole filling by one labelling) is where the time
goes, so it is written for speed; see ``lesion`` ("Speed: large lesions on a coarse grid").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import InputError
from .inputs import _describe_point
from .intensity import IntensityModel
from .roi import _block_expand, _bounding_box, _equivalent_radius, _Roi, _seed_ball, _smoothed_box
from .settings import SegmentationSettings

FACE_CONNECTIVITY = ndi.generate_binary_structure(3, 1)
IN_SLICE_CONNECTIVITY = np.stack([np.zeros((3, 3), dtype=bool), ndi.generate_binary_structure(2, 1),
                                  np.zeros((3, 3), dtype=bool)])
FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
Opening = Callable[[np.ndarray, float, np.ndarray], np.ndarray]


def _initial_region(roi: _Roi, seeds: np.ndarray, lesion_hu: float,
                    settings: SegmentationSettings) -> np.ndarray:
    """Voxels like the clicked ones, connected to them: a first guess whose shell lies outside the lesion."""
    half_width = max(settings.min_contrast_hu, settings.min_contrast_noise_ratio * roi.smoothed_noise_hu)
    similar = (np.abs(roi.smoothed - lesion_hu) <= half_width) & roi.allowed
    region = _components_at(similar, seeds, roi.spacing, settings.seed_radius_mm)
    if region.any():
        return region
    return _seed_ball(roi.smoothed.shape, roi.spacing, seeds, settings.seed_radius_mm) & roi.allowed


def _grow(roi: _Roi, seeds: np.ndarray, model: IntensityModel, points_ras: np.ndarray,
          settings: SegmentationSettings) -> np.ndarray:
    """The clicked part of the band, opened (cuts thin leaks) and hole-filled."""
    band = (roi.smoothed >= model.lower_hu) & (roi.smoothed <= model.upper_hu) & roi.allowed
    region = _components_at(band, seeds, roi.spacing, settings.seed_radius_mm)
    if not region.any():
        raise InputError(f"{_describe_point(0, points_ras[0])}: no lesion found there (the tissue at the "
                         f"click is outside the lesion band {model.lower_hu:.0f} to {model.upper_hu:.0f} HU "
                         "estimated around it). Click nearer the lesion's centre.")
    return _cleaned(region, seeds, roi.spacing, roi.allowed, settings)


def _cleaned(region: np.ndarray, seeds: np.ndarray, spacing: np.ndarray, allowed: np.ndarray,
             settings: SegmentationSettings, opening: Opening | None = None) -> np.ndarray:
    """The region opened with a ball of a quarter of its radius (cuts thin leaks), then hole-filled."""
    radius = _equivalent_radius(region, spacing)
    opening_mm = min(settings.max_opening_mm, settings.opening_fraction * radius)
    opened = (opening or _open)(region, opening_mm, spacing)
    opened = _components_at(opened, seeds, spacing, settings.seed_radius_mm)
    if opened.any():
        region = opened
    return _fill_holes(region) & allowed


def _components_at(mask: np.ndarray, seeds: np.ndarray, spacing: np.ndarray, radius_mm: float) -> np.ndarray:
    """Face-connected components of ``mask`` that hold a seed (or, failing that, touch its small ball)."""
    labels, _ = ndi.label(mask, structure=FACE_CONNECTIVITY)
    chosen = {int(labels[tuple(seed)]) for seed in seeds} - {0}
    if not chosen:
        near = labels[_seed_ball(mask.shape, spacing, seeds, radius_mm)]
        near = near[near > 0]
        if near.size:
            chosen = {int(np.bincount(near).argmax())}
    return np.isin(labels, sorted(chosen)) if chosen else np.zeros(mask.shape, dtype=bool)


def _distance_to(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm) from every voxel to the nearest voxel of ``mask`` (0 inside it).

    SimpleITK's Maurer transform is multi-threaded and several times faster than scipy's here.
    """
    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing([float(v) for v in spacing[::-1]])
    signed = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                          useImageSpacing=True)
    return np.maximum(sitk.GetArrayFromImage(signed), 0.0)


def _open(region: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Morphological opening with a ball of ``radius_mm`` (exact, via distance maps, on the region's box)."""
    if radius_mm < float(spacing.min()):
        return region
    margin = int(np.ceil(radius_mm / spacing.min())) + 1
    box = _bounding_box(region, margin)
    inner = _distance_to(~region[box], spacing) > radius_mm
    opened = np.zeros(region.shape, dtype=bool)
    if inner.any():
        opened[box] = _distance_to(inner, spacing) <= radius_mm
    return opened & region


def _open_with_cube(region: np.ndarray, radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Morphological opening with the cube inscribed in a ball of ``radius_mm``: separable minimum and maximum
    filters, several times faster than the exact ball on a large box, for shaving noise bumps off an edge."""
    half = np.round(radius_mm / np.sqrt(3.0) / spacing).astype(int)
    if not half.any():
        return region
    box = _bounding_box(region, half + 1)
    values = region[box].view(np.uint8)
    for axis in np.flatnonzero(half):
        values = ndi.minimum_filter1d(values, 2 * int(half[axis]) + 1, axis=int(axis), mode="constant", cval=0)
    for axis in np.flatnonzero(half):
        values = ndi.maximum_filter1d(values, 2 * int(half[axis]) + 1, axis=int(axis), mode="constant", cval=0)
    opened = np.zeros(region.shape, dtype=bool)
    opened[box] = values.astype(bool)
    return opened & region


def _fill_holes(region: np.ndarray) -> np.ndarray:
    """Fill enclosed holes in 3D and in every axial slice (necrosis, vessels running through a lesion)."""
    box = _bounding_box(region, 1)
    filled = _without_holes(region[box], FACE_CONNECTIVITY, (0, 1, 2))
    filled = _without_holes(filled, IN_SLICE_CONNECTIVITY, (1, 2))
    result = region.copy()
    result[box] = filled
    return result


def _without_holes(mask: np.ndarray, structure: np.ndarray, border_axes: Sequence[int]) -> np.ndarray:
    """``mask`` plus every background component (connected by ``structure``) that does not reach the array's
    faces along ``border_axes``.

    The same as scipy's ``binary_fill_holes``, per axial slice with the in-slice structure, but one labelling
    pass instead of iterated dilations (and instead of a Python loop over slices).
    """
    labels, count = ndi.label(~mask, structure=structure)
    if count == 0:
        return mask
    reaches_border = np.zeros(count + 1, dtype=bool)
    for axis in border_axes:
        reaches_border[np.take(labels, 0, axis=axis)] = True
        reaches_border[np.take(labels, -1, axis=axis)] = True
    reaches_border[0] = False
    return ~reaches_border[labels]


def _refined(coarse_region: np.ndarray, grid: _Roi, roi: _Roi, seeds: np.ndarray, model: IntensityModel,
             settings: SegmentationSettings) -> np.ndarray:
    """A region found on a coarse grid, at full resolution: blocks deep inside it are kept whole, the voxels
    of the blocks along its edge (one block either side) are thresholded again on the CT's grid, and the
    result is cleaned up as :func:`_grow` does.

    The coarse grid decided the shape (what the opening cut off, which holes were filled); only at the edge
    would its blocks cost accuracy, so the edge is redrawn with the same band on the same smoothing, where
    the full-resolution path would draw it. Redrawn voxels bring noise bumps and vessel stubs up to a block
    long, which the opening with the cube inscribed in the same ball shaves off (the exact ball would cost
    two distance maps of the whole lesion box).
    """
    coarse_box = _bounding_box(coarse_region, 1)
    local = coarse_region[coarse_box]
    core, edge = _core_and_edge_blocks(local)
    box = tuple(slice(s.start * int(f), min(s.stop * int(f), n))
                for s, f, n in zip(coarse_box, grid.stride, roi.box_shape))
    shape = [b.stop - b.start for b in box]
    smoothed = _smoothed_box(roi, box, grid.sigma_mm)
    in_band = (smoothed >= model.lower_hu) & (smoothed <= model.upper_hu)
    allowed = roi.allowed[box]
    candidate = (_block_expand(core, grid.stride, shape) | (_block_expand(edge, grid.stride, shape) & in_band))
    box_seeds = seeds - np.array([b.start for b in box])
    kept = _components_at(candidate & allowed, box_seeds, roi.spacing, settings.seed_radius_mm)
    if not kept.any():
        kept = _block_expand(local, grid.stride, shape) & allowed
    region = np.zeros(roi.box_shape, dtype=bool)
    region[box] = _cleaned(kept, box_seeds, roi.spacing, allowed, settings, _open_with_cube)
    return region


def _core_and_edge_blocks(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blocks whose 26 neighbours are all in the region, and the blocks within one of its boundary (inside
    or outside): where the true edge of a region found on blocks can lie."""
    core = ndi.binary_erosion(region, structure=FULL_CONNECTIVITY)
    near = ndi.binary_dilation(region, structure=FULL_CONNECTIVITY)
    return core, near & ~core
