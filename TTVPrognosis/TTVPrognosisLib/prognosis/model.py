"""Expected overall survival from baseline total tumour volume: the survival model, its file and its predictions.

The survival model lives in a versioned JSON file inside the package (``prognosis/models/``, so that a
normal ``pip install`` carries it); this module loads and checks it
and evaluates it with numpy alone, because it runs inside Slicer where lifelines is not available.

Model family ``royston-parmar-ph`` (Royston & Parmar 2002, doi:10.1002/sim.1203): proportional hazards on
the log cumulative hazard scale,

    ln H(t | TTV) = g0 + g1 x + sum_j g_j v_j(x; time knots) + b1 z + sum_j b_j v_j(z; TTV knots),
    x = ln(months), z = ln(TTV in mL), S(t | TTV) = exp(-H),

with restricted cubic spline terms v_j(x) = (x - k_j)+^3 - l_j (x - k_min)+^3 - (1 - l_j) (x - k_max)+^3,
l_j = (k_max - k_j) / (k_max - k_min), one per interior knot. This unscaled form is the one lifelines uses,
so a lifelines re-fit reads the same coefficients. The 95 % band is the delta method on the log cumulative
hazard scale with the covariance stored in the file.

The default model is reconstructed from the figures of doi:10.1016/j.ejca.2024.114185 by
:mod:`TTVPrognosisLib.prognosis.calibration`; see ``prognosis/models/MODEL_CARD.md``. The published cohort figures shown
beside the model live in :mod:`.cohorts`; the per-patient section the panel and ``compare --json`` show, in
:mod:`.section`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

MODEL_FORMAT = "ttvprognosis-survival-model"
SUPPORTED_FORMAT_VERSIONS = (1,)
KNOWN_FAMILIES = ("royston-parmar-ph",)
DEFAULT_MODEL_ID = "ttv-os-ejca2024-rp-v1"
MAX_MODEL_BYTES = 10_000_000  # a model file is a few kB; anything this large is the wrong file
MODELS_DIR = Path(__file__).resolve().parent / "models"  # package data (pyproject.toml, CMakeLists.txt)

STUDY_DOI = "10.1016/j.ejca.2024.114185"
CAIRO5_TTV_DOI = "10.1016/j.ejca.2025.115738"
POPULATION = (
    "Both study cohorts were patients with liver-only colorectal liver metastases who had complete local "
    "treatment (resection and/or ablation, no residual liver tumour) after induction systemic therapy, with "
    "overall survival counted from randomisation (CAIRO5) or from detection of liver metastases (validation "
    "cohort), so every patient lived to that treatment: for a scan taken before treatment, the survival shown "
    f"is conditional on the patient reaching complete local treatment (doi:{STUDY_DOI}, Methods)."
)
NO_POPULATION = "The model file does not say which patients it describes."
Z_95 = 1.959963984540054
DEFAULT_MONTHS_STEP = 12.0
_MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SYMMETRY_TOLERANCE = 1e-9
_MAX_LOG_CUMULATIVE_HAZARD = 50.0  # S = exp(-e^50) is 0 in double precision; avoids overflow warnings


class ModelFileError(InputError):
    """A survival model file is missing, unreadable, or not a valid model of a known format."""


# --------------------------------------------------------------------------------------------------------
# Restricted cubic splines (shared with the calibration and the lifelines re-fit)
# --------------------------------------------------------------------------------------------------------

def restricted_cubic_basis(x: np.ndarray | float, knots: Sequence[float]) -> np.ndarray:
    """Spline terms v_j(x), one per interior knot: shape ``x.shape + (len(knots) - 2,)``.

    Knots are on the same (log) scale as ``x``. Beyond the boundary knots every term is linear in x, so the
    model extrapolates linearly in ln t and ln TTV.
    """
    values = np.asarray(x, dtype=float)[..., np.newaxis]
    knots = np.asarray(knots, dtype=float)
    low, high, interior = knots[0], knots[-1], knots[1:-1]
    weight = (high - interior) / (high - low)
    return (_cube_plus(values - interior) - weight * _cube_plus(values - low)
            - (1.0 - weight) * _cube_plus(values - high))


def restricted_cubic_basis_slope(x: np.ndarray | float, knots: Sequence[float]) -> np.ndarray:
    """Derivative dv_j/dx of :func:`restricted_cubic_basis`, same shape."""
    values = np.asarray(x, dtype=float)[..., np.newaxis]
    knots = np.asarray(knots, dtype=float)
    low, high, interior = knots[0], knots[-1], knots[1:-1]
    weight = (high - interior) / (high - low)
    return 3.0 * (_square_plus(values - interior) - weight * _square_plus(values - low)
                  - (1.0 - weight) * _square_plus(values - high))


def _cube_plus(values: np.ndarray) -> np.ndarray:
    return np.maximum(values, 0.0) ** 3


def _square_plus(values: np.ndarray) -> np.ndarray:
    return np.maximum(values, 0.0) ** 2


def design_matrix(months: np.ndarray | float, baseline_ttv_ml: np.ndarray | float,
                  time_knots_months: Sequence[float], ttv_knots_ml: Sequence[float]) -> np.ndarray:
    """Rows [1, x, v(x)..., z, v(z)...] with x = ln months, z = ln TTV; broadcasts months against TTV.

    The log cumulative hazard is ``design_matrix(...) @ parameters``, parameters ordered as in the model
    file: time-spline coefficients, then TTV-spline coefficients.
    """
    ln_months, ln_ttv = np.broadcast_arrays(np.log(np.asarray(months, dtype=float)),
                                            np.log(np.asarray(baseline_ttv_ml, dtype=float)))
    time_columns = [np.ones_like(ln_months)[..., np.newaxis], ln_months[..., np.newaxis],
                    restricted_cubic_basis(ln_months, np.log(time_knots_months))]
    ttv_columns = [ln_ttv[..., np.newaxis], restricted_cubic_basis(ln_ttv, np.log(ttv_knots_ml))]
    return np.concatenate(time_columns + ttv_columns, axis=-1)


# --------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SurvivalModel:
    """A validated survival model: S(t | baseline TTV) with its covariance and the range it supports."""

    model_id: str
    title: str
    family: str
    outcome: str
    time_origin: str
    time_knots_months: np.ndarray
    time_coefficients: np.ndarray
    ttv_knots_ml: np.ndarray
    ttv_coefficients: np.ndarray
    covariance: np.ndarray
    supported_months: tuple[float, float]
    calibrated_ttv_ml: tuple[float, float]
    hard_ttv_ml: tuple[float, float]
    intended_use: str
    source: str
    document: Mapping[str, Any] = field(repr=False)
    population: str = ""

    @property
    def parameters(self) -> np.ndarray:
        """All coefficients in file order: time spline, then TTV spline."""
        return np.concatenate([self.time_coefficients, self.ttv_coefficients])

    def design(self, months: np.ndarray | float, baseline_ttv_ml: np.ndarray | float) -> np.ndarray:
        return design_matrix(months, baseline_ttv_ml, self.time_knots_months, self.ttv_knots_ml)

    def log_cumulative_hazard(self, months: np.ndarray | float,
                              baseline_ttv_ml: np.ndarray | float) -> np.ndarray:
        return self.design(months, baseline_ttv_ml) @ self.parameters

    def survival(self, months: np.ndarray | float, baseline_ttv_ml: np.ndarray | float) -> np.ndarray:
        """S(t | TTV); broadcasts; no range checks (use :func:`predict_overall_survival` for people)."""
        return _survival_from_log_hazard(self.log_cumulative_hazard(months, baseline_ttv_ml))

    def survival_band(self, months: np.ndarray | float, baseline_ttv_ml: np.ndarray | float,
                      z_value: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise (low, high) band: delta method on ln H, which keeps the band inside (0, 1)."""
        design = self.design(months, baseline_ttv_ml)
        log_hazard = design @ self.parameters
        standard_error = np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", design, self.covariance, design),
                                            0.0))
        low = _survival_from_log_hazard(log_hazard + z_value * standard_error)
        high = _survival_from_log_hazard(log_hazard - z_value * standard_error)
        return low, high

    def hazard_ratio(self, baseline_ttv_ml: float, reference_ttv_ml: float) -> float:
        """Hazard ratio of one TTV against another; the same at every time under proportional hazards."""
        difference = (self.log_cumulative_hazard(self.supported_months[0], baseline_ttv_ml)
                      - self.log_cumulative_hazard(self.supported_months[0], reference_ttv_ml))
        return float(np.exp(difference))

    def log_cumulative_hazard_slope(self, months: np.ndarray | float) -> np.ndarray:
        """d ln H / d ln t (the same for every TTV); must be positive for H to increase."""
        ln_months = np.log(np.asarray(months, dtype=float))
        slope_terms = restricted_cubic_basis_slope(ln_months, np.log(self.time_knots_months))
        return self.time_coefficients[1] + slope_terms @ self.time_coefficients[2:]


