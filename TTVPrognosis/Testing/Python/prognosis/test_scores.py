"""Fong and GAME scores against hand-worked examples (criteria from Fong 1999 and Margonis 2018)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.prognosis.scores import ClinicalInputs, fong_score, game_score, tumour_burden_score

ALL_HIGH = ClinicalInputs(node_positive_primary=True, disease_free_interval_months=0.0, cea_ng_ml=250.0,
                          kras_mutated=True, extrahepatic_disease=True)
ALL_LOW = ClinicalInputs(node_positive_primary=False, disease_free_interval_months=36.0, cea_ng_ml=3.0,
                         kras_mutated=False, extrahepatic_disease=False)


def _points(result) -> dict:
    return {item.name: item.points for item in result.items}


def test_tumour_burden_score_by_hand():
    """3 lesions, largest 40 mm: sqrt(4^2 + 3^2) = 5."""
    assert tumour_burden_score(3, 40.0) == pytest.approx(5.0)
    assert tumour_burden_score(1, 0.0) == pytest.approx(1.0)


# --- Fong --------------------------------------------------------------------------------------------------

def test_fong_every_criterion_present_scores_five_high_risk():
    """Node-positive, synchronous (DFI 0 < 12), 3 lesions (> 1), 62 mm (> 5 cm), CEA 250 (> 200): 5."""
    result = fong_score(3, 62.0, ALL_HIGH)
    assert set(_points(result).values()) == {1}
    assert result.total == 5 and result.risk_group.startswith("high risk")
    assert result.computable and result.missing == ()


def test_fong_no_criterion_present_scores_zero_low_risk():
    result = fong_score(1, 30.0, ALL_LOW)
    assert result.total == 0 and result.risk_group.startswith("low risk")


def test_fong_cut_offs_are_strict_as_published():
    """DFI exactly 12 months, largest exactly 5 cm, CEA exactly 200 ng/mL score nothing; 2 lesions score."""
    clinical = ClinicalInputs(node_positive_primary=False, disease_free_interval_months=12.0, cea_ng_ml=200.0,
                              kras_mutated=None, extrahepatic_disease=None)
    result = fong_score(2, 50.0, clinical)
    assert _points(result) == {"node-positive primary": 0, "disease-free interval (months)": 0,
                               "number of liver lesions": 1, "largest lesion diameter (mm)": 0,
                               "CEA (ng/mL)": 0}
    assert result.total == 1


@pytest.mark.parametrize(("cea", "lesions", "total", "group"),
                         [(3.0, 3, 2, "low risk"), (250.0, 3, 3, "high risk")])
def test_fong_risk_group_boundary_between_two_and_three(cea, lesions, total, group):
    """Node-positive (1) + 3 lesions (1) = 2: low; adding CEA 250 (1) = 3: high."""
    clinical = ClinicalInputs(node_positive_primary=True, disease_free_interval_months=24.0, cea_ng_ml=cea)
    result = fong_score(lesions, 20.0, clinical)
    assert result.total == total and result.risk_group.startswith(group)


def test_fong_ignores_kras_and_notes_extrahepatic_disease():
    with_extrahepatic = fong_score(1, 30.0, replace(ALL_LOW, extrahepatic_disease=True, kras_mutated=True))
    assert with_extrahepatic.total == 0
    assert any("Extrahepatic disease" in note for note in with_extrahepatic.notes)


def test_fong_missing_clinical_input_is_not_computable_and_named():
    clinical = ClinicalInputs(node_positive_primary=True, disease_free_interval_months=None, cea_ng_ml=None)
    result = fong_score(4, 70.0, clinical)
    assert not result.computable
    assert result.total is None and result.risk_group is None
    assert result.missing == ("disease-free interval (months)", "CEA (ng/mL)")
    assert "not computable" in result.status and "CEA" in result.status
    assert _points(result)["number of liver lesions"] == 1


def test_fong_missing_measurement_is_named():
    result = fong_score(None, None, ALL_LOW)
    assert result.missing == ("number of liver lesions", "largest lesion diameter (mm)")


# --- GAME --------------------------------------------------------------------------------------------------

def test_game_worked_example_high_risk():
    """KRAS (1) + CEA 25 >= 20 (1) + node-positive (1) + TBS sqrt(4.5^2 + 3^2) = 5.4 (1) + no EHD (0) = 4."""
    clinical = ClinicalInputs(node_positive_primary=True, cea_ng_ml=25.0, kras_mutated=True,
                              extrahepatic_disease=False)
    result = game_score(3, 45.0, clinical)
    assert _points(result) == {"RAS (KRAS) mutated": 1, "CEA (ng/mL)": 1, "node-positive primary": 1,
                               "tumour burden score": 1, "extrahepatic disease": 0}
    assert result.total == 4 and result.risk_group.startswith("high risk")
    values = {item.name: item.value for item in result.items}
    assert values["tumour burden score"] == pytest.approx(5.41)


def test_game_maximum_is_seven():
    result = game_score(6, 80.0, ALL_HIGH)  # TBS sqrt(8^2 + 6^2) = 10
    assert _points(result)["tumour burden score"] == 2 and _points(result)["extrahepatic disease"] == 2
    assert result.total == 7


def test_game_all_negative_single_small_lesion_is_low_risk():
    result = game_score(1, 15.0, ALL_LOW)  # TBS sqrt(1.5^2 + 1) = 1.8
    assert result.total == 0 and result.risk_group.startswith("low risk")


def test_game_cea_cut_off_is_inclusive_at_twenty():
    at_cut_off = game_score(1, 10.0, ClinicalInputs(False, None, 20.0, False, False))
    below = game_score(1, 10.0, ClinicalInputs(False, None, 19.9, False, False))
    assert _points(at_cut_off)["CEA (ng/mL)"] == 1 and _points(below)["CEA (ng/mL)"] == 0


@pytest.mark.parametrize(("tbs", "points"), [(2.95, 0), (3.0, 1), (8.5, 1), (8.99, 1), (9.0, 2), (12.0, 2)])
def test_game_tumour_burden_bands(tbs, points):
    lesions = 2
    diameter_mm = 10.0 * math.sqrt(tbs ** 2 - lesions ** 2)
    result = game_score(lesions, diameter_mm + (1e-9 if points else 0.0), ALL_LOW)
    assert _points(result)["tumour burden score"] == points


@pytest.mark.parametrize(("clinical", "lesions", "diameter_mm", "total", "group"), [
    (ClinicalInputs(True, None, 5.0, False, False), 1, 10.0, 1, "low risk"),
    (ClinicalInputs(True, None, 25.0, False, False), 1, 10.0, 2, "medium risk"),
    (ClinicalInputs(False, None, 5.0, False, True), 2, 25.0, 3, "medium risk"),  # EHD 2 + TBS 3.2 -> 1
])
def test_game_risk_groups(clinical, lesions, diameter_mm, total, group):
    result = game_score(lesions, diameter_mm, clinical)
    assert result.total == total and result.risk_group.startswith(group)


def test_game_missing_kras_is_not_computable():
    clinical = ClinicalInputs(node_positive_primary=False, cea_ng_ml=5.0, kras_mutated=None,
                              extrahepatic_disease=False)
    result = game_score(2, 30.0, clinical)
    assert result.missing == ("RAS (KRAS) mutated",) and result.total is None
    assert "KRAS" in result.status


def test_game_missing_measurement_leaves_tbs_missing():
    assert game_score(None, 30.0, ALL_LOW).missing == ("tumour burden score",)


# --- shared ------------------------------------------------------------------------------------------------

def test_results_carry_citations_and_serialise():
    fong = fong_score(2, 30.0, ALL_LOW).to_dict()
    game = game_score(2, 30.0, ALL_LOW).to_dict()
    assert "doi:10.1097/00000658-199909000-00004" in fong["citation"]
    assert "doi:10.1002/bjs.10838" in game["citation"]
    assert fong["computable"] and game["total"] == 1  # TBS sqrt(3^2 + 2^2) = 3.6 -> 1 point
    json.dumps([fong, game])


@pytest.mark.parametrize(("call", "message"), [
    (lambda: fong_score(0, 10.0, ALL_LOW), "at least one"),
    (lambda: fong_score(2.5, 10.0, ALL_LOW), "whole number"),
    (lambda: fong_score(True, 10.0, ALL_LOW), "whole number"),
    (lambda: fong_score(2, -1.0, ALL_LOW), "negative"),
    (lambda: fong_score(2, float("nan"), ALL_LOW), "finite"),
    (lambda: fong_score(2, 10.0, ClinicalInputs(cea_ng_ml=-3.0)), "negative"),
    (lambda: fong_score(2, 10.0, ClinicalInputs(disease_free_interval_months=-1.0)), "negative"),
    (lambda: game_score(2, 10.0, ClinicalInputs(node_positive_primary="yes")), "yes \\(True\\)"),
    (lambda: game_score(2, 10.0, ClinicalInputs(kras_mutated=1)), "yes \\(True\\)"),
])
def test_unusable_inputs_are_refused(call, message):
    with pytest.raises(InputError, match=message):
        call()
