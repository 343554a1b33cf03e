"""Model terms from table columns: linear, log, categorical (reference coding) and restricted cubic splines.

Splines are Harrell's restricted cubic splines exactly as R's ``rms::rcs`` builds them (``rcspline.eval`` with
``norm = 2``), so coefficients can be compared with R's: knots at Harrell's quantiles of the analysed rows
(3: 10/50/90 %, 4: 5/35/65/95 %, 5: 5/27.5/50/72.5/95 %) computed as ``numpy.quantile`` (R's type 7). Unlike
rms, the outer knots are these quantiles at every sample size (rms moves them to the 5th smallest and largest
value under 100 rows). Columns are named ``x``, ``x'``, ``x''``; a categorical level ``x[level]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .config import Variable
from .dataset import CohortRows, numeric_column

HARRELL_QUANTILES = {3: (0.10, 0.50, 0.90), 4: (0.05, 0.35, 0.65, 0.95), 5: (0.05, 0.275, 0.50, 0.725, 0.95)}
MIN_LEVEL_PATIENTS = 5


@dataclass(frozen=True)
class Term:
    """How one variable becomes model columns, with what prediction at new values needs (knots, levels)."""

    variable: str
    kind: str
    columns: tuple[str, ...]
    knots: tuple[float, ...] = ()
    transform: str = ""
    levels: tuple[str, ...] = ()
    reference: str | None = None

    def matrix(self, values) -> np.ndarray:
        """Design columns for values on the table's scale (numbers, or level names for categorical)."""
        if self.kind == "categorical":
            texts = [str(value) for value in values]
            return np.column_stack([[1.0 if text == level else 0.0 for text in texts]
                                    for level in self.levels if level != self.reference])
        x = np.asarray(values, dtype=float)
        if self.kind == "log" or self.transform == "log":
            x = np.log(x)
        if self.kind == "spline":
            return np.column_stack([x, harrell_basis(x, np.asarray(self.knots))])
        return x[:, np.newaxis]

    def to_dict(self) -> dict:
        document = {"variable": self.variable, "type": self.kind, "columns": list(self.columns)}
        if self.kind == "spline":
            document.update(knots=list(self.knots), knot_scale="ln" if self.transform == "log" else "as given")
        if self.kind == "categorical":
            document.update(levels=list(self.levels), reference=self.reference)
        return document


def harrell_knots(values: np.ndarray, count: int) -> np.ndarray:
    return np.quantile(np.asarray(values, dtype=float), HARRELL_QUANTILES[count])


def harrell_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Nonlinear columns of rms' ``rcspline.eval(x, knots, inclx = FALSE, norm = 2)``: one per interior knot."""
    x = np.asarray(x, dtype=float)[:, np.newaxis]
    last, before_last = knots[-1], knots[-2]
    scale = (last - knots[0]) ** (2.0 / 3.0)
    interior = knots[:-2]
    cube = lambda values: np.maximum(values / scale, 0.0) ** 3  # noqa: E731
    return (cube(x - interior)
            + ((before_last - interior) * cube(x - last) - (last - interior) * cube(x - before_last))
            / (last - before_last))


def build_term(rows: CohortRows, variable: Variable) -> Term:
    """The term of one variable on the analysed rows, with the guard rails on its values."""
    name = variable.name
    if variable.kind == "categorical":
        return _categorical(rows, variable)
    values = numeric_column(rows, name)
    if variable.kind == "log" or variable.transform == "log":
        bad = [identifier for identifier, value in zip(rows.ids, values) if value <= 0]
        if bad:
            raise InputError(f"Variable {name!r} is taken on the log scale but is 0 or negative for "
                             f"{', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}; use a linear term or "
                             f"shift it.")
        values = np.log(values)
    if np.ptp(values) == 0:
        raise InputError(f"Variable {name!r} has the same value ({values[0]:g}) for every analysed patient; it "
                         f"cannot be estimated. Leave it out of the models.")
    if variable.kind == "linear":
        return Term(name, "linear", (name,))
    if variable.kind == "log":
        return Term(name, "log", (f"ln({name})",))
    knots = harrell_knots(values, variable.knots)
    if np.any(np.diff(knots) <= 0):
        raise InputError(f"Variable {name!r} has too few distinct values for {variable.knots} spline knots "
                         f"(knots {', '.join(f'{k:g}' for k in knots)} coincide); use fewer knots or a linear "
                         f"term.")
    columns = tuple(name + "'" * index for index in range(variable.knots - 1))
    return Term(name, "spline", columns, knots=tuple(float(k) for k in knots), transform=variable.transform)


def _categorical(rows: CohortRows, variable: Variable) -> Term:
    name = variable.name
    texts = rows.texts(name)
    levels = _sorted_levels(set(texts))
    if variable.reference not in levels:
        raise InputError(f"Reference level {variable.reference!r} of {name!r} does not occur in the analysed "
                         f"rows; levels found: {', '.join(levels)}.")
    if len(levels) < 2:
        raise InputError(f"Variable {name!r} has one level ({levels[0]}) in every analysed patient; it cannot be "
                         f"estimated. Leave it out of the models.")
    counts = {level: texts.count(level) for level in levels}
    small = [f"{level} ({count})" for level, count in counts.items() if count < MIN_LEVEL_PATIENTS]
    if small:
        raise InputError(f"Variable {name!r} has levels with fewer than {MIN_LEVEL_PATIENTS} patients: "
                         f"{', '.join(small)}. Merge them with another level or leave those patients out.")
    columns = tuple(f"{name}[{level}]" for level in levels if level != variable.reference)
    return Term(name, "categorical", columns, levels=tuple(levels), reference=variable.reference)


def _sorted_levels(levels: set[str]) -> list[str]:
    try:
        return sorted(levels, key=float)
    except ValueError:
        return sorted(levels)


def term_values(rows: CohortRows, term: Term):
    """The analysed rows' values of a term's variable, as :meth:`Term.matrix` takes them."""
    return rows.texts(term.variable) if term.kind == "categorical" else numeric_column(rows, term.variable)
