"""The default survival model against the study's published figures, the model file loader, and the API.

Published numbers (doi:10.1016/j.ejca.2024.114185 and, for the HR, doi:10.1016/j.ejca.2025.115738) are
written out here on purpose: they are what the model must reproduce, not outputs of the code under test.
"""

from __future__ import annotations

import ast
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.prognosis import model as prognosis
from TTVPrognosisLib.prognosis.cohorts import (
    CAIRO5_COHORT,
    EXTERNAL_COHORT,
    describe_ttv_change,
    early_recurrence_base_rates,
    place_against_cohorts,
)
from TTVPrognosisLib.prognosis.section import prognosis_section

PUBLISHED_FIVE_YEAR = [(3.0, 0.72, (0.56, 0.84)), (50.0, 0.37, (0.29, 0.47)), (300.0, 0.07, (0.01, 0.28))]
EXTERNAL_TTV_QUARTILES_ML = (9.0, 28.0, 62.0)
EXTERNAL_OS_QUARTILES_MONTHS = (33.0, 57.0, 125.0)
CAIRO5_TTV_QUARTILES_ML = (17.0, 48.0, 178.0)
CAIRO5_OS_QUARTILES_MONTHS = (28.0, 46.0)  # third quartile not reached
PACKAGE_DIR = Path(prognosis.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model() -> prognosis.SurvivalModel:
    return prognosis.load_model()


@pytest.fixture()
def document() -> dict:
    return json.loads(prognosis.default_model_path().read_text(encoding="utf-8"))


# --- golden tests: the default model against the publications ---------------------------------------------

@pytest.mark.parametrize(("ttv_ml", "published", "_ci"), PUBLISHED_FIVE_YEAR)
def test_five_year_survival_reproduces_published_predictions(model, ttv_ml, published, _ci):
    assert abs(float(model.survival(60.0, ttv_ml)) - published) <= 0.03


@pytest.mark.parametrize(("ttv_ml", "_published", "ci"), PUBLISHED_FIVE_YEAR)
def test_five_year_band_is_close_to_published_confidence_interval(model, ttv_ml, _published, ci):
    low, high = model.survival_band(60.0, ttv_ml)
    assert abs(float(low) - ci[0]) <= 0.04
    assert abs(float(high) - ci[1]) <= 0.04


def test_survival_falls_with_time_and_with_ttv_everywhere_on_a_grid(model):
    months = np.linspace(*model.supported_months, 97)[:, np.newaxis]
    ttv_ml = np.geomspace(*model.hard_ttv_ml, 200)[np.newaxis, :]
    log_hazard = model.log_cumulative_hazard(months, ttv_ml)
    survival = model.survival(months, ttv_ml)
    assert np.all(np.diff(log_hazard, axis=0) > 0)
    assert np.all(np.diff(log_hazard, axis=1) > 0)
    assert np.all(np.diff(survival, axis=0) <= 0) and np.all(np.diff(survival, axis=1) <= 0)
    assert np.all((survival >= 0) & (survival < 1))


def _split_normal_ttv_ml(quartiles_ml, count=2000):
    """Cohort TTVs: ln TTV normal on each side of the median, matching the published quartiles."""
    first, median, third = np.log(quartiles_ml)
    z = norm.ppf((np.arange(count) + 0.5) / count)
    spread = np.where(z < 0, (median - first), (third - median)) / norm.ppf(0.75)
    return np.exp(median + spread * z)


def _cohort_quartile_months(model, ttv_ml, level):
    return brentq(lambda t: float(model.survival(t, ttv_ml).mean()) - level, 1.0, 1000.0)


@pytest.mark.parametrize(("level", "published"), list(zip((0.75, 0.5, 0.25), EXTERNAL_OS_QUARTILES_MONTHS)))
def test_external_cohort_quartiles_implied_by_the_model(model, level, published):
    ttv_ml = _split_normal_ttv_ml(EXTERNAL_TTV_QUARTILES_ML)
    assert abs(_cohort_quartile_months(model, ttv_ml, level) - published) <= 2.0


@pytest.mark.parametrize(("level", "published"), list(zip((0.75, 0.5), CAIRO5_OS_QUARTILES_MONTHS)))
def test_cairo5_quartiles_roughly_match_though_not_fitted(model, level, published):
    """Cross-check only: another population, OS from randomization instead of detection."""
    ttv_ml = _split_normal_ttv_ml(CAIRO5_TTV_QUARTILES_ML)
    assert abs(_cohort_quartile_months(model, ttv_ml, level) - published) <= 4.0


def test_hazard_ratio_100_vs_10_ml_inside_the_cairo5_confidence_interval(model):
    """Zeeuw 2025: adjusted HR 2.44 (1.25-4.76); under PH the HR is also ln S(t|100) / ln S(t|10)."""
    ratio = model.hazard_ratio(100.0, 10.0)
    assert 1.25 <= ratio <= 4.76
    log_survival_100, log_survival_10 = np.log(model.survival(60.0, [100.0, 10.0]))
    assert math.isclose(ratio, log_survival_100 / log_survival_10)


def test_proportional_hazards_ratio_is_the_same_at_every_time(model):
    ratios = np.exp(model.log_cumulative_hazard([24.0, 60.0, 120.0], 100.0)
                    - model.log_cumulative_hazard([24.0, 60.0, 120.0], 10.0))
    assert np.allclose(ratios, ratios[0])


# --- evaluation against independent computations ----------------------------------------------------------

def test_spline_basis_matches_lifelines_royston_parmar_basis():
    mixins = pytest.importorskip("lifelines.fitters.mixins")
    knots = np.log([33.0, 57.0, 125.0])
    x = np.linspace(2.0, 6.0, 41)
    expected = mixins.SplineFitterMixin().basis(x, knots[1], knots[0], knots[-1])
    assert np.allclose(prognosis.restricted_cubic_basis(x, knots)[:, 0], expected)


def test_spline_slope_matches_finite_differences():
    knots = np.log([3.0, 10.0, 28.0, 300.0])
    x = np.linspace(0.0, 7.0, 71)
    step = 1e-6
    numeric = (prognosis.restricted_cubic_basis(x + step, knots)
               - prognosis.restricted_cubic_basis(x - step, knots))
    assert np.allclose(prognosis.restricted_cubic_basis_slope(x, knots), numeric / (2 * step), atol=1e-5)


def test_band_matches_monte_carlo_over_the_parameter_covariance(model):
    rng = np.random.default_rng(7)
    draws = rng.multivariate_normal(model.parameters, model.covariance, size=40000)
    design = model.design(np.array([24.0, 60.0, 120.0]), 40.0)
    simulated = np.exp(-np.exp(draws @ design.T))
    low, high = model.survival_band([24.0, 60.0, 120.0], 40.0)
    assert np.allclose(np.percentile(simulated, 2.5, axis=0), low, atol=0.01)
    assert np.allclose(np.percentile(simulated, 97.5, axis=0), high, atol=0.01)


# --- prediction API ---------------------------------------------------------------------------------------

def test_prediction_to_dict_has_the_documented_shape(model):
    result = prognosis.predict_overall_survival(40.0, model).to_dict()
    assert result["model_id"] == model.model_id == prognosis.DEFAULT_MODEL_ID
    assert result["warnings"] == []
    months = [point["months"] for point in result["overall_survival"]]
    assert months == [24.0, 36.0, 48.0, 60.0, 72.0, 84.0, 96.0, 108.0, 120.0]
    probabilities = [point["probability"] for point in result["overall_survival"]]
    assert all(a > b for a, b in zip(probabilities, probabilities[1:]))
    for point in result["overall_survival"]:
        low, high = point["ci95"]
        assert 0.0 <= low < point["probability"] < high <= 1.0
    json.dumps(result)


def test_prediction_uses_the_default_model_when_none_is_given(model):
    assert prognosis.predict_overall_survival(50.0).probability_at(60.0) == pytest.approx(
        float(model.survival(60.0, 50.0)), abs=1e-12)


def test_requested_months_are_sorted_and_deduplicated(model):
    result = prognosis.predict_overall_survival(50.0, model, months=[60, 24, 60.0])
    assert [point.months for point in result.points] == [24.0, 60.0]


@pytest.mark.parametrize("months", [[12.0], [24.0, 121.0], [float("nan")], []])
def test_unsupported_times_are_refused(model, months):
    with pytest.raises(InputError, match="months"):
        prognosis.predict_overall_survival(50.0, model, months=months)


@pytest.mark.parametrize("ttv_ml", [0.56, 1.0, 2.99, 301.0, 430.0])
def test_ttv_outside_the_calibrated_range_gives_a_warning(model, ttv_ml):
    result = prognosis.predict_overall_survival(ttv_ml, model)
    assert len(result.warnings) == 1 and "extrapolation" in result.warnings[0]


@pytest.mark.parametrize("ttv_ml", [3.0, 28.0, 300.0])
def test_ttv_inside_the_calibrated_range_gives_no_warning(model, ttv_ml):
    assert prognosis.predict_overall_survival(ttv_ml, model).warnings == ()


@pytest.mark.parametrize(("ttv_ml", "message"), [
    (0.4, "outside the range"), (431.0, "0.56-430 mL"), (2000.0, "outside the range"), (None, "missing"),
    (float("nan"), "finite"), (float("inf"), "finite"), (-5.0, "positive"), (0.0, "positive"), ("12", "number"),
    (True, "number"),
])
def test_unusable_ttv_is_refused_with_a_clear_error(model, ttv_ml, message):
    with pytest.raises(InputError, match=message):
        prognosis.predict_overall_survival(ttv_ml, model)


def test_numpy_numbers_are_accepted(model):
    result = prognosis.predict_overall_survival(np.float32(40.0), model, months=np.array([60]))
    assert result.baseline_ttv_ml == pytest.approx(40.0)


# --- model file loading and validation ---------------------------------------------------------------------

def _write(tmp_path: Path, document) -> Path:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_a_users_own_model_file_is_loaded_and_used(tmp_path, document):
    document["model_id"] = "my-own-model"
    document["ttv_spline"]["coefficients"][0] += 0.1
    model = prognosis.load_model(_write(tmp_path, document))
    assert model.model_id == "my-own-model"
    prediction = prognosis.predict_overall_survival(50.0, model)
    assert prediction.model_id == "my-own-model"
    assert prediction.probability_at(60.0) < float(prognosis.load_model().survival(60.0, 50.0))


@pytest.mark.parametrize("field", ["format", "format_version", "model_id", "family", "outcome", "time_spline",
                                   "ttv_spline", "covariance", "support"])
def test_missing_top_level_field_is_refused(tmp_path, document, field):
    del document[field]
    with pytest.raises(prognosis.ModelFileError, match=field):
        prognosis.load_model(_write(tmp_path, document))


@pytest.mark.parametrize(("section", "field"), [
    ("time_spline", "knots_months"), ("time_spline", "coefficients"), ("ttv_spline", "knots_ml"),
    ("ttv_spline", "coefficients"), ("support", "months"), ("support", "hard_ttv_ml"),
    ("support", "calibrated_ttv_ml"),
])
def test_missing_nested_field_is_refused(tmp_path, document, section, field):
    del document[section][field]
    with pytest.raises(prognosis.ModelFileError, match=field):
        prognosis.load_model(_write(tmp_path, document))


@pytest.mark.parametrize(("section", "field"), [
    ("time_spline", "coefficients"), ("ttv_spline", "coefficients"), ("support", "months"),
])
def test_wrong_length_is_refused(tmp_path, document, section, field):
    document[section][field] = document[section][field] + [0.0]
    with pytest.raises(prognosis.ModelFileError, match=f"{field}.*must hold"):
        prognosis.load_model(_write(tmp_path, document))


def test_covariance_of_the_wrong_size_is_refused(tmp_path, document):
    document["covariance"] = [row[:-1] for row in document["covariance"][:-1]]
    with pytest.raises(prognosis.ModelFileError, match="5 x 5"):
        prognosis.load_model(_write(tmp_path, document))


@pytest.mark.parametrize(("section", "field", "knots"), [
    ("time_spline", "knots_months", [33.0, 33.0, 125.0]),
    ("time_spline", "knots_months", [57.0, 33.0, 125.0]),
    ("ttv_spline", "knots_ml", [3.0, 300.0, 28.0]), ("ttv_spline", "knots_ml", [-3.0, 28.0, 300.0]),
])
def test_bad_knots_are_refused(tmp_path, document, section, field, knots):
    document[section][field] = knots
    with pytest.raises(prognosis.ModelFileError, match=field):
        prognosis.load_model(_write(tmp_path, document))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("family", "weibull-aft", "unknown model family"), ("family", None, "unknown model family"),
    ("format", "some-other-format", "format"), ("format_version", 2, "format_version"),
    ("format_version", True, "format_version"), ("model_id", "", "model_id"),
    ("model_id", "a b/c", "model_id"),
])
def test_unknown_family_format_or_bad_identity_is_refused(tmp_path, document, field, value, message):
    document[field] = value
    with pytest.raises(prognosis.ModelFileError, match=message):
        prognosis.load_model(_write(tmp_path, document))


