"""Adding lesions to a segmentation without losing what is there: the review workflow outside Slicer.

A click becomes a new segment ``Lesion N`` tagged as an unverified lesion. Segmentations and CTs often
share one voxel lattice with different extents (Slicer stores segments cropped), so everything is first
placed on the CT's grid; a segmentation on another lattice is refused rather than resampled, because
resampling would change voxel counts the user has already verified.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from ..formats.io import ImageVolume, label_type_for
from ..formats.segments import ROLE_LESION, ROLE_LIVER, ROLE_TAG, VERIFIED_TAG, LabelVolume, Segment, with_roles
from ..geometry import Geometry, grid_offset_kji, same_grid
from .lesion import (
    DEFAULT_SETTINGS,
    LesionSegmentationResult,
    SegmentationSettings,
    segment_lesion,
)

LESION_NAME = re.compile(r"^Lesion (\d+)$")


def next_lesion_name(names: Sequence[str]) -> str:
    """``Lesion N`` with N one more than the highest number in use (gaps after deletions stay gaps)."""
    numbers = [int(match.group(1)) for match in (LESION_NAME.match(name) for name in names) if match]
    return f"Lesion {max(numbers, default=0) + 1}"


def lesion_tags(verified: bool = False) -> dict[str, str]:
    return {ROLE_TAG: ROLE_LESION, VERIFIED_TAG: "1" if verified else "0"}


def on_grid(volume: LabelVolume, geometry: Geometry) -> LabelVolume:
    """The same segments on ``geometry`` (a grid of the same lattice); voxels outside it are an error."""
    if same_grid(volume.geometry, geometry):
        return volume
    offset = grid_offset_kji(volume.geometry, geometry)
    if offset is None:
        raise InputError(f"The segmentation '{volume.source}' is on another voxel grid than the CT "
                         f"(segmentation: {volume.geometry.describe()}; CT: {geometry.describe()}). Lesions can only "
                         f"be added on the CT's own grid; export the segmentation with the CT as reference geometry.")
    layers = []
    for layer in volume.layers:
        placed = np.zeros(geometry.shape_kji, dtype=layer.dtype)
        source, target = _overlap_slices(offset, layer.shape, geometry.shape_kji)
        placed[target] = layer[source]
        if np.count_nonzero(placed) != np.count_nonzero(layer):
            raise InputError(f"Part of the segmentation '{volume.source}' lies outside the CT; it cannot be edited "
                             f"on the CT's grid without losing voxels.")
        layers.append(placed)
    return replace(volume, layers=layers, geometry=geometry)


def _overlap_slices(offset: np.ndarray, shape: Sequence[int], target_shape: Sequence[int]
                    ) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    source, target = [], []
    for start, size, limit in zip(offset, shape, target_shape):
        low, high = max(start, 0), min(start + size, limit)
        high = max(high, low)
        source.append(slice(low - start, high - start))
        target.append(slice(low, high))
    return tuple(source), tuple(target)


def masks_by_role(volume: LabelVolume) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(union of lesion segments, union of liver segments) on the volume's grid; None when a role is absent."""
    volume, _ = with_roles(volume)
    lesions = volume.segments_with_role(ROLE_LESION)
    livers = volume.segments_with_role(ROLE_LIVER)
    return (volume.mask(lesions) if lesions else None), (volume.mask(livers) if livers else None)


def liver_mask_from(volume: LabelVolume) -> tuple[np.ndarray, str]:
    """The liver of a liver segmentation: its liver-named segments, else all its segments (with a note why)."""
    lesions_or_other, liver = masks_by_role(volume)
    if liver is not None and liver.any():
        return liver, ""
    if lesions_or_other is None or not lesions_or_other.any():
        raise InputError(f"The liver segmentation '{volume.source}' is empty.")
    return lesions_or_other, (f"'{volume.source}' has no liver-named segment; all its segments were taken as the "
                              f"liver.")


def add_segment(volume: LabelVolume, mask_kji: np.ndarray, name: str, tags: dict[str, str]) -> tuple[LabelVolume, str]:
    """A copy of ``volume`` with one more segment (on the same grid); returns it and the new segment's ID.

    The segment goes into the first layer where it overlaps nothing, else into a new layer, as Slicer
    stores overlapping segments. Existing segments keep every voxel.
    """
    if mask_kji.shape != volume.geometry.shape_kji:
        raise InputError(f"The new segment has shape {mask_kji.shape}, the segmentation {volume.geometry.shape_kji}.")
    if not mask_kji.any():
        raise InputError(f"Segment '{name}' would be empty; nothing was added.")
    layers = [layer.copy() for layer in volume.layers]
    layer_index = next((index for index, layer in enumerate(layers) if not np.any(layer[mask_kji])), len(layers))
    if layer_index == len(layers):
        layers.append(np.zeros(volume.geometry.shape_kji, dtype=np.uint8))
    used = [segment.label_value for segment in volume.segments if segment.layer == layer_index]
    label_value = max([*used, int(layers[layer_index].max(initial=0))], default=0) + 1
    if not np.can_cast(np.min_scalar_type(label_value), layers[layer_index].dtype):
        layers[layer_index] = layers[layer_index].astype(np.promote_types(layers[layer_index].dtype,
                                                                          label_type_for(label_value)))
    layers[layer_index][mask_kji] = label_value
    segment_id = _unique_id(name, [segment.segment_id for segment in volume.segments])
    segment = Segment(segment_id, name, layer_index, label_value, dict(tags))
    return replace(volume, layers=layers, segments=[*volume.segments, segment]), segment_id


def _unique_id(name: str, existing: Sequence[str]) -> str:
    base = re.sub(r"\W+", "_", name).strip("_") or "Segment"
    candidate, number = base, 1
    while candidate in existing:
        number += 1
        candidate = f"{base}_{number}"
    return candidate


def empty_segmentation(image: ImageVolume) -> LabelVolume:
    """A segmentation with no segments on the CT's grid, to add lesions to."""
    return LabelVolume([np.zeros(image.geometry.shape_kji, dtype=np.uint8)], image.geometry, [], "new segmentation")


@dataclass
class AddedLesion:
    """What a click produced: the updated segmentation, the new segment and the segmentation diagnostics."""

    segmentation: LabelVolume
    segment_id: str
    name: str
    result: LesionSegmentationResult


def add_lesion_at_points(image: ImageVolume, segmentation: LabelVolume | None, points_ras: Sequence[Sequence[float]],
                         liver_mask_kji: np.ndarray | None = None,
                         settings: SegmentationSettings = DEFAULT_SETTINGS) -> AddedLesion:
    """Segment the lesion under the point(s) and add it as ``Lesion N`` to (a copy of) the segmentation.

    Existing lesions bound the new one (it cannot grow into them); the liver mask, given or taken from the
    segmentation's liver segments, bounds it too. Nothing is added when segmentation fails.
    """
    current = empty_segmentation(image) if segmentation is None else on_grid(segmentation, image.geometry)
    lesions, liver = masks_by_role(current)
    result = segment_lesion(image.voxels, image.geometry, points_ras,
                            liver_mask_kji=liver if liver_mask_kji is None else liver_mask_kji,
                            existing_lesions_kji=lesions, settings=settings)
    name = next_lesion_name([segment.name for segment in current.segments])
    updated, segment_id = add_segment(current, result.full_mask(), name, lesion_tags(verified=False))
    return AddedLesion(updated, segment_id, name, result)
