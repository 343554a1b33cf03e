"""The analysis settings file (TOML): read, check every key, and hold it as plain dataclasses.

Every choice of the analysis is written in the file or has a documented default here, so the file plus the
table reproduce the result. Unknown keys are refused: a misspelt key silently ignored would change the analysis.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

VARIABLE_TYPES = ("linear", "log", "categorical", "spline")
SPLINE_KNOT_COUNTS = (3, 4, 5)
DEFAULT_REPLICATES = 2000
DEFAULT_SEED = 1
DEFAULT_EARLY_HORIZON_MONTHS = 6.0


@dataclass(frozen=True)
class Variable:
    """One analysed variable: the CSV column it reads and how it enters a model."""

    name: str
    kind: str
    knots: int = 0
    transform: str = ""
    reference: str | None = None


@dataclass(frozen=True)
class EarlyRecurrence:
    """Columns for the study's early-recurrence outcome, counted from the last local liver treatment."""

    start: str
    recurrence: str
    last_visit: str
    death: str | None
    horizon_months: float
    dates: bool


@dataclass(frozen=True)
class Outcome:
    time: str | None
    event: str | None
    horizon_months: float | None
    early_recurrence: EarlyRecurrence | None


@dataclass(frozen=True)
class Contrast:
    """A hazard ratio users ask for: ``variable`` at ``value`` against ``reference``, others unchanged."""

    model: str
    variable: str
    value: Any
    reference: Any


@dataclass(frozen=True)
class Plots:
    burden_variable: str | None
    model: str | None
    partial_effect: str | None
    adjusted_values: tuple[float, ...]
    formats: tuple[str, ...]


@dataclass(frozen=True)
class AnalysisConfig:
    outcome: Outcome
    variables: dict[str, Variable]
    models: dict[str, tuple[str, ...]]
    comparisons: tuple[tuple[str, str], ...]
    contrasts: tuple[Contrast, ...]
    table1_by: str | None
    table1_variables: tuple[str, ...]
    membership_by: str | None
    membership_variables: tuple[str, ...]
    follow_up_by: str | None
    id_column: str | None
    missing_values: tuple[str, ...]
    replicates: int
    seed: int
    plots: Plots
    source: str = ""
    settings: dict = field(default_factory=dict, repr=False)

    def model_columns(self) -> list[str]:
        """Every variable used by a model, in first-use order (complete cases are taken over these)."""
        names: list[str] = []
        for members in self.models.values():
            names.extend(name for name in members if name not in names)
        return names


def load_config(path: str | Path) -> AnalysisConfig:
    """Read and check a TOML settings file; every problem is an :class:`InputError` naming the key."""
    config_path = Path(path)
    try:
        data = config_path.read_bytes()
    except OSError as error:
        raise InputError(f"Cannot read the analysis settings {config_path}: {error.strerror or error}.") from None
    return parse_config(data.decode("utf-8-sig", errors="strict"), source=str(config_path))


