"""Lesion matching across time points: a follow-up moved by a known rigid transform, merges, splits, limits.

The synthetic pair is drawn in the patient's own frame (demo_data's CT-like abdomen) and the follow-up scan
is then placed in the scanner by a known rotation and shift, on another voxel grid, with shrunken lesions,
one lesion gone and one new. Ground truth is which drawn lesion each measured lesion is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from TTVPrognosisLib.formats.demo_data import (
    LIVER_CENTRE_RAS,
    LIVER_RADII_MM,
    axis_aligned_geometry,
    ellipsoid_mask,
    rigid_ras,
    synthetic_ct,
)
from TTVPrognosisLib.formats.io import ImageVolume
from TTVPrognosisLib.formats.segments import ROLE_LESION, ROLE_LIVER, ROLE_TAG, LabelVolume, Segment
from TTVPrognosisLib.geometry import Geometry
from TTVPrognosisLib.measure.volumetry import measure
from TTVPrognosisLib.pipeline import compare_volumes
from TTVPrognosisLib.report.documents import to_json
from TTVPrognosisLib.report.text import format_comparison
from TTVPrognosisLib.response.comparison import compare
from TTVPrognosisLib.response.matching import KIND_MERGED, KIND_SPLIT, match_lesions
from TTVPrognosisLib.response.recist import MERGED, PRESENT, SPLIT

# Patient-frame lesions (RAS mm): name -> (centre, baseline semi-axes, follow-up semi-axes or None).
LESIONS = {
    "A": ((60.0, 20.0, 10.0), (20.0, 18.0, 16.0), (15.0, 13.0, 12.0)),
    "B": ((20.0, -15.0, -12.0), (12.0, 11.0, 10.0), (9.0, 8.0, 8.0)),
    "C": ((80.0, -20.0, -20.0), (8.0, 7.0, 8.0), (6.0, 6.0, 6.0)),
    "D": ((30.0, 40.0, 25.0), (6.0, 6.0, 6.0), None),  # disappears
    "E": ((95.0, 25.0, -5.0), (5.0, 5.0, 5.0), (4.0, 4.0, 4.0)),
}
NEW = {"N": ((40.0, -30.0, 20.0), (6.0, 6.0, 6.0))}
BASELINE_GRID = ((48, 110, 120), (2.0, 2.0, 3.0))
FOLLOWUP_GRID = ((56, 100, 110), (2.2, 2.2, 2.5))


# Follow-up patient placement: 12 degrees about S plus tilts, 56 mm shift (far beyond the 20 mm match limit).
SCANNER_FROM_PATIENT = rigid_ras((-4.0, 3.0, -12.0), (40.0, -30.0, 25.0))


def time_point(grid, scanner_from_patient, lesions, seed, name, with_liver=True):
    """CT + segmentation (liver layer and lesion layer) drawn in the patient frame, placed in the scanner."""
    shape, spacing = grid
    patient = axis_aligned_geometry(shape, spacing)
    liver = ellipsoid_mask(patient, LIVER_CENTRE_RAS, LIVER_RADII_MM)
    masks = [ellipsoid_mask(patient, centre, radii) & liver for centre, radii in lesions]
    lesion_layer = np.zeros(patient.shape_kji, dtype=np.uint8)
    segments = [Segment("Liver", "Liver", 0, 1, {ROLE_TAG: ROLE_LIVER})] if with_liver else []
    for value, mask in enumerate(masks, start=1):
        lesion_layer[mask] = value
        segments.append(Segment(f"L{value}", f"Lesion {value}", 1, value, {ROLE_TAG: ROLE_LESION}))
    scanner = Geometry(scanner_from_patient @ patient.ijk_to_ras, patient.shape_kji)
    ct = synthetic_ct(patient, liver, masks, seed)
    layers = [liver.astype(np.uint8), lesion_layer]
    return ImageVolume(ct, scanner, f"{name} CT"), LabelVolume(layers, scanner, segments, name)


@pytest.fixture(scope="module")
def moved_pair():
    baseline_lesions = [(centre, radii) for centre, radii, _ in LESIONS.values()]
    followup_lesions = [(centre, after) for centre, _, after in LESIONS.values() if after] + list(NEW.values())
    baseline = time_point(BASELINE_GRID, np.eye(4), baseline_lesions, 11, "baseline")
    followup = time_point(FOLLOWUP_GRID, SCANNER_FROM_PATIENT, followup_lesions, 12, "follow-up")
    return baseline, followup


def identify(measurement, scanner_from_patient) -> dict[str, int]:
    """Drawn lesion name -> measured lesion id, by nearest centroid in the patient frame."""
    patient_from_scanner = np.linalg.inv(scanner_from_patient)
    names = {**{name: spec[0] for name, spec in LESIONS.items()}, **{name: spec[0] for name, spec in NEW.items()}}
    found = {}
    for lesion in measurement.lesions:
        centroid = patient_from_scanner[:3, :3] @ np.asarray(lesion.centroid_ras) + patient_from_scanner[:3, 3]
        name = min(names, key=lambda key: np.linalg.norm(centroid - np.asarray(names[key])))
        assert np.linalg.norm(centroid - np.asarray(names[name])) < 3.0
        found[name] = lesion.lesion_id
    return found


def truth(baseline_measurement, followup_measurement):
    ids_b = identify(baseline_measurement, np.eye(4))
    ids_f = identify(followup_measurement, SCANNER_FROM_PATIENT)
    pairs = sorted((ids_b[name], ids_f[name]) for name, spec in LESIONS.items() if spec[2] is not None)
    return pairs, [ids_f["N"]], [ids_b["D"]]


def test_known_transform_finds_every_true_pair(moved_pair):
    (_, baseline), (_, followup) = moved_pair
    before, after = measure(baseline, keep_labels=True), measure(followup, keep_labels=True)
    pairs, new, disappeared = truth(before, after)
    matching = match_lesions(before, after, np.linalg.inv(SCANNER_FROM_PATIENT), registered=True)
    assert sorted(matching.pairs) == pairs
    assert matching.new_lesion_ids == new and matching.disappeared_lesion_ids == disappeared
    assert not matching.merged and not matching.split and not matching.warnings
    for baseline_id, followup_id in pairs:  # shrunken lesions still lie inside their old outline
        assert matching.overlap[baseline_id - 1, followup_id - 1] > 0.6  # small lesions: voxel sampling
        assert matching.distance_mm[baseline_id - 1, followup_id - 1] < 2.0


def test_registered_comparison_finds_every_true_pair(moved_pair):
    (baseline_ct, baseline), (followup_ct, followup) = moved_pair
    comparison = compare_volumes(baseline, followup, baseline_image=baseline_ct, followup_image=followup_ct)
    assert comparison.registration.registered and comparison.registration.method == "CT"
    pairs, new, disappeared = truth(comparison.baseline, comparison.followup)
    matching = comparison.lesion_matching
    assert sorted(matching.pairs) == pairs
    assert matching.new_lesion_ids == new and matching.disappeared_lesion_ids == disappeared
    recovered = comparison.registration.followup_to_baseline_ras
    centres = np.array([spec[0] for spec in LESIONS.values()])
    in_followup_scanner = centres @ SCANNER_FROM_PATIENT[:3, :3].T + SCANNER_FROM_PATIENT[:3, 3]
    back = in_followup_scanner @ recovered[:3, :3].T + recovered[:3, 3]
    assert np.linalg.norm(back - centres, axis=1).max() < 2.0  # target registration error at the lesions
    assert comparison.baseline.lesion_labels is None  # label maps dropped unless keep_labels
    assert comparison.recist.response == "PD"  # a new lesion, although every lesion shrank
    assert comparison.relative_change_percent < 0
    document = json.loads(to_json(comparison.to_dict()))
    assert {pair["baseline_lesion"] for pair in document["lesion_matching"]["pairs"]} == {b for b, _ in pairs}
    assert [item["followup_lesion"] for item in document["lesion_matching"]["new"]] == new


def test_liver_masks_alone_register_well_enough_to_match(moved_pair):
    (_, baseline), (_, followup) = moved_pair
    comparison = compare_volumes(baseline, followup)  # no CTs: liver segments are registered
    assert comparison.registration.registered and comparison.registration.method == "liver masks"
    pairs, new, disappeared = truth(comparison.baseline, comparison.followup)
    assert sorted(comparison.lesion_matching.pairs) == pairs
    assert comparison.lesion_matching.new_lesion_ids == new
    assert comparison.lesion_matching.disappeared_lesion_ids == disappeared


def test_without_registration_the_moved_follow_up_is_mismatched(moved_pair):
    (_, baseline), (_, followup) = moved_pair
    comparison = compare_volumes(baseline, followup, register=False)
    assert comparison.registration.status == "skipped" and not comparison.registration.warnings
    pairs, _, _ = truth(comparison.baseline, comparison.followup)
    assert sorted(comparison.lesion_matching.pairs) != pairs  # the test pair needs registration


def labels_only(geometry, lesions) -> LabelVolume:
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    for value, (centre, radii) in enumerate(lesions, start=1):
        labels[ellipsoid_mask(geometry, centre, radii) & (labels == 0)] = value
    return LabelVolume([labels], geometry, [Segment(str(v), f"Lesion {v}", 0, v) for v in range(1, len(lesions) + 1)])


GRID = axis_aligned_geometry((30, 70, 70), (1.0, 1.0, 2.0))


def test_coalesced_lesions_are_merged_and_recorded_once():
    """Two baseline lesions 4 mm apart grow into one: merged; the larger carries the diameter, the other 0."""
    baseline = measure(labels_only(GRID, [((-12.0, 0.0, 0.0), (9.0, 9.0, 8.0)), ((10.0, 0.0, 0.0), (7.0, 7.0, 6.0))]),
                       keep_labels=True)
    followup = measure(labels_only(GRID, [((-1.0, 0.0, 0.0), (22.0, 10.0, 8.0))]), keep_labels=True)
    matching = match_lesions(baseline, followup)
    assert [group.kind for group in matching.groups] == [KIND_MERGED]
    assert matching.merged[0].baseline_ids == (1, 2) and matching.merged[0].followup_ids == (1,)
    tracked = {lesion.lesion_id: lesion for lesion in matching.tracked_lesions()}
    assert tracked[1].followup_status == PRESENT and tracked[1].merged_with == (2,)
    assert tracked[1].followup_diameter_mm == pytest.approx(followup.lesions[0].longest_axial_diameter_mm)
    assert tracked[2].followup_status == MERGED and tracked[2].followup_diameter_mm == 0.0
    recist = compare(baseline, followup).recist
    assert recist.followup_sum_mm == pytest.approx(followup.lesions[0].longest_axial_diameter_mm)
    assert not recist.new_lesions and matching.to_dict()["merged"][0]["recorded_with_baseline_lesion"] == 1


def test_fragmented_lesion_is_split_and_fragments_added():
    """One elongated lesion breaks into two pieces at its ends: split; RECIST adds the fragments' diameters."""
    baseline = measure(labels_only(GRID, [((0.0, 0.0, 0.0), (20.0, 8.0, 7.0))]), keep_labels=True)
    followup = measure(labels_only(GRID, [((-12.0, 0.0, 0.0), (6.0, 5.0, 5.0)), ((12.0, 0.0, 0.0), (5.0, 5.0, 5.0))]),
                       keep_labels=True)
    matching = match_lesions(baseline, followup)
    assert [group.kind for group in matching.groups] == [KIND_SPLIT]
    assert matching.split[0].followup_ids == (1, 2) and not matching.new_lesion_ids
    (tracked,) = matching.tracked_lesions()
    expected = sum(lesion.longest_axial_diameter_mm for lesion in followup.lesions)
    assert tracked.followup_status == SPLIT and tracked.followup_diameter_mm == pytest.approx(expected)
    assert compare(baseline, followup).recist.followup_sum_mm == pytest.approx(expected)


