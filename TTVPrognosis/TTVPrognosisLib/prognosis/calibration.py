"""Reconstruct the default survival model from the study's published figures, reproducibly.

The study (doi:10.1016/j.ejca.2024.114185) published no coefficients. This script finds the Royston-Parmar
model of :mod:`TTVPrognosisLib.prognosis` whose predictions match what it did publish, and writes the model
file with its targets, the fit it achieved and the cross-checks it did not use. The shipped file is never
edited by hand: a test re-runs this script and compares.

Targets (weighted least squares on the cloglog scale, ln(-ln S)):

- predicted 5-year overall survival from the study's adjusted flexible parametric model in the external
  validation cohort: baseline TTV 3 mL -> 72 % (95 % CI 56-84), 50 mL -> 37 % (29-47), 300 mL -> 7 % (1-28);
  standard errors from the CI widths on the cloglog scale;
- the external cohort's OS quartiles (33, 57 and 125 months from detection of liver metastases), matched as
  the cohort-average survival the model implies over the cohort's TTV distribution (median 28 mL,
  IQR 9-62); standard errors from a binomial approximation with n = 85.

The covariance of the coefficients is the delta method through re-calibration: each target is perturbed in
turn and the model re-calibrated, which gives the Jacobian J of the coefficients with respect to the
targets, and Cov = J diag(se^2) J'.

Cross-checks, not fitted: the CAIRO5 OS quartiles (OS from randomization, another population) over the
CAIRO5 TTV distribution, and the hazard ratio for 100 vs 10 mL against the CAIRO5 estimate of Zeeuw 2025
(doi:10.1016/j.ejca.2025.115738), adjusted HR 2.44 (1.25-4.76).

Run: ``python -m TTVPrognosisLib.prognosis.calibration --output PATH``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, least_squares
from scipy.special import ndtri

from .. import __version__
from . import cohorts
from . import model as prognosis

STUDY = f"doi:{prognosis.STUDY_DOI}"
CROSS_CHECK_STUDY = f"doi:{prognosis.CAIRO5_TTV_DOI}"

TIME_KNOTS_MONTHS = (33.0, 57.0, 125.0)  # the external cohort's OS quartiles
TTV_KNOTS_ML = (3.0, 28.0, 300.0)  # the span of the published predictions, the cohort median inside
SUPPORTED_MONTHS = (24.0, 120.0)
CALIBRATED_TTV_ML = (3.0, 300.0)
HARD_TTV_PERCENTILES = (1.0, 99.0)  # of the validation cohort's assumed TTV distribution: what its data cover
START = (-5.0, 1.0, 0.0, 0.4, 0.0)
QUADRATURE_NODES = 400
PERTURBATION_IN_SE = 0.05
SOLVER_TOLERANCE = 1e-14
PARAMETER_NAMES = ("time_intercept", "time_ln_months", "time_spline_1", "ttv_ln_ml", "ttv_spline_1")


@dataclass(frozen=True)
class Cohort:
    """A published cohort: its size, time origin, and quartiles of baseline TTV and of OS."""

    name: str
    size: int
    time_origin: str
    ttv_quartiles_ml: tuple[float, float, float]
    os_quartiles_months: tuple[float, float, float | None]
    source: str


EXTERNAL_COHORT = Cohort(cohorts.EXTERNAL_COHORT, 85, "detection of liver metastases", (9.0, 28.0, 62.0),
                         (33.0, 57.0, 125.0), STUDY)
CAIRO5_COHORT = Cohort(cohorts.CAIRO5_COHORT, 215, "randomization", (17.0, 48.0, 178.0), (28.0, 46.0, None),
                       STUDY)


@dataclass(frozen=True)
class ConditionalTarget:
    """A published model prediction S(months | baseline TTV) with its 95 % CI."""

    baseline_ttv_ml: float
    months: float
    survival: float
    ci95: tuple[float, float]
    source: str = STUDY

    @property
    def standard_error(self) -> float:
        """On the cloglog scale, where flexible parametric models put their CIs."""
        return float(cloglog(self.ci95[0]) - cloglog(self.ci95[1])) / (2.0 * prognosis.Z_95)


@dataclass(frozen=True)
class CohortTarget:
    """A published OS quartile, read as: the cohort-average survival at ``months`` is ``survival``."""

    cohort: Cohort
    months: float
    survival: float

    @property
    def standard_error(self) -> float:
        """Binomial approximation on the cloglog scale (ignores censoring, so it is a lower bound)."""
        binomial = math.sqrt(self.survival * (1.0 - self.survival) / self.cohort.size)
        return binomial / abs(self.survival * math.log(self.survival))


CONDITIONAL_TARGETS = (
    ConditionalTarget(3.0, 60.0, 0.72, (0.56, 0.84)),
    ConditionalTarget(50.0, 60.0, 0.37, (0.29, 0.47)),
    ConditionalTarget(300.0, 60.0, 0.07, (0.01, 0.28)),
)
COHORT_TARGETS = tuple(CohortTarget(EXTERNAL_COHORT, months, survival)
                       for months, survival in zip(EXTERNAL_COHORT.os_quartiles_months, (0.75, 0.5, 0.25)))
HAZARD_RATIO_CROSS_CHECK = {"baseline_ttv_ml": 100.0, "reference_ttv_ml": 10.0, "published": 2.44,
                            "published_ci95": [1.25, 4.76], "source": CROSS_CHECK_STUDY,
                            "note": "CAIRO5 (n = 425), multivariable Cox model; another population and model"}


def cloglog(probability: float | np.ndarray) -> np.ndarray:
    return np.log(-np.log(probability))


def cohort_ttv_percentile(cohort: Cohort, percent: float) -> float:
    """A percentile (mL) of the cohort's assumed baseline TTV distribution (the split normal of
    :func:`cohort_ttv_nodes`)."""
    first, median, third = np.log(cohort.ttv_quartiles_ml)
    z_value = float(ndtri(percent / 100.0))
    spread = (median - first if z_value < 0 else third - median) / float(ndtri(0.75))
    return float(np.exp(median + spread * z_value))


def hard_ttv_range(cohort: Cohort | None = None) -> tuple[float, float]:
    """The TTVs the model takes at all: the 1st to 99th percentile of the validation cohort's assumed TTV
    distribution (about 0.56-430 mL), to two significant digits.

    Beyond them there are hardly any patients behind the published figures (its 98th percentile is about
    315 mL), and the ln-linear tail goes on falling without limit (2000 mL would predict 0.04 % 5-year OS).
    """
    cohort = EXTERNAL_COHORT if cohort is None else cohort
    low, high = (cohort_ttv_percentile(cohort, percent) for percent in HARD_TTV_PERCENTILES)
    return float(f"{low:.2g}"), float(f"{high:.2g}")


def cohort_ttv_nodes(cohort: Cohort, count: int = QUADRATURE_NODES) -> np.ndarray:
    """Equal-weight quadrature nodes of the cohort's baseline TTV distribution (mL).

    Only the median and quartiles are published. Assumed: ln TTV is normal on each side of the median, with
    the spread that puts the quartiles where they are published (a split normal with its median fixed).
    """
    first, median, third = np.log(cohort.ttv_quartiles_ml)
    z_quartile = float(ndtri(0.75))
    z_nodes = ndtri((np.arange(count) + 0.5) / count)
    spread = np.where(z_nodes < 0, (median - first) / z_quartile, (third - median) / z_quartile)
    return np.exp(median + spread * z_nodes)


class Calibration:
    """The targets as design matrices, so each model evaluation is one matrix product."""

    def __init__(self) -> None:
        self.conditional_design = np.stack([
            prognosis.design_matrix(target.months, target.baseline_ttv_ml, TIME_KNOTS_MONTHS, TTV_KNOTS_ML)
            for target in CONDITIONAL_TARGETS])
        self.cohort_design = np.stack([
            prognosis.design_matrix(target.months, cohort_ttv_nodes(target.cohort), TIME_KNOTS_MONTHS,
                                    TTV_KNOTS_ML)
            for target in COHORT_TARGETS])
        targets = CONDITIONAL_TARGETS + COHORT_TARGETS
        self.published = np.array([target.survival for target in targets])
        self.standard_errors = np.array([target.standard_error for target in targets])

    def predicted(self, parameters: np.ndarray) -> np.ndarray:
        """Model values of every target: conditional survivals, then cohort-average survivals."""
        conditional = np.exp(-np.exp(self.conditional_design @ parameters))
        cohort_average = np.exp(-np.exp(self.cohort_design @ parameters)).mean(axis=1)
        return np.concatenate([conditional, cohort_average])

    def residuals(self, parameters: np.ndarray, target_cloglog: np.ndarray) -> np.ndarray:
        return (cloglog(self.predicted(parameters)) - target_cloglog) / self.standard_errors

    def fit(self, target_cloglog: np.ndarray, start: Sequence[float] = START) -> np.ndarray:
        result = least_squares(self.residuals, np.asarray(start, dtype=float), args=(target_cloglog,),
                               xtol=SOLVER_TOLERANCE, ftol=SOLVER_TOLERANCE, gtol=SOLVER_TOLERANCE)
        if not result.success:
            raise RuntimeError(f"Calibration did not converge: {result.message}")
        return result.x

    def covariance(self, parameters: np.ndarray) -> np.ndarray:
        """J diag(se^2) J', J from re-calibrating to each target perturbed by +-0.05 se (central)."""
        target_cloglog = cloglog(self.published)
        jacobian = np.empty((parameters.size, target_cloglog.size))
        for index, standard_error in enumerate(self.standard_errors):
            step = np.zeros_like(target_cloglog)
            step[index] = PERTURBATION_IN_SE * standard_error
            jacobian[:, index] = ((self.fit(target_cloglog + step, parameters)
                                   - self.fit(target_cloglog - step, parameters)) / (2.0 * step[index]))
        covariance = jacobian @ np.diag(self.standard_errors ** 2) @ jacobian.T
        return (covariance + covariance.T) / 2.0


