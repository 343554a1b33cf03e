"""Total tumour volume, lesions and diameters from a segmentation (DESIGN.md "Definitions").

TTV is the voxel count of the union of lesion segments times the voxel volume, so overlapping segments
count once. Lesions are 26-connected components of that union. The work is done on the flat indices of
labelled voxels and on the bounding box of the lesions, so a whole-abdomen grid costs little more than
one pass over its voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..formats.io import ImageVolume
from ..formats.segments import (
    LESION_OPTION_REASON,
    ROLE_LESION,
    ROLE_LIVER,
    VERIFIED_TAG,
    LabelVolume,
    Segment,
    with_roles,
)
from ..geometry import Geometry, spacing_warnings
from ..measure.components import connected_components
from ..measure.diameters import lesion_diameters_mm
from ..measure.role_checks import ORGAN_SIZED_ML, apply_label_map_convention, check_lesion


@dataclass
class LesionMeasurement:
    """One lesion (26-connected component of the lesion union); ``lesion_id`` 1 is the largest."""

    lesion_id: int
    voxel_count: int
    volume_ml: float
    max_diameter_mm: float
    longest_axial_diameter_mm: float
    centroid_ras: tuple[float, float, float]
    segments: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SegmentMeasurement:
    """One segment's own volume (overlaps with other segments included) and role."""

    segment_id: str
    name: str
    role: str
    voxel_count: int
    volume_ml: float
    verified: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LesionLabels:
    """Lesion ids (1 = largest lesion) on the bounding box of all lesions, for matching and display."""

    labels: np.ndarray
    start_kji: tuple[int, int, int]
    geometry: Geometry

    def full(self) -> np.ndarray:
        """The label array on the whole grid."""
        full = np.zeros(self.geometry.shape_kji, dtype=self.labels.dtype)
        stop = [start + size for start, size in zip(self.start_kji, self.labels.shape)]
        full[tuple(slice(a, b) for a, b in zip(self.start_kji, stop))] = self.labels
        return full


@dataclass
class LiverMask:
    """The union of the liver segments on its bounding box: what registering the liver masks needs."""

    mask: np.ndarray  # bool, (k, j, i)
    start_kji: tuple[int, int, int]
    geometry: Geometry  # the whole grid

    def as_image(self, source: str = "") -> ImageVolume:
        """The mask as an image on the grid cropped to its box (its geometry says where it lies)."""
        return ImageVolume(self.mask, self.geometry.cropped(self.start_kji, self.mask.shape), source)


@dataclass
class Measurement:
    """Everything "Compute TTV" reports for one segmentation."""

    ttv_ml: float
    lesion_count: int
    voxel_volume_ml: float
    liver_volume_ml: float | None
    largest_diameter_mm: float | None
    largest_axial_diameter_mm: float | None
    lesions: list[LesionMeasurement]
    segments: list[SegmentMeasurement]
    spacing_mm: tuple[float, float, float]
    slice_thickness_mm: float
    axial_axis: str
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    lesion_labels: LesionLabels | None = field(default=None, repr=False, compare=False)
    liver_mask: LiverMask | None = field(default=None, repr=False, compare=False)

    @property
    def unverified_lesion_segments(self) -> list[str]:
        return [segment.name for segment in self.segments if segment.role == ROLE_LESION and not segment.verified]

    def to_dict(self) -> dict:
        """JSON-ready document (the CLI's ``measure --json`` output)."""
        kept = replace(self, lesion_labels=None, liver_mask=None)  # voxel arrays are not copied, nor written
        document = {key: value for key, value in asdict(kept).items() if key not in ("lesion_labels", "liver_mask")}
        document["lesions"] = [lesion.to_dict() for lesion in self.lesions]
        document["segments"] = [segment.to_dict() for segment in self.segments]
        return document


Box = tuple[slice, slice, slice]


