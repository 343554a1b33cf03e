"""The review table's rows, measured once per label layer content instead of at every refresh.

The panel refreshes its lesion table after every click, edit, tick and keystroke in "Exclude segments".
Measuring the whole segmentation each time (``review.lesion_rows``: deep copy, resampling to one grid, every
segment) costs about a second on a 512x512x300 CT. Here each label layer of the node is read in place and
measured on its own grid, and the sizes are kept until the layer changes (its VTK modification time): after
Add lesion only the new segment's layer is measured; a tick or a keystroke measures nothing. Names, roles
and Verified ticks are read fresh every time, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from vtk.util import numpy_support

from ..formats.segments import ROLE_LESION, ROLE_TAG, LabelVolume, names_matching, with_roles
from ..geometry import Geometry
from ..measure.volumetry import SegmentSize, lesion_segment_sizes
from .nodes import BINARY_LABELMAP, _geometry_of_oriented_image, _segment_from_vtk, _segment_ids
from .review import lesion_rows


class LesionRowCache:
    """Per-segment sizes of the layers measured so far, keyed by the layer object and its modification time."""

    def __init__(self) -> None:
        self._sizes: dict[tuple, dict[int, SegmentSize]] = {}
        self.layers_measured = 0  # how many layers were measured (not taken from the cache): for tests and timing

    def rows(self, segmentation_node, volume_node=None, exclude: Sequence[str] = ()) -> list[SegmentSize]:
        """The same rows as ``review.lesion_rows`` (lesion segments in order, with the Verified ticks)."""
        if segmentation_node is None:
            return []
        segmentation = segmentation_node.GetSegmentation()
        if not segmentation.GetNumberOfSegments():
            return []
        if segmentation.GetSourceRepresentationName() != BINARY_LABELMAP:
            return lesion_rows(segmentation_node, volume_node, exclude)  # converted from surfaces: the full way
        segments = [_segment_from_vtk(segmentation, segment_id) for segment_id in _segment_ids(segmentation)]
        layer_count = max(segmentation.GetNumberOfLayers(), 1)
        metadata = LabelVolume([np.zeros((1, 1, 1), np.uint8)] * layer_count, Geometry(np.eye(4), (1, 1, 1)),
                               segments, segmentation_node.GetName())
        with_role, _ = with_roles(metadata, exclude=names_matching(metadata, exclude))
        lesions = with_role.segments_with_role(ROLE_LESION)
        sizes_by_layer = {index: self._layer_sizes(segmentation.GetLayerDataObject(index), index, with_role.segments)
                          for index in sorted({segment.layer for segment in lesions})}
        rows = []
        for segment in lesions:
            size = sizes_by_layer[segment.layer].get(segment.label_value)
            if size is None:
                size = SegmentSize(segment.segment_id, segment.name, 0.0, 0.0, 0.0, None, segment.verified)
            rows.append(replace(size, segment_id=segment.segment_id, name=segment.name, verified=segment.verified))
        self._forget_layers_not_in(segmentation)
        return rows

    def _layer_sizes(self, layer, layer_index: int, segments) -> dict[int, SegmentSize]:
        key = _layer_key(layer)
        cached = self._sizes.get(key)
        if cached is not None:
            return cached
        on_layer = [replace(segment, layer=0, tags={**segment.tags, ROLE_TAG: ROLE_LESION})
                    for segment in segments if segment.layer == layer_index]
        sizes = {}
        voxels, geometry = _layer_voxels(layer)
        if voxels is not None and on_layer:
            volume = LabelVolume([voxels], geometry, on_layer)
            sizes = {segment.label_value: size for segment, size in zip(on_layer, lesion_segment_sizes(volume))}
        self.layers_measured += 1
        self._sizes[key] = sizes
        return sizes

    def _forget_layers_not_in(self, segmentation) -> None:
        current = {_layer_key(segmentation.GetLayerDataObject(index))
                   for index in range(segmentation.GetNumberOfLayers())}
        for key in [key for key in self._sizes if key not in current]:
            del self._sizes[key]


def _layer_key(layer) -> tuple:
    scalars = layer.GetPointData().GetScalars()
    return layer.GetAddressAsString(""), layer.GetMTime(), scalars.GetMTime() if scalars is not None else 0


def _layer_voxels(layer):
    """(voxels as a read-only view, geometry) of one shared labelmap; (None, None) when it holds no voxels."""
    extent = layer.GetExtent()
    scalars = layer.GetPointData().GetScalars()
    if extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4] or scalars is None:
        return None, None
    geometry = _geometry_of_oriented_image(layer)
    voxels = numpy_support.vtk_to_numpy(scalars).reshape(geometry.shape_kji)
    voxels.flags.writeable = False
    return voxels, geometry
