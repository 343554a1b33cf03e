"""Separation of touching lesions (step 4 of ``lesion``): a watershed of the distance map cuts a settled
region at narrow necks and thin strands and keeps the clicked part(s).

A threshold band cannot tell two touching lesions of the same density apart, nor a vessel running into a
hyperdense lesion; only the region's shape can, so this step looks at the shape alone.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .growing import _distance_to
from .roi import _block_any, _block_expand, _bounding_box, _coarsening, _Roi
from .settings import SegmentationSettings

SPLIT_VOXEL_BUDGET = 300_000


def _separate_touching_blobs(region: np.ndarray, seeds: np.ndarray, roi: _Roi,
                             settings: SegmentationSettings) -> tuple[np.ndarray, list[str]]:
    """Keep the clicked blob(s) when the region is several blobs joined by narrow necks or thin strands.

    The distance map's watershed cuts the region at its saddles. Two parts stay together when the saddle is
    at least ``neck_ratio`` times the thinner part's peak and that part is at least ``thin_ratio`` times as
    thick as the other (lobes of one lesion). A narrow neck (two touching lesions) or a thin appendage (a
    vessel running into a hyperdense lesion, a leak) is cut off. Points in several blobs keep all of them.
    """
    box = _bounding_box(region, 1)
    local = region[box]
    stride = _coarsening(local.shape, roi.spacing, SPLIT_VOXEL_BUDGET)
    coarse = _block_any(local, stride)
    coarse_spacing = roi.spacing * stride
    distance = _distance_to(~coarse, coarse_spacing)
    if distance.max() < 2.0 * float(coarse_spacing.min()):
        return region, []
    basins = _distance_basins(distance, float(coarse_spacing.min()))
    groups = _merge_basins(basins, distance, settings.neck_ratio, settings.thin_ratio)
    coarse_seeds = (seeds - np.array([s.start for s in box])) // stride
    kept = {int(groups[basins[tuple(seed)]]) for seed in coarse_seeds
            if np.all(seed >= 0) and np.all(seed < coarse.shape) and basins[tuple(seed)] > 0}
    if not kept or len(set(groups[1:].tolist())) == 1:
        return region, []
    keep_mask = _block_expand(np.isin(groups[basins], sorted(kept)), stride, local.shape) & local
    separated = np.zeros(region.shape, dtype=bool)
    separated[box] = keep_mask
    dropped = int(np.count_nonzero(local)) - int(np.count_nonzero(keep_mask))
    dropped_ml = dropped * float(np.prod(roi.spacing)) / 1000.0
    note = (f"{dropped_ml:.2f} mL joined to the lesion by a narrow neck or a thin strand (a touching lesion, "
            "a vessel) was left out; add a point inside it to include it.")
    return separated, [note]


def _distance_basins(distance: np.ndarray, level_mm: float) -> np.ndarray:
    """Watershed basins of the inverted distance map (one per round blob, plus some noise basins)."""
    image = sitk.GetImageFromArray(-distance)
    basins = sitk.MorphologicalWatershed(image, level=level_mm, markWatershedLine=False, fullyConnected=True)
    labels = sitk.GetArrayFromImage(basins).astype(np.int64)
    labels[distance == 0] = 0
    return labels


def _merge_basins(basins: np.ndarray, distance: np.ndarray, neck_ratio: float,
                  thin_ratio: float) -> np.ndarray:
    """Map each basin label to a group label; parts of similar thickness joined by a wide saddle merge."""
    count = int(basins.max())
    parent = np.arange(count + 1)
    peak = np.zeros(count + 1)
    peak[1:] = ndi.maximum(distance, basins, np.arange(1, count + 1))

    def root(label: int) -> int:
        while parent[label] != label:
            parent[label] = parent[parent[label]]
            label = parent[label]
        return label

    for saddle, first, second in _saddles(basins, distance):
        a, b = root(first), root(second)
        thinner, thicker = sorted((peak[a], peak[b]))
        if a != b and saddle >= neck_ratio * thinner and thinner >= thin_ratio * thicker:
            parent[b] = a
            peak[a] = max(peak[a], peak[b])
    return np.array([root(label) for label in range(count + 1)])


def _saddles(basins: np.ndarray, distance: np.ndarray) -> list[tuple[float, int, int]]:
    """(saddle height, basin, basin) for each pair of touching basins, highest saddle first."""
    keys, heights = [], []
    count = int(basins.max()) + 1
    for axis in range(3):
        front = [slice(None)] * 3
        back = [slice(None)] * 3
        front[axis], back[axis] = slice(1, None), slice(None, -1)
        a, b = basins[tuple(front)], basins[tuple(back)]
        touching = (a != b) & (a > 0) & (b > 0)
        low, high = np.minimum(a[touching], b[touching]), np.maximum(a[touching], b[touching])
        keys.append(low * count + high)
        heights.append(np.minimum(distance[tuple(front)][touching], distance[tuple(back)][touching]))
    all_keys, all_heights = np.concatenate(keys), np.concatenate(heights)
    if all_keys.size == 0:
        return []
    order = np.argsort(all_keys)
    unique, starts = np.unique(all_keys[order], return_index=True)
    best = np.maximum.reduceat(all_heights[order], starts)
    pairs = [(float(h), int(k // count), int(k % count)) for k, h in zip(unique, best)]
    return sorted(pairs, reverse=True)