def test_non_numbers_in_coefficients_are_refused(tmp_path, document):
    document["ttv_spline"]["coefficients"][1] = "0.1"
    with pytest.raises(prognosis.ModelFileError, match="list of numbers"):
        prognosis.load_model(_write(tmp_path, document))


def test_asymmetric_covariance_is_refused(tmp_path, document):
    document["covariance"][0][1] += 0.5
    with pytest.raises(prognosis.ModelFileError, match="symmetric"):
        prognosis.load_model(_write(tmp_path, document))


def test_covariance_with_a_negative_variance_is_refused(tmp_path, document):
    document["covariance"][4][4] = -1.0
    with pytest.raises(prognosis.ModelFileError, match="positive semi-definite"):
        prognosis.load_model(_write(tmp_path, document))


def test_cumulative_hazard_that_decreases_is_refused(tmp_path, document):
    document["time_spline"]["coefficients"][1] = -0.5
    with pytest.raises(prognosis.ModelFileError, match="increase"):
        prognosis.load_model(_write(tmp_path, document))


def test_calibrated_range_outside_the_hard_range_is_refused(tmp_path, document):
    document["support"]["calibrated_ttv_ml"] = [0.1, 300.0]
    with pytest.raises(prognosis.ModelFileError, match="calibrated_ttv_ml"):
        prognosis.load_model(_write(tmp_path, document))


