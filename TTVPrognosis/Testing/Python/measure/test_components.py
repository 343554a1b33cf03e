"""Block-wise labelling finds exactly the components that labelling the whole box finds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from TTVPrognosisLib.measure.components import BLOCK, FULL_CONNECTIVITY, connected_components, occupied_blocks


def as_label_image(shape, components) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.int32)
    for number, (box, mask) in enumerate(components, start=1):
        assert not np.any(labels[box][mask]), "components overlap"
        labels[box][mask] = number
    return labels


def same_partition(ours: np.ndarray, reference: np.ndarray) -> bool:
    """Both label images split the same voxels into the same groups (whatever the numbers)."""
    if not np.array_equal(ours > 0, reference > 0):
        return False
    pairs = np.unique(np.stack([ours[ours > 0], reference[ours > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


@pytest.mark.parametrize("seed", range(6))
def test_same_components_as_labelling_the_whole_box(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(5, 60, 3))  # rarely a multiple of the block size
    mask = ndimage.binary_dilation(rng.random(shape) < 0.002, iterations=int(rng.integers(0, 3)))
    mask |= rng.random(shape) < 0.01  # single voxels, many touching only at a corner
    components = connected_components(mask)
    reference, count = ndimage.label(mask, structure=FULL_CONNECTIVITY)
    assert len(components) == count
    assert same_partition(as_label_image(shape, components), reference)
    for box, voxels in components:  # boxes are tight
        assert voxels.shape == tuple(part.stop - part.start for part in box)
        assert all(np.any(voxels, axis=tuple(other for other in range(3) if other != axis))[[0, -1]].all()
                   for axis in range(3))


def test_interleaved_shapes_whose_block_boxes_overlap():
    """A ring around a separate core: their block groups' boxes overlap, yet they stay two components."""
    k, j, i = np.indices((9, 40, 40))
    radius = np.hypot(j - 19.5, i - 19.5)
    mask = ((radius > 14) & (radius < 16)) | (radius < 5)
    mask[:, :, :] &= k >= 2
    components = connected_components(mask)
    reference, count = ndimage.label(mask, structure=FULL_CONNECTIVITY)
    assert count == len(components) == 2
    assert same_partition(as_label_image(mask.shape, components), reference)


def test_diagonal_touch_across_a_block_corner_joins():
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[BLOCK - 1, BLOCK - 1, BLOCK - 1] = mask[BLOCK, BLOCK, BLOCK] = True  # corner to corner, across blocks
    assert len(connected_components(mask)) == 1


def test_occupied_blocks_and_empty_mask():
    mask = np.zeros((9, 5, 13), dtype=bool)
    assert connected_components(mask) == []
    mask[8, 4, 12] = True
    blocks = occupied_blocks(mask)
    assert blocks.shape == (3, 2, 4) and blocks.sum() == 1 and blocks[2, 1, 3]
