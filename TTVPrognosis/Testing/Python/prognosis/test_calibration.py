"""The shipped default model is what the calibration script produces, and its record tells the truth."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from TTVPrognosisLib.prognosis import calibration
from TTVPrognosisLib.prognosis import model as prognosis

MODEL_CARD = prognosis.MODELS_DIR / "MODEL_CARD.md"


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads(prognosis.default_model_path().read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def recalibrated() -> dict:
    return calibration.calibrate()


def test_recalibration_reproduces_the_shipped_coefficients(shipped, recalibrated):
    for section in ("time_spline", "ttv_spline"):
        assert np.allclose(recalibrated[section]["coefficients"], shipped[section]["coefficients"],
                           rtol=1e-6, atol=1e-8), section


def test_recalibration_reproduces_the_shipped_covariance(shipped, recalibrated):
    assert np.allclose(recalibrated["covariance"], shipped["covariance"], rtol=1e-4, atol=1e-9)


def test_recalibration_reproduces_everything_else_exactly(shipped, recalibrated):
    """Knots, support, identity and wording are not numerical results: they must match exactly."""
    for key in set(shipped) - {"time_spline", "ttv_spline", "covariance", "calibration"}:
        assert recalibrated[key] == shipped[key], key
    for section, knots in (("time_spline", "knots_months"), ("ttv_spline", "knots_ml")):
        assert recalibrated[section][knots] == shipped[section][knots]


def test_command_line_writes_a_loadable_model(tmp_path, shipped, capsys):
    output = tmp_path / "models" / "model.json"
    assert calibration.main(["--output", str(output)]) == 0
    model = prognosis.load_model(output)
    assert np.allclose(model.time_coefficients, shipped["time_spline"]["coefficients"], rtol=1e-6)
    assert "HR 100 vs 10 mL" in capsys.readouterr().out


def test_recorded_fit_is_what_the_model_gives(shipped):
    """The file's 'achieved' numbers are re-computed from the file's own coefficients."""
    model = prognosis.load_model()
    for target in shipped["calibration"]["targets"]:
        if target["kind"] == "conditional_survival":
            achieved = float(model.survival(target["months"], target["baseline_ttv_ml"]))
            low, high = model.survival_band(target["months"], target["baseline_ttv_ml"])
            band = [float(low), float(high)]
            assert target["achieved_ci95"] == pytest.approx(band, abs=1e-9)
        else:
            achieved = calibration.cohort_survival(model, target["months"], calibration.EXTERNAL_COHORT)
        assert target["achieved"] == pytest.approx(achieved, abs=1e-9)


def test_recorded_targets_are_the_published_figures(shipped):
    """Written out from doi:10.1016/j.ejca.2024.114185 so a silent edit of the script's targets shows."""
    targets = shipped["calibration"]["targets"]
    published = [(target.get("baseline_ttv_ml"), target["months"], target["published"]) for target in targets]
    assert published == [(3.0, 60.0, 0.72), (50.0, 60.0, 0.37), (300.0, 60.0, 0.07),
                         (None, 33.0, 0.75), (None, 57.0, 0.5), (None, 125.0, 0.25)]
    cis = [t["published_ci95"] for t in shipped["calibration"]["targets"][:3]]
    assert cis == [[0.56, 0.84], [0.29, 0.47], [0.01, 0.28]]


def test_every_target_is_met_within_three_points(shipped):
    assert shipped["calibration"]["max_abs_error_percentage_points"] <= 3.0
    for target in shipped["calibration"]["targets"]:
        assert abs(target["achieved"] - target["published"]) <= 0.03


def test_model_card_states_the_shipped_fit(shipped):
    """The card is written by hand; every achieved percentage in the file must appear in it."""
    card = MODEL_CARD.read_text(encoding="utf-8")
    assert prognosis.DEFAULT_MODEL_ID in card and prognosis.STUDY_DOI in card
    for target in shipped["calibration"]["targets"]:
        assert f"{100 * target['achieved']:.1f}" in card, target
    checks = shipped["calibration"]["cross_checks"]
    hazard_ratio = next(check for check in checks if check["kind"] == "hazard_ratio")
    assert f"{hazard_ratio['implied']:.2f}" in card
    assert re.search(r"research", card, re.IGNORECASE)


def test_cohort_ttv_nodes_reproduce_the_published_quartiles():
    nodes = calibration.cohort_ttv_nodes(calibration.EXTERNAL_COHORT, count=4000)
    assert np.allclose(np.percentile(nodes, [25, 50, 75]), [9.0, 28.0, 62.0], rtol=0.01)


def test_perturbing_a_target_moves_the_fit_the_right_way():
    """Raising the 3 mL five-year target raises the calibrated S(60 | 3 mL): the fit follows its targets."""
    fitter = calibration.Calibration()
    targets = calibration.cloglog(fitter.published)
    lower_hazard = targets.copy()
    lower_hazard[0] -= 0.2  # lower ln(-ln S) = higher survival
    survival_base = fitter.predicted(fitter.fit(targets))[0]
    survival_raised = fitter.predicted(fitter.fit(lower_hazard))[0]
    assert survival_raised > survival_base + 0.01
