"""Synthetic CRLM cohorts with known truth, for recovery tests of the analysis (STATISTICS.md, last section).

Baseline TTV, the fraction remaining after chemotherapy, the number of lesions and CEA are correlated through a
Gaussian copula with split-normal marginals (ln TTV: median 40 mL, quartiles 15 and 110; fraction remaining:
median 0.40, quartiles 0.27 and 0.56, i.e. relative change -60 % (-73 to -44) as published), TTV truncated at
2500 mL. Overall survival is Weibull proportional hazards with a linear predictor in ln TTV, the absolute
change (per 100 mL; linear, or with an extra slope between -30 and 0 mL for a nonlinear truth), age, sex and
ln CEA; censoring is staggered accrual (uniform over 48 months, analysis at 108 months) plus loss to follow-up
(exponential, 1 % a month). Recurrence after the last local liver treatment (4 months after baseline; left
empty for patients who died or were lost before it) is Weibull, with death as a competing event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

CORRELATION = np.array([[1.0, 0.2, 0.5, 0.4],
                        [0.2, 1.0, 0.1, 0.1],
                        [0.5, 0.1, 1.0, 0.3],
                        [0.4, 0.1, 0.3, 1.0]])
Z_QUARTILE = 0.6744897501960817
WEIBULL_SHAPE = 1.2
WEIBULL_SCALE_MONTHS = 70.0


@dataclass(frozen=True)
class Truth:
    """Log hazard ratios per unit of each analysed column (change per 100 mL)."""

    ln_ttv: float = 0.35
    change_per_100ml: float = 0.30
    age_per_year: float = 0.02
    female: float = -0.20
    ln_cea: float = 0.15
    change_kink: float = 0.0  # extra slope (per 100 mL) of change between -30 and 0 mL: nonlinear when non-zero
    extras: dict = field(default_factory=dict)


def _split_normal(z: np.ndarray, median: float, q1: float, q3: float) -> np.ndarray:
    return median + np.where(z < 0, (median - q1), (q3 - median)) * z / Z_QUARTILE


def linear_predictor(frame: dict, truth: Truth) -> np.ndarray:
    change = frame["absolute_change_ml"] / 100.0
    return (truth.ln_ttv * np.log(frame["baseline_ttv_ml"]) + truth.change_per_100ml * change
            + truth.change_kink * np.clip(change + 0.3, 0.0, 0.3) + truth.age_per_year * (frame["age"] - 63.0)
            + truth.female * (frame["sex"] == "female") + truth.ln_cea * np.log(frame["cea"]))


def cohort(n: int, seed: int, truth: Truth = Truth()) -> dict[str, np.ndarray]:
    """Columns of one cohort (a dict of arrays; ``pandas.DataFrame(cohort(...))`` makes the table)."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(np.zeros(4), CORRELATION, size=n)
    baseline = np.minimum(np.exp(_split_normal(z[:, 0], np.log(40.0), np.log(15.0), np.log(110.0))), 2500.0)
    remaining = np.clip(_split_normal(z[:, 1], 0.40, 0.27, 0.56), 0.01, 1.6)
    lesions = np.maximum(1, np.round(np.exp(_split_normal(z[:, 2], np.log(5.0), np.log(3.0), np.log(9.0)))))
    cea = np.exp(_split_normal(z[:, 3], np.log(10.0), np.log(4.0), np.log(40.0)))
    frame = {"patient_id": np.array([f"S{index:05d}" for index in range(n)]),
             "baseline_ttv_ml": np.round(baseline, 2), "followup_ttv_ml": np.round(baseline * remaining, 2),
             "lesions": lesions.astype(int), "cea": np.round(cea, 2),
             "age": np.round(rng.normal(63.0, 10.0, n)).astype(int),
             "sex": np.where(rng.random(n) < 0.37, "female", "male")}
    frame["absolute_change_ml"] = np.round(frame["followup_ttv_ml"] - frame["baseline_ttv_ml"], 2)
    frame["cohort"] = np.where(rng.random(n) < 0.7, "trial", "validation")
    eta = linear_predictor(frame, truth)
    eta = eta - np.mean(eta)
    death = WEIBULL_SCALE_MONTHS * (rng.exponential(size=n) / np.exp(eta)) ** (1.0 / WEIBULL_SHAPE)
    censoring = censoring_times(rng, n)
    frame["os_months"] = np.round(np.minimum(death, censoring), 3)
    frame["os_event"] = (death <= censoring).astype(int)
    frame.update(_recurrence(rng, death, censoring, eta))
    return frame


def censoring_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Potential follow-up: analysis at 108 months of patients accrued over 48, or loss to follow-up."""
    return np.minimum(108.0 - rng.uniform(0.0, 48.0, n), rng.exponential(100.0, n))


def _recurrence(rng, death, censoring, eta) -> dict:
    """Dates for the early-recurrence outcome: treatment 4 months after baseline, recurrence or not."""
    start_day = dt.date(2015, 1, 1).toordinal()
    accrual = rng.integers(0, 4 * 365, len(death))
    treatment = 4.0
    recurrence = np.minimum(treatment + 14.0 * (rng.exponential(size=len(death)) / np.exp(eta)) ** (1.0 / 1.1),
                            1000.0)
    last_visit = np.minimum(death, censoring)
    observed = recurrence <= last_visit
    day = lambda months: [dt.date.fromordinal(int(start_day + a + m * 365.25 / 12)).isoformat()  # noqa: E731
                          for a, m in zip(accrual, months)]
    treated = last_visit >= treatment  # patients who died or left before treatment had none: left empty
    return {"treatment_date": np.array([d if t else "" for d, t in zip(day(np.full(len(death), treatment)),
                                                                       treated)]),
            "recurrence_date": np.array([d if o else "" for d, o in zip(day(recurrence), observed)]),
            "last_visit_date": np.array(day(np.maximum(last_visit, treatment))),
            "death_date": np.array([d if dead else "" for d, dead in zip(day(death), death <= censoring)])}