def cohort_survival(model: prognosis.SurvivalModel, months: float, cohort: Cohort) -> float:
    """Cohort-average survival at ``months`` over the assumed TTV distribution of the cohort."""
    return float(model.survival(months, cohort_ttv_nodes(cohort)).mean())


def implied_quartiles(model: prognosis.SurvivalModel, cohort: Cohort,
                      horizon_months: float = 600.0) -> list[float | None]:
    """Months at which cohort-average survival reaches 75, 50 and 25 % (None beyond the horizon)."""
    quartiles: list[float | None] = []
    for level in (0.75, 0.5, 0.25):
        if cohort_survival(model, horizon_months, cohort) > level:
            quartiles.append(None)
            continue
        quartiles.append(float(brentq(lambda t, level=level: cohort_survival(model, t, cohort) - level,
                                      1e-3, horizon_months, xtol=1e-9)))
    return quartiles


def hazard_ratio_with_ci(model: prognosis.SurvivalModel, baseline_ttv_ml: float,
                         reference_ttv_ml: float) -> tuple[float, float, float]:
    """HR and its 95 % CI from the stored covariance (delta method on ln HR)."""
    contrast = model.design(60.0, baseline_ttv_ml) - model.design(60.0, reference_ttv_ml)
    log_ratio = float(contrast @ model.parameters)
    standard_error = math.sqrt(float(contrast @ model.covariance @ contrast))
    return (math.exp(log_ratio), math.exp(log_ratio - prognosis.Z_95 * standard_error),
            math.exp(log_ratio + prognosis.Z_95 * standard_error))


