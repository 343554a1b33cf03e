"""Simulation: a synthetic cohort drawn from the default model, re-fitted with lifelines, gives it back.

This checks the numpy evaluation against an independent implementation of the same Royston-Parmar model
(lifelines' spline Cox model) and that the model is a proper survival distribution one can sample from.

lifelines traps handled here (NOTES.md): passing ``knots=`` adds a dead parameter (its last basis term uses
the boundary knot and is identically 0), so ``n_baseline_knots`` is set and ``.knots`` assigned afterwards;
a fit in months from the default start can stop at S = 1, so the fit is in years from an explicit start and
its predictions are checked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from TTVPrognosisLib.prognosis import model as prognosis

pd = pytest.importorskip("pandas")
lifelines = pytest.importorskip("lifelines")

COHORT_SIZE = 8000
SEED = 20240601
EXTERNAL_TTV_QUARTILES_ML = (9.0, 28.0, 62.0)
MONTHS_PER_YEAR = 12.0
CHECK_TTV_ML = np.array([3.0, 50.0, 300.0])


@pytest.fixture(scope="module")
def model() -> prognosis.SurvivalModel:
    return prognosis.load_model()


def _draw_ttv_ml(size: int, rng: np.random.Generator) -> np.ndarray:
    """The external cohort's TTV as the calibration assumes it: ln TTV normal on each side of the median."""
    first, median, third = np.log(EXTERNAL_TTV_QUARTILES_ML)
    z = rng.standard_normal(size)
    return np.exp(median + np.where(z < 0, median - first, third - median) / 0.6744897501960817 * z)


def _draw_event_months(model: prognosis.SurvivalModel, ttv_ml: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Invert S(t | TTV) = U: ln H is a reference curve in time plus a TTV shift (proportional hazards)."""
    months_grid = np.geomspace(1e-3, 1e5, 20001)
    reference_log_hazard = model.log_cumulative_hazard(months_grid, 1.0)  # increasing in time
    ttv_shift = model.log_cumulative_hazard(60.0, ttv_ml) - model.log_cumulative_hazard(60.0, 1.0)
    return np.interp(np.log(-np.log(rng.random(ttv_ml.size))) - ttv_shift, reference_log_hazard, months_grid)


def _draw_cohort(model: prognosis.SurvivalModel, size: int, rng: np.random.Generator):
    """TTV, observed months and event flags, with uniform censoring (staggered entry, 3-15 years)."""
    ttv_ml = _draw_ttv_ml(size, rng)
    event_months = _draw_event_months(model, ttv_ml, rng)
    censor_months = rng.uniform(36.0, 180.0, size)
    return ttv_ml, np.minimum(event_months, censor_months), (event_months <= censor_months).astype(int)


def _covariates(model: prognosis.SurvivalModel, ttv_ml: np.ndarray) -> pd.DataFrame:
    ln_ttv = np.log(ttv_ml)
    spline = prognosis.restricted_cubic_basis(ln_ttv, np.log(model.ttv_knots_ml))
    columns = {"ln_ttv": ln_ttv}
    columns.update({f"ln_ttv_spline_{j + 1}": spline[:, j] for j in range(spline.shape[1])})
    return pd.DataFrame(columns)


@pytest.fixture(scope="module")
def refit(model):
    ttv_ml, months, events = _draw_cohort(model, COHORT_SIZE, np.random.default_rng(SEED))
    covariates = _covariates(model, ttv_ml)
    interior_terms = len(model.time_knots_months) - 2
    fitter = lifelines.CoxPHFitter(baseline_estimation_method="spline", n_baseline_knots=interior_terms + 1)
    fitter.knots = model.time_knots_months / MONTHS_PER_YEAR
    start = {"beta_": np.zeros(covariates.shape[1] + 1), "phi1_": np.array([1.0])}  # + 1: the intercept
    start.update({f"phi{j + 2}_": np.array([0.0]) for j in range(interior_terms)})
    data = covariates.assign(years=months / MONTHS_PER_YEAR, event=events)
    fitter.fit(data, "years", "event", initial_point=start)
    return fitter


def _in_model_order(series, model: prognosis.SurvivalModel) -> np.ndarray:
    """lifelines' (beta_ with its Intercept, phi1_, phi2_, ...) in the model file's order."""
    interior_terms = len(model.time_knots_months) - 2
    time_part = [series[("beta_", "Intercept")], series[("phi1_", "Intercept")]]
    time_part += [series[(f"phi{j + 2}_", "Intercept")] for j in range(interior_terms)]
    ttv_part = [series[("beta_", "ln_ttv")]]
    ttv_part += [series[("beta_", f"ln_ttv_spline_{j + 1}")] for j in range(len(model.ttv_knots_ml) - 2)]
    return np.array(time_part + ttv_part, dtype=float)


def test_refit_has_exactly_the_model_parameters(refit, model):
    assert len(refit.params_) == model.parameters.size


def test_refit_recovers_the_parameters_within_four_standard_errors(refit, model):
    """Fitted in years: ln t_years = ln t_months - ln 12, so the intercept becomes g0 + g1 ln 12; splines
    depend on differences of ln t only, so every other coefficient is the same as in months."""
    truth_in_years = model.parameters.copy()
    truth_in_years[0] += model.parameters[1] * math.log(MONTHS_PER_YEAR)
    estimates = _in_model_order(refit.params_, model)
    standard_errors = _in_model_order(refit.standard_errors_, model)
    assert np.all(np.abs(estimates - truth_in_years) <= 4.0 * standard_errors), (estimates, truth_in_years)


def test_refit_recovers_the_five_year_predictions(refit, model):
    refitted = refit.predict_survival_function(_covariates(model, CHECK_TTV_ML), times=[5.0]).to_numpy()[0]
    truth = model.survival(60.0, CHECK_TTV_ML)
    assert np.all(refitted < 0.95), "the fit stopped at S = 1"
    assert np.allclose(refitted, truth, atol=0.03)


def test_synthetic_cohort_has_the_published_external_quartiles(model):
    """Without censoring, the drawn OS quartiles sit near the published 33, 57 and 125 months."""
    rng = np.random.default_rng(SEED + 1)
    event_months = _draw_event_months(model, _draw_ttv_ml(COHORT_SIZE, rng), rng)
    quartiles = np.percentile(event_months, [25, 50, 75])
    assert np.allclose(quartiles, [33.0, 57.0, 125.0], atol=[3.0, 4.0, 8.0])