@pytest.mark.parametrize(("shift_mm", "matched"), [(15.0, True), (25.0, False)])
def test_distance_limit(shift_mm, matched):
    """A small lesion that moved without overlapping: matched within 20 mm, else disappeared + new."""
    baseline = measure(labels_only(GRID, [((-10.0, 0.0, 0.0), (3.0, 3.0, 3.0))]), keep_labels=True)
    followup = measure(labels_only(GRID, [((-10.0 + shift_mm, 0.0, 0.0), (3.0, 3.0, 3.0))]), keep_labels=True)
    matching = match_lesions(baseline, followup)
    assert matching.overlap[0, 0] == 0.0
    assert (matching.pairs == [(1, 1)]) is matched
    assert (matching.new_lesion_ids == [1] and matching.disappeared_lesion_ids == [1]) is not matched
    if not matched:
        assert any("No follow-up lesion matched" in warning for warning in matching.warnings)


def test_optimal_assignment_prefers_overlap_to_nearest_centroid():
    """A shrinking big lesion and a small neighbour: the one-to-one assignment keeps the right partners."""
    baseline = measure(labels_only(GRID, [((0.0, 0.0, 0.0), (14.0, 14.0, 10.0)), ((20.0, 14.0, 0.0), (3.0,) * 3)]),
                       keep_labels=True)
    followup = measure(labels_only(GRID, [((8.0, 5.0, 0.0), (5.0, 5.0, 5.0)), ((21.0, 15.0, 0.0), (3.5,) * 3)]),
                       keep_labels=True)
    matching = match_lesions(baseline, followup)
    assert sorted(matching.pairs) == [(1, 1), (2, 2)]