def test_time_unit_other_than_months_is_refused(tmp_path, document):
    document["outcome"]["time_unit"] = "years"
    with pytest.raises(prognosis.ModelFileError, match="months"):
        prognosis.load_model(_write(tmp_path, document))


def test_invalid_json_is_refused_with_its_position(tmp_path):
    path = tmp_path / "model.json"
    path.write_text('{"format": "ttvprognosis-survival-model",\n  "format_version": 1,,}', encoding="utf-8")
    with pytest.raises(prognosis.ModelFileError, match="line 2"):
        prognosis.load_model(path)


def test_a_json_list_is_refused(tmp_path):
    with pytest.raises(prognosis.ModelFileError, match="JSON object"):
        prognosis.load_model(_write(tmp_path, [1, 2, 3]))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="not found"):
        prognosis.load_model(tmp_path / "nowhere.json")


def test_validation_does_not_change_the_document(document):
    before = copy.deepcopy(document)
    prognosis.model_from_document(document)
    assert document == before


# --- descriptive pieces -----------------------------------------------------------------------------------

def test_early_recurrence_base_rates_by_hand():
    """External: 25 % + 25 % x (6-4)/(9-4) = 35 %. CAIRO5: 25 % + 25 % x (6-4)/(7-4) = 41.7 %."""
    rates = {rate.cohort: rate for rate in early_recurrence_base_rates()}
    assert rates[EXTERNAL_COHORT].probability == pytest.approx(0.35)
    assert rates[CAIRO5_COHORT].probability == pytest.approx(0.25 + 0.25 * 2 / 3)
    for rate in rates.values():
        assert rate.window_months == 6.0
        assert "Supplementary Fig. 1" in rate.ttv_effect and prognosis.STUDY_DOI in rate.citation


