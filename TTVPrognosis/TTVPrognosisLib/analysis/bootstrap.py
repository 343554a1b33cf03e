"""Bootstrap of the added value: paired difference in Harrell's C and optimism-corrected C (Harrell 2015, 5.3).

Patients are resampled with replacement by one seeded ``numpy.random.Generator``; in each replicate both models
are refitted on the same resample (paired), giving the difference in apparent C (for its percentile 95 % CI)
and each model's optimism (C on the resample minus C of that fit on the original rows). The primary test of
added value is the likelihood-ratio test, not this CI (a test of a C difference between nested models is
biased). Replicates whose fit fails (a level absent from the resample, separation) are counted and left out;
over 10 % failing is an error.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .concordance import harrell_c
from .cox import FitError, fit_cox

MAX_FAILED_SHARE = 0.10


def bootstrap_added_value(time: np.ndarray, event: np.ndarray, base_matrix: np.ndarray, base_columns: tuple,
                          extended_matrix: np.ndarray, extended_columns: tuple, replicates: int,
                          rng: np.random.Generator) -> dict:
    n = len(time)
    differences, optimism_base, optimism_extended = [], [], []
    failed = 0
    for _ in range(replicates):
        sample = rng.integers(0, n, n)
        t, e = time[sample], event[sample]
        if e.sum() == 0:
            failed += 1
            continue
        try:
            base = fit_cox(t, e, base_matrix[sample], base_columns, "base (bootstrap)")
            extended = fit_cox(t, e, extended_matrix[sample], extended_columns, "extended (bootstrap)")
        except FitError:
            failed += 1
            continue
        base_here = harrell_c(t, e, base.linear_predictor(base_matrix[sample]))
        extended_here = harrell_c(t, e, extended.linear_predictor(extended_matrix[sample]))
        differences.append(extended_here - base_here)
        optimism_base.append(base_here - harrell_c(time, event, base.linear_predictor(base_matrix)))
        optimism_extended.append(extended_here - harrell_c(time, event, extended.linear_predictor(extended_matrix)))
    if replicates and failed > MAX_FAILED_SHARE * replicates:
        raise InputError(f"The bootstrap failed in {failed} of {replicates} replicates (fits that did not "
                         f"converge on resampled patients): the models are too large for this cohort.")
    if not differences:
        return {"replicates": replicates, "failed_replicates": failed, "delta_c_ci95": None,
                "optimism_base": None, "optimism_extended": None}
    low, high = np.quantile(differences, [0.025, 0.975])
    return {"replicates": replicates, "failed_replicates": failed, "delta_c_ci95": [float(low), float(high)],
            "optimism_base": float(np.mean(optimism_base)), "optimism_extended": float(np.mean(optimism_extended))}
