"""Telling a label image from an intensity image (CT, MR) given by mistake as the segmentation.

A label map holds few values, each filling compact regions, on a mostly empty background. A CT or MR
holds many values that change from voxel to voxel. An MR given as the segmentation was measured as a
plausible 105 mL; here it is refused. The signs, any one of which refuses:

- negative values (Hounsfield units; labels are 0 and up) or fractional values (checked by the reader);
- more than MAX_LABEL_VALUES distinct values;
- more than two distinct values and no background voxel at all (a segmentation always has background);
- more than FEW_VALUES distinct values and either most of the volume non-zero (MOSTLY_NONZERO) or
  neighbouring non-zero voxels rarely equal (SAME_NEIGHBOUR_MIN along the rows): labels come in regions,
  so a voxel's neighbour along a row almost always carries the same value; in an image it rarely does.

A label map with hundreds of lesions (each a region of voxels) passes: its background is empty and its
voxels agree with their neighbours.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

MAX_LABEL_VALUES = 1000
FEW_VALUES = 20
MOSTLY_NONZERO = 0.7
SAME_NEIGHBOUR_MIN = 0.5
SAMPLE_SLICES = 64  # the neighbour test looks at about this many slices: enough to judge, cheap on any size


def label_values_of_labels(voxels: np.ndarray, name: str) -> np.ndarray:
    """The distinct non-zero values of integer, non-negative ``voxels`` (sorted); raises when they look like an
    image rather than labels."""
    nonzero = voxels[voxels != 0]
    present = _distinct(nonzero)
    what = (f"'{name}' looks like an image (CT or MR), not a segmentation: it holds {len(present)} different "
            f"values")
    advice = ("Give the segmentation (label image: 0 = background, 1, 2, ... = segments; or a .seg.nrrd), "
              "and the CT with --image.")
    if len(present) > MAX_LABEL_VALUES:
        raise InputError(f"{what}. {advice}")
    if len(present) > 2 and nonzero.size == voxels.size:
        raise InputError(f"{what} and no background (no voxel is 0). {advice}")
    if len(present) <= FEW_VALUES:
        return present
    nonzero_fraction = nonzero.size / voxels.size
    if nonzero_fraction > MOSTLY_NONZERO:
        raise InputError(f"{what} and {nonzero_fraction:.0%} of its voxels are not background. {advice}")
    agreement = same_neighbour_fraction(voxels)
    if agreement < SAME_NEIGHBOUR_MIN:
        raise InputError(f"{what} and only {agreement:.0%} of its labelled voxels have the same value as their "
                         f"neighbour, where labels come in regions. {advice}")
    return present


def _distinct(nonzero: np.ndarray) -> np.ndarray:
    if not nonzero.size:
        return np.array([], dtype=np.int64)
    if nonzero.dtype.kind in "iu" and nonzero.dtype.itemsize <= 4 and int(nonzero.max()) <= 1 << 16:
        return np.flatnonzero(np.bincount(nonzero))
    return np.unique(nonzero).astype(np.int64)


def same_neighbour_fraction(voxels: np.ndarray) -> float:
    """Of the non-zero voxels of a sample of slices, the share whose next voxel along the row is equal."""
    step = max(1, voxels.shape[0] // SAMPLE_SLICES)
    sample = voxels[::step]
    left, right = sample[..., :-1], sample[..., 1:]
    labelled = left != 0
    count = int(np.count_nonzero(labelled))
    if count == 0:
        return 1.0
    return int(np.count_nonzero((left == right) & labelled)) / count