@pytest.mark.parametrize(("ttv_ml", "external", "cairo5"), [
    (5.0, "below the interquartile range", "below the interquartile range"),
    (28.0, "at the median", "within the interquartile range, below the median"),
    (50.0, "within the interquartile range, above", "within the interquartile range, above"),
    (100.0, "above the interquartile range", "within the interquartile range, above the median"),
    (200.0, "above the interquartile range", "above the interquartile range"),
])
def test_baseline_ttv_placed_against_the_published_cohorts(ttv_ml, external, cairo5):
    placements = {placement.cohort: placement for placement in place_against_cohorts(ttv_ml)}
    assert placements[EXTERNAL_COHORT].position.startswith(external)
    assert placements[CAIRO5_COHORT].position.startswith(cairo5)


def test_ttv_change_is_described_not_modelled():
    description = describe_ttv_change(40.0, 10.0)
    assert description.change_ml == -30.0
    assert description.relative_change_percent == pytest.approx(-75.0)
    assert description.direction == "decrease"
    assert prognosis.CAIRO5_TTV_DOI in description.effect and "not a model input" in description.effect
    json.dumps(description.to_dict())


def test_ttv_change_cohorts_hold_the_published_figures_exactly():
    """doi:10.1016/j.ejca.2024.114185, Table 1 and section 3.2: median (IQR)."""
    cohorts = {cohort["cohort"]: cohort for cohort in describe_ttv_change(40.0, 10.0).to_dict()["cohorts"]}
    assert set(cohorts) == {"CAIRO5", "validation"}
    cairo5, validation = cohorts["CAIRO5"], cohorts["validation"]
    assert (cairo5["absolute_change_median_ml"], cairo5["absolute_change_iqr_ml"]) == (-22.0, [-81.0, -6.0])
    assert (validation["absolute_change_median_ml"], validation["absolute_change_iqr_ml"]) == (-13.0, [-37.0, -3.0])
    assert (cairo5["relative_change_median_percent"], cairo5["relative_change_iqr_percent"]) == (-60.0, [-73.0, -44.0])
    assert (validation["relative_change_median_percent"],
            validation["relative_change_iqr_percent"]) == (-64.0, [-76.0, -44.0])
    assert (cairo5["months_between_scans_median"], cairo5["months_between_scans_iqr"]) == (2.3, [2.1, 2.5])
    assert (validation["months_between_scans_median"], validation["months_between_scans_iqr"]) == (3.0, [2.5, 3.8])
    assert all("Table 1" in cohort["citation"] and prognosis.STUDY_DOI in cohort["citation"]
               for cohort in cohorts.values())


