"""Which follow-up lesion is which baseline lesion: one-to-one matching, new, disappeared, merged, split.

Follow-up lesions are brought into the baseline frame with the registration's follow-up-to-baseline matrix
(:mod:`registration`; identity when the scans were not registered). Then, for every baseline/follow-up pair:

- **overlap**: the baseline lesion's voxels are looked up in the follow-up lesion label map (nearest
  neighbour after the transform), giving the intersection volume; the overlap coefficient is intersection /
  smaller of the two volumes, so a lesion that shrank inside its old outline still overlaps fully;
- **distance** between the baseline centroid and the transformed follow-up centroid.

A pair is admissible when the lesions overlap or their centroids are at most ``max_distance_mm`` apart; its
cost is (1 - overlap) + distance / ``max_distance_mm``. An optimal assignment
(``scipy.optimize.linear_sum_assignment``; inadmissible pairs cost so much that the most admissible pairs are
kept first) gives one-to-one pairs. A lesion left over after that which lies mostly (overlap coefficient >=
``min_group_overlap``) on a paired lesion of the other time point joins that pair's group:

- several follow-up lesions on one baseline lesion: **split** (RECIST 1.1: the fragments' longest diameters
  are added);
- several baseline lesions in one follow-up lesion: **merged** (RECIST 1.1: a truly coalesced lesion is
  measured as one; its diameter is recorded for one of the original lesions, the one with the largest
  baseline diameter, so a target if any of them is, and 0 mm for the others);
- lesions still left over are **new** (follow-up) or **disappeared** (baseline).

Eisenhauer EA, et al. Eur J Cancer 2009;45(2):228-247 (RECIST 1.1), "lesions that split or coalesce on
treatment". Without lesion label maps (``measure(..., keep_labels=True)``), matching falls back to centroid
distance alone and cannot see merges or splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..geometry import apply_affine
from ..measure.volumetry import LesionLabels, LesionMeasurement, Measurement
from ..response.recist import DISAPPEARED, MERGED, PRESENT, SPLIT, TrackedLesion

DEFAULT_MAX_DISTANCE_MM = 20.0
DEFAULT_MIN_GROUP_OVERLAP = 0.3
INADMISSIBLE_COST = 1.0e6
CHUNK_VOXELS = 1_000_000

MATCHED = "matched"
KIND_MERGED = "merged"
KIND_SPLIT = "split"
KIND_MERGED_AND_SPLIT = "merged and split"
KIND_NEW = "new"
KIND_DISAPPEARED = "disappeared"


@dataclass(frozen=True)
class LesionGroup:
    """Baseline and follow-up lesions that are the same disease (ids as in each Measurement)."""

    kind: str
    baseline_ids: tuple[int, ...]
    followup_ids: tuple[int, ...]


@dataclass
class LesionMatching:
    """Result of :func:`match_lesions`, with the measurements it refers to."""

    baseline: Measurement = field(repr=False)
    followup: Measurement = field(repr=False)
    groups: list[LesionGroup]
    overlap: np.ndarray = field(repr=False)  # (baseline, follow-up) overlap coefficients
    distance_mm: np.ndarray = field(repr=False)  # (baseline, follow-up) centroid distances after transform
    followup_to_baseline_ras: np.ndarray = field(repr=False, default_factory=lambda: np.eye(4))
    registered: bool = False
    used_overlap: bool = True
    max_distance_mm: float = DEFAULT_MAX_DISTANCE_MM
    warnings: list[str] = field(default_factory=list)

    # -- views --------------------------------------------------------------------------------------------
    def groups_of_kind(self, *kinds: str) -> list[LesionGroup]:
        return [group for group in self.groups if group.kind in kinds]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return [(group.baseline_ids[0], group.followup_ids[0]) for group in self.groups_of_kind(MATCHED)]

    @property
    def new_lesion_ids(self) -> list[int]:
        return [group.followup_ids[0] for group in self.groups_of_kind(KIND_NEW)]

    @property
    def disappeared_lesion_ids(self) -> list[int]:
        return [group.baseline_ids[0] for group in self.groups_of_kind(KIND_DISAPPEARED)]

    @property
    def merged(self) -> list[LesionGroup]:
        return self.groups_of_kind(KIND_MERGED, KIND_MERGED_AND_SPLIT)

    @property
    def split(self) -> list[LesionGroup]:
        return self.groups_of_kind(KIND_SPLIT, KIND_MERGED_AND_SPLIT)

    def group_of_baseline(self, lesion_id: int) -> LesionGroup:
        return next(group for group in self.groups if lesion_id in group.baseline_ids)

    def _baseline(self, lesion_id: int) -> LesionMeasurement:
        return self.baseline.lesions[lesion_id - 1]

    def _followup(self, lesion_id: int) -> LesionMeasurement:
        return self.followup.lesions[lesion_id - 1]

    def carrier(self, group: LesionGroup) -> int | None:
        """The baseline lesion that a merged group's follow-up diameter is recorded with (largest diameter)."""
        if not group.baseline_ids:
            return None
        return min(group.baseline_ids,
                   key=lambda number: (-self._baseline(number).longest_axial_diameter_mm, number))

    # -- RECIST input --------------------------------------------------------------------------------------
    def tracked_lesions(self) -> list[TrackedLesion]:
        """Every baseline lesion with its follow-up diameter under RECIST's split/coalesce rules."""
        tracked = []
        for group in self.groups:
            if not group.baseline_ids:
                continue
            followup_mm = sum(self._followup(number).longest_axial_diameter_mm for number in group.followup_ids)
            carrier = self.carrier(group)
            for number in group.baseline_ids:
                baseline_mm = self._baseline(number).longest_axial_diameter_mm
                others = tuple(other for other in group.baseline_ids if other != number)
                if group.kind == KIND_DISAPPEARED:
                    tracked.append(TrackedLesion(number, baseline_mm, 0.0, DISAPPEARED))
                elif number != carrier:
                    tracked.append(TrackedLesion(number, baseline_mm, 0.0, MERGED, group.followup_ids, (carrier,)))
                else:
                    status = SPLIT if len(group.followup_ids) > 1 else PRESENT
                    tracked.append(TrackedLesion(number, baseline_mm, followup_mm, status, group.followup_ids, others))
        return sorted(tracked, key=lambda lesion: lesion.lesion_id)

    # -- tables ---------------------------------------------------------------------------------------------
    def table_rows(self) -> list[dict]:
        """One row per group (matched pair, split, merge, new, disappeared): ids, volumes, diameters, status.

        Lesion columns are text ("2", "3 + 5", "" when none); volumes (mL) and longest axial diameters (mm)
        of a side with several lesions are sums (RECIST adds fragment diameters). Plain values only, ready
        for a Slicer table node or CSV.
        """
        rows = []
        for group in self.groups:
            baseline = [self._baseline(number) for number in group.baseline_ids]
            followup = [self._followup(number) for number in group.followup_ids]
            baseline_ml = sum(lesion.volume_ml for lesion in baseline) if baseline else None
            followup_ml = sum(lesion.volume_ml for lesion in followup) if followup else (0.0 if baseline else None)
            baseline_mm = sum(lesion.longest_axial_diameter_mm for lesion in baseline) if baseline else None
            followup_mm = (sum(lesion.longest_axial_diameter_mm for lesion in followup) if followup
                           else (0.0 if baseline else None))
            change = None
            if baseline_ml and followup_ml is not None:
                change = (followup_ml - baseline_ml) / baseline_ml * 100.0
            rows.append({
                "baseline_lesion": " + ".join(str(number) for number in group.baseline_ids),
                "followup_lesion": " + ".join(str(number) for number in group.followup_ids),
                "baseline_volume_ml": baseline_ml,
                "followup_volume_ml": followup_ml,
                "volume_change_percent": change,
                "baseline_diameter_mm": baseline_mm,
                "followup_diameter_mm": followup_mm,
                "status": group.kind,
            })
        return rows

    def to_dict(self) -> dict:
        """JSON-ready: pairs, new, disappeared, merged and split lesions, with per-lesion changes."""
        def pair_entry(baseline_id: int, followup_id: int) -> dict:
            before, after = self._baseline(baseline_id), self._followup(followup_id)
            return {
                "baseline_lesion": baseline_id, "followup_lesion": followup_id,
                "overlap": _rounded(self.overlap[baseline_id - 1, followup_id - 1], 3),
                "distance_mm": _rounded(self.distance_mm[baseline_id - 1, followup_id - 1], 2),
                "baseline_volume_ml": before.volume_ml, "followup_volume_ml": after.volume_ml,
                "volume_change_ml": after.volume_ml - before.volume_ml,
                "volume_change_percent": _percent(before.volume_ml, after.volume_ml),
                "baseline_diameter_mm": before.longest_axial_diameter_mm,
                "followup_diameter_mm": after.longest_axial_diameter_mm,
                "diameter_change_mm": after.longest_axial_diameter_mm - before.longest_axial_diameter_mm,
            }

        def group_entry(group: LesionGroup) -> dict:
            return {
                "kind": group.kind,
                "baseline_lesions": list(group.baseline_ids), "followup_lesions": list(group.followup_ids),
                "recorded_with_baseline_lesion": self.carrier(group),
                "baseline_volume_ml": sum(self._baseline(n).volume_ml for n in group.baseline_ids),
                "followup_volume_ml": sum(self._followup(n).volume_ml for n in group.followup_ids),
                "baseline_diameters_mm": [self._baseline(n).longest_axial_diameter_mm for n in group.baseline_ids],
                "followup_diameters_mm": [self._followup(n).longest_axial_diameter_mm for n in group.followup_ids],
            }

        mapped = self.mapped_followup_centroids()
        return {
            "registered": self.registered,
            "used_overlap": self.used_overlap,
            "max_distance_mm": self.max_distance_mm,
            "pairs": [pair_entry(b, f) for b, f in self.pairs],
            "new": [{"followup_lesion": number, "volume_ml": self._followup(number).volume_ml,
                     "diameter_mm": self._followup(number).longest_axial_diameter_mm,
                     "centroid_ras_in_baseline": [float(v) for v in mapped[number - 1]]}
                    for number in self.new_lesion_ids],
            "disappeared": [{"baseline_lesion": number, "volume_ml": self._baseline(number).volume_ml,
                             "diameter_mm": self._baseline(number).longest_axial_diameter_mm}
                            for number in self.disappeared_lesion_ids],
            "merged": [group_entry(group) for group in self.merged],
            "split": [group_entry(group) for group in self.split],
            "warnings": list(self.warnings),
        }

    def mapped_followup_centroids(self) -> np.ndarray:
        """Follow-up lesion centroids in baseline RAS coordinates, (N, 3)."""
        return apply_affine(self.followup_to_baseline_ras, _centroids(self.followup.lesions))