def calibrate() -> dict:
    """Fit, derive the covariance, check, and return the model document (not yet written)."""
    calibration = Calibration()
    parameters = calibration.fit(cloglog(calibration.published))
    covariance = calibration.covariance(parameters)
    draft = _model_document(parameters, covariance, calibration={})
    model = prognosis.model_from_document(draft, source="calibration draft")
    document = _model_document(parameters, covariance, _calibration_record(model, calibration, parameters))
    prognosis.model_from_document(document, source="calibration result")
    return document


def _model_document(parameters: np.ndarray, covariance: np.ndarray, calibration: dict) -> dict:
    time_count = len(TIME_KNOTS_MONTHS)
    return {
        "format": prognosis.MODEL_FORMAT,
        "format_version": 1,
        "model_id": prognosis.DEFAULT_MODEL_ID,
        "title": "Overall survival by baseline total tumour volume (reconstructed from the published figures "
                 "of the 2024 EJC TTV study)",
        "family": "royston-parmar-ph",
        "outcome": {"name": "overall survival", "time_origin": EXTERNAL_COHORT.time_origin,
                    "time_unit": "months"},
        "predictor": {"name": "baseline_ttv_ml", "unit": "mL", "transform": "ln"},
        "time_spline": {"knots_months": list(TIME_KNOTS_MONTHS),
                        "coefficients": [float(value) for value in parameters[:time_count]]},
        "ttv_spline": {"knots_ml": list(TTV_KNOTS_ML),
                       "coefficients": [float(value) for value in parameters[time_count:]]},
        "parameter_names": list(PARAMETER_NAMES),
        "covariance": [[float(value) for value in row] for row in covariance],
        "support": {"months": list(SUPPORTED_MONTHS), "calibrated_ttv_ml": list(CALIBRATED_TTV_ML),
                    "hard_ttv_ml": list(hard_ttv_range())},
        "intended_use": "Research only. Not for clinical decisions about individual patients.",
        "population": prognosis.POPULATION,
        "provenance": {
            "source": STUDY,
            "method": "Reconstructed from published figures; the study published no coefficients.",
            "generator": "python -m TTVPrognosisLib.prognosis.calibration",
            "generator_version": __version__,
        },
        "calibration": calibration,
    }