@pytest.mark.parametrize(("baseline", "follow_up", "cairo5", "validation"), [
    (200.0, 100.0, "below", "below"),      # -100 mL: below -81 and -37
    (100.0, 50.0, "within", "below"),      # -50 mL
    (30.0, 10.0, "within", "within"),      # -20 mL
    (10.0, 6.0, "above", "within"),        # -4 mL: above -6 (CAIRO5), within -37 to -3 (validation)
    (10.0, 12.0, "above", "above"),        # +2 mL
])
def test_ttv_change_position_against_each_cohorts_iqr(baseline, follow_up, cairo5, validation):
    cohorts = {cohort["cohort"]: cohort["position"] for cohort in describe_ttv_change(baseline, follow_up).cohorts}
    assert cohorts == {"CAIRO5": cairo5, "validation": validation}


def test_ttv_change_effect_quotes_the_published_p_values():
    effect = describe_ttv_change(40.0, 10.0).effect
    for text in ("P = 0.040 and 0.021", "P = 0.006 and 0.012", "P = 0.006 for early recurrence",
                 "0.009 for overall survival", "Supplementary Fig. 1", "relative change was deliberately not"):
        assert text in effect
    assert "not published" not in effect and "not recorded" not in effect


@pytest.mark.parametrize(("baseline", "follow_up"),
                         [(0.0, 5.0), (10.0, -1.0), (None, 5.0), (10.0, float("nan"))])
