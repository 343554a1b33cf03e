"""Checks of what the caller gives one-click segmentation: arrays on the CT grid, well-formed points, clicks
inside the image and liver and on soft tissue.

Done before any work, so a click that cannot be a lesion is refused at once with a message naming the
point (:func:`_describe_point` names it in the later steps' messages too).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..geometry import Geometry
from .settings import SegmentationSettings

TIE_TOLERANCE_VOXELS = 1e-6


def _describe_point(index: int, point_ras: Sequence[float]) -> str:
    r, a, s = (float(v) for v in point_ras)
    return f"Point {index + 1} (R {r:.1f}, A {a:.1f}, S {s:.1f} mm)"


def _check_arrays(ct_kji: np.ndarray, geometry: Geometry, liver_mask_kji: np.ndarray | None,
                  existing_lesions_kji: np.ndarray | None) -> None:
    if ct_kji.ndim != 3 or tuple(ct_kji.shape) != geometry.shape_kji:
        raise InputError(f"The CT array has shape {ct_kji.shape} but its geometry says {geometry.shape_kji} "
                         "(k, j, i); pass the array and geometry of the same image.")
    for name, mask in (("liver mask", liver_mask_kji), ("existing lesion mask", existing_lesions_kji)):
        if mask is not None and tuple(mask.shape) != geometry.shape_kji:
            raise InputError(f"The {name} has shape {mask.shape} but the CT has {geometry.shape_kji}; "
                             "resample it onto the CT grid first.")


def _as_points(points_ras: Sequence[Sequence[float]]) -> np.ndarray:
    """Points as an (N, 3) float array; one point may be given flat, as [R, A, S]."""
    points = np.asarray(points_ras, dtype=float)
    if points.size == 0:
        raise InputError("No point given: click inside the lesion to segment.")
    if points.ndim > 2 or points.shape[-1] != 3 or not np.all(np.isfinite(points)):
        raise InputError(f"Points must be finite (R, A, S) triples in mm, got {points_ras!r}.")
    return points.reshape(-1, 3)


def ras_bounds_text(geometry: Geometry) -> str:
    """The image's RAS extent as people read it in Slicer: R -120.0 to 80.5, A ..., S ... mm."""
    low, high = geometry.bounds_ras()
    return ", ".join(f"{axis} {lo:.1f} to {hi:.1f}" for axis, lo, hi in zip("RAS", low, high)) + " mm"


def _seed_voxels(points: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Nearest voxel (k, j, i) of each point; a point outside the image is an error.

    A point halfway between voxels goes to the higher index, whatever the index (numpy's round would take the
    even one, so the same point would get another voxel in a crop of the image starting at an odd index);
    ``TIE_TOLERANCE_VOXELS`` keeps the rounding error of a cropped grid's matrix from deciding such ties.
    """
    seeds = np.floor(geometry.kji_from_ras(points) + 0.5 + TIE_TOLERANCE_VOXELS).astype(int)
    for index, point in enumerate(points):
        if not geometry.contains_ras(point):
            raise InputError(f"{_describe_point(index, point)} lies outside the CT image, whose voxel centres span "
                             f"{ras_bounds_text(geometry)} ({geometry.describe()}). Click inside the image.")
    return np.clip(seeds, 0, np.asarray(geometry.shape_kji) - 1)


def _check_seeds(seeds: np.ndarray, points_ras: np.ndarray, ct_kji: np.ndarray,
                 liver_mask_kji: np.ndarray | None, existing_lesions_kji: np.ndarray | None,
                 settings: SegmentationSettings) -> None:
    """Refuse clicks that cannot be on a liver lesion, before any work is done."""
    for index, seed in enumerate(seeds):
        where = _describe_point(index, points_ras[index])
        if liver_mask_kji is not None and not liver_mask_kji[tuple(seed)]:
            raise InputError(f"{where} lies outside the liver mask. Click on a lesion inside the liver, or "
                             "correct the liver segment first.")
        if existing_lesions_kji is not None and existing_lesions_kji[tuple(seed)]:
            raise InputError(f"{where} lies inside a lesion that is already segmented. Click on another "
                             "lesion, or delete that segment to redo it.")
        local_hu = _neighbourhood_median(ct_kji, seed)
        if local_hu < settings.air_below_hu:
            raise InputError(f"{where} is on air or lung ({local_hu:.0f} HU, below "
                             f"{settings.air_below_hu:.0f} HU). Click inside the lesion.")
        if local_hu > settings.bone_above_hu:
            raise InputError(f"{where} is on bone or dense calcification ({local_hu:.0f} HU, above "
                             f"{settings.bone_above_hu:.0f} HU). Click inside a soft-tissue lesion.")


def _neighbourhood_median(ct_kji: np.ndarray, seed: np.ndarray) -> float:
    """Median HU of the 3x3x3 voxels around a seed: one noisy voxel must not decide."""
    low = np.maximum(seed - 1, 0)
    return float(np.median(ct_kji[low[0]:seed[0] + 2, low[1]:seed[1] + 2, low[2]:seed[2] + 2]))
