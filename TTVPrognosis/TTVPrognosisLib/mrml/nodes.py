"""Adapters between MRML nodes and the core types, using only what Slicer and ``slicer-core`` both have.

Measuring a ``vtkMRMLSegmentationNode`` works on a deep copy of its segmentation (converted to binary
labelmaps when the source representation is something else, e.g. closed surfaces), so the user's node is
never modified. Results go into ``vtkMRMLTableNode`` s that the Tables module shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..errors import InputError
from ..formats.io import ImageVolume
from ..formats.roles import TERMINOLOGY_TAG, terminology_from_entry
from ..formats.segments import ROLE_TAG, VERIFIED_TAG, LabelVolume, Segment, require_patterns_match
from ..geometry import Geometry, grid_offset_kji, reference_grid_warnings
from ..measure.volumetry import Measurement, measure

BINARY_LABELMAP = "Binary labelmap"
CLOSED_SURFACE = "Closed surface"


def register_segmentation_converters() -> None:
    """Register the labelmap <-> surface converter rules once (the Slicer application does it at start-up)."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    registered = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for rule_class in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                       slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
        if rule_class.__name__ not in registered:
            factory.RegisterConverterRule(rule_class())


def matrix_to_numpy(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])


def numpy_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(array[row, column]))
    return matrix