def test_ttv_change_refuses_unusable_values(baseline, follow_up):
    with pytest.raises(InputError):
        describe_ttv_change(baseline, follow_up)


# --- runs inside Slicer: numpy and the standard library only, Python 3.9 syntax ---------------------------

ALLOWED_IMPORTS = {"__future__", "json", "math", "re", "dataclasses", "pathlib", "typing", "collections.abc",
                   "numpy", "errno", "os"}


@pytest.mark.parametrize("module", ["prognosis/model.py", "prognosis/cohorts.py", "prognosis/section.py",
                                    "prognosis/scores.py", "errors.py"])
def test_slicer_side_modules_import_only_numpy_and_the_standard_library(module):
    tree = ast.parse((PACKAGE_DIR / module).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        assert set(names) <= ALLOWED_IMPORTS | {"numbers"}, names


@pytest.mark.parametrize("module", ["prognosis/model.py", "prognosis/cohorts.py", "prognosis/section.py",
                                    "prognosis/scores.py", "prognosis/calibration.py"])
def test_modules_parse_as_python_3_9(module):
    source = (PACKAGE_DIR / module).read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 9))
    assert "from __future__ import annotations" in source
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "zip":
            assert not any(keyword.arg == "strict" for keyword in node.keywords)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dataclass":
            assert not any(keyword.arg in {"slots", "kw_only"} for keyword in node.keywords)


# --- the section the panel and `compare --json` show ------------------------------------------------------

def test_prognosis_section_for_a_measurable_patient(model):
    section = prognosis_section(40.0, 10.0, model)
    assert section["errors"] == [] and section["model_id"] == model.model_id
    assert section["overall_survival"] == prognosis.predict_overall_survival(40.0, model).to_dict()[
        "overall_survival"]
    assert section["ttv_change"]["relative_change_percent"] == pytest.approx(-75.0)
    assert len(section["baseline_ttv_vs_cohorts"]) == 2 and len(section["early_recurrence"]) == 2
    assert "Research only" in section["intended_use"]
    assert section["population"] == prognosis.POPULATION
    json.dumps(section)


def test_population_sentence_says_who_and_that_survival_is_conditional(model):
    population = prognosis_section(40.0, 10.0, model)["population"]
    for text in ("liver-only", "complete local treatment", "resection and/or ablation", "randomisation",
                 "detection of liver metastases", "conditional on", prognosis.STUDY_DOI):
        assert text in population
    assert prognosis.predict_overall_survival(40.0, model).to_dict()["population"] == population


def test_prognosis_section_reports_what_it_cannot_compute_and_keeps_the_rest(model):
    section = prognosis_section(0.0, 5.0, model)
    assert section["overall_survival"] == [] and section["ttv_change"] is None
    assert len(section["errors"]) == 2 and "positive" in section["errors"][0]
    assert len(section["early_recurrence"]) == 2 and len(section["baseline_ttv_vs_cohorts"]) == 2
