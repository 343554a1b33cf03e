"""Which lesions a report shows, and the axial CT slices through them (numpy and scipy only, no plotting).

Key lesions are the RECIST 1.1 target lesions and every new or disappeared lesion (a disappeared target is
shown once, as a target). Each is shown at both time points: on the baseline at its own slice, on the
follow-up at the position the registration maps it to (and the other way round for a new lesion), so a
reader sees the same place in the liver twice. Kept free of matplotlib so that the Slicer panel can ask which
lesions to capture (:func:`key_lesions`) and take the pictures with its own slice views.

Slices are sampled on a true axial plane (patient's right on the image's left, anterior up: the radiological
convention) through the centre of a voxel of the segmentation, one pixel per in-plane voxel, so on usual
axis-aligned CTs every pixel is one voxel of the segmentation and the contour shows exactly what was counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..formats.io import ImageVolume
from ..geometry import Geometry, apply_affine
from ..measure.volumetry import LesionLabels, Measurement
from ..response.comparison import Comparison
from ..response.recist import TrackedLesion, assess

TARGET = "target"
NEW = "new"
DISAPPEARED = "disappeared"
KINDS = (TARGET, NEW, DISAPPEARED)

MIN_FIELD_MM = 50.0
MAX_FIELD_MM = 220.0
FIELD_PER_DIAMETER = 3.0  # the field of view is three lesion diameters wide: the lesion and its neighbourhood
AIR_HU = -1000.0
# Sampling directions of the axial plane in RAS: image columns run to the patient's left, rows to posterior.
COLUMN_DIRECTION_RAS = np.array([-1.0, 0.0, 0.0])
ROW_DIRECTION_RAS = np.array([0.0, -1.0, 0.0])


@dataclass(frozen=True)
class KeyLesion:
    """A lesion the report shows, with where to look at each time point (RAS mm; None: that time point is
    not available, e.g. a one-time-point report)."""

    kind: str
    title: str  # e.g. "Target 1: baseline lesion 2 -> follow-up lesion 3"
    baseline_id: int | None
    followup_ids: tuple[int, ...]
    baseline_point_ras: tuple[float, float, float] | None
    followup_point_ras: tuple[float, float, float] | None
    field_mm: float


@dataclass
class SlicePanel:
    """One time point of a key image: CT (HU; None without a CT), masks and the pixel size."""

    ct_hu: np.ndarray | None
    lesion_mask: np.ndarray  # the key lesion(s) on this slice
    other_lesions_mask: np.ndarray
    liver_mask: np.ndarray | None
    pixel_mm: float
    slice_s_mm: float
    caption: str


def key_lesions(result: Measurement | Comparison) -> list[KeyLesion]:
    """Targets, then new lesions, then disappeared non-targets, in that order (ids as in the measurements)."""
    if isinstance(result, Measurement):
        return _baseline_targets(result)
    comparison = result
    matching = comparison.lesion_matching
    if comparison.recist is None or matching is None:
        return []
    to_followup = np.linalg.inv(matching.followup_to_baseline_ras)
    baseline, followup = comparison.baseline, comparison.followup
    keys = []
    for number, target in enumerate(comparison.recist.target_lesions, start=1):
        lesion = baseline.lesions[target.lesion_id - 1]
        centre = _display_centre(baseline, target.lesion_id)
        after = ", ".join(str(n) for n in target.followup_lesion_ids) or "none (disappeared)"
        field = _field_mm([lesion.max_diameter_mm] + [followup.lesions[n - 1].max_diameter_mm
                                                      for n in target.followup_lesion_ids])
        keys.append(KeyLesion(TARGET, f"Target {number}: baseline lesion {target.lesion_id}, follow-up lesion "
                                      f"{after}", target.lesion_id, tuple(target.followup_lesion_ids), centre,
                              _mapped(to_followup, centre), field))
    for followup_id in matching.new_lesion_ids:
        centre = _display_centre(followup, followup_id)
        keys.append(KeyLesion(NEW, f"New: follow-up lesion {followup_id}", None, (followup_id,),
                              _mapped(matching.followup_to_baseline_ras, centre), centre,
                              _field_mm([followup.lesions[followup_id - 1].max_diameter_mm])))
    targets = {target.lesion_id for target in comparison.recist.target_lesions}
    for baseline_id in matching.disappeared_lesion_ids:
        if baseline_id in targets:
            continue
        centre = _display_centre(baseline, baseline_id)
        keys.append(KeyLesion(DISAPPEARED, f"Disappeared: baseline lesion {baseline_id}", baseline_id, (),
                              centre, _mapped(to_followup, centre),
                              _field_mm([baseline.lesions[baseline_id - 1].max_diameter_mm])))
    return keys


def _baseline_targets(measurement: Measurement) -> list[KeyLesion]:
    """The lesions RECIST 1.1 would choose as targets on this scan (same rules as a comparison)."""
    tracked = [TrackedLesion(lesion.lesion_id, lesion.longest_axial_diameter_mm, lesion.longest_axial_diameter_mm)
               for lesion in measurement.lesions]
    assessment = assess(tracked, (), measurement.slice_thickness_mm)
    keys = []
    for number, target in enumerate(assessment.target_lesions, start=1):
        lesion = measurement.lesions[target.lesion_id - 1]
        keys.append(KeyLesion(TARGET, f"Target {number}: lesion {target.lesion_id}", target.lesion_id, (),
                              _display_centre(measurement, target.lesion_id), None,
                              _field_mm([lesion.max_diameter_mm])))
    return keys


def _mapped(matrix: np.ndarray, point: tuple[float, float, float]) -> tuple[float, float, float]:
    return tuple(float(value) for value in apply_affine(matrix, np.asarray([point]))[0])


def _field_mm(diameters_mm: list[float]) -> float:
    return float(np.clip(FIELD_PER_DIAMETER * max(diameters_mm), MIN_FIELD_MM, MAX_FIELD_MM))


def _display_centre(measurement: Measurement, lesion_id: int) -> tuple[float, float, float]:
    """The centre of the lesion's largest axial cross-section (its centroid may lie outside a crescent)."""
    lesion = measurement.lesions[lesion_id - 1]
    labels = measurement.lesion_labels
    if labels is None:
        return tuple(float(v) for v in lesion.centroid_ras)
    axis = labels.geometry.axial_axis_kji
    mask = labels.labels == lesion_id
    areas = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    best = int(np.argmax(areas))
    index = [slice(None)] * 3
    index[axis] = best
    points = np.argwhere(mask[tuple(index)])
    kji = np.insert(points.mean(axis=0), axis, best) + np.asarray(labels.start_kji)
    return tuple(float(v) for v in labels.geometry.ras_from_kji(kji[np.newaxis])[0])


