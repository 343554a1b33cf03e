"""Cox proportional-hazards fits (Efron ties and Newton-Raphson as R's ``coxph``, :mod:`.efron`) and their tests.

Guard rails (STATISTICS.md, "Traps"): a fit that does not converge is an error, a fit whose hazard ratios run
off to infinity (separation: a level or range with no events) is refused, and a model's log-likelihood must
not be below that of a model nested in it. Likelihood-ratio tests compare fits on the same
rows; a variable's test drops all its columns together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError
from .efron import EfronLikelihood, NotConvergedError, newton_raphson

Z_95 = 1.959963984540054
# Separation (a level or range with no events) sends an estimate to infinity while the information in that
# direction vanishes: its variance per SD of the column explodes (1e13 in a test case, about 20 for the highly
# correlated columns of a 4-knot spline).
SEPARATION_VARIANCE = 1e6
NESTED_TOLERANCE = 1e-6


class FitError(InputError):
    """A model that cannot be estimated on these rows; the message says which and what to do."""


@dataclass(frozen=True)
class CoxFit:
    columns: tuple[str, ...]
    coefficients: np.ndarray
    covariance: np.ndarray
    log_likelihood: float
    null_log_likelihood: float
    n: int
    events: int

    @property
    def standard_errors(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    def linear_predictor(self, matrix: np.ndarray) -> np.ndarray:
        return matrix @ self.coefficients if self.columns else np.zeros(len(matrix))


def fit_cox(time: np.ndarray, event: np.ndarray, matrix: np.ndarray, columns: tuple[str, ...], label: str) -> CoxFit:
    """Fit one Cox model; raises :class:`FitError` for non-convergence, separation or a singular design."""
    n, events = len(time), int(np.sum(event))
    if not columns:
        null = EfronLikelihood(time, event, np.zeros((n, 0))).evaluate(np.zeros(0), derivatives=False)[0]
        return CoxFit((), np.zeros(0), np.zeros((0, 0)), null, null, n, events)
    centre, spread = matrix.mean(axis=0), matrix.std(axis=0)
    if np.any(spread == 0) or np.linalg.matrix_rank(matrix - centre) < matrix.shape[1]:
        raise FitError(f"Model {label}: its columns are constant or linearly dependent (one variable is a "
                       f"combination of others, or a level is absent); remove one of them.")
    likelihood = EfronLikelihood(time, event, (matrix - centre) / spread)
    try:
        scaled, log_likelihood, information = newton_raphson(likelihood)
        scaled_covariance = np.linalg.inv(information)
    except NotConvergedError as error:
        if error.diverging:
            names = ", ".join(columns[index] for index in error.diverging)
            raise FitError(f"Model {label}: the estimate of {names} runs off to infinity (separation: some level "
                           f"or range has no events, or only events). Merge levels or drop the variable.") from None
        raise FitError(f"Model {label} did not converge ({error}). Usual causes: a variable that separates "
                       f"events from non-events, a level with no events, or too many terms for the events. "
                       f"Simplify the model.") from None
    except np.linalg.LinAlgError as error:
        raise FitError(f"Model {label} did not converge ({error}). Usual causes: a variable that separates "
                       f"events from non-events, a level with no events, or too many terms for the events. "
                       f"Simplify the model.") from None
    diverging = [name for name, variance in zip(columns, np.diag(scaled_covariance))
                 if not variance < SEPARATION_VARIANCE]
    if diverging:
        raise FitError(f"Model {label}: the estimate of {', '.join(diverging)} runs off to infinity (separation: "
                       f"some level or range has no events, or only events). Merge levels or drop the variable.")
    if not np.all(np.isfinite(scaled_covariance)) or np.any(np.diag(scaled_covariance) <= 0):
        raise FitError(f"Model {label}: the information matrix is singular; a variable cannot be estimated.")
    coefficients = scaled / spread
    covariance = scaled_covariance / np.outer(spread, spread)
    null = likelihood.evaluate(np.zeros(len(columns)), derivatives=False)[0]
    return CoxFit(columns, coefficients, covariance, log_likelihood, null, n, events)


def breslow_cumulative_hazard(fit: CoxFit, time: np.ndarray, event: np.ndarray,
                              matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's baseline cumulative hazard at the event times, for the linear predictor ``matrix @ beta``."""
    risk = np.exp(fit.linear_predictor(matrix))
    moments = np.unique(time[event == 1])
    increments = [np.sum((time == moment) & (event == 1)) / np.sum(risk[time >= moment]) for moment in moments]
    return moments, np.cumsum(increments)


def likelihood_ratio(full: CoxFit, reduced: CoxFit, label: str) -> dict:
    """LR chi-square of the columns ``full`` has beyond ``reduced`` (same rows); refuses an impossible pair."""
    df = len(full.columns) - len(reduced.columns)
    chi2 = 2.0 * (full.log_likelihood - reduced.log_likelihood)
    if chi2 < -NESTED_TOLERANCE * max(1.0, abs(full.log_likelihood)):
        raise FitError(f"{label}: the larger model's log-likelihood ({full.log_likelihood:.4f}) is below the "
                       f"nested model's ({reduced.log_likelihood:.4f}); one of the fits stopped at a wrong "
                       f"optimum. Rescale the variables (e.g. mL in hundreds) or simplify the model.")
    chi2 = max(chi2, 0.0)
    return {"lr_chi2": chi2, "df": df, "p": float(stats.chi2.sf(chi2, df))}


def coefficient_rows(fit: CoxFit) -> list[dict]:
    rows = []
    for name, beta, se in zip(fit.columns, fit.coefficients, fit.standard_errors):
        rows.append({"term": name, "coefficient": float(beta), "se": float(se),
                     "hazard_ratio": math.exp(beta),
                     "ci95": [math.exp(beta - Z_95 * se), math.exp(beta + Z_95 * se)],
                     "p": float(2.0 * stats.norm.sf(abs(beta / se)))})
    return rows


def contrast(fit: CoxFit, column_slice: slice, difference: np.ndarray) -> dict:
    """Hazard ratio for a change ``difference`` in one variable's columns, Wald 95 % CI (delta method)."""
    beta = fit.coefficients[column_slice]
    covariance = fit.covariance[column_slice, column_slice]
    log_hr = float(difference @ beta)
    se = float(math.sqrt(max(difference @ covariance @ difference, 0.0)))
    return {"hazard_ratio": math.exp(log_hr), "ci95": [math.exp(log_hr - Z_95 * se), math.exp(log_hr + Z_95 * se)],
            "p": float(2.0 * stats.norm.sf(abs(log_hr / se))) if se > 0 else None}
