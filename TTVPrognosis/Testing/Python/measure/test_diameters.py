"""Diameters against the definition itself: the largest distance over all pairs of voxel centres."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from TTVPrognosisLib.formats.demo_data import rigid_ras
from TTVPrognosisLib.geometry import Geometry
from TTVPrognosisLib.measure.diameters import BRUTE_FORCE_POINTS, lesion_diameters_mm, row_end_points


def all_pairs_diameters(mask: np.ndarray, start_kji: np.ndarray, geometry: Geometry) -> tuple[float, float]:
    """(3-D, axial) by brute force over every voxel centre: slow, obviously right."""
    voxels = np.argwhere(mask) + start_kji
    points = geometry.ras_from_kji(voxels)
    largest = float(pdist(points).max()) if len(points) > 1 else 0.0
    axis = geometry.axial_axis_kji
    axial = 0.0
    for index in np.unique(voxels[:, axis]):
        in_slice = points[voxels[:, axis] == index]
        if len(in_slice) > 1:
            axial = max(axial, float(pdist(in_slice).max()))
    return largest, axial


def random_grid(rng: np.random.Generator, kind: str) -> Geometry:
    matrix = np.eye(4)
    matrix[:3, :3] = np.diag(rng.uniform(0.4, 3.0, 3))
    if kind in ("oblique", "sheared"):
        matrix = rigid_ras(rng.uniform(-40.0, 40.0, 3), rng.uniform(-50.0, 50.0, 3)) @ matrix
    if kind == "sheared":
        matrix[0, 1] += 0.4  # slices shifted within their plane: distances still in mm
    if kind == "axis order":  # S-I along i, as in some NIfTI files
        matrix[:3, :3] = np.array([[0, 0, -1], [0, 1, 0], [-1, 0, 0]]) @ matrix[:3, :3]
    return Geometry(matrix, (80, 80, 80))


def random_blob(rng: np.random.Generator) -> np.ndarray:
    shape = rng.integers(2, 28, 3)
    k, j, i = np.indices(shape)
    centre = (shape - 1) / 2 * rng.uniform(0.6, 1.4, 3)
    radii = shape / 2 * rng.uniform(0.4, 1.1, 3)
    mask = sum(((index - middle) / radius) ** 2 for index, middle, radius in zip((k, j, i), centre, radii)) <= 1
    return mask | (rng.random(shape) < 0.02)  # scattered voxels: far-apart islands, concave shapes


@pytest.mark.parametrize("kind", ["axis-aligned", "oblique", "sheared", "axis order"])
def test_diameters_equal_all_pairs_maximum(kind):
    rng = np.random.default_rng(["axis-aligned", "oblique", "sheared", "axis order"].index(kind))
    checked = 0
    for _ in range(60):
        geometry, mask = random_grid(rng, kind), random_blob(rng)
        if not mask.any():
            continue
        start = rng.integers(0, 40, 3)
        ours = lesion_diameters_mm(mask, start, geometry)
        np.testing.assert_allclose(ours, all_pairs_diameters(mask, start, geometry), rtol=0, atol=1e-9)
        checked += 1
    assert checked > 50


def test_bounded_search_and_brute_force_paths_are_both_taken():
    """The shapes above include sets below and above the brute-force size, so both paths are checked."""
    rng = np.random.default_rng(0)
    sizes = [len(row_end_points(random_blob(rng))) for _ in range(60)]
    assert min(sizes) <= BRUTE_FORCE_POINTS < max(sizes)


@pytest.mark.parametrize("shape", ["cylinder", "cube", "single voxel", "one row", "two far voxels"])
def test_ties_and_degenerate_shapes(shape):
    """Many equally long pairs (every slice of a cylinder alike) and flat or tiny sets."""
    geometry = Geometry(np.diag([0.8, 0.8, 2.0, 1.0]), (40, 40, 40))
    mask = np.zeros((12, 30, 30), dtype=bool)
    if shape == "cylinder":
        j, i = np.indices((30, 30))
        mask[:] = (j - 14.5) ** 2 + (i - 14.5) ** 2 <= 14 ** 2
    elif shape == "cube":
        mask[2:10, 3:25, 4:29] = True
    elif shape == "single voxel":
        mask[5, 5, 5] = True
    elif shape == "one row":
        mask[5, 5, 2:27] = True
    else:
        mask[0, 0, 0] = mask[11, 29, 29] = True
    ours = lesion_diameters_mm(mask, np.zeros(3, dtype=int), geometry)
    np.testing.assert_allclose(ours, all_pairs_diameters(mask, np.zeros(3, dtype=int), geometry), atol=1e-9)