def match_lesions(baseline: Measurement, followup: Measurement, followup_to_baseline_ras: np.ndarray | None = None,
                  registered: bool = False, max_distance_mm: float = DEFAULT_MAX_DISTANCE_MM,
                  min_group_overlap: float = DEFAULT_MIN_GROUP_OVERLAP) -> LesionMatching:
    """Match follow-up lesions to baseline lesions (see the module docstring)."""
    matrix = np.eye(4) if followup_to_baseline_ras is None else np.asarray(followup_to_baseline_ras, dtype=float)
    count_b, count_f = len(baseline.lesions), len(followup.lesions)
    warnings = []
    distance = np.zeros((count_b, count_f))
    if count_b and count_f:
        mapped = apply_affine(matrix, _centroids(followup.lesions))
        distance = np.linalg.norm(_centroids(baseline.lesions)[:, None, :] - mapped[None, :, :], axis=2)
    used_overlap = baseline.lesion_labels is not None and followup.lesion_labels is not None
    overlap = np.zeros((count_b, count_f))
    if count_b and count_f and used_overlap:
        intersection = overlap_volumes_ml(baseline.lesion_labels, followup.lesion_labels, np.linalg.inv(matrix),
                                          count_b, count_f)
        scale = abs(float(np.linalg.det(matrix[:3, :3])))  # follow-up volumes in the baseline frame
        volumes_b = np.array([lesion.volume_ml for lesion in baseline.lesions])
        volumes_f = np.array([lesion.volume_ml for lesion in followup.lesions]) * scale
        smaller = np.minimum(volumes_b[:, None], volumes_f[None, :])
        overlap = np.clip(np.divide(intersection, smaller, out=np.zeros_like(intersection), where=smaller > 0),
                          0.0, 1.0)
    elif count_b and count_f:
        warnings.append("Lesion label maps were not available, so lesions were matched by centroid distance "
                        "alone; merged and split lesions cannot be recognised.")

    groups = _group(overlap, distance, max_distance_mm, min_group_overlap)
    matching = LesionMatching(baseline, followup, groups, overlap, distance, matrix, registered, used_overlap,
                              float(max_distance_mm), warnings)
    if count_b and count_f and not any(group.baseline_ids and group.followup_ids for group in groups):
        warnings.append(f"No follow-up lesion matched any baseline lesion ({count_b} baseline, {count_f} follow-up "
                        f"lesions): every lesion counts as new or disappeared. Check that the scans are aligned or "
                        f"registered.")
    return matching


