"""Add lesion in a region of interest: the panel's click, reading only the box of the CT and segments it needs.

The whole-grid path (``review.add_lesion_at_points_to_node``) deep-copies the segmentation, resamples every
layer, copies the CT and builds liver and lesion masks over the whole grid: seconds on a 512x512x300 CT for
a segmentation that takes 0.1 s. Here the CT is read through a view (``arrayFromVolume``) of the box that
one-click segmentation can reach (``segment.lesion.reach_kji``), and each label layer of the segmentation is
read in that box only, straight from its shared labelmap (no copy of the node). The same library call on the
same voxels gives the same segment, bit for bit; a lesion that outgrows the box is done again on the box of
the largest ROI. Segmentations this fast path cannot read on the CT's own lattice (closed surfaces only,
under a transform, another grid, voxels outside the CT) go the whole-grid way, which decides about them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import slicer
from vtk.util import numpy_support

from ..errors import InputError
from ..formats.io import ImageVolume
from ..formats.segments import LabelVolume
from ..geometry import Geometry, grid_offset_kji
from ..segment.editing import add_lesion_at_points, lesion_tags
from ..segment.lesion import DEFAULT_SETTINGS, LesionSegmentationResult, SegmentationSettings, reach_kji
from .nodes import (
    BINARY_LABELMAP,
    _geometry_of_oriented_image,
    _segment_from_vtk,
    _segment_ids,
    add_segment_from_mask,
    geometry_of_volume_node,
)
from .review import LESION_COLORS, add_lesion_at_points_to_node

FIRST_REACH_ENLARGEMENTS = 1  # the first ROI and one doubling: all but lesions over ~12 cm across
ANY_ENLARGEMENTS = 64  # more doublings than the ROI can take before it reaches its largest size


class _NotOnTheCtLatticeError(Exception):
    """The segmentation cannot be read box-wise on the CT's grid; the whole-grid path decides."""


def labels_in_box(segmentation_node, ct_geometry: Geometry, box: tuple[slice, slice, slice]) -> LabelVolume:
    """Every segment of the node (names, tags, layers) with its voxels in ``box`` of the CT grid only."""
    segmentation = segmentation_node.GetSegmentation()
    if segmentation_node.GetParentTransformNode() is not None or (
            segmentation.GetNumberOfSegments() and segmentation.GetSourceRepresentationName() != BINARY_LABELMAP):
        raise _NotOnTheCtLatticeError()
    start = np.array([part.start for part in box])
    shape = tuple(part.stop - part.start for part in box)
    layers = [_layer_in_box(segmentation.GetLayerDataObject(index), ct_geometry, start, shape)
              for index in range(segmentation.GetNumberOfLayers())] or [np.zeros(shape, dtype=np.uint8)]
    segments = [_segment_from_vtk(segmentation, segment_id) for segment_id in _segment_ids(segmentation)]
    return LabelVolume(layers, ct_geometry.cropped(start, shape), segments, segmentation_node.GetName())


def _layer_in_box(layer, ct_geometry: Geometry, start: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    extent = layer.GetExtent()
    scalars = layer.GetPointData().GetScalars()
    if extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4] or scalars is None:
        return np.zeros(shape, dtype=np.uint8)
    layer_geometry = _geometry_of_oriented_image(layer)
    offset = grid_offset_kji(layer_geometry, ct_geometry)
    if offset is None or np.any(offset < 0) or np.any(offset + layer_geometry.shape_kji > ct_geometry.shape_kji):
        raise _NotOnTheCtLatticeError()
    voxels = numpy_support.vtk_to_numpy(scalars).reshape(layer_geometry.shape_kji)  # a view: nothing copied
    placed = np.zeros(shape, dtype=voxels.dtype)
    low = np.maximum(offset, start)
    high = np.minimum(offset + layer_geometry.shape_kji, start + shape)
    if np.all(high > low):
        placed[tuple(slice(a, b) for a, b in zip(low - start, high - start))] = \
            voxels[tuple(slice(a, b) for a, b in zip(low - offset, high - offset))]
    return placed


def segment_in_region(segmentation_node, volume_node, points_ras: Sequence[Sequence[float]],
                      settings: SegmentationSettings = DEFAULT_SETTINGS):
    """(name, result, box) of the lesion at the points, read from the box around them; nothing is changed.

    ``result`` is cropped to its ROI with ``roi_start_kji`` in the box; ``box`` is the box in the CT array.
    Raises _NotOnTheCtLatticeError for a segmentation that must go the whole-grid way.
    """
    ct_geometry = geometry_of_volume_node(volume_node)
    ct = slicer.util.arrayFromVolume(volume_node)
    if ct.ndim != 3:
        raise InputError(f"The volume '{volume_node.GetName()}' is not a 3-D scalar volume.")
    for enlargements in (FIRST_REACH_ENLARGEMENTS, ANY_ENLARGEMENTS):
        box = reach_kji(ct_geometry, points_ras, settings, enlargements)
        start = [part.start for part in box]
        image = ImageVolume(ct[box], ct_geometry.cropped(start, ct[box].shape), volume_node.GetName())
        existing = labels_in_box(segmentation_node, ct_geometry, box)
        added = add_lesion_at_points(image, existing if existing.segments else None, points_ras, settings=settings)
        if added.result.roi_enlargements <= enlargements:
            break
    return added.name, added.result, box


def add_lesion_in_region(segmentation_node, volume_node, points_ras: Sequence[Sequence[float]],
                         settings: SegmentationSettings = DEFAULT_SETTINGS,
                         before_change: Callable[[], object] | None = None) -> tuple[str, LesionSegmentationResult]:
    """Segment the lesion under the point(s) and add it as a new ``Lesion N`` segment; returns (ID, result).

    ``before_change`` is called once the lesion is found and just before the node changes (the panel saves
    the Segment Editor's undo state there), so a refused click leaves no undo step behind.
    """
    if segmentation_node is None or volume_node is None:
        raise InputError("Select a CT and a segmentation first.")
    try:
        name, result, _ = segment_in_region(segmentation_node, volume_node, points_ras, settings)
    except _NotOnTheCtLatticeError:
        return add_lesion_at_points_to_node(segmentation_node, volume_node, points_ras, settings, before_change)
    if before_change is not None:
        before_change()
    color = LESION_COLORS[(int(name.split()[-1]) - 1) % len(LESION_COLORS)]
    segment_id = add_segment_from_mask(segmentation_node, result.mask_kji, result.roi_geometry, name,
                                       lesion_tags(verified=False), color)
    return segment_id, result
