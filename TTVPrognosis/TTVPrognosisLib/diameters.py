"""Lesion diameters between voxel centres (the ITK/Slicer Feret convention) without O(n^2) cost.

The farthest pair of a point set lies on its convex hull, and the hull of a voxel set is the hull of the
first and last voxel of each row. So per axial slice we keep the row ends, take their 2-D hull (that
slice's longest axial diameter), and the union of those slice hulls holds every vertex of the 3-D hull
(the maximum 3-D diameter). Hulls are taken in index space: an affine map to millimetres keeps hull
vertices, so oblique and anisotropic grids need no special case.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from .geometry import Geometry

BRUTE_FORCE_POINTS = 64  # below this, pairwise distances are cheaper than a hull


def farthest_distance_mm(points_mm: np.ndarray) -> float:
    """Largest distance between two of the points (0 for fewer than two)."""
    if len(points_mm) < 2:
        return 0.0
    return _largest_pairwise_distance(hull_vertices(points_mm))


def _largest_pairwise_distance(points: np.ndarray) -> float:
    """Brute force over all pairs; small sets by broadcasting (pdist's call overhead is larger than the work)."""
    if len(points) <= BRUTE_FORCE_POINTS:
        differences = points[:, None, :] - points[None, :, :]
        return float(np.sqrt(np.einsum("ijk,ijk->ij", differences, differences).max()))
    return float(pdist(points).max())


def hull_vertices(points: np.ndarray) -> np.ndarray:
    """The points that can be farthest apart: convex hull vertices, or all points when the hull is flat."""
    if len(points) <= BRUTE_FORCE_POINTS:
        return points
    try:
        return points[ConvexHull(points).vertices]
    except QhullError:
        try:  # flat (coplanar or collinear) sets: a joggled hull still keeps every extreme point
            return points[ConvexHull(points, qhull_options="QJ").vertices]
        except QhullError:
            return points


def row_end_points(mask: np.ndarray) -> np.ndarray:
    """Indices (N, 3) of the first and last set voxel of every row along the last axis."""
    row_has_voxel = mask.any(axis=2)
    first = np.argmax(mask, axis=2)
    last = mask.shape[2] - 1 - np.argmax(mask[..., ::-1], axis=2)
    slice_index, row_index = np.nonzero(row_has_voxel)
    starts = np.column_stack([slice_index, row_index, first[slice_index, row_index]])
    ends = np.column_stack([slice_index, row_index, last[slice_index, row_index]])
    return np.concatenate([starts, ends])


def lesion_diameters_mm(mask_kji: np.ndarray, start_kji: np.ndarray, geometry: Geometry) -> tuple[float, float]:
    """(maximum 3-D diameter, longest axial diameter) of one lesion, in mm.

    ``mask_kji`` is the lesion's bounding-box crop and ``start_kji`` its position in the grid. Axial slices
    are planes of the index axis closest to superior-inferior (``geometry.axial_axis_kji``).
    """
    axial_axis = geometry.axial_axis_kji
    # Put the axial axis first and rows along the last axis, then map indices back to (k, j, i).
    in_plane = [axis for axis in range(3) if axis != axial_axis]
    order = [axial_axis, *in_plane]
    ends = row_end_points(np.transpose(mask_kji, order))
    ends_kji = np.empty_like(ends)
    ends_kji[:, order] = ends
    ends_mm = geometry.ras_from_kji(ends_kji + np.asarray(start_kji))

    longest_axial = 0.0
    candidates = []
    by_slice = np.argsort(ends[:, 0], kind="stable")
    boundaries = np.flatnonzero(np.diff(ends[by_slice, 0])) + 1
    for rows in np.split(by_slice, boundaries):
        plane_vertices = ends_mm[rows[_plane_hull_indices(ends[rows, 1:])]]
        candidates.append(plane_vertices)
        if len(plane_vertices) > 1:
            longest_axial = max(longest_axial, _largest_pairwise_distance(plane_vertices))
    return farthest_distance_mm(np.concatenate(candidates)), longest_axial


def _plane_hull_indices(points_2d: np.ndarray) -> np.ndarray:
    """Positions of the 2-D hull vertices among in-slice (row, column) indices; all when few or collinear."""
    if len(points_2d) <= BRUTE_FORCE_POINTS:
        return np.arange(len(points_2d))
    try:
        return ConvexHull(points_2d).vertices
    except QhullError:
        return np.arange(len(points_2d))