def _group(overlap: np.ndarray, distance: np.ndarray, max_distance_mm: float,
           min_group_overlap: float) -> list[LesionGroup]:
    """One-to-one assignment, then leftovers joined to groups by overlap, then new and disappeared."""
    count_b, count_f = overlap.shape
    members: dict[int, tuple[list[int], list[int]]] = {}  # keyed by the paired baseline lesion (0-based)
    followup_owner: dict[int, int] = {}
    if count_b and count_f:
        admissible = (overlap > 0) | (distance <= max_distance_mm)
        cost = np.where(admissible, (1.0 - overlap) + distance / max_distance_mm, INADMISSIBLE_COST)
        for row, column in zip(*linear_sum_assignment(cost)):
            if admissible[row, column]:
                members[int(row)] = ([int(row)], [int(column)])
                followup_owner[int(column)] = int(row)
        paired_b, paired_f = set(members), set(followup_owner)
        for column in range(count_f):  # fragments: leftover follow-up lesions lying on a paired baseline lesion
            if column in paired_f:
                continue
            row = int(np.argmax(overlap[:, column]))
            if overlap[row, column] >= min_group_overlap and row in paired_b:
                members[row][1].append(column)
                followup_owner[column] = row
        for row in range(count_b):  # coalesced: leftover baseline lesions lying in a paired follow-up lesion
            if row in paired_b:
                continue
            column = int(np.argmax(overlap[row, :]))
            if overlap[row, column] >= min_group_overlap and column in paired_f:
                members[followup_owner[column]][0].append(row)
    groups = []
    grouped_b = {row for rows, _ in members.values() for row in rows}
    grouped_f = {column for _, columns in members.values() for column in columns}
    for rows, columns in members.values():
        kind = {(False, False): MATCHED, (True, False): KIND_MERGED, (False, True): KIND_SPLIT,
                (True, True): KIND_MERGED_AND_SPLIT}[(len(rows) > 1, len(columns) > 1)]
        groups.append(LesionGroup(kind, tuple(sorted(r + 1 for r in rows)), tuple(sorted(c + 1 for c in columns))))
    groups += [LesionGroup(KIND_DISAPPEARED, (row + 1,), ()) for row in range(count_b) if row not in grouped_b]
    groups.sort(key=lambda group: group.baseline_ids[0])
    groups += [LesionGroup(KIND_NEW, (), (column + 1,)) for column in range(count_f) if column not in grouped_f]
    return groups