def nonzero_box(array: np.ndarray) -> Box | None:
    """Bounding box of the non-zero voxels in two passes: the occupied slices, then their maximum projection.

    Reductions over the last axes of a whole volume are the costly ones, so the in-slice extent comes from
    the element-wise maximum of the occupied slices (a fast, vectorised pass) instead.
    """
    slices = np.flatnonzero(array.max(axis=(1, 2))) if array.size else np.empty(0, dtype=int)
    if slices.size == 0:
        return None
    first, last = int(slices[0]), int(slices[-1]) + 1
    projection = array[first:last].max(axis=0)
    rows = np.flatnonzero(projection.max(axis=1))
    columns = np.flatnonzero(projection.max(axis=0))
    return slice(first, last), slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)


def union_box(boxes: Sequence[Box | None]) -> Box | None:
    present = [box for box in boxes if box is not None]
    if not present:
        return None
    return tuple(slice(min(box[axis].start for box in present), max(box[axis].stop for box in present))
                 for axis in range(3))


def select_labels(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Boolean mask of the voxels whose label is one of ``values``."""
    values = sorted(set(values))
    if len(values) == 1:
        return labels == values[0]
    largest = max(values[-1], int(labels.max(initial=0)))
    if largest <= 65535:
        lookup = np.zeros(largest + 1, dtype=bool)
        lookup[[value for value in values if value >= 0]] = True
        return lookup[labels]
    return np.isin(labels, values)


@dataclass
class _LayerScan:
    """Where a layer has labels (bounding box) and how many voxels each label value has."""

    box: Box | None
    counts: dict[int, int]

    @classmethod
    def of(cls, layer: np.ndarray) -> _LayerScan:
        box = nonzero_box(layer)
        if box is None:
            return cls(None, {})
        crop = layer[box]
        if crop.dtype == bool or (crop.max() == 1 and (crop.dtype.kind == "u" or crop.min() >= 0)):
            return cls(box, {1: int(np.count_nonzero(crop))})  # one label (e.g. a liver layer): one pass
        labelled = crop[crop != 0]
        if labelled.max() <= 65535:
            counts = np.bincount(labelled)
            values = np.flatnonzero(counts)
            counts = counts[values]
        else:
            values, counts = np.unique(labelled, return_counts=True)
        return cls(box, {int(value): int(count) for value, count in zip(values, counts)})


def checked_roles(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = (),
                  lesion: Sequence[str] = ()) -> tuple[LabelVolume, list[str]]:
    """:func:`.segments.with_roles` plus the label-map conventions recognised from the voxels (role_checks)."""
    volume, warnings = with_roles(volume, exclude=exclude, liver=liver, lesion=lesion)
    return volume, warnings + apply_label_map_convention(volume)


def total_tumor_volume_ml(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = (),
                          lesion: Sequence[str] = ()) -> float:
    """TTV alone: voxel count of the union of lesion segments times the voxel volume.

    Organ-sized lesions are refused as in :func:`measure`; the enclosure check needs the lesions' shapes
    and is :func:`measure`'s (use it when the roles of the segments are not known).
    """
    volume, _ = checked_roles(volume, exclude=exclude, liver=liver, lesion=lesion)
    lesion_segments = volume.segments_with_role(ROLE_LESION)
    lesion_layers = sorted({segment.layer for segment in lesion_segments})
    if not lesion_segments:
        voxel_count = 0
    elif len(lesion_layers) == 1:
        layer = volume.layers[lesion_layers[0]]
        lesion_values = {segment.label_value for segment in lesion_segments}
        if set(range(1, int(layer.max()) + 1)) <= lesion_values:
            voxel_count = int(np.count_nonzero(layer))  # every label is a lesion: the floor, one pass
        else:
            voxel_count = int(np.count_nonzero(np.isin(layer, sorted(lesion_values))))
    else:
        voxel_count = int(np.count_nonzero(volume.mask(lesion_segments)))
    unconfirmed = [segment for segment in lesion_segments if segment.role_reason != LESION_OPTION_REASON]
    if unconfirmed and voxel_count * volume.geometry.voxel_volume_ml > ORGAN_SIZED_ML:  # find organ-sized lesions
        scans = [_LayerScan.of(layer) for layer in volume.layers]
        _measure_lesions(volume, *_union_mask(volume, lesion_segments, scans), [], sizes_only=True)
    return voxel_count * volume.geometry.voxel_volume_ml


def liver_union(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = (),
                lesion: Sequence[str] = ()) -> LiverMask | None:
    """The union of the liver segments on its bounding box; None without any (or when they are empty)."""
    volume, _ = checked_roles(volume, exclude=exclude, liver=liver, lesion=lesion)
    segments = volume.segments_with_role(ROLE_LIVER)
    liver_layers = {segment.layer for segment in segments}
    scans = [_LayerScan.of(layer) if index in liver_layers else _LayerScan(None, {})
             for index, layer in enumerate(volume.layers)]
    box, mask = _union_mask(volume, segments, scans)
    return None if mask is None else LiverMask(mask, tuple(part.start for part in box), volume.geometry)


def measure(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = (),
            keep_labels: bool = False, keep_liver_mask: bool = False, lesion: Sequence[str] = ()) -> Measurement:
    """Measure TTV, lesions, diameters, segment and liver volumes of ``volume`` (which is not changed).

    ``exclude``/``liver`` name segments (by name, ID or label value) to leave out or to treat as liver;
    ``lesion`` (names or wildcard patterns) names the lesions, leaving every other segment out. An
    organ-sized or enclosing lesion nobody named is refused (``role_checks``).
    ``keep_labels`` keeps the lesion label array (for lesion matching and display), ``keep_liver_mask`` the
    liver mask (for registration).
    """
    volume, warnings = checked_roles(volume, exclude=exclude, liver=liver, lesion=lesion)
    warnings = list(volume.warnings) + warnings + spacing_warnings(volume.geometry)
    geometry = volume.geometry
    voxel_ml = geometry.voxel_volume_ml
    scans = [_LayerScan.of(layer) for layer in volume.layers]

    segment_rows = _segment_measurements(volume.segments, scans, voxel_ml, warnings)
    _warn_unassigned_labels(volume, scans, warnings)
    liver_segments = volume.segments_with_role(ROLE_LIVER)
    liver_ml = None
    kept_liver = None
    if liver_segments and not keep_liver_mask and len({segment.layer for segment in liver_segments}) == 1:
        # Segments of one layer never overlap: the liver's voxels are its label counts, no mask needed.
        counts = scans[liver_segments[0].layer].counts
        liver_ml = sum(counts.get(value, 0) for value in {segment.label_value for segment in liver_segments}) \
            * voxel_ml
    elif liver_segments:
        liver_box, liver_mask = _union_mask(volume, liver_segments, scans)
        liver_ml = int(np.count_nonzero(liver_mask)) * voxel_ml if liver_mask is not None else 0.0
        if keep_liver_mask and liver_mask is not None:
            kept_liver = LiverMask(liver_mask, tuple(part.start for part in liver_box), geometry)

    lesion_segments = volume.segments_with_role(ROLE_LESION)
    unverified = [segment.name for segment in lesion_segments if segment.tags.get(VERIFIED_TAG, "").strip() == "0"]
    if unverified:
        warnings.append(f"{len(unverified)} lesion segment(s) not verified yet: {', '.join(unverified)}.")
    lesion_box, lesion_mask = _union_mask(volume, lesion_segments, scans)
    if not lesion_segments:
        warnings.append(f"No lesion segments in {volume.source or 'the segmentation'}: TTV is 0 mL. Lesion "
                        f"segments are the segments named with --lesion-segment, else all segments except the "
                        f"liver, anatomy and excluded ones.")
    elif lesion_mask is None:
        warnings.append("All lesion segments are empty: TTV is 0 mL.")

    lesions, labels = _measure_lesions(volume, lesion_box, lesion_mask, warnings)
    axial_diameters = [lesion.longest_axial_diameter_mm for lesion in lesions]
    return Measurement(
        ttv_ml=sum(lesion.voxel_count for lesion in lesions) * voxel_ml,
        lesion_count=len(lesions),
        voxel_volume_ml=voxel_ml,
        liver_volume_ml=liver_ml,
        largest_diameter_mm=max((lesion.max_diameter_mm for lesion in lesions), default=None),
        largest_axial_diameter_mm=max(axial_diameters, default=None),
        lesions=lesions,
        segments=segment_rows,
        spacing_mm=tuple(float(s) for s in geometry.spacing),
        slice_thickness_mm=geometry.slice_thickness_mm,
        axial_axis="ijk"[geometry.axial_axis_ijk],
        source=volume.source,
        warnings=warnings,
        lesion_labels=labels if keep_labels else None,
        liver_mask=kept_liver,
    )


def _segment_measurements(segments: list[Segment], scans: list[_LayerScan], voxel_ml: float,
                          warnings: list[str]) -> list[SegmentMeasurement]:
    rows = []
    for segment in segments:
        voxel_count = scans[segment.layer].counts.get(segment.label_value, 0)
        if voxel_count == 0:
            warnings.append(f"Segment '{segment.name}' is empty.")
        rows.append(SegmentMeasurement(segment.segment_id, segment.name, segment.role, voxel_count,
                                       voxel_count * voxel_ml, segment.verified))
    return rows


def _warn_unassigned_labels(volume: LabelVolume, scans: list[_LayerScan], warnings: list[str]) -> None:
    """Voxels whose label belongs to no segment are ignored; say so, since it hints at a damaged file."""
    for index, scan in enumerate(scans):
        known = {segment.label_value for segment in volume.segments if segment.layer == index}
        stray = sum(count for value, count in scan.counts.items() if value not in known)
        if stray:
            warnings.append(f"{stray} voxels in label layer {index} carry values that belong to no segment; "
                            f"they were ignored.")


def _union_mask(volume: LabelVolume, segments: list[Segment], scans: list[_LayerScan]
                ) -> tuple[Box | None, np.ndarray | None]:
    """Union of ``segments`` as a boolean mask on its own bounding box (None when empty)."""
    layer_indices = sorted({segment.layer for segment in segments})
    box = union_box([scans[index].box for index in layer_indices])
    if box is None:
        return None, None
    selections = []
    whole_layers = True  # every labelled voxel of every layer is taken: the union of their boxes is tight
    for index in layer_indices:
        values = {segment.label_value for segment in segments if segment.layer == index}
        present = set(scans[index].counts)
        whole_layers &= present <= values
        if present & values:
            crop = volume.layers[index][box]
            selections.append(crop != 0 if present <= values else select_labels(crop, sorted(values)))
    if not selections:
        return None, None
    mask = selections[0] if len(selections) == 1 else np.logical_or.reduce(selections)
    if whole_layers:
        return box, mask
    tight = nonzero_box(mask)
    if tight is None:
        return None, None
    return tuple(slice(outer.start + inner.start, outer.start + inner.stop) for outer, inner in zip(box, tight)), \
        mask[tight]


def _measure_lesions(volume: LabelVolume, box: Box | None, union: np.ndarray | None, warnings: list[str],
                     sizes_only: bool = False) -> tuple[list[LesionMeasurement], LesionLabels | None]:
    """Split the lesion union into 26-connected lesions, check that none is an organ (role_checks) and
    measure each, largest first (``sizes_only``: check the organ-sized ones only, measure nothing)."""
    if box is None or union is None:
        return [], None
    geometry = volume.geometry
    start = np.array([part.start for part in box])
    lesion_segments = volume.segments_with_role(ROLE_LESION)
    unsorted = []
    for component_box, lesion_mask in connected_components(union):
        box_start = start + np.array([part.start for part in component_box])
        in_grid = tuple(slice(int(first), int(first) + size) for first, size in zip(box_start, lesion_mask.shape))
        if sizes_only and np.count_nonzero(lesion_mask) * geometry.voxel_volume_ml <= ORGAN_SIZED_ML:
            continue
        segments = _segments_in(volume, lesion_segments, in_grid, lesion_mask)
        check_lesion(volume, segments, in_grid, lesion_mask, warnings)
        if sizes_only:
            continue
        names = [segment.name for segment in segments]
        centroid_kji = _centroid_kji(lesion_mask) + box_start
        max_diameter, axial_diameter = lesion_diameters_mm(lesion_mask, box_start, geometry)
        unsorted.append((int(np.count_nonzero(lesion_mask)), centroid_kji, max_diameter, axial_diameter, names,
                         component_box, lesion_mask))
    # Largest first; ties broken by position so the order never depends on chance.
    unsorted.sort(key=lambda row: (-row[0], *row[1]))
    labels = np.zeros(union.shape, dtype=np.uint16 if len(unsorted) < 65535 else np.int32)
    lesions = []
    for rank, (voxel_count, centroid_kji, max_diameter, axial_diameter, names, component_box, lesion_mask) \
            in enumerate(unsorted, 1):
        labels[component_box][lesion_mask] = rank
        centroid = geometry.ras_from_kji(centroid_kji)[0]
        lesions.append(LesionMeasurement(
            lesion_id=rank, voxel_count=voxel_count, volume_ml=voxel_count * geometry.voxel_volume_ml,
            max_diameter_mm=max_diameter, longest_axial_diameter_mm=axial_diameter,
            centroid_ras=tuple(float(v) for v in centroid), segments=names))
    return lesions, LesionLabels(labels, tuple(int(v) for v in start), geometry)


def _centroid_kji(mask: np.ndarray) -> np.ndarray:
    """Mean (k, j, i) index of the set voxels, from the mask's marginal sums (no list of voxel positions)."""
    rows = mask.sum(axis=2, dtype=np.int64)  # (k, j)
    columns = mask.sum(axis=(0, 1), dtype=np.int64)  # (i,)
    total = rows.sum()
    return np.array([np.dot(rows.sum(axis=1), np.arange(mask.shape[0])), np.dot(rows.sum(axis=0),
                     np.arange(mask.shape[1])), np.dot(columns, np.arange(mask.shape[2]))], dtype=float) / total


def _segments_in(volume: LabelVolume, lesion_segments: list[Segment], region: Box, lesion_mask: np.ndarray
                 ) -> list[Segment]:
    """The lesion segments that make up one lesion (a lesion may span several segments).

    ``region`` is the lesion's box on the grid and ``lesion_mask`` its voxels there; names come layer by
    layer, by label value.
    """
    found = []
    for layer_index in sorted({segment.layer for segment in lesion_segments}):
        values = volume.layers[layer_index][region][lesion_mask]
        present = np.flatnonzero(np.bincount(values)) if values.max(initial=0) < 65536 else np.unique(values)
        for value in present:
            found += [segment for segment in lesion_segments
                      if segment.layer == layer_index and segment.label_value == value]
    return found


@dataclass
class SegmentSize:
    """One lesion segment on its own (all its islands together): what the review table lists."""

    segment_id: str
    name: str
    volume_ml: float
    max_diameter_mm: float
    longest_axial_diameter_mm: float
    centroid_ras: tuple[float, float, float] | None
    verified: bool


def lesion_segment_sizes(volume: LabelVolume, exclude: Sequence[str] = (), liver: Sequence[str] = (),
                         lesion: Sequence[str] = ()) -> list[SegmentSize]:
    """Volume, diameters and centroid of each lesion segment, in segment order (empty ones included)."""
    volume, _ = checked_roles(volume, exclude=exclude, liver=liver, lesion=lesion)
    scans = [_LayerScan.of(layer) for layer in volume.layers]
    sizes = []
    for segment in volume.segments_with_role(ROLE_LESION):
        box = scans[segment.layer].box
        crop = volume.layers[segment.layer][box] == segment.label_value if box is not None else None
        inner = nonzero_box(crop) if crop is not None else None
        if inner is None:
            sizes.append(SegmentSize(segment.segment_id, segment.name, 0.0, 0.0, 0.0, None, segment.verified))
            continue
        mask = crop[inner]
        start = np.array([outer.start + part.start for outer, part in zip(box, inner)])
        max_diameter, axial_diameter = lesion_diameters_mm(mask, start, volume.geometry)
        centroid = volume.geometry.ras_from_kji(np.argwhere(mask).mean(axis=0) + start)[0]
        sizes.append(SegmentSize(segment.segment_id, segment.name, int(np.count_nonzero(mask)) *
                                 volume.geometry.voxel_volume_ml, max_diameter, axial_diameter,
                                 tuple(float(v) for v in centroid), segment.verified))
    return sizes
