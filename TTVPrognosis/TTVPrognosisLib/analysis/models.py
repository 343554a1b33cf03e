"""One Cox model's numbers: coefficients, per-variable and nonlinearity likelihood-ratio tests, C, contrasts.

All fits of a run use the same analysed rows and the same term columns (knots from those rows), so nested
fits differ only in the columns they include.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .concordance import harrell_c
from .config import Contrast
from .cox import CoxFit, coefficient_rows, contrast, fit_cox, likelihood_ratio
from .terms import Term

MIN_EVENTS_PER_DF = 10


@dataclass(frozen=True)
class Design:
    variables: tuple[str, ...]
    matrix: np.ndarray
    columns: tuple[str, ...]
    slices: dict[str, slice]


def design(members, terms: dict[str, Term], matrices: dict[str, np.ndarray]) -> Design:
    """Columns of a set of variables side by side, with where each variable's columns sit."""
    blocks, columns, slices, start = [], [], {}, 0
    for name in members:
        block = matrices[name]
        blocks.append(block)
        columns.extend(terms[name].columns)
        slices[name] = slice(start, start + block.shape[1])
        start += block.shape[1]
    matrix = np.column_stack(blocks) if blocks else np.zeros((len(next(iter(matrices.values()))), 0))
    return Design(tuple(members), matrix, tuple(columns), slices)


def analyse_model(name: str, members: tuple[str, ...], rows, terms: dict[str, Term],
                  matrices: dict[str, np.ndarray], contrasts: tuple[Contrast, ...],
                  warnings: list[str]) -> tuple[dict, CoxFit]:
    full = design(members, terms, matrices)
    label = f"'{name}'"
    fit = fit_cox(rows.time, rows.event, full.matrix, full.columns, label)
    events_per_df = fit.events / len(full.columns)
    if events_per_df < MIN_EVENTS_PER_DF:
        warnings.append(f"Model {name}: {fit.events} events for {len(full.columns)} degrees of freedom "
                        f"({events_per_df:.1f} per df, under {MIN_EVENTS_PER_DF}): estimates may be unstable "
                        f"and optimistic.")
    drop_one = []
    for variable in members:
        reduced_members = tuple(member for member in members if member != variable)
        reduced = design(reduced_members, terms, matrices)
        reduced_fit = fit_cox(rows.time, rows.event, reduced.matrix, reduced.columns,
                              f"{label} without {variable}")
        drop_one.append({"variable": variable, **likelihood_ratio(fit, reduced_fit, f"Model {name}, {variable}")})
    nonlinearity = []
    for variable in members:
        if terms[variable].kind != "spline":
            continue
        linear_matrices = dict(matrices)
        linear_matrices[variable] = matrices[variable][:, :1]
        linear_terms = dict(terms)
        linear_terms[variable] = Term(variable, "linear", terms[variable].columns[:1])
        linear = design(members, linear_terms, linear_matrices)
        linear_fit = fit_cox(rows.time, rows.event, linear.matrix, linear.columns,
                             f"{label} with {variable} linear")
        nonlinearity.append({"variable": variable,
                             **likelihood_ratio(fit, linear_fit, f"Model {name}, nonlinearity of {variable}")})
    overall = likelihood_ratio(fit, fit_cox(rows.time, rows.event, full.matrix[:, :0], (), label),
                               f"Model {name}")
    document = {
        "n": fit.n, "events": fit.events, "degrees_of_freedom": len(full.columns),
        "events_per_df": events_per_df, "log_likelihood": fit.log_likelihood,
        "null_log_likelihood": fit.null_log_likelihood, "lr_test": overall,
        "concordance": harrell_c(rows.time, rows.event, fit.linear_predictor(full.matrix)),
        "knots": {variable: list(terms[variable].knots) for variable in members if terms[variable].kind == "spline"},
        "terms": [terms[variable].to_dict() for variable in members],
        "coefficients": coefficient_rows(fit), "variables": drop_one, "nonlinearity": nonlinearity,
        "contrasts": [_contrast(fit, full, terms[c.variable], c) for c in contrasts if c.model == name],
    }
    return document, fit


def _contrast(fit: CoxFit, full: Design, term: Term, wanted: Contrast) -> dict:
    if term.kind == "categorical":
        for level in (wanted.value, wanted.reference):
            if str(level) not in term.levels:
                raise InputError(f"Contrast of {term.variable}: level {level!r} does not occur; levels: "
                                 f"{', '.join(term.levels)}.")
        value, reference = str(wanted.value), str(wanted.reference)
    else:
        value, reference = float(wanted.value), float(wanted.reference)
        if (term.kind == "log" or term.transform == "log") and min(value, reference) <= 0:
            raise InputError(f"Contrast of {term.variable}: values must be positive (it is on the log scale).")
    difference = term.matrix([value])[0] - term.matrix([reference])[0]
    return {"variable": term.variable, "value": value, "reference": reference,
            **contrast(fit, full.slices[term.variable], difference)}
