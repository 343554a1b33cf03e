"""Tumour Burden Score (Sasaki 2018): formula by hand, zone boundaries, no-lesion case, bad input."""

from __future__ import annotations

import json
import math

import pytest

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.prognosis import scores
from TTVPrognosisLib.response import tumour_burden
from TTVPrognosisLib.response.tumour_burden import (
    TumourBurdenChange,
    tbs_zone,
    tumour_burden_score,
)


@pytest.mark.parametrize(("count", "diameter_mm", "expected"), [
    (3, 40.0, 5.0),  # sqrt(4^2 + 3^2)
    (1, 0.0, 1.0),
    (4, 30.0, 5.0),  # sqrt(3^2 + 4^2)
    (0, 0.0, 0.0),  # no lesion left (complete response)
    (12, 50.0, 13.0),  # sqrt(5^2 + 12^2)
])
def test_score_by_hand(count, diameter_mm, expected):
    assert tumour_burden_score(count, diameter_mm) == pytest.approx(expected)


@pytest.mark.parametrize(("score", "zone"), [
    (0.0, 1), (2.999, 1), (3.0, 2), (5.0, 2), (8.999, 2), (9.0, 3), (25.0, 3),
])
def test_zones_at_their_boundaries(score, zone):
    """Zone 1 < 3, zone 2 from 3 to < 9, zone 3 from 9 (boundaries belong to the higher zone)."""
    assert tbs_zone(score) == zone


def test_zone_from_lesions_exactly_on_the_boundary():
    """1 lesion of sqrt(8) cm: TBS exactly 3, zone 2; 2 lesions just under sqrt(5) cm: zone 1; 9 lesions: zone 3."""
    burden = tumour_burden.tumour_burden(1, 10.0 * math.sqrt(8.0))
    assert burden.score == pytest.approx(3.0) and burden.zone == 2
    assert tumour_burden.tumour_burden(9, 0.0).zone == 3
    assert tumour_burden.tumour_burden(2, 10.0 * math.sqrt(5.0) - 1e-6).zone == 1


def test_no_lesion_has_score_zero_and_needs_no_diameter():
    burden = tumour_burden.tumour_burden(0, None)
    assert burden.score == 0.0 and burden.zone == 1 and burden.largest_diameter_mm == 0.0


@pytest.mark.parametrize(("call", "message"), [
    (lambda: tumour_burden.tumour_burden(2, None), "largest lesion diameter is needed"),
    (lambda: tumour_burden_score(0, 12.0), "no lesion"),
    (lambda: tumour_burden_score(-1, 12.0), "negative"),
    (lambda: tumour_burden_score(2.5, 12.0), "whole number"),
    (lambda: tumour_burden_score(True, 12.0), "whole number"),
    (lambda: tumour_burden_score(2, -3.0), "negative"),
    (lambda: tumour_burden_score(2, float("nan")), "finite"),
    (lambda: tbs_zone(-1.0), "negative"),
])
def test_bad_input_is_refused(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_scores_module_uses_this_implementation():
    assert scores.tumour_burden_score is tumour_burden_score
    with pytest.raises(InputError, match="at least one"):  # GAME still needs a lesion, as before
        scores.game_score(0, 0.0, scores.ClinicalInputs())


def test_change_document_is_json_ready():
    change = TumourBurdenChange(tumour_burden.tumour_burden(3, 40.0), tumour_burden.tumour_burden(1, 20.0))
    document = change.to_dict()
    assert document["baseline"] == pytest.approx(5.0) and document["followup"] == pytest.approx(math.sqrt(5.0))
    assert document["baseline_zone"] == 2 and document["followup_zone"] == 1
    assert document["change"] == pytest.approx(math.sqrt(5.0) - 5.0)
    assert "doi:10.1097/SLA.0000000000002064" in document["citation"]
    json.dumps(document)
