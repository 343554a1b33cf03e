"""Membership model: how well baseline characteristics tell two cohorts apart (Debray et al. 2015).

Unpenalised logistic regression (statsmodels ``Logit``; scikit-learn's default is L2-penalised) of belonging to
the second group (in sorted order) on the given variables; its C-statistic is the AUC = Mann-Whitney U /
(n1 n0), equal to Hmisc's ``somers2`` C. The 95 % CI is the percentile bootstrap with the model refitted on
each resample. Separation (a variable that predicts the group perfectly) is an error: the AUC would be 1 by
construction.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from ..errors import InputError


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a member of group 1 scores above one of group 0 (ties count one half)."""
    ones, zeros = scores[labels == 1], scores[labels == 0]
    u = stats.mannwhitneyu(ones, zeros, alternative="two-sided", method="asymptotic").statistic
    return float(u / (ones.size * zeros.size))


def fit_logistic(labels: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Fitted linear predictor; :class:`InputError` for separation or non-convergence."""
    import statsmodels.api as sm

    design = sm.add_constant(matrix, has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            result = sm.Logit(labels, design).fit(disp=0, maxiter=200, method="newton")
        except (Warning, np.linalg.LinAlgError, ValueError, ArithmeticError) as error:
            raise InputError(f"The membership model cannot be estimated ({str(error).splitlines()[0]}): a "
                             f"variable separates the groups, or the variables are collinear.") from None
    if not result.mle_retvals.get("converged", False):
        raise InputError("The membership model did not converge (separation of the groups?).")
    return design @ result.params


def membership_c(group_labels: list[str], matrix: np.ndarray, replicates: int, rng: np.random.Generator) -> dict:
    groups = sorted(set(group_labels))
    if len(groups) != 2:
        raise InputError(f"The membership model needs exactly two groups; found {len(groups)}: "
                         f"{', '.join(groups)}.")
    labels = np.asarray([1 if label == groups[1] else 0 for label in group_labels])
    apparent = auc(labels, fit_logistic(labels, matrix))
    estimates, failed = [], 0
    for _ in range(replicates):
        sample = rng.integers(0, len(labels), len(labels))
        if labels[sample].min() == labels[sample].max():
            failed += 1
            continue
        try:
            estimates.append(auc(labels[sample], fit_logistic(labels[sample], matrix[sample])))
        except InputError:
            failed += 1
    ci = [float(v) for v in np.quantile(estimates, [0.025, 0.975])] if estimates else None
    return {"groups": groups, "modelled_group": groups[1], "n": int(labels.size), "c_statistic": apparent,
            "ci95": ci, "ci_method": "percentile bootstrap, model refitted per replicate",
            "replicates": replicates, "failed_replicates": failed}