def test_centroids_alone_when_label_maps_are_missing():
    baseline = measure(labels_only(GRID, [((-10.0, 0.0, 0.0), (6.0,) * 3), ((15.0, 5.0, 0.0), (4.0,) * 3)]))
    followup = measure(labels_only(GRID, [((-9.0, 1.0, 0.0), (5.0,) * 3)]))
    matching = match_lesions(baseline, followup)
    assert matching.pairs == [(1, 1)] and matching.disappeared_lesion_ids == [2]
    assert not matching.used_overlap and any("centroid distance alone" in text for text in matching.warnings)


def test_panel_table_rows_and_text_report(moved_pair):
    (baseline_ct, baseline), (followup_ct, followup) = moved_pair
    comparison = compare_volumes(baseline, followup, baseline_image=baseline_ct, followup_image=followup_ct,
                                 register=False)
    rows = comparison.lesion_table()
    assert set(rows[0]) == {"baseline_lesion", "followup_lesion", "baseline_volume_ml", "followup_volume_ml",
                            "volume_change_percent", "baseline_diameter_mm", "followup_diameter_mm", "status",
                            "recist_role"}
    assert all(isinstance(row["baseline_lesion"], str) for row in rows)
    roles = [row["recist_role"] for row in rows]
    assert roles.count("target") == 2 and "new" in roles
    json.dumps(rows)
    text = format_comparison(comparison)
    assert "RECIST 1.1:" in text and "Tumour burden score" in text and "Matched lesions" in text