def _toml_loads(text: str, source: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.9 / 3.10 (Slicer 5.8): the tomli backport when installed
        try:
            import tomli as tomllib
        except ImportError:
            raise InputError("Reading analysis settings on this Python needs the 'tomli' package: "
                             "pip install tomli.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"The analysis settings {source} are not valid TOML: {error}.") from None


def parse_config(text: str, source: str = "<settings>") -> AnalysisConfig:
    raw = _toml_loads(text, source)
    check = _Checker(source)
    check.keys(raw, "", {"outcome", "variables", "models", "comparisons", "contrasts", "table1", "membership",
                         "follow_up", "bootstrap", "plots", "table"})
    outcome = _outcome(check, check.table(raw, "outcome", required=True))
    variables = {name: _variable(check, name, spec)
                 for name, spec in check.table(raw, "variables", required=True).items()}
    models = _models(check, check.table(raw, "models", required=True), variables)
    comparisons = tuple(_comparison(check, item, models) for item in check.array(raw, "comparisons"))
    contrasts = tuple(_contrast(check, item, models, variables) for item in check.array(raw, "contrasts"))
    table1 = check.table(raw, "table1")
    check.keys(table1, "table1", {"by", "variables"})
    membership = check.table(raw, "membership")
    check.keys(membership, "membership", {"by", "variables"})
    follow_up = check.table(raw, "follow_up")
    check.keys(follow_up, "follow_up", {"by"})
    bootstrap = check.table(raw, "bootstrap")
    check.keys(bootstrap, "bootstrap", {"replicates", "seed"})
    table = check.table(raw, "table")
    check.keys(table, "table", {"id", "missing"})
    for name in check.names(table1, "table1.variables"):
        check.that(name in variables, f"table1.variables names '{name}', which is not under [variables] (declare "
                                      f"it there so it is summarised as numbers or as categories on purpose)")
    membership_variables = check.names(membership, "membership.variables")
    for name in membership_variables:
        check.that(name in variables, f"membership.variables names '{name}', which is not under [variables]")
    replicates = check.integer(bootstrap, "bootstrap.replicates", DEFAULT_REPLICATES, minimum=0)
    seed = check.integer(bootstrap, "bootstrap.seed", DEFAULT_SEED, minimum=0)
    plots = _plots(check, check.table(raw, "plots"), models, variables)
    return AnalysisConfig(
        outcome=outcome, variables=variables, models=models, comparisons=comparisons, contrasts=contrasts,
        table1_by=check.text(table1, "table1.by"), table1_variables=check.names(table1, "table1.variables"),
        membership_by=check.text(membership, "membership.by"), membership_variables=membership_variables,
        follow_up_by=check.text(follow_up, "follow_up.by"), id_column=check.text(table, "table.id"),
        missing_values=check.names(table, "table.missing"),
        replicates=replicates, seed=seed, plots=plots, source=source, settings=raw)


def _outcome(check: _Checker, table: dict) -> Outcome:
    check.keys(table, "outcome", {"time", "event", "horizon_months", "early_recurrence"})
    early = table.get("early_recurrence")
    horizon = check.number(table, "outcome.horizon_months", None, positive=True)
    if early is not None:
        check.that(isinstance(early, dict), "outcome.early_recurrence must be a table")
        check.that("time" not in table and "event" not in table,
                   "give either outcome.time and outcome.event, or outcome.early_recurrence, not both")
        check.keys(early, "outcome.early_recurrence",
                   {"start", "recurrence", "last_visit", "death", "horizon_months", "dates"})
        spec = EarlyRecurrence(
            start=check.text(early, "outcome.early_recurrence.start", required=True),
            recurrence=check.text(early, "outcome.early_recurrence.recurrence", required=True),
            last_visit=check.text(early, "outcome.early_recurrence.last_visit", required=True),
            death=check.text(early, "outcome.early_recurrence.death"),
            horizon_months=check.number(early, "outcome.early_recurrence.horizon_months",
                                        DEFAULT_EARLY_HORIZON_MONTHS, positive=True),
            dates=check.flag(early, "outcome.early_recurrence.dates", True))
        return Outcome(time=None, event=None, horizon_months=horizon, early_recurrence=spec)
    return Outcome(time=check.text(table, "outcome.time", required=True),
                   event=check.text(table, "outcome.event", required=True), horizon_months=horizon,
                   early_recurrence=None)


def _variable(check: _Checker, name: str, spec: Any) -> Variable:
    where = f"variables.{name}"
    check.that(isinstance(spec, dict), f"{where} must be a table such as {{ type = \"linear\" }}")
    check.keys(spec, where, {"type", "knots", "transform", "reference"})
    kind = spec.get("type")
    check.that(kind in VARIABLE_TYPES, f"{where}.type must be one of {', '.join(VARIABLE_TYPES)}, got {kind!r}")
    transform = check.text(spec, f"{where}.transform") or ""
    check.that(transform in ("", "log"), f"{where}.transform can only be \"log\", got {transform!r}")
    check.that(not (transform and kind not in ("spline",)),
               f"{where}: transform applies to splines; use type = \"log\" for a linear term in ln({name})")
    knots = 0
    if kind == "spline":
        knots = check.integer(spec, f"{where}.knots", 3, minimum=0)
        check.that(knots in SPLINE_KNOT_COUNTS, f"{where}.knots must be 3, 4 or 5 (Harrell's quantiles)")
    else:
        check.that("knots" not in spec, f"{where}.knots applies to splines only")
    reference = spec.get("reference")
    if kind == "categorical":
        check.that(reference is not None, f"{where} needs a reference level, e.g. reference = \"female\"")
        check.that(isinstance(reference, (str, int)) and not isinstance(reference, bool),
                   f"{where}.reference must be a level as written in the table")
        reference = str(reference)
    else:
        check.that(reference is None, f"{where}.reference applies to categorical variables only")
    return Variable(name=name, kind=kind, knots=knots, transform=transform, reference=reference)


def _models(check: _Checker, table: dict, variables: dict[str, Variable]) -> dict[str, tuple[str, ...]]:
    check.that(bool(table), "[models] must name at least one model")
    models = {}
    for name, members in table.items():
        check.that(isinstance(members, list) and all(isinstance(item, str) for item in members) and members,
                   f"models.{name} must be a non-empty list of variable names")
        check.that(len(set(members)) == len(members), f"models.{name} names a variable twice")
        for member in members:
            check.that(member in variables, f"models.{name} names '{member}', which is not under [variables]")
        models[name] = tuple(members)
    return models


def _comparison(check: _Checker, item: Any, models: dict) -> tuple[str, str]:
    check.that(isinstance(item, dict), "each [[comparisons]] needs base and extended")
    check.keys(item, "comparisons", {"base", "extended"})
    base, extended = item.get("base"), item.get("extended")
    for name in (base, extended):
        check.that(name in models, f"comparison names model {name!r}, which is not under [models]")
    check.that(set(models[base]) < set(models[extended]),
               f"comparison {base} -> {extended}: the base model's variables must be a strict subset of the "
               f"extended model's (the likelihood-ratio test needs nested models)")
    return base, extended


def _contrast(check: _Checker, item: Any, models: dict, variables: dict) -> Contrast:
    check.that(isinstance(item, dict), "each [[contrasts]] needs model, variable, value, reference")
    check.keys(item, "contrasts", {"model", "variable", "value", "reference"})
    model, variable = item.get("model"), item.get("variable")
    check.that(model in models, f"contrast names model {model!r}, which is not under [models]")
    check.that(variable in models[model], f"contrast variable {variable!r} is not in model {model}")
    for key in ("value", "reference"):
        check.that(key in item, f"contrast of {variable} needs '{key}'")
    if variables[variable].kind != "categorical":
        for key in ("value", "reference"):
            check.that(isinstance(item[key], (int, float)) and not isinstance(item[key], bool),
                       f"contrast of {variable}: '{key}' must be a number")
    return Contrast(model=model, variable=variable, value=item["value"], reference=item["reference"])


def _plots(check: _Checker, table: dict, models: dict, variables: dict) -> Plots:
    check.keys(table, "plots", {"burden_variable", "model", "partial_effect", "adjusted_values", "formats"})
    model = check.text(table, "plots.model")
    check.that(model is None or model in models, f"plots.model {model!r} is not under [models]")
    burden = check.text(table, "plots.burden_variable")
    partial = check.text(table, "plots.partial_effect")
    check.that(model is not None or not (partial or table.get("adjusted_values")),
               "plots.model is needed for the partial effect and the adjusted curves (which model's fit to show)")
    for key, name in (("burden_variable", burden), ("partial_effect", partial)):
        check.that(name is None or name in variables, f"plots.{key} {name!r} is not under [variables]")
        check.that(name is None or model is None or name in models[model], f"plots.{key} {name!r} is not in "
                   f"model {model}")
    values = table.get("adjusted_values", [])
    check.that(isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in values), "plots.adjusted_values must be numbers")
    formats = table.get("formats", ["png", "svg"])
    check.that(isinstance(formats, list) and set(formats) <= {"png", "svg"} and formats,
               "plots.formats must list \"png\" and/or \"svg\"")
    return Plots(burden_variable=burden, model=model, partial_effect=partial,
                 adjusted_values=tuple(float(v) for v in values), formats=tuple(formats))


class _Checker:
    """Key and value checks that raise one clear :class:`InputError` naming the settings file and key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def that(self, condition: bool, problem: str) -> None:
        if not condition:
            raise InputError(f"Analysis settings {self.source}: {problem}.")

    def keys(self, table: dict, where: str, allowed: set[str]) -> None:
        unknown = sorted(set(table) - allowed)
        self.that(not unknown, f"unknown key{'s' if len(unknown) > 1 else ''} "
                               f"{', '.join(repr(k) for k in unknown)}{' in [' + where + ']' if where else ''}; "
                               f"known: {', '.join(sorted(allowed))}")

    def table(self, raw: dict, key: str, required: bool = False) -> dict:
        value = raw.get(key)
        self.that(value is not None or not required, f"the [{key}] table is missing")
        self.that(value is None or isinstance(value, dict), f"[{key}] must be a table")
        return value or {}

    def array(self, raw: dict, key: str) -> list:
        value = raw.get(key, [])
        self.that(isinstance(value, list), f"{key} must be an array of tables ([[{key}]])")
        return value

    def text(self, table: dict, name: str, required: bool = False) -> str | None:
        value = table.get(name.rsplit(".", 1)[-1])
        self.that(value is not None or not required, f"'{name}' is missing")
        self.that(value is None or (isinstance(value, str) and value.strip() != ""), f"'{name}' must be a name")
        return value

    def names(self, table: dict, name: str) -> tuple[str, ...]:
        value = table.get(name.rsplit(".", 1)[-1], [])
        self.that(isinstance(value, list) and all(isinstance(item, str) for item in value),
                  f"'{name}' must be a list of names")
        return tuple(value)

    def integer(self, table: dict, name: str, default: int, minimum: int) -> int:
        value = table.get(name.rsplit(".", 1)[-1], default)
        self.that(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
                  f"'{name}' must be a whole number >= {minimum}, got {value!r}")
        return value

    def number(self, table: dict, name: str, default: float | None, positive: bool) -> float | None:
        value = table.get(name.rsplit(".", 1)[-1], default)
        if value is None:
            return None
        self.that(isinstance(value, (int, float)) and not isinstance(value, bool) and (value > 0 or not positive),
                  f"'{name}' must be a positive number, got {value!r}")
        return float(value)

    def flag(self, table: dict, name: str, default: bool) -> bool:
        value = table.get(name.rsplit(".", 1)[-1], default)
        self.that(isinstance(value, bool), f"'{name}' must be true or false")
        return value
