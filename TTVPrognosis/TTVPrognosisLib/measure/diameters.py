"""Lesion diameters between voxel centres (the ITK/Slicer Feret convention), exact and without O(n^2) cost.

The farthest pair of a voxel set lies among the first and last voxel of its rows, so only row ends are
kept. Those are put in an orthonormal frame of the axial slices (x, y in the slice plane, z along its
normal), where a distance splits into an in-plane part and a height difference. Projecting each slice's
row ends onto K = IN_PLANE_DIRECTIONS directions gives, for any two slices, a lower and an upper bound of
the largest distance between them: every in-plane difference lies within pi / 2K of one of the directions,
so its length is at most its projection there divided by cos(pi / 2K). Pairs of slices are then measured
exactly, largest bound first, until no remaining bound can beat the best distance found: usually one or
two pairs. The result is exact, whatever the grid's obliquity or anisotropy, because the frame keeps
distances in millimetres.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..geometry import Geometry

IN_PLANE_DIRECTIONS = 32  # directions per slice plane for the bounds: upper bounds within 0.12 % of exact
BRUTE_FORCE_POINTS = 64  # below this, all pairs at once are cheaper than bounding
_ANGLES = np.arange(IN_PLANE_DIRECTIONS) * (np.pi / IN_PLANE_DIRECTIONS)
_DIRECTIONS_X, _DIRECTIONS_Y = np.cos(_ANGLES), np.sin(_ANGLES)
_BOUND_FACTOR = 1.0 / math.cos(np.pi / (2 * IN_PLANE_DIRECTIONS))
_PAIR_CHUNK = 4_000_000  # slice pairs x directions bounded at once (memory)
_DISTANCE_CHUNK = 3_000_000  # point pairs x coordinates differenced at once (memory)


def row_end_points(mask: np.ndarray) -> np.ndarray:
    """Indices (N, 3) of the first and last set voxel of every row along the last axis, in array order."""
    row_has_voxel = mask.any(axis=2)
    slice_index, row_index = np.nonzero(row_has_voxel)
    first = np.argmax(mask, axis=2)[slice_index, row_index]
    last = mask.shape[2] - 1 - np.argmax(mask[..., ::-1], axis=2)[slice_index, row_index]
    ends = np.empty((2 * len(slice_index), 3), dtype=np.int64)
    ends[0::2, 0] = ends[1::2, 0] = slice_index
    ends[0::2, 1] = ends[1::2, 1] = row_index
    ends[0::2, 2] = first
    ends[1::2, 2] = last
    return ends


def slice_frame(geometry: Geometry) -> tuple[tuple[int, int, int], np.ndarray]:
    """See :func:`_slice_frame` (cached: every lesion of a segmentation shares its grid)."""
    return _slice_frame(tuple(geometry.ijk_to_ras[:3, :3].ravel()), geometry.axial_axis_kji)


@lru_cache(maxsize=64)
def _slice_frame(matrix: tuple, axial_axis: int) -> tuple[tuple[int, int, int], np.ndarray]:
    """Numpy axes in (slice, row, column) order, and the mm step of one index along each in a slice frame.

    The slice axis is ``axial_axis`` (:attr:`.Geometry.axial_axis_kji`). The 3 x 3 matrix has one column per
    axis of that order; its rows are x, y (in the slice plane) and z (along the plane's normal). Row and
    column steps have no z part, so z depends on the slice alone.
    """
    linear = np.array(matrix).reshape(3, 3)
    order = (axial_axis, *(axis for axis in range(3) if axis != axial_axis))
    steps = linear[:, [2, 1, 0]][:, list(order)]
    x_axis = steps[:, 1] / np.linalg.norm(steps[:, 1])
    y_axis = steps[:, 2] - (steps[:, 2] @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    frame = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)])
    local = frame @ steps
    local[2, 1:] = 0.0  # exactly in-plane (rounding would otherwise leave ~1e-17)
    local.setflags(write=False)
    return order, local


def lesion_diameters_mm(mask_kji: np.ndarray, start_kji: np.ndarray, geometry: Geometry) -> tuple[float, float]:
    """(maximum 3-D diameter, longest axial diameter) of one lesion, in mm.

    ``mask_kji`` is the lesion's bounding-box crop and ``start_kji`` its position in the grid (distances do
    not depend on it). Axial slices are planes of the index axis closest to superior-inferior
    (``geometry.axial_axis_kji``).
    """
    order, steps = slice_frame(geometry)
    ends = row_end_points(np.transpose(mask_kji, order))
    if len(ends) == 0:
        return 0.0, 0.0
    points = ends[:, 0:1] * steps[:, 0] + ends[:, 1:2] * steps[:, 1] + ends[:, 2:3] * steps[:, 2]
    starts = np.flatnonzero(ends[1:, 0] != ends[:-1, 0]) + 1
    starts = np.concatenate(([0], starts))
    if len(points) <= BRUTE_FORCE_POINTS:
        return _small_set_diameters(points, ends[:, 0])
    return _bounded_diameters(points, starts)


def _small_set_diameters(points: np.ndarray, slice_of_point: np.ndarray) -> tuple[float, float]:
    squared = squared_distances(points, points)
    same_slice = slice_of_point[:, None] == slice_of_point[None, :]
    return float(np.sqrt(squared.max())), float(np.sqrt(squared[same_slice].max()))


def _bounded_diameters(points: np.ndarray, starts: np.ndarray) -> tuple[float, float]:
    """Exact largest distances (any pair; pairs within one slice) by bounded search over slice pairs."""
    stops = np.append(starts[1:], len(points))
    projections = np.multiply.outer(points[:, 0], _DIRECTIONS_X)
    projections += np.multiply.outer(points[:, 1], _DIRECTIONS_Y)
    highest = np.maximum.reduceat(projections, starts, axis=0)  # (slices, directions)
    lowest = np.minimum.reduceat(projections, starts, axis=0)
    heights = points[starts, 2]

    widths = (highest - lowest).max(axis=1)  # within each slice: a distance that exists
    axial = _search(widths, widths * _BOUND_FACTOR, lambda s: _farthest_within(points[starts[s]:stops[s], :2]))

    first, second, lower, upper = _slice_pair_bounds(highest, lowest, heights)
    farthest = _search(lower, upper, lambda n: _farthest_between(points[starts[first[n]]:stops[first[n]]],
                                                                 points[starts[second[n]]:stops[second[n]]]))
    return max(farthest, axial), axial


def _search(lower: np.ndarray, upper: np.ndarray, exact) -> float:
    """Largest ``exact(n)``: candidates by decreasing upper bound until none can beat the best found."""
    best = float(lower.max())  # a distance that exists; the answer is at least this
    found = 0.0
    for candidate in np.argsort(-upper, kind="stable"):
        if upper[candidate] < best:
            break
        found = max(found, exact(candidate))
        best = max(best, found)
    return found


def _slice_pair_bounds(highest: np.ndarray, lowest: np.ndarray, heights: np.ndarray):
    """For every pair of slices (s <= t): indices, and lower/upper bounds of their largest distance."""
    first, second = _slice_pairs(len(heights))
    lower = np.empty(len(first))
    upper = np.empty(len(first))
    chunk = max(1, _PAIR_CHUNK // highest.shape[1])
    for begin in range(0, len(first), chunk):
        s, t = first[begin:begin + chunk], second[begin:begin + chunk]
        spread = np.maximum(highest[s] - lowest[t], highest[t] - lowest[s]).max(axis=1)
        spread = np.maximum(spread, 0.0)
        rise = (heights[s] - heights[t]) ** 2
        lower[begin:begin + chunk] = np.sqrt(rise + spread ** 2)
        upper[begin:begin + chunk] = np.sqrt(rise + (spread * _BOUND_FACTOR) ** 2)
    return first, second, lower, upper


@lru_cache(maxsize=256)
def _slice_pairs(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (s, t) of every pair of ``count`` slices with s <= t (cached: lesions share slice counts)."""
    first, second = np.triu_indices(count)
    first.setflags(write=False)
    second.setflags(write=False)
    return first, second


def _farthest_within(points: np.ndarray) -> float:
    return _farthest_between(points, points)


def _farthest_between(first: np.ndarray, second: np.ndarray) -> float:
    """Largest distance between a point of ``first`` and one of ``second``, a block of rows at a time."""
    rows = max(1, _DISTANCE_CHUNK // (first.shape[1] * len(second)))
    largest = max(float(squared_distances(first[begin:begin + rows], second).max())
                  for begin in range(0, len(first), rows))
    return float(np.sqrt(largest))


def squared_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Squared distances (len(first), len(second)) between points (N, D), summed over coordinates in order.

    The same sums as ``scipy.spatial.distance.cdist(..., "sqeuclidean")`` without importing scipy (command
    start-up time); differences are taken before squaring, so no cancellation.
    """
    differences = first[:, None, :] - second[None, :, :]
    differences *= differences
    squared = differences[..., 0].copy()
    for axis in range(1, differences.shape[-1]):
        squared += differences[..., axis]
    return squared