def overlap_volumes_ml(baseline: LesionLabels, followup: LesionLabels, baseline_to_followup_ras: np.ndarray,
                       count_b: int, count_f: int) -> np.ndarray:
    """Intersection volume (mL) of every baseline lesion with every follow-up lesion, (count_b, count_f).

    Each baseline lesion voxel centre is mapped into the follow-up grid and takes the follow-up lesion label
    of the nearest voxel; counts are weighted by the baseline voxel volume.
    """
    counts = np.zeros((count_b + 1) * (count_f + 1), dtype=np.int64)
    kji_to_ijk = np.eye(4)[[2, 1, 0, 3]]
    crop_b, crop_f = np.eye(4), np.eye(4)
    crop_b[:3, 3], crop_f[:3, 3] = baseline.start_kji, followup.start_kji
    # baseline crop (k, j, i) -> RAS -> follow-up RAS -> follow-up crop (k, j, i): one affine map
    crop_b_to_crop_f = (np.linalg.inv(crop_f) @ kji_to_ijk @ np.linalg.inv(followup.geometry.ijk_to_ras)
                        @ np.asarray(baseline_to_followup_ras, dtype=float) @ baseline.geometry.ijk_to_ras
                        @ kji_to_ijk @ crop_b)
    shape_f = np.asarray(followup.labels.shape)
    flat = np.flatnonzero(baseline.labels)
    for begin in range(0, flat.size, CHUNK_VOXELS):
        chunk = flat[begin:begin + CHUNK_VOXELS]
        kji = np.unravel_index(chunk, baseline.labels.shape)
        values_b = baseline.labels.ravel()[chunk].astype(np.int64)
        inside = np.ones(len(chunk), dtype=bool)
        flat_f = np.zeros(len(chunk), dtype=np.int64)
        for axis in range(3):  # one axis at a time: contiguous 1-D arithmetic, no (N, 3) temporaries
            row = crop_b_to_crop_f[axis]
            index = np.rint(kji[0] * row[0] + kji[1] * row[1] + kji[2] * row[2] + row[3]).astype(np.int64)
            inside &= (index >= 0) & (index < shape_f[axis])
            flat_f = flat_f * shape_f[axis] + index
        values_f = np.zeros(len(chunk), dtype=np.int64)
        values_f[inside] = followup.labels.ravel()[flat_f[inside]]
        counts += np.bincount(values_b * (count_f + 1) + values_f, minlength=counts.size)
    table = counts.reshape(count_b + 1, count_f + 1)[1:, 1:]
    return table * baseline.geometry.voxel_volume_ml


def _centroids(lesions: Sequence[LesionMeasurement]) -> np.ndarray:
    return np.array([lesion.centroid_ras for lesion in lesions], dtype=float).reshape(-1, 3)


def _percent(before: float, after: float) -> float | None:
    return None if before <= 0 else (after - before) / before * 100.0


def _rounded(value: float, digits: int) -> float:
    return round(float(value), digits)