def _survival_from_log_hazard(log_hazard: np.ndarray) -> np.ndarray:
    clipped = np.clip(log_hazard, -_MAX_LOG_CUMULATIVE_HAZARD, _MAX_LOG_CUMULATIVE_HAZARD)
    return np.exp(-np.exp(clipped))


# --------------------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------------------

def default_model_path() -> Path:
    return MODELS_DIR / f"{DEFAULT_MODEL_ID}.json"


def load_model(path: str | Path | None = None) -> SurvivalModel:
    """Read and validate a model file; ``None`` gives the embedded default model.

    Raises :class:`ModelFileError` (an :class:`InputError`) naming the file and the problem.
    """
    model_path = default_model_path() if path is None else Path(path)
    try:
        text = _read_model_text(model_path)
    except FileNotFoundError:
        raise ModelFileError(f"Survival model file not found: {model_path}. Give the path of a model JSON "
                             f"file, or leave it out to use the default model.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelFileError(f"Cannot read survival model file {model_path}: {error}.") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelFileError(f"Survival model file {model_path} is not valid JSON (line {error.lineno}, "
                             f"column {error.colno}: {error.msg}).") from None
    except RecursionError:
        raise ModelFileError(f"Survival model file {model_path} is nested too deeply to be a model file.") from None
    return model_from_document(document, source=str(model_path))


def _read_model_text(model_path: Path) -> str:
    """The file's text, refused before reading when it cannot be a model file: not a regular file (a pipe or a
    device never ends) or larger than any model (reading it would only exhaust memory)."""
    status = model_path.stat()
    if not model_path.is_file():
        raise ModelFileError(f"Survival model {model_path} is not a regular file (a folder, pipe or device); give "
                             f"the path of a model JSON file.")
    if status.st_size > MAX_MODEL_BYTES:
        raise ModelFileError(f"Survival model file {model_path} is {status.st_size / 1e6:.0f} MB; model files are "
                             f"small (the embedded one is a few kB; at most {MAX_MODEL_BYTES // 1_000_000} MB are "
                             f"read). Check that --model names the model JSON file.")
    with open(model_path, "rb") as handle:
        data = handle.read(MAX_MODEL_BYTES + 1)
    if len(data) > MAX_MODEL_BYTES:  # it grew while being read
        raise ModelFileError(f"Survival model file {model_path} is larger than {MAX_MODEL_BYTES // 1_000_000} MB.")
    return data.decode("utf-8")


def model_from_document(document: Any, source: str = "<model document>") -> SurvivalModel:
    """Validate a parsed model document and build the model; refuses anything it cannot vouch for."""
    check = _DocumentChecker(source)
    check.that(isinstance(document, dict), "the file must hold a JSON object")
    check.that(document.get("format") == MODEL_FORMAT,
               f"'format' must be {MODEL_FORMAT!r}, found {document.get('format')!r}")
    version = document.get("format_version")
    check.that(version in SUPPORTED_FORMAT_VERSIONS and not isinstance(version, bool),
               f"'format_version' {version!r} is not supported; this version of TTVPrognosis reads "
               f"{', '.join(str(v) for v in SUPPORTED_FORMAT_VERSIONS)}")
    model_id = document.get("model_id")
    check.that(isinstance(model_id, str) and bool(_MODEL_ID_PATTERN.match(model_id)),
               "'model_id' must be a short name of letters, digits, '.', '_' or '-'")
    family = document.get("family")
    check.that(family in KNOWN_FAMILIES,
               f"unknown model family {family!r}; known: {', '.join(KNOWN_FAMILIES)}")
    outcome = check.mapping(document, "outcome")
    check.that(outcome.get("time_unit") == "months", "'outcome.time_unit' must be 'months'")
    time_spline = check.mapping(document, "time_spline")
    ttv_spline = check.mapping(document, "ttv_spline")
    time_knots = check.knots(time_spline, "time_spline.knots_months", "knots_months")
    ttv_knots = check.knots(ttv_spline, "ttv_spline.knots_ml", "knots_ml")
    time_coefficients = check.numbers(time_spline, "time_spline.coefficients", "coefficients",
                                      len(time_knots))
    ttv_coefficients = check.numbers(ttv_spline, "ttv_spline.coefficients", "coefficients",
                                     len(ttv_knots) - 1)
    covariance = check.covariance(document, len(time_coefficients) + len(ttv_coefficients))
    support = check.mapping(document, "support")
    supported_months = check.interval(support, "support.months", "months")
    hard_ttv = check.interval(support, "support.hard_ttv_ml", "hard_ttv_ml")
    calibrated_ttv = check.interval(support, "support.calibrated_ttv_ml", "calibrated_ttv_ml")
    check.that(hard_ttv[0] <= calibrated_ttv[0] and calibrated_ttv[1] <= hard_ttv[1],
               "'support.calibrated_ttv_ml' must lie inside 'support.hard_ttv_ml'")
    model = SurvivalModel(
        model_id=model_id, title=str(document.get("title", model_id)), family=family,
        outcome=str(outcome.get("name", "overall survival")), time_origin=str(outcome.get("time_origin", "")),
        time_knots_months=time_knots, time_coefficients=time_coefficients, ttv_knots_ml=ttv_knots,
        ttv_coefficients=ttv_coefficients, covariance=covariance, supported_months=supported_months,
        calibrated_ttv_ml=calibrated_ttv, hard_ttv_ml=hard_ttv,
        intended_use=str(document.get("intended_use", "")), source=source, document=document,
        population=str(document.get("population") or NO_POPULATION))
    check.that(_cumulative_hazard_increases(model),
               "the cumulative hazard must increase with time (d ln H / d ln t > 0 everywhere)")
    return model


def _cumulative_hazard_increases(model: SurvivalModel) -> bool:
    """Check d ln H / d ln t > 0: densely between the knots, and on the linear tails beyond them."""
    low, high = float(model.time_knots_months[0]), float(model.time_knots_months[-1])
    inside = np.exp(np.linspace(math.log(low), math.log(high), 2001))
    tails = np.array([low * 0.5, high * 2.0])
    return bool(np.all(model.log_cumulative_hazard_slope(np.concatenate([inside, tails])) > 0.0))


class _DocumentChecker:
    """Field checks that raise one clear :class:`ModelFileError` naming the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, problem: str) -> None:
        raise ModelFileError(f"Survival model {self.source} is not usable: {problem}. Model files are "
                             f"written by `python -m TTVPrognosisLib.prognosis.calibration`; the format is described "
                             f"in the model card (prognosis/models/MODEL_CARD.md).")

    def that(self, condition: bool, problem: str) -> None:
        if not condition:
            self.fail(problem)

    def mapping(self, parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = parent.get(key)
        self.that(isinstance(value, dict), f"field '{key}' is missing or not an object")
        return value

    def numbers(self, parent: Mapping[str, Any], name: str, key: str,
                length: int | None = None) -> np.ndarray:
        value = parent.get(key)
        self.that(value is not None, f"missing field '{name}'")
        self.that(isinstance(value, list) and all(_is_number(item) for item in value),
                  f"'{name}' must be a list of numbers")
        array = np.asarray(value, dtype=float)
        self.that(bool(np.all(np.isfinite(array))), f"'{name}' holds a value that is not finite")
        if length is not None:
            self.that(array.size == length, f"'{name}' must hold {length} numbers, found {array.size}")
        return array

    def knots(self, parent: Mapping[str, Any], name: str, key: str) -> np.ndarray:
        knots = self.numbers(parent, name, key)
        self.that(knots.size >= 2, f"'{name}' needs at least 2 knots, found {knots.size}")
        self.that(bool(np.all(knots > 0)), f"'{name}' must be positive (they are taken on the log scale)")
        self.that(bool(np.all(np.diff(knots) > 0)), f"'{name}' must be strictly increasing")
        return knots

    def interval(self, parent: Mapping[str, Any], name: str, key: str) -> tuple[float, float]:
        bounds = self.numbers(parent, name, key, 2)
        self.that(0 < bounds[0] < bounds[1], f"'{name}' must be [low, high] with 0 < low < high")
        return float(bounds[0]), float(bounds[1])

    def covariance(self, document: Mapping[str, Any], size: int) -> np.ndarray:
        rows = document.get("covariance")
        self.that(rows is not None, "missing field 'covariance'")
        self.that(isinstance(rows, list) and len(rows) == size
                  and all(isinstance(row, list) and len(row) == size for row in rows),
                  f"'covariance' must be a {size} x {size} matrix (one row and column per coefficient)")
        self.that(all(_is_number(item) for row in rows for item in row), "'covariance' must hold numbers")
        matrix = np.asarray(rows, dtype=float)
        self.that(bool(np.all(np.isfinite(matrix))), "'covariance' holds a value that is not finite")
        scale = max(float(np.max(np.abs(matrix))), 1e-300)
        self.that(bool(np.allclose(matrix, matrix.T, rtol=0.0, atol=_SYMMETRY_TOLERANCE * scale)),
                  "'covariance' must be symmetric")
        self.that(bool(np.min(np.linalg.eigvalsh(matrix)) >= -1e-10 * scale),
                  "'covariance' must be positive semi-definite")
        return matrix


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------------------
# Prediction for one patient
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SurvivalPoint:
    """Survival probability at one time with its pointwise 95 % band, all as fractions."""

    months: float
    probability: float
    ci95_low: float
    ci95_high: float


@dataclass(frozen=True)
class OverallSurvivalPrediction:
    """Expected overall survival for one baseline TTV under one model, with what the reader must know."""

    model_id: str
    baseline_ttv_ml: float
    time_origin: str
    points: tuple[SurvivalPoint, ...]
    warnings: tuple[str, ...] = ()
    population: str = ""

    def probability_at(self, months: float) -> float:
        for point in self.points:
            if math.isclose(point.months, months):
                return point.probability
        raise KeyError(f"No prediction at {months} months.")

    def to_dict(self) -> dict:
        """JSON-ready: probabilities as fractions (0-1) rounded to 4 decimals."""
        return {
            "model_id": self.model_id,
            "baseline_ttv_ml": self.baseline_ttv_ml,
            "time_origin": self.time_origin,
            "population": self.population,
            "overall_survival": [
                {"months": point.months, "probability": round(point.probability, 4),
                 "ci95": [round(point.ci95_low, 4), round(point.ci95_high, 4)]}
                for point in self.points
            ],
            "warnings": list(self.warnings),
        }


def default_months(model: SurvivalModel) -> tuple[float, ...]:
    """Yearly points across the model's supported span (e.g. 24, 36, ..., 120 months)."""
    first, last = model.supported_months
    steps = math.floor((last - first) / DEFAULT_MONTHS_STEP + 1e-9)
    points = [first + DEFAULT_MONTHS_STEP * step for step in range(steps + 1)]
    if not math.isclose(points[-1], last):
        points.append(last)
    return tuple(points)


def predict_overall_survival(baseline_ttv_ml: float, model: SurvivalModel | None = None,
                             months: Sequence[float] | None = None) -> OverallSurvivalPrediction:
    """Overall survival with 95 % band at ``months`` (default: yearly over the model's supported span).

    Raises :class:`InputError` for a missing, non-finite or non-positive TTV, a TTV outside the model's
    hard range, or a time the model does not support; a TTV outside the calibrated range gives a warning.
    """
    model = load_model() if model is None else model
    warnings = check_baseline_ttv(baseline_ttv_ml, model)
    times = check_months(default_months(model) if months is None else months, model)
    ttv = float(baseline_ttv_ml)
    probabilities = model.survival(times, ttv)
    lows, highs = model.survival_band(times, ttv)
    points = tuple(SurvivalPoint(float(t), float(p), float(lo), float(hi))
                   for t, p, lo, hi in zip(times, probabilities, lows, highs))
    return OverallSurvivalPrediction(model_id=model.model_id, baseline_ttv_ml=ttv,
                                     time_origin=model.time_origin, points=points, warnings=tuple(warnings),
                                     population=model.population)


def check_baseline_ttv(baseline_ttv_ml: Any, model: SurvivalModel) -> list[str]:
    """Refuse a TTV the model cannot take; return warnings for one it takes only by extrapolation."""
    if baseline_ttv_ml is None:
        raise InputError("Baseline TTV is missing: measure the baseline scan first (TTV in mL).")
    ttv = _finite_number(baseline_ttv_ml, "Baseline TTV (mL)")
    if ttv <= 0:
        raise InputError(f"Baseline TTV must be positive, got {ttv:g} mL: the model describes patients with "
                         f"measurable liver metastases.")
    hard_low, hard_high = model.hard_ttv_ml
    if not hard_low <= ttv <= hard_high:
        raise InputError(f"Baseline TTV {ttv:g} mL is outside the range model {model.model_id} can be used "
                         f"for ({hard_low:g}-{hard_high:g} mL, the TTVs its source data cover; see MODEL_CARD.md); "
                         f"no survival estimate is given.")
    low, high = model.calibrated_ttv_ml
    if not low <= ttv <= high:
        return [f"Baseline TTV {ttv:g} mL is outside the range the model was calibrated on ({low:g}-{high:g} "
                f"mL); the estimate is an extrapolation."]
    return []


def _finite_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, got {value!r}.")
    if not math.isfinite(float(value)):
        raise InputError(f"{name} must be finite, got {value!r}.")
    return float(value)


def check_months(months: Sequence[float], model: SurvivalModel) -> np.ndarray:
    """Sorted, unique times in months, all inside the model's supported span."""
    try:
        times = np.unique(np.asarray(list(months), dtype=float))
    except (TypeError, ValueError):
        raise InputError(f"Times must be numbers of months, got {months!r}.") from None
    first, last = model.supported_months
    if times.size == 0:
        raise InputError("Give at least one time (months) to predict survival at.")
    outside = times[~np.isfinite(times) | (times < first) | (times > last)]
    if outside.size:
        raise InputError(f"Model {model.model_id} gives survival from {first:g} to {last:g} months only (its "
                         f"supported range; see MODEL_CARD.md), not at {', '.join(f'{t:g}' for t in outside)} "
                         f"months: ask for times between {first:g} and {last:g} months.")
    return times
