"""The command line faithful to the study (issue 14): who the survival figures are for, TTV change against the
published cohorts, Fong and GAME on the follow-up, the TBS cut-off, and times the model does not support."""

from __future__ import annotations

import json

import pytest

from TTVPrognosisLib import cli
from TTVPrognosisLib.formats.demo_data import write_demo_case
from TTVPrognosisLib.prognosis.model import POPULATION, STUDY_DOI


@pytest.fixture(scope="module")
def demo_case(tmp_path_factory):
    return write_demo_case(tmp_path_factory.mktemp("demo"))


def run(capsys, *arguments):
    code = cli.main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_shows_who_the_figures_are_for(capsys):
    code, out, _ = run(capsys, "predict", "--baseline-ttv-ml", "40", "--json")
    assert code == 0 and json.loads(out)["population"] == POPULATION
    code, out, _ = run(capsys, "predict", "--baseline-ttv-ml", "40")
    assert code == 0 and f"Who this is for: {POPULATION}" in out
    assert "conditional on the patient reaching complete local treatment" in POPULATION


def test_survival_at_12_months_is_refused_with_the_supported_range(capsys):
    code, _, err = run(capsys, "predict", "--baseline-ttv-ml", "40", "--months", "12")
    assert code == 1 and "from 24 to 120 months only" in err and "not at 12 months" in err


def test_beyond_the_hard_range_is_refused_and_beyond_the_calibrated_range_warned(capsys):
    code, _, err = run(capsys, "predict", "--baseline-ttv-ml", "2000")
    assert code == 1 and "0.56-430 mL" in err
    code, out, err = run(capsys, "predict", "--baseline-ttv-ml", "400", "--json")
    assert code == 0 and "extrapolation" in err and json.loads(out)["warnings"]


def test_compare_json_population_cohorts_scores_and_tbs_cut_off(capsys, demo_case):
    code, out, _ = run(capsys, "compare", demo_case["baseline_segmentation"], demo_case["followup_segmentation"],
                       "--no-registration", "--json", "--node-positive-primary", "yes",
                       "--disease-free-interval-months", "6", "--cea-ng-ml", "250", "--ras-mutated", "no",
                       "--extrahepatic-disease", "no")
    assert code == 0
    document = json.loads(out)
    assert document["prognosis"]["population"] == POPULATION
    cohorts = document["prognosis"]["ttv_change"]["cohorts"]
    assert [cohort["cohort"] for cohort in cohorts] == ["CAIRO5", "validation"]
    assert cohorts[0]["absolute_change_iqr_ml"] == [-81.0, -6.0] and cohorts[1]["absolute_change_median_ml"] == -13.0
    change = document["absolute_change_ml"]
    for cohort in cohorts:
        low, high = cohort["absolute_change_iqr_ml"]
        assert cohort["position"] == ("below" if change < low else "above" if change > high else "within")
    scores = document["clinical_scores"]
    assert scores["time_point"] == "followup" and scores["scan"].endswith("followup.seg.nrrd")
    items = {item["name"]: item["value"] for item in scores["fong"]["items"]}
    assert items["number of liver lesions"] == document["followup"]["lesion_count"]
    assert items["number of liver lesions"] != document["baseline"]["lesion_count"]
    assert scores["fong"]["computable"] and scores["game"]["computable"]
    assert document["tbs"]["study_cut_off"] == 14.3 and STUDY_DOI in document["tbs"]["study_cut_off_source"]
    assert "new_lesion_ids" in document["recist"] and document["new_lesion_count"] == 0


def test_compare_text_says_who_and_which_scan_was_scored(capsys, demo_case):
    code, out, _ = run(capsys, "compare", demo_case["baseline_segmentation"], demo_case["followup_segmentation"],
                       "--no-registration")
    assert code == 0
    assert f"Who this is for: {POPULATION}" in out
    assert "Clinical scores on the follow-up scan" in out and "not computable: missing" in out
    assert "cut-off 14.3" in out and "P = 0.040 and 0.021" in out
