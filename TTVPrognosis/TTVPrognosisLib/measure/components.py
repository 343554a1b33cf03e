"""26-connected components of a sparse mask, labelled only where the mask has voxels.

The bounding box of all lesions is often the whole liver (10 million voxels on a fine CT) while the lesions
fill a fraction of it, and labelling costs per voxel of the box. So the mask is first reduced to its
occupied blocks of BLOCK^3 voxels (one cheap pass, 64 times fewer cells), the blocks are labelled, and
each group of touching blocks is labelled at full resolution on its own box only. Two voxels that touch lie
in blocks that touch (or in the same block), so every component lies inside one group of blocks: the
result is exactly that of labelling the whole box.
"""

from __future__ import annotations

import numpy as np

FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-connected
BLOCK = 4

Box = tuple[slice, slice, slice]


def connected_components(mask: np.ndarray) -> list[tuple[Box, np.ndarray]]:
    """The 26-connected components of a boolean 3-D mask: (box in ``mask``, the component's voxels on it).

    Components come in no particular order (callers sort them); boxes are tight.
    """
    from scipy import ndimage  # here: a process that never labels (predict, report text) does not pay for it

    blocks = occupied_blocks(mask)
    block_labels, _ = ndimage.label(blocks, structure=FULL_CONNECTIVITY)
    components = []
    for group, block_box in enumerate(ndimage.find_objects(block_labels), start=1):
        box = tuple(slice(part.start * BLOCK, min(part.stop * BLOCK, size))
                    for part, size in zip(block_box, mask.shape))
        region = mask[box]
        in_group = block_labels[block_box] == group
        if np.any(blocks[block_box] & ~in_group):  # another group's blocks reach into this box: leave them out
            region = region & _voxels_of_blocks(in_group, region.shape)
        labels, _ = ndimage.label(region, structure=FULL_CONNECTIVITY)
        for number, inner in enumerate(ndimage.find_objects(labels), start=1):
            component_box = tuple(slice(outer.start + part.start, outer.start + part.stop)
                                  for outer, part in zip(box, inner))
            components.append((component_box, labels[inner] == number))
    return components


def occupied_blocks(mask: np.ndarray) -> np.ndarray:
    """Boolean array with one cell per block of BLOCK^3 voxels (the last ones partial): any voxel set."""
    reduced = mask
    for axis in range(3):  # one axis at a time: BLOCK strided logical ORs over a shrinking array
        size = reduced.shape[axis]
        shape = list(reduced.shape)
        shape[axis] = -(-size // BLOCK)
        result = np.zeros(shape, dtype=bool)
        for offset in range(min(BLOCK, size)):
            source = [slice(None)] * 3
            source[axis] = slice(offset, None, BLOCK)
            target = [slice(None)] * 3
            target[axis] = slice(0, len(range(offset, size, BLOCK)))
            np.logical_or(result[tuple(target)], reduced[tuple(source)], out=result[tuple(target)])
        reduced = result
    return reduced


def _voxels_of_blocks(blocks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Block cells expanded back to voxels, cut to ``shape``."""
    voxels = blocks
    for axis in range(3):
        voxels = np.repeat(voxels, BLOCK, axis=axis)
    return voxels[tuple(slice(0, size) for size in shape)]