def geometry_of_volume_node(volume_node) -> Geometry:
    """Grid of a scalar or labelmap volume node."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    image = volume_node.GetImageData()
    if image is None:
        raise InputError(f"The volume '{volume_node.GetName()}' holds no image data.")
    return Geometry(matrix_to_numpy(matrix), image.GetDimensions()[::-1])


def image_volume_from_node(volume_node) -> ImageVolume:
    """CT voxels (a read-only view: not copied, and the node cannot be changed through it) and grid of a volume."""
    voxels = slicer.util.arrayFromVolume(volume_node)
    voxels.flags.writeable = False
    if voxels.ndim != 3:
        raise InputError(f"The volume '{volume_node.GetName()}' is not a 3-D scalar volume.")
    return ImageVolume(voxels, geometry_of_volume_node(volume_node), volume_node.GetName())


def _geometry_of_oriented_image(image) -> Geometry:
    """Grid of a vtkOrientedImageData, whose first voxel is at its extent start, not at index 0."""
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    ijk_to_ras = matrix_to_numpy(matrix)
    extent = image.GetExtent()
    start = np.array([extent[0], extent[2], extent[4], 1.0])
    ijk_to_ras[:3, 3] = (ijk_to_ras @ start)[:3]
    shape_ijk = (extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1)
    return Geometry(ijk_to_ras, shape_ijk[::-1])


def _oriented_image_array(image) -> np.ndarray:
    extent = image.GetExtent()
    shape_kji = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(shape_kji).copy()


def _segment_ids(segmentation) -> list[str]:
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentIDs(ids)
    return [ids.GetValue(index) for index in range(ids.GetNumberOfValues())]


KNOWN_TAGS = (ROLE_TAG, VERIFIED_TAG, "Segmentation.Status")


def _segment_tags(segment) -> dict[str, str]:
    """The tags this module reads (the wrapped vtkSegment API cannot list tag names)."""
    tags = {}
    for key in KNOWN_TAGS:
        value = vtk.reference("")
        if segment.GetTag(key, value):
            tags[key] = str(value)
    return tags


def _labelmap_copy(segmentation_node, reference_volume_node=None):
    """The node's segmentation with binary labelmaps: the node's own when they are its source (it is only read
    here; a deep copy of a 512x512x300 segmentation took seconds), else a deep copy converted to labelmaps."""
    register_segmentation_converters()
    if segmentation_node.GetSegmentation().GetSourceRepresentationName() == BINARY_LABELMAP:
        return segmentation_node.GetSegmentation()
    copy = slicer.vtkSegmentation()
    copy.DeepCopy(segmentation_node.GetSegmentation())
    if copy.GetSourceRepresentationName() != BINARY_LABELMAP:
        if reference_volume_node is not None:
            image = slicer.vtkOrientedImageData()
            image.SetImageToWorldMatrix(numpy_to_matrix(geometry_of_volume_node(reference_volume_node).ijk_to_ras))
            image.SetExtent(reference_volume_node.GetImageData().GetExtent())
            copy.SetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
                                        slicer.vtkSegmentationConverter.SerializeImageGeometry(image))
        if _segment_ids(copy) and not copy.CreateRepresentation(BINARY_LABELMAP):
            raise InputError(f"The segments of '{segmentation_node.GetName()}' could not be converted to a binary "
                             f"labelmap; check that they are closed surfaces.")
        copy.SetSourceRepresentationName(BINARY_LABELMAP)
    return copy


def label_volume_from_segmentation_node(segmentation_node, reference_volume_node=None) -> LabelVolume:
    """All segments of a segmentation node as label layers on one grid (the node is not modified)."""
    name = segmentation_node.GetName() or "segmentation"
    segmentation = _labelmap_copy(segmentation_node, reference_volume_node)
    segment_ids = _segment_ids(segmentation)
    warnings = []
    if segmentation_node.GetParentTransformNode() is not None:
        warnings.append(f"'{name}' is under a transform; centroids are reported in its own coordinates.")
    geometry_text = segmentation.DetermineCommonLabelmapGeometry(slicer.vtkSegmentation.EXTENT_UNION_OF_SEGMENTS,
                                                                 _string_array(segment_ids)) if segment_ids else ""
    common = slicer.vtkOrientedImageData()
    has_grid = bool(geometry_text) and slicer.vtkSegmentationConverter.DeserializeImageGeometry(geometry_text, common,
                                                                                                False)
    extent = common.GetExtent()
    if not has_grid or extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4]:
        return _empty_label_volume(segmentation_node, segmentation, segment_ids, reference_volume_node, warnings)
    common.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    common_geometry = _geometry_of_oriented_image(common)
    layers = []
    for layer_index in range(segmentation.GetNumberOfLayers()):
        layer = segmentation.GetLayerDataObject(layer_index)
        pasted = _pasted_on(layer, common_geometry)
        if pasted is None:
            resampled = slicer.vtkOrientedImageData()
            slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
                layer, common, resampled, False, True)
            pasted = _oriented_image_array(resampled)
        layers.append(pasted)
    segments = [_segment_from_vtk(segmentation, segment_id) for segment_id in segment_ids]
    return LabelVolume(layers, _geometry_of_oriented_image(common), segments, name, warnings)


def _pasted_on(layer, geometry: Geometry) -> np.ndarray | None:
    """A layer on the same lattice as ``geometry``, copied into an array of its shape (what resampling it onto
    that grid gives, without VTK's pass over every voxel); None when the lattices differ. A layer that already
    covers exactly that grid is returned as a read-only view of its voxels: nothing is copied, and nothing can
    write into the user's segmentation through it (the view keeps the VTK array alive)."""
    extent = layer.GetExtent()
    scalars = layer.GetPointData().GetScalars()
    if extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4] or scalars is None:
        return None
    layer_geometry = _geometry_of_oriented_image(layer)
    offset = grid_offset_kji(layer_geometry, geometry)
    if offset is None or np.any(offset < 0) or np.any(offset + layer_geometry.shape_kji > geometry.shape_kji):
        return None
    voxels = numpy_support.vtk_to_numpy(scalars).reshape(layer_geometry.shape_kji)
    if not np.any(offset) and tuple(layer_geometry.shape_kji) == tuple(geometry.shape_kji):
        voxels.flags.writeable = False
        return voxels
    pasted = np.zeros(geometry.shape_kji, dtype=voxels.dtype)
    pasted[tuple(slice(int(a), int(a) + n) for a, n in zip(offset, layer_geometry.shape_kji))] = voxels
    return pasted


def _segment_from_vtk(segmentation, segment_id: str) -> Segment:
    segment = segmentation.GetSegment(segment_id)
    return Segment(segment_id, segment.GetName(), segmentation.GetLayerIndex(segment_id), segment.GetLabelValue(),
                   _segment_tags(segment), file_fields=_terminology_fields(segment))


def _terminology_fields(segment) -> dict:
    """The segment's terminology (its coded category and type), as the file reader holds it: roles use it."""
    value = vtk.reference("")
    if not segment.GetTag(TERMINOLOGY_TAG, value):
        return {}
    entry = terminology_from_entry(str(value))
    return {"terminology": entry} if entry else {}


