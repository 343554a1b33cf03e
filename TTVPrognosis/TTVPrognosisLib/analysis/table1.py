"""Table 1: patient characteristics per group with the study's tests, computed as R computes them.

Continuous: median (IQR, ``numpy.quantile`` = R type 7); two groups Mann-Whitney U as R's ``wilcox.test``
(exact when both groups have under 50 patients and no ties, else the normal approximation with continuity and
tie correction), more groups Kruskal-Wallis. Categorical: n (%); Pearson chi-square **without** continuity
correction (the study's P = 0.54 for sex needs this), or Fisher's exact test when an expected count is under 5
(exact for any r x c table, as R's ``fisher.test``, by enumerating the tables with the same margins).
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
from scipy import special, stats

from ..errors import InputError

EXACT_LIMIT = 50
MAX_FISHER_TABLES = 2_000_000
_RELATIVE_ERROR = 1.0 + 1e-7  # R fisher.test: tables as likely as the observed one, up to rounding


def table_one(rows, by: str, variables: tuple[str, ...], categorical: set[str]) -> dict:
    """Per-group summaries and tests; ``categorical`` names the variables summarised as n (%)."""
    groups_of_rows = rows.texts(by)
    groups = _sorted(set(groups_of_rows))
    if len(groups) < 2:
        raise InputError(f"Table 1 column {by!r} has one group ({groups[0]}) in the analysed rows; it needs two "
                         f"or more.")
    output_rows = []
    for variable in variables:
        if variable in categorical:
            output_rows.append(_categorical_row(variable, rows.texts(variable), groups_of_rows, groups))
        else:
            values = _numbers(rows, variable)
            output_rows.append(_continuous_row(variable, values, np.asarray(groups_of_rows), groups))
    return {"by": by, "groups": [{"group": g, "n": groups_of_rows.count(g)} for g in groups], "rows": output_rows}


def _numbers(rows, variable: str) -> np.ndarray:
    try:
        return np.asarray([float(text) for text in rows.texts(variable)], dtype=float)
    except ValueError:
        raise InputError(f"Table 1 variable {variable!r} holds text; declare it categorical under [variables] "
                         f"(type = \"categorical\").") from None


def _continuous_row(variable: str, values: np.ndarray, labels: np.ndarray, groups: list[str]) -> dict:
    samples = [values[labels == group] for group in groups]
    summaries = {}
    for group, sample in zip(groups, samples):
        q1, median, q3 = np.quantile(sample, [0.25, 0.5, 0.75])
        summaries[group] = {"median": float(median), "q1": float(q1), "q3": float(q3), "n": int(sample.size)}
    if len(groups) == 2:
        test, p = mann_whitney(samples[0], samples[1])
    else:
        test, p = "Kruskal-Wallis", float(stats.kruskal(*samples).pvalue)
    return {"variable": variable, "kind": "continuous", "summary": summaries, "test": test, "p": p}


def mann_whitney(first: np.ndarray, second: np.ndarray) -> tuple[str, float]:
    """Two-sided P as R's ``wilcox.test(x, y)`` with its defaults."""
    tied = np.unique(np.concatenate([first, second])).size < first.size + second.size
    if first.size < EXACT_LIMIT and second.size < EXACT_LIMIT and not tied:
        return "Mann-Whitney U (exact)", float(stats.mannwhitneyu(first, second, alternative="two-sided",
                                                                  method="exact").pvalue)
    return "Mann-Whitney U (normal approximation, continuity corrected)", float(
        stats.mannwhitneyu(first, second, alternative="two-sided", method="asymptotic",
                           use_continuity=True).pvalue)


def _categorical_row(variable: str, values: list[str], labels: list[str], groups: list[str]) -> dict:
    levels = _sorted(set(values))
    counts = np.array([[sum(1 for v, g in zip(values, labels) if v == level and g == group) for group in groups]
                       for level in levels], dtype=int)
    summaries = {group: {level: {"n": int(counts[i, j]), "percent": 100.0 * counts[i, j] / counts[:, j].sum()}
                         for i, level in enumerate(levels)} for j, group in enumerate(groups)}
    if len(levels) < 2:
        return {"variable": variable, "kind": "categorical", "summary": summaries, "test": None, "p": None}
    expected = counts.sum(axis=1, keepdims=True) * counts.sum(axis=0, keepdims=True) / counts.sum()
    if np.any(expected < 5):
        test, p = "Fisher's exact test (an expected count under 5)", fisher_exact(counts)
    else:
        test = "Pearson chi-square (no continuity correction)"
        p = float(stats.chi2_contingency(counts, correction=False).pvalue)
    return {"variable": variable, "kind": "categorical", "levels": levels, "summary": summaries, "test": test,
            "p": p}


def fisher_exact(counts: np.ndarray) -> float:
    """Two-sided exact P: the total probability of tables with these margins no more likely than the observed."""
    counts = np.asarray(counts, dtype=int)
    if counts.shape == (2, 2):
        return float(stats.fisher_exact(counts, alternative="two-sided").pvalue)
    rows, columns = counts.sum(axis=1), counts.sum(axis=0)
    constant = (special.gammaln(rows + 1).sum() + special.gammaln(columns + 1).sum()
                - special.gammaln(counts.sum() + 1))
    observed = constant - special.gammaln(counts + 1).sum()
    threshold = observed + math.log(_RELATIVE_ERROR)
    total = 0.0
    for visited, log_probability in enumerate(_table_log_probabilities(rows, columns, constant), start=1):
        if visited > MAX_FISHER_TABLES:
            raise InputError("Fisher's exact test: the table has too many possible tables to enumerate; merge "
                             "rare levels of this variable.")
        if log_probability <= threshold:
            total += math.exp(log_probability)
    return min(total, 1.0)


def _table_log_probabilities(rows: np.ndarray, columns: np.ndarray, constant: float):
    """Log probabilities of every table with these margins, filled column by column."""

    def fill(column: int, remaining: tuple[int, ...], partial: float):
        if column == len(columns) - 1:
            yield partial - sum(special.gammaln(value + 1) for value in remaining)
            return
        for cells in _compositions(int(columns[column]), remaining):
            left = tuple(r - c for r, c in zip(remaining, cells))
            yield from fill(column + 1, left, partial - sum(special.gammaln(c + 1) for c in cells))

    yield from fill(0, tuple(int(r) for r in rows), constant)


def _compositions(total: int, bounds: tuple[int, ...]):
    """Ways to put ``total`` into cells bounded by ``bounds``."""
    for head in product(*(range(min(bound, total) + 1) for bound in bounds[:-1])):
        last = total - sum(head)
        if 0 <= last <= bounds[-1]:
            yield (*head, last)


def _sorted(levels: set[str]) -> list[str]:
    try:
        return sorted(levels, key=float)
    except ValueError:
        return sorted(levels)
