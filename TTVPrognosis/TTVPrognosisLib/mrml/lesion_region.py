"""Add lesion in a region of interest: the panel's click, reading only the box of the CT and segments it needs.

The whole-grid path (``review.add_lesion_at_points_to_node``) deep-copies the segmentation, resamples every
layer, copies the CT and builds liver and lesion masks over the whole grid: seconds on a 512x512x300 CT for
a segmentation that takes 0.1 s. Here the CT is read through a view (``arrayFromVolume``) of the box that
one-click segmentation can reach (``segment.lesion.reach_kji``), and the label layers holding lesion or
liver segments are read in that box only, straight from their shared labelmaps (no copy of the node). The
same library call on the same voxels gives the same segment, bit for bit; a lesion that outgrows the box is
done again on the box of the largest ROI. Segmentations this fast path cannot read on the CT's own lattice
(closed surfaces only, under a transform, another grid, voxels outside the CT) go the whole-grid way, which
decides about them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import slicer
from vtk.util import numpy_support

from ..errors import InputError
from ..formats.segments import ROLE_LESION, ROLE_LIVER, LabelVolume, with_roles
from ..geometry import Geometry, grid_offset_kji
from ..segment.editing import lesion_tags, next_lesion_name
from ..segment.lesion import (
    DEFAULT_SETTINGS,
    LesionSegmentationResult,
    SegmentationSettings,
    reach_kji,
    segment_lesion,
)
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


def role_masks_in_box(segmentation_node, ct_geometry: Geometry, box: tuple[slice, slice, slice]
                      ) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """(union of lesion segments, union of liver segments, all segment names) in ``box`` of the CT grid.

    A mask is None when no segment has that role (as ``segment.editing.masks_by_role``). Roles come from names
    and tags alone; voxels are read only where a layer holding such a segment overlaps the box.
    """
    segmentation = segmentation_node.GetSegmentation()
    if segmentation_node.GetParentTransformNode() is not None or (
            segmentation.GetNumberOfSegments() and segmentation.GetSourceRepresentationName() != BINARY_LABELMAP):
        raise _NotOnTheCtLatticeError()
    segments = [_segment_from_vtk(segmentation, segment_id) for segment_id in _segment_ids(segmentation)]
    metadata = LabelVolume([np.zeros((1, 1, 1), np.uint8)] * max(segmentation.GetNumberOfLayers(), 1),
                           Geometry(np.eye(4), (1, 1, 1)), segments, segmentation_node.GetName())
    with_role, _ = with_roles(metadata)
    start = np.array([part.start for part in box])
    shape = tuple(part.stop - part.start for part in box)
    masks = []
    for role in (ROLE_LESION, ROLE_LIVER):
        members = with_role.segments_with_role(role)
        mask = np.zeros(shape, dtype=bool) if members else None
        for layer_index in sorted({segment.layer for segment in members}):
            values = [segment.label_value for segment in members if segment.layer == layer_index]
            _add_layer_in_box(mask, segmentation.GetLayerDataObject(layer_index), values, ct_geometry, start)
        masks.append(mask)
    return masks[0], masks[1], [segment.name for segment in segments]


def _add_layer_in_box(mask: np.ndarray, layer, values: list[int], ct_geometry: Geometry, start: np.ndarray) -> None:
    """Set ``mask`` (the box at ``start``) where the layer holds one of ``values``."""
    extent = layer.GetExtent()
    scalars = layer.GetPointData().GetScalars()
    if extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4] or scalars is None:
        return
    layer_geometry = _geometry_of_oriented_image(layer)
    offset = grid_offset_kji(layer_geometry, ct_geometry)
    if offset is None or np.any(offset < 0) or np.any(offset + layer_geometry.shape_kji > ct_geometry.shape_kji):
        raise _NotOnTheCtLatticeError()
    low = np.maximum(offset, start)
    high = np.minimum(offset + layer_geometry.shape_kji, start + mask.shape)
    if np.all(high > low):
        voxels = numpy_support.vtk_to_numpy(scalars).reshape(layer_geometry.shape_kji)  # a view: nothing copied
        inside = voxels[tuple(slice(a, b) for a, b in zip(low - offset, high - offset))]
        found = inside == values[0] if len(values) == 1 else np.isin(inside, values)
        mask[tuple(slice(a, b) for a, b in zip(low - start, high - start))] |= found


def segment_in_region(segmentation_node, volume_node, points_ras: Sequence[Sequence[float]],
                      settings: SegmentationSettings = DEFAULT_SETTINGS):
    """(name, result, box) of the lesion at the points, read from the box around them; nothing is changed.

    The same steps as ``segment.editing.add_lesion_at_points`` (masks by role, one-click segmentation, the next
    ``Lesion N``) on the box. ``result`` is cropped to its ROI with ``roi_start_kji`` in the box; ``box`` is the
    box in the CT array. Raises _NotOnTheCtLatticeError for a segmentation that must go the whole-grid way.
    """
    ct_geometry = geometry_of_volume_node(volume_node)
    ct = slicer.util.arrayFromVolume(volume_node)
    if ct.ndim != 3:
        raise InputError(f"The volume '{volume_node.GetName()}' is not a 3-D scalar volume.")
    for enlargements in (FIRST_REACH_ENLARGEMENTS, ANY_ENLARGEMENTS):
        box = reach_kji(ct_geometry, points_ras, settings, enlargements)
        lesions, liver, names = role_masks_in_box(segmentation_node, ct_geometry, box)
        result = segment_lesion(ct[box], ct_geometry.cropped([part.start for part in box], ct[box].shape),
                                points_ras, liver_mask_kji=liver, existing_lesions_kji=lesions, settings=settings)
        if result.roi_enlargements <= enlargements:
            break
    return next_lesion_name(names), result, box


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
