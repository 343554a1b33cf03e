"""The radiologist's review workflow on MRML nodes: add a lesion by a click, verify, split into islands.

Works on the node the user edits (unlike measuring, which works on a copy) but changes only what the
action is about: adding a lesion adds one segment; verifying sets one tag; splitting rewrites one segment
and adds its islands. Failures raise before anything is changed, so no empty segment is left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import slicer
from scipy import ndimage

from ..errors import InputError
from ..formats.segments import ROLE_TAG, VERIFIED_TAG, names_matching
from ..measure.components import FULL_CONNECTIVITY
from ..measure.volumetry import SegmentSize, lesion_segment_sizes, nonzero_box
from ..mrml.nodes import (
    add_segment_from_mask,
    image_volume_from_node,
    label_volume_from_segmentation_node,
    oriented_image_from_array,
    register_segmentation_converters,
)
from ..segment.editing import add_lesion_at_points, lesion_tags, next_lesion_name
from ..segment.lesion import DEFAULT_SETTINGS, LesionSegmentationResult, SegmentationSettings

LESION_COLORS = ((0.95, 0.77, 0.06), (0.90, 0.30, 0.24), (0.20, 0.60, 0.86), (0.61, 0.35, 0.71),
                 (0.18, 0.80, 0.44), (0.90, 0.49, 0.13), (0.10, 0.74, 0.61), (0.91, 0.12, 0.39))


def new_segmentation_for(volume_node, name: str):
    """An empty segmentation node whose reference geometry is the CT (so segments share its grid)."""
    register_segmentation_converters()
    node = volume_node.GetScene().AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    return node


def _segment_names(segmentation_node) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(index).GetName() for index in range(segmentation.GetNumberOfSegments())]


def add_lesion_at_points_to_node(segmentation_node, volume_node, points_ras: Sequence[Sequence[float]],
                                 settings: SegmentationSettings = DEFAULT_SETTINGS,
                                 before_change: Callable[[], object] | None = None
                                 ) -> tuple[str, LesionSegmentationResult]:
    """Segment the lesion under the point(s) on the CT and add it as a new ``Lesion N`` segment.

    Existing lesion segments bound it, and the liver segment (if any) too. Returns the new segment ID and
    the segmentation result (intensity band, warnings). Other segments are not touched. ``before_change`` is
    called just before the node changes (the panel saves the Segment Editor's undo state there).

    This reads the whole grid; the panel's click goes through ``lesion_region.add_lesion_in_region``, which
    gives the same segment from a box around the click.
    """
    if segmentation_node is None or volume_node is None:
        raise InputError("Select a CT and a segmentation first.")
    image = image_volume_from_node(volume_node)
    existing = None
    if segmentation_node.GetSegmentation().GetNumberOfSegments():
        existing = label_volume_from_segmentation_node(segmentation_node, volume_node)
    added = add_lesion_at_points(image, existing, points_ras, settings=settings)
    result = added.result
    name = next_lesion_name(_segment_names(segmentation_node))
    color = LESION_COLORS[(int(name.split()[-1]) - 1) % len(LESION_COLORS)]
    if before_change is not None:
        before_change()
    segment_id = add_segment_from_mask(segmentation_node, result.mask_kji, result.roi_geometry, name,
                                       lesion_tags(verified=False), color)
    return segment_id, result


def set_segment_verified(segmentation_node, segment_id: str, verified: bool) -> None:
    """Record the radiologist's check in the segment's tags (saved with the scene and .seg.nrrd)."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise InputError(f"No segment with ID '{segment_id}' in '{segmentation_node.GetName()}'.")
    segment.SetTag(VERIFIED_TAG, "1" if verified else "0")
    if not segment.HasTag(ROLE_TAG):
        segment.SetTag(ROLE_TAG, "lesion")
    segmentation_node.Modified()


def lesion_rows(segmentation_node, volume_node=None, exclude: Sequence[str] = ()) -> list[SegmentSize]:
    """Lesion segments with volume, diameters, centroid and verified flag, for the review table.

    Only the ``exclude`` names that name a segment here are applied: the panel's list also names segments of
    the other time point, and it is re-read at every keystroke, while a name is still being typed.
    """
    if segmentation_node is None or not segmentation_node.GetSegmentation().GetNumberOfSegments():
        return []
    volume = label_volume_from_segmentation_node(segmentation_node, volume_node)
    return lesion_segment_sizes(volume, exclude=names_matching(volume, exclude))


def split_segment_into_islands(segmentation_node, segment_id: str, volume_node=None,
                               before_change: Callable[[], object] | None = None) -> list[str]:
    """Keep the largest 26-connected island in the segment; every other island becomes a new lesion segment.

    Returns the IDs of all resulting segments (the original first). New segments are unverified lesions.
    ``before_change`` is called only when there is something to split, just before the node changes.
    """
    volume = label_volume_from_segmentation_node(segmentation_node, volume_node)
    segment = next((item for item in volume.segments if item.segment_id == segment_id), None)
    if segment is None:
        raise InputError(f"No segment with ID '{segment_id}' in '{segmentation_node.GetName()}'.")
    mask = volume.layers[segment.layer] == segment.label_value
    islands, count = ndimage.label(mask, structure=FULL_CONNECTIVITY)
    if count <= 1:
        return [segment_id]
    if before_change is not None:
        before_change()
    sizes = np.bincount(islands.ravel())[1:]
    order = np.argsort(-sizes, kind="stable") + 1
    largest = islands == order[0]
    box = nonzero_box(largest)
    start = [part.start for part in box]
    replaced = slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        oriented_image_from_array(largest[box].astype(np.uint8), volume.geometry.cropped(start, largest[box].shape)),
        segmentation_node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    if not replaced:
        raise InputError(f"Slicer could not update segment '{segment.name}'.")
    created = [segment_id]
    for island_label in order[1:]:
        island = islands == island_label
        island_box = nonzero_box(island)
        name = next_lesion_name(_segment_names(segmentation_node))
        island_start = [part.start for part in island_box]
        created.append(add_segment_from_mask(segmentation_node, island[island_box],
                                             volume.geometry.cropped(island_start, island[island_box].shape), name,
                                             lesion_tags(verified=False)))
    return created


def delete_segment(segmentation_node, segment_id: str, before_change: Callable[[], object] | None = None) -> None:
    """Remove one segment; ``before_change`` is called first (the panel saves the editor's undo state there)."""
    if segmentation_node is None or segmentation_node.GetSegmentation().GetSegment(segment_id) is None:
        raise InputError(f"No segment with ID '{segment_id}' to delete.")
    if before_change is not None:
        before_change()
    segmentation_node.RemoveSegment(segment_id)