def _calibration_record(model: prognosis.SurvivalModel, calibration: Calibration,
                        parameters: np.ndarray) -> dict:
    achieved = calibration.predicted(parameters)
    lows, highs = model.survival_band([t.months for t in CONDITIONAL_TARGETS],
                                      [t.baseline_ttv_ml for t in CONDITIONAL_TARGETS])
    conditional = [
        {"kind": "conditional_survival", "baseline_ttv_ml": target.baseline_ttv_ml, "months": target.months,
         "published": target.survival, "published_ci95": list(target.ci95), "achieved": float(value),
         "achieved_ci95": [float(low), float(high)], "weight_se_cloglog": target.standard_error,
         "source": target.source}
        for target, value, low, high in zip(CONDITIONAL_TARGETS, achieved, lows, highs)]
    external_quartiles = implied_quartiles(model, EXTERNAL_COHORT)
    cohort = [
        {"kind": "cohort_survival", "cohort": target.cohort.name, "months": target.months,
         "published": target.survival, "achieved": float(value), "implied_quartile_months": quartile,
         "weight_se_cloglog": target.standard_error, "source": target.cohort.source}
        for target, value, quartile in zip(COHORT_TARGETS, achieved[len(CONDITIONAL_TARGETS):],
                                           external_quartiles)]
    ratio, ratio_low, ratio_high = hazard_ratio_with_ci(model, HAZARD_RATIO_CROSS_CHECK["baseline_ttv_ml"],
                                                        HAZARD_RATIO_CROSS_CHECK["reference_ttv_ml"])
    return {
        "method": "Weighted least squares on ln(-ln S) (scipy least_squares); covariance by re-calibrating "
                  "to targets perturbed one at a time (delta method).",
        "assumptions": [
            "Published 95 % CIs of the 5-year predictions are symmetric on the ln(-ln S) scale and "
            "independent of each other.",
            "The external cohort's OS quartiles are matched by the model's survival averaged over the "
            "cohort's TTV distribution: ln TTV normal on each side of the median 28 mL, with the published "
            "quartiles 9 and 62 mL (only these three numbers are published).",
            "Quartile weights: binomial standard error with n = 85, ignoring censoring.",
            "The adjusted model's other covariates are held at the values the study used for its "
            "predictions; this model has baseline TTV as its only input.",
        ],
        "targets": conditional + cohort,
        "max_abs_error_percentage_points": float(100.0 * np.max(np.abs(achieved - calibration.published))),
        "cross_checks": [
            {"kind": "cohort_quartiles", "cohort": CAIRO5_COHORT.name,
             "time_origin": CAIRO5_COHORT.time_origin,
             "published_months": list(CAIRO5_COHORT.os_quartiles_months),
             "implied_months": implied_quartiles(model, CAIRO5_COHORT), "source": STUDY,
             "note": "not fitted; third quartile not reached in the publication; OS from randomization in "
                     "initially unresectable disease, so only a rough check"},
            {"kind": "hazard_ratio", **HAZARD_RATIO_CROSS_CHECK, "implied": ratio,
             "implied_ci95": [ratio_low, ratio_high]},
        ],
    }


def write_model(document: dict, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def fit_summary(document: dict) -> list[str]:
    """Human-readable lines: every target against its achieved value, and the cross-checks."""
    lines = []
    for target in document["calibration"]["targets"]:
        if target["kind"] == "conditional_survival":
            lines.append(f"S({target['months']:g} mo | {target['baseline_ttv_ml']:g} mL): published "
                         f"{100 * target['published']:.1f} %, achieved {100 * target['achieved']:.1f} %")
        else:
            lines.append(f"{target['cohort']} S({target['months']:g} mo): published "
                         f"{100 * target['published']:.1f} %, achieved {100 * target['achieved']:.1f} % "
                         f"(quartile at {target['implied_quartile_months']:.1f} mo)")
    for check in document["calibration"]["cross_checks"]:
        if check["kind"] == "hazard_ratio":
            low, high = check["implied_ci95"]
            lines.append(f"HR 100 vs 10 mL: published {check['published']} {check['published_ci95']}, "
                         f"implied {check['implied']:.2f} [{low:.2f}, {high:.2f}]")
        else:
            implied = ", ".join("not reached" if m is None else f"{m:.1f}" for m in check["implied_months"])
            lines.append(f"{check['cohort']} OS quartiles: published {check['published_months']}, implied "
                         f"[{implied}] months")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m TTVPrognosisLib.prognosis.calibration",
                                     description="Reconstruct the default survival model, write it as JSON.")
    parser.add_argument("--output", type=Path, default=prognosis.default_model_path(),
                        help="model file to write (default: the shipped model in the package, prognosis/models)")
    arguments = parser.parse_args(argv)
    document = calibrate()
    write_model(document, arguments.output)
    print(f"Wrote {arguments.output}")
    for line in fit_summary(document):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