def _empty_label_volume(segmentation_node, segmentation, segment_ids: list[str], reference_volume_node,
                        warnings: list[str]) -> LabelVolume:
    """No voxels anywhere: one empty layer, on the CT's grid when known, so measuring gives TTV 0."""
    if reference_volume_node is not None:
        geometry = geometry_of_volume_node(reference_volume_node)
    else:
        geometry = Geometry(np.eye(4), (1, 1, 1))
    segments = [Segment(segment_id, segmentation.GetSegment(segment_id).GetName(), 0,
                        segmentation.GetSegment(segment_id).GetLabelValue(),
                        _segment_tags(segmentation.GetSegment(segment_id))) for segment_id in segment_ids]
    return LabelVolume([np.zeros(geometry.shape_kji, dtype=np.uint8)], geometry, segments,
                       segmentation_node.GetName() or "segmentation", warnings)


def _string_array(values: Sequence[str]) -> vtk.vtkStringArray:
    array = vtk.vtkStringArray()
    for value in values:
        array.InsertNextValue(value)
    return array


def time_point_from_nodes(segmentation_node, volume_node=None, read_voxels: bool = True
                          ) -> tuple[LabelVolume, ImageVolume | None]:
    """A time point as core types: the segmentation (checked against its CT when given) and the CT voxels.

    ``read_voxels=False`` only checks the grids (measuring needs no CT voxels; registration does).
    """
    if segmentation_node is None:
        raise InputError("No segmentation selected.")
    volume = label_volume_from_segmentation_node(segmentation_node, volume_node)
    if volume_node is None:
        return volume, None
    geometry = geometry_of_volume_node(volume_node)
    if volume.segments and volume.geometry.shape_kji != (1, 1, 1):
        volume.warnings.extend(reference_grid_warnings(volume.geometry, geometry, f"Segmentation '{volume.source}'",
                                                       f"volume '{volume_node.GetName()}'"))
    return volume, image_volume_from_node(volume_node) if read_voxels else None


def measure_segmentation_node(segmentation_node, reference_volume_node=None, exclude: Sequence[str] = (),
                              liver: Sequence[str] = (), keep_labels: bool = False,
                              lesion: Sequence[str] = ()) -> Measurement:
    """Measure a segmentation node (any source representation); check it against its CT when given."""
    volume, _ = time_point_from_nodes(segmentation_node, reference_volume_node, read_voxels=False)
    require_patterns_match([volume], lesion, "Lesion segment")
    return measure(volume, exclude=exclude, liver=liver, keep_labels=keep_labels, lesion=lesion)


def oriented_image_from_array(voxels: np.ndarray, geometry: Geometry):
    """vtkOrientedImageData holding ``voxels`` (a copy) on ``geometry``."""
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(*geometry.shape_ijk)
    image.SetImageToWorldMatrix(numpy_to_matrix(geometry.ijk_to_ras))
    contiguous = np.ascontiguousarray(voxels)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(contiguous.ravel(), deep=True,
                                                               array_type=numpy_support.get_vtk_array_type(
                                                                   contiguous.dtype)))
    return image


def add_segment_from_mask(segmentation_node, mask_kji: np.ndarray, geometry: Geometry, name: str,
                          tags: dict[str, str] | None = None, color: Sequence[float] | None = None) -> str:
    """Add one segment from a boolean mask; other segments are untouched. Returns the new segment ID."""
    register_segmentation_converters()
    if not np.any(mask_kji):
        raise InputError(f"Segment '{name}' would be empty; nothing was added.")
    image = oriented_image_from_array(mask_kji.astype(np.uint8), geometry)
    segment_id = segmentation_node.AddSegmentFromBinaryLabelmapRepresentation(image, name, list(color or (1, 0, 0)))
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    for key, value in (tags or {}).items():
        segment.SetTag(key, value)
    return segment_id


def segmentation_node_from_label_volume(volume: LabelVolume, scene, name: str = "Segmentation"):
    """New segmentation node in ``scene`` holding every segment of ``volume`` (names, tags kept)."""
    register_segmentation_converters()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.GetSegmentation().SetSourceRepresentationName(BINARY_LABELMAP)
    for segment in volume.segments:
        mask = volume.layers[segment.layer] == segment.label_value
        image = oriented_image_from_array(mask.astype(np.uint8), volume.geometry)
        segment_id = node.AddSegmentFromBinaryLabelmapRepresentation(image, segment.name, [1.0, 0.0, 0.0],
                                                                     segment.segment_id)
        for key, value in segment.tags.items():
            node.GetSegmentation().GetSegment(segment_id).SetTag(key, value)
    return node
