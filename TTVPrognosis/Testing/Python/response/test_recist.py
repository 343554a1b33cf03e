"""RECIST 1.1 rules at their boundaries, table-driven, plus the study's point end to end (PD while TTV falls).

Each row is a hand-worked case: baseline longest axial diameters and what became of each lesion, new
lesions, slice spacing, and the expected target response, overall response and sums.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import axis_aligned_geometry, ellipsoid_mask
from TTVPrognosisLib.formats.segments import LabelVolume, Segment
from TTVPrognosisLib.measure.volumetry import measure
from TTVPrognosisLib.response.comparison import compare
from TTVPrognosisLib.response.recist import (
    CR,
    DISAPPEARED,
    MERGED,
    NON_CR_NON_PD,
    NOT_EVALUABLE,
    PD,
    PR,
    PRESENT,
    SD,
    SPLIT,
    TrackedLesion,
    assess,
    measurable_threshold_mm,
)


def lesion(number, baseline_mm, followup_mm=None, status=PRESENT, followups=None, merged_with=()):
    """A tracked lesion; ``followup_mm`` None means it disappeared."""
    if followup_mm is None and status == PRESENT:
        status = DISAPPEARED
    fu_ids = followups if followups is not None else ((number,) if status != DISAPPEARED else ())
    return TrackedLesion(number, baseline_mm, followup_mm or 0.0, status, tuple(fu_ids), tuple(merged_with))


# (name, lesions, new lesion ids, slice thickness, targets, baseline sum, follow-up sum, target response, overall)
CASES = [
    ("exactly 30 % decrease is PR",
     [lesion(1, 30.0, 21.0), lesion(2, 20.0, 14.0)], [], 1.0, [1, 2], 50.0, 35.0, PR, PR),
    ("29.9 % decrease is SD",
     [lesion(1, 30.0, 21.05), lesion(2, 20.0, 14.0)], [], 1.0, [1, 2], 50.0, 35.05, SD, SD),
    ("20 % increase but only 4 mm is SD",
     [lesion(1, 10.0, 12.0), lesion(2, 10.0, 12.0)], [], 1.0, [1, 2], 20.0, 24.0, SD, SD),
    ("20 % increase and exactly 5 mm is PD",
     [lesion(1, 15.0, 18.0), lesion(2, 10.0, 12.0)], [], 1.0, [1, 2], 25.0, 30.0, PD, PD),
    ("19.9 % increase of 9.95 mm is SD",
     [lesion(1, 30.0, 35.95), lesion(2, 20.0, 24.0)], [], 1.0, [1, 2], 50.0, 59.95, SD, SD),
    ("a new lesion with shrinking targets is PD (TTV falls, RECIST says PD)",
     [lesion(1, 40.0, 20.0), lesion(2, 30.0, 15.0)], [3], 1.0, [1, 2], 70.0, 35.0, PR, PD),
    ("all lesions gone is CR",
     [lesion(1, 40.0), lesion(2, 30.0), lesion(3, 8.0)], [], 1.0, [1, 2], 70.0, 0.0, CR, CR),
    ("targets gone but a non-target remains is PR",
     [lesion(1, 40.0), lesion(2, 30.0), lesion(3, 8.0, 6.0)], [], 1.0, [1, 2], 70.0, 0.0, CR, PR),
    ("a small target is recorded as measured (3 mm), not as 5 mm",
     [lesion(1, 40.0, 3.0), lesion(2, 30.0)], [], 1.0, [1, 2], 70.0, 3.0, PR, PR),
    ("40 + 10 mm to 31 + 3 mm is -32 %: PR (5 mm for the 3 mm target would give -28 %, SD)",
     [lesion(1, 40.0, 31.0), lesion(2, 10.0, 3.0)], [], 1.0, [1, 2], 50.0, 34.0, PR, PR),
    ("present with 0 mm measured (one voxel across) counts 5 mm, so not CR",
     [lesion(1, 40.0, 0.0, PRESENT), lesion(2, 30.0)], [], 1.0, [1, 2], 70.0, 5.0, PR, PR),
    ("measured 5 mm is kept as measured",
     [lesion(1, 12.0, 5.0)], [], 1.0, [1], 12.0, 5.0, PR, PR),
    ("only the two largest measurable lesions are targets",
     [lesion(3, 15.0, 30.0), lesion(1, 40.0, 40.0), lesion(2, 25.0, 25.0)], [], 1.0, [1, 2], 65.0, 65.0, SD, SD),
    ("lesions below 10 mm at baseline: no targets, non-CR/non-PD",
     [lesion(1, 9.9, 9.0), lesion(2, 6.0, 6.0)], [], 1.0, [], None, None, None, NON_CR_NON_PD),
    ("lesions below 10 mm at baseline, all gone: CR",
     [lesion(1, 9.9), lesion(2, 6.0)], [], 1.0, [], None, None, None, CR),
    ("lesions below 10 mm at baseline and a new lesion: PD",
     [lesion(1, 9.9, 9.9)], [2], 1.0, [], None, None, None, PD),
    ("exactly 10 mm is measurable",
     [lesion(1, 10.0, 6.9), lesion(2, 9.99, 9.99)], [], 1.0, [1], 10.0, 6.9, PR, PR),
    ("thick 8 mm slices: measurable from 16 mm, a 12 mm lesion is a non-target",
     [lesion(1, 16.0, 11.0), lesion(2, 12.0, 30.0)], [], 8.0, [1], 16.0, 11.0, PR, PR),
    ("thick 8 mm slices and only 15.9 mm lesions: no measurable disease",
     [lesion(1, 15.9, 15.9)], [], 8.0, [], None, None, None, NON_CR_NON_PD),
    ("5 mm slices are not thick: measurable from 10 mm",
     [lesion(1, 10.0, 10.0)], [], 5.0, [1], 10.0, 10.0, SD, SD),
    ("split: fragment diameters are added",
     [lesion(1, 40.0, 30.0, SPLIT, (1, 3))], [], 1.0, [1], 40.0, 30.0, SD, SD),
    ("split into tiny fragments: their measured sum (4 mm) is recorded",
     [lesion(1, 20.0, 4.0, SPLIT, (1, 2))], [], 1.0, [1], 20.0, 4.0, PR, PR),
    ("merged targets: the coalesced diameter counts once, the other target 0 mm",
     [lesion(1, 30.0, 40.0, PRESENT, (1,), (2,)), lesion(2, 20.0, 0.0, MERGED, (1,), (1,))], [], 1.0, [1, 2],
     50.0, 40.0, SD, SD),
    ("merged targets that grew: PD",
     [lesion(1, 30.0, 62.0, PRESENT, (1,), (2,)), lesion(2, 20.0, 0.0, MERGED, (1,), (1,))], [], 1.0, [1, 2],
     50.0, 62.0, PD, PD),
    ("no lesion at either time point: not evaluable",
     [], [], 1.0, [], None, None, None, NOT_EVALUABLE),
    ("no lesion at baseline, one at follow-up: PD",
     [], [1], 1.0, [], None, None, None, PD),
]


@pytest.mark.parametrize(("name", "lesions", "new", "thickness", "targets", "baseline_sum", "followup_sum",
                          "target_response", "response"), CASES, ids=[case[0] for case in CASES])
def test_rules(name, lesions, new, thickness, targets, baseline_sum, followup_sum, target_response, response):
    result = assess(lesions, new, slice_thickness_mm=thickness)
    assert [target.lesion_id for target in result.target_lesions] == targets
    if baseline_sum is None:
        assert result.baseline_sum_mm is None and result.percent_change is None
    else:
        assert result.baseline_sum_mm == pytest.approx(baseline_sum)
        assert result.followup_sum_mm == pytest.approx(followup_sum)
        assert result.nadir_sum_mm == result.baseline_sum_mm  # two time points: nadir = baseline
    assert result.target_response == target_response
    assert result.response == response
    assert result.reasons  # every verdict says why
    json.dumps(result.to_dict())


@pytest.mark.parametrize(("thickness", "threshold"), [(0.6, 10.0), (5.0, 10.0), (5.01, 10.02), (6.0, 12.0),
                                                      (8.0, 16.0), (10.0, 20.0)])
def test_measurable_threshold(thickness, threshold):
    assert measurable_threshold_mm(thickness) == pytest.approx(threshold)


def test_non_targets_are_listed_with_the_reason():
    result = assess([lesion(1, 40.0, 30.0), lesion(2, 30.0, 20.0), lesion(3, 25.0, 20.0), lesion(4, 7.0)])
    reasons = {item.lesion_id: item.reason for item in result.non_target_lesions}
    assert set(reasons) == {3, 4}
    assert "beyond the 2 target lesions" in reasons[3] and "not measurable" in reasons[4]
    assert result.non_target_response == NON_CR_NON_PD  # lesion 3 is still there
    document = result.to_dict()
    assert [item["lesion_id"] for item in document["non_target_lesions"]] == [3, 4]
    assert document["non_target_lesions"][1]["followup_status"] == DISAPPEARED


def test_too_small_and_merged_targets_are_explained():
    result = assess([lesion(1, 30.0, 2.0, PRESENT, (1,), (2,)), lesion(2, 20.0, 0.0, MERGED, (1,), (1,))])
    first, second = result.target_lesions
    assert first.followup_mm == 2.0 and first.followup_measured_mm == 2.0
    assert "recorded as measured" in first.note and "coalesced with baseline lesion 2" in first.note
    assert second.followup_mm == 0.0 and "coalesced into follow-up lesion 1" in second.note


def test_the_published_example_gives_pr_at_minus_32_percent():
    """Issue 14: targets 40 + 10 mm shrinking to 31 + 3 mm: -32 %, PR; the 5 mm default would give -28 %, SD."""
    result = assess([lesion(1, 40.0, 31.0), lesion(2, 10.0, 3.0)])
    assert result.followup_sum_mm == 34.0 and result.percent_change == pytest.approx(-32.0)
    assert result.target_response == PR and result.response == PR
    with_default = assess([lesion(1, 40.0, 31.0), lesion(2, 10.0, 5.0)])
    assert with_default.percent_change == pytest.approx(-28.0) and with_default.response == SD


def test_bad_input_is_refused():
    with pytest.raises(InputError, match="unique"):
        assess([lesion(1, 20.0, 10.0), lesion(1, 15.0, 10.0)])
    with pytest.raises(InputError, match="status"):
        TrackedLesion(1, 20.0, 10.0, "vanished")
    with pytest.raises(InputError, match="non-negative"):
        TrackedLesion(1, float("nan"), 10.0)
    with pytest.raises(InputError, match="positive"):
        measurable_threshold_mm(0.0)


def _label_volume(geometry, lesions) -> LabelVolume:
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    for value, (centre, radii) in enumerate(lesions, start=1):
        labels[ellipsoid_mask(geometry, centre, radii)] = value
    segments = [Segment(str(value), f"Lesion {value}", 0, value) for value in range(1, len(lesions) + 1)]
    return LabelVolume([labels], geometry, segments)


def test_new_lesion_gives_pd_while_ttv_falls_end_to_end():
    """Two metastases halve in diameter (TTV falls ~85 %), one small new lesion appears: RECIST PD."""
    geometry = axis_aligned_geometry((40, 80, 80), (1.5, 1.5, 2.5))
    baseline = _label_volume(geometry, [((20.0, 10.0, 0.0), (16.0, 15.0, 14.0)), ((-25.0, -20.0, 5.0), (11.0,) * 3)])
    followup = _label_volume(geometry, [((20.0, 10.0, 0.0), (8.0, 7.5, 7.0)), ((-25.0, -20.0, 5.0), (5.5,) * 3),
                                        ((10.0, -35.0, -15.0), (4.0,) * 3)])
    comparison = compare(measure(baseline, keep_labels=True), measure(followup, keep_labels=True))
    assert comparison.relative_change_percent < -80.0
    recist = comparison.recist
    assert recist.target_response == PR and recist.percent_change < -30.0
    assert recist.response == PD and len(recist.new_lesions) == 1
    assert comparison.tbs.followup.score < comparison.tbs.baseline.score
    document = comparison.to_dict()
    assert document["recist"]["response"] == PD and document["recist"]["new_lesion_ids"] == recist.new_lesions