# --------------------------------------------------------------------------------------------------------
# Sampling a slice
# --------------------------------------------------------------------------------------------------------

def label_maps(measurement: Measurement, geometry: Geometry) -> LesionLabels:
    """The measurement's lesion label maps; an empty map on ``geometry`` when it has no lesion (e.g. a complete
    response). Refuses a measurement with lesions whose maps were not kept."""
    if measurement.lesion_labels is not None:
        return measurement.lesion_labels
    if measurement.lesion_count:
        raise InputError("The report's key images need the lesion label maps: compare or measure with "
                         "keep_labels=True.")
    return LesionLabels(np.zeros((1, 1, 1), dtype=np.uint16), (0, 0, 0), geometry)


def axial_slice(labels: LesionLabels, centre_ras: tuple[float, float, float], field_mm: float,
                lesion_ids: tuple[int, ...], image: ImageVolume | None = None, liver: ImageVolume | None = None,
                caption: str = "") -> SlicePanel:
    """The axial plane through ``centre_ras`` (moved to the nearest slice of the segmentation), ``field_mm``
    wide, with the CT (linear interpolation) and the lesion masks (nearest voxel) sampled on it."""
    geometry = labels.geometry
    pixel_mm = float(min(geometry.spacing[a] for a in range(3) if a != geometry.axial_axis_ijk))
    centre = _on_nearest_slice(labels, np.asarray(centre_ras, dtype=float))
    size = max(round(field_mm / pixel_mm), 16)
    offsets = (np.arange(size) - (size - 1) / 2.0) * pixel_mm
    rows, columns = np.meshgrid(offsets, offsets, indexing="ij")
    points = (centre + rows[..., np.newaxis] * ROW_DIRECTION_RAS + columns[..., np.newaxis] * COLUMN_DIRECTION_RAS)
    flat = points.reshape(-1, 3)
    lesion_labels = _sample_labels(labels, flat).reshape(size, size)
    wanted = np.isin(lesion_labels, np.asarray(lesion_ids, dtype=lesion_labels.dtype))
    ct = None if image is None else _sample_image(image, flat, order=1, outside=AIR_HU).reshape(size, size)
    liver_mask = None if liver is None else _sample_image(liver, flat, order=0, outside=0).reshape(size, size) > 0
    return SlicePanel(ct, wanted, (lesion_labels > 0) & ~wanted, liver_mask, pixel_mm, float(centre[2]), caption)


def _on_nearest_slice(labels: LesionLabels, centre_ras: np.ndarray) -> np.ndarray:
    """Move the point along the axial axis to the centre of the nearest slice of the grid."""
    geometry = labels.geometry
    kji = geometry.kji_from_ras(centre_ras[np.newaxis])[0]
    axis = geometry.axial_axis_kji
    kji[axis] = np.clip(np.round(kji[axis]), 0, geometry.shape_kji[axis] - 1)
    moved = geometry.ras_from_kji(kji[np.newaxis])[0]
    return np.array([centre_ras[0], centre_ras[1], moved[2]])


def _sample_labels(labels: LesionLabels, points_ras: np.ndarray) -> np.ndarray:
    kji = np.rint(labels.geometry.kji_from_ras(points_ras) - np.asarray(labels.start_kji)).astype(np.int64)
    inside = np.all((kji >= 0) & (kji < np.asarray(labels.labels.shape)), axis=1)
    values = np.zeros(len(points_ras), dtype=labels.labels.dtype)
    values[inside] = labels.labels[tuple(kji[inside].T)]
    return values


def _sample_image(image: ImageVolume, points_ras: np.ndarray, order: int, outside: float) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    kji = image.geometry.kji_from_ras(points_ras)
    shape = np.asarray(image.voxels.shape)
    low = np.clip(np.floor(kji.min(axis=0)).astype(int) - 1, 0, shape)
    high = np.clip(np.ceil(kji.max(axis=0)).astype(int) + 2, 0, shape)
    if np.any(high <= low):  # the plane misses the image
        return np.full(len(points_ras), outside, dtype=np.float32)
    block = image.voxels[tuple(slice(a, b) for a, b in zip(low, high))]  # only the voxels around the plane
    return map_coordinates(block.astype(np.float32), (kji - low).T, order=order, mode="constant", cval=outside)
