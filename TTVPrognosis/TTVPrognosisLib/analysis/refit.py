"""Refit the survival model on an institution's cohort, after saying how the shipped model does on it.

Same family and file as :mod:`TTVPrognosisLib.prognosis.model` (Royston-Parmar proportional hazards, ln H =
time spline in ln months + spline in ln TTV, one interior knot each): fitted by maximum likelihood with an
analytic gradient and Hessian (Newton-Raphson with step halving, started from a Weibull fit to the
Nelson-Aalen estimate, so it cannot drift to S = 1 as lifelines' spline fitter can). Times are in months as in
the file, so nothing needs converting; the covariance is the inverse observed information.
Knots: time at the shortest, median and longest event time (Royston & Parmar's default for 1 interior knot);
TTV at the 10/50/90 % quantiles of ln TTV. Support: months between the first and last event (whole months);
calibrated TTV range = the cohort's range; predictions are refused beyond half its lowest and twice its highest.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..prognosis.model import (
    MODEL_FORMAT,
    design_matrix,
    load_model,
    model_from_document,
    restricted_cubic_basis_slope,
)
from .concordance import harrell_c
from .cox import FitError, fit_cox
from .dataset import read_table
from .followup import kaplan_meier

HORIZON_MONTHS = 60.0
MAX_ITERATIONS = 100


def refit_model_file(table_path, time_column: str, event_column: str, ttv_column: str, output_path,
                     time_origin: str = "", overwrite: bool = False) -> dict:
    output = Path(output_path)
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists; choose another name or add --overwrite.")
    time, event, ttv, excluded = _cohort(read_table(table_path), time_column, event_column, ttv_column)
    warnings = []
    if int(event.sum()) < 50:
        warnings.append(f"Only {int(event.sum())} deaths for 5 parameters: the refitted model is imprecise (its "
                        f"bands say how much).")
    shipped = shipped_model_performance(time, event, ttv)
    document = fit_document(time, event, ttv, model_id=_model_id(output), time_origin=time_origin,
                            source=Path(table_path).name)
    model_from_document(document, source=str(output))  # what `predict --model` will check, before writing
    temporary = output.with_name(f".{output.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, output)
    return {"shipped_model": shipped, "refitted_model": str(output), "n": int(time.size),
            "events": int(event.sum()), "excluded": excluded,
            "time_knots_months": document["time_spline"]["knots_months"],
            "ttv_knots_ml": document["ttv_spline"]["knots_ml"], "warnings": warnings}


def _cohort(frame, time_column: str, event_column: str, ttv_column: str):
    for column in (time_column, event_column, ttv_column):
        if column not in frame.columns:
            raise InputError(f"The table has no column {column!r}; its columns are: {', '.join(frame.columns)}.")
    complete = (frame[time_column] != "") & (frame[event_column] != "") & (frame[ttv_column] != "")
    excluded = [f"row {index + 2}" for index in np.flatnonzero(~complete.to_numpy())]
    rows = frame[complete]
    try:
        time = rows[time_column].astype(float).to_numpy()
        event = rows[event_column].astype(float).to_numpy()
        ttv = rows[ttv_column].astype(float).to_numpy()
    except ValueError as error:
        raise InputError(f"Time, event and TTV columns must hold numbers ({error}).") from None
    if not np.all(np.isin(event, (0.0, 1.0))):
        raise InputError(f"Event column {event_column!r} must be 1 (death) or 0 (censored).")
    if np.any(~np.isfinite(time)) or np.any(time <= 0):
        raise InputError(f"Times in {time_column!r} must be positive months (the model works in ln months); "
                         f"found {np.sum(~(time > 0))} zero, negative or non-finite.")
    if np.any(~np.isfinite(ttv)) or np.any(ttv <= 0):
        raise InputError(f"Baseline TTV in {ttv_column!r} must be positive mL; found {np.sum(~(ttv > 0))} that "
                         f"are not.")
    if time.size < 20 or event.sum() < 10:
        raise InputError(f"{time.size} patients with {int(event.sum())} deaths: too few to refit a 5-parameter "
                         f"survival model (at least 20 patients and 10 deaths).")
    return time, event.astype(int), ttv, excluded


def shipped_model_performance(time: np.ndarray, event: np.ndarray, ttv: np.ndarray) -> dict:
    """C, calibration slope and observed vs predicted 5-year survival by TTV tertile for the embedded model."""
    model = load_model()
    inside = (ttv >= model.hard_ttv_ml[0]) & (ttv <= model.hard_ttv_ml[1])
    t, e, v = time[inside], event[inside], ttv[inside]
    risk = model.log_cumulative_hazard(HORIZON_MONTHS, v)
    try:
        slope_fit = fit_cox(t, e, risk[:, None], ("shipped model ln H",), "calibration slope")
        slope = {"slope": float(slope_fit.coefficients[0]),
                 "ci95": [float(slope_fit.coefficients[0] - 1.959963984540054 * slope_fit.standard_errors[0]),
                          float(slope_fit.coefficients[0] + 1.959963984540054 * slope_fit.standard_errors[0])]}
    except FitError as error:
        slope = {"slope": None, "error": str(error)}
    cuts = np.quantile(v, [1 / 3, 2 / 3])
    tertile = np.digitize(v, cuts, right=True)
    groups = []
    for group in range(3):
        chosen = tertile == group
        curve = kaplan_meier(t[chosen], e[chosen])
        followed = t[chosen].max() >= HORIZON_MONTHS
        observed = float(curve["survival"][curve["time"] <= HORIZON_MONTHS][-1]) if (
            followed and np.any(curve["time"] <= HORIZON_MONTHS)) else (1.0 if followed else None)
        groups.append({"tertile": group + 1, "ttv_ml": [float(v[chosen].min()), float(v[chosen].max())],
                       "n": int(chosen.sum()), "observed_5y": observed,
                       "predicted_5y": float(np.mean(model.survival(HORIZON_MONTHS, v[chosen])))})
    return {"model_id": model.model_id, "n": int(inside.sum()), "outside_model_range": int((~inside).sum()),
            "concordance": harrell_c(t, e, risk), "calibration_slope": slope, "five_year_by_tertile": groups,
            "note": "observed = Kaplan-Meier at 60 months (none when the tertile's follow-up is shorter); "
                    "predicted = mean model survival at 60 months over the tertile's patients"}


def fit_document(time: np.ndarray, event: np.ndarray, ttv: np.ndarray, model_id: str, time_origin: str,
                 source: str) -> dict:
    event_months = np.sort(time[event == 1])
    time_knots = np.exp(np.quantile(np.log(event_months), [0.0, 0.5, 1.0]))
    ttv_knots = np.exp(np.quantile(np.log(ttv), [0.1, 0.5, 0.9]))
    if np.any(np.diff(time_knots) <= 0) or np.any(np.diff(ttv_knots) <= 0):
        raise InputError("Too few distinct event times or TTVs to place the spline knots.")
    parameters, covariance = fit_royston_parmar(time, event, ttv, time_knots, ttv_knots)
    support_months = [float(math.ceil(event_months[0])), float(math.floor(event_months[-1]))]
    if not 0 < support_months[0] < support_months[1]:
        raise InputError("The deaths span less than a month: the model's time range cannot be set.")
    return {
        "format": MODEL_FORMAT, "format_version": 1, "model_id": model_id,
        "title": f"Overall survival by baseline TTV, refitted on {source}", "family": "royston-parmar-ph",
        "outcome": {"name": "overall survival", "time_origin": time_origin, "time_unit": "months"},
        "predictor": {"name": "baseline_ttv_ml", "unit": "mL", "transform": "ln"},
        "time_spline": {"knots_months": time_knots.tolist(), "coefficients": parameters[:3].tolist()},
        "ttv_spline": {"knots_ml": ttv_knots.tolist(), "coefficients": parameters[3:].tolist()},
        "parameter_names": ["time_intercept", "time_ln_months", "time_spline_1", "ttv_ln_ml", "ttv_spline_1"],
        "covariance": covariance.tolist(),
        "support": {"months": support_months, "calibrated_ttv_ml": [float(ttv.min()), float(ttv.max())],
                    "hard_ttv_ml": [float(ttv.min()) / 2.0, float(ttv.max()) * 2.0]},
        "intended_use": "Research only. Not for clinical decisions about individual patients.",
        "population": f"The {time.size} patients of {source}.",
        "provenance": {"source": source, "method": "Maximum likelihood refit (ttvprognosis refit-model).",
                       "n": int(time.size), "events": int(event.sum()), "time_origin": time_origin,
                       "date": dt.date.today().isoformat(), "generator": "ttvprognosis refit-model",
                       "generator_version": __version__, "numpy": np.__version__},
    }


def fit_royston_parmar(time, event, ttv, time_knots, ttv_knots) -> tuple[np.ndarray, np.ndarray]:
    design = design_matrix(time, ttv, time_knots, ttv_knots)
    slope_design = np.column_stack([np.zeros_like(time), np.ones_like(time),
                                    restricted_cubic_basis_slope(np.log(time), np.log(time_knots)),
                                    np.zeros((time.size, 2))])
    dead = event == 1

    def evaluate(theta, derivatives=True):
        log_hazard = design @ theta
        slope = slope_design @ theta
        if np.any(slope[dead] <= 0):
            return -np.inf, None, None
        value = float(np.sum(dead * (log_hazard + np.log(np.where(dead, slope, 1.0)) - np.log(time)))
                      - np.sum(np.exp(log_hazard)))
        if not derivatives:
            return value, None, None
        hazard = np.exp(log_hazard)
        ratio = np.where(dead, 1.0 / np.where(dead, slope, 1.0), 0.0)
        gradient = design.T @ (dead - hazard) + slope_design.T @ ratio
        hessian = -(design.T * hazard) @ design - (slope_design.T * ratio ** 2) @ slope_design
        return value, gradient, hessian

    theta = _weibull_start(time, event, design.shape[1])
    value, gradient, hessian = evaluate(theta)
    for _ in range(MAX_ITERATIONS):
        step = np.linalg.solve(-hessian, gradient)
        for _halving in range(40):
            candidate_value = evaluate(theta + step, derivatives=False)[0]
            if candidate_value >= value - 1e-10 * abs(value):
                break
            step /= 2.0
        else:
            raise InputError("The survival model refit did not converge (no step improves the likelihood).")
        theta = theta + step
        previous = value
        value, gradient, hessian = evaluate(theta)
        if abs(value - previous) < 1e-11 * max(1.0, abs(value)) and np.max(np.abs(step)) < 1e-8:
            return theta, np.linalg.inv(-hessian)
    raise InputError(f"The survival model refit did not converge in {MAX_ITERATIONS} iterations.")


def _weibull_start(time: np.ndarray, event: np.ndarray, size: int) -> np.ndarray:
    """ln H = a + b ln t fitted to the Nelson-Aalen estimate: a start inside the model with S < 1."""
    moments = np.unique(time[event == 1])
    increments = [np.sum((time == m) & (event == 1)) / np.sum(time >= m) for m in moments]
    slope, intercept = np.polyfit(np.log(moments), np.log(np.cumsum(increments)), 1)
    start = np.zeros(size)
    start[0], start[1] = intercept, max(slope, 0.1)
    return start


def _model_id(output: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", output.name.split(".")[0])[:80].strip("-._") or "model"
    return f"refit-{stem}"


def format_refit(report: dict) -> str:
    shipped = report["shipped_model"]
    slope = shipped["calibration_slope"]
    lines = [f"Shipped model {shipped['model_id']} on this cohort ({shipped['n']} patients in its TTV range):",
             f"  Harrell's C {shipped['concordance']:.3f}; calibration slope "
             + (f"{slope['slope']:.2f} ({slope['ci95'][0]:.2f} to {slope['ci95'][1]:.2f})" if slope.get("slope")
                is not None else "not estimable"),
             "  5-year survival by TTV tertile (observed Kaplan-Meier vs predicted):"]
    for group in shipped["five_year_by_tertile"]:
        observed = "n/a (follow-up < 5 years)" if group["observed_5y"] is None else f"{group['observed_5y']:.2f}"
        lines.append(f"    tertile {group['tertile']} ({group['ttv_ml'][0]:.3g}-{group['ttv_ml'][1]:.3g} mL, "
                     f"n = {group['n']}): observed {observed}, predicted {group['predicted_5y']:.2f}")
    lines.append(f"Refitted on {report['n']} patients ({report['events']} deaths): wrote {report['refitted_model']} "
                 f"(use it with `ttvprognosis predict --model {report['refitted_model']}`).")
    return "\n".join(lines)
