"""Kaplan-Meier medians with confidence intervals, and follow-up by the reverse Kaplan-Meier method.

Quantiles follow R's ``quantile.survfit``: the first time the curve is at or below 1 - p, and the midpoint to
the next time when the curve sits exactly on 1 - p. The 95 % CI of a quantile is where the pointwise CI curves
cross 1 - p; pointwise CIs use Greenwood's variance on the **log** scale (R ``survfit``'s default
``conf.type = "log"``; lifelines uses log-log, which gives slightly different limits). Follow-up: the reverse
KM (censoring as the event) gives the median and quartiles of potential follow-up (Schemper & Smith 1996).
"""

from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959963984540054
_TOLERANCE = math.sqrt(np.finfo(float).eps)
CI_METHOD = "log (Greenwood variance of ln S, R survfit's default conf.type)"


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> dict[str, np.ndarray]:
    """Curve at each distinct event time: S, and the pointwise log-scale 95 % limits (NaN where undefined)."""
    time, event = np.asarray(time, dtype=float), np.asarray(event, dtype=int)
    moments = np.unique(time[event == 1])
    at_risk = np.array([np.sum(time >= moment) for moment in moments], dtype=float)
    deaths = np.array([np.sum((time == moment) & (event == 1)) for moment in moments], dtype=float)
    survival = np.cumprod(1.0 - deaths / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
        spread = Z_95 * np.sqrt(variance)
        lower = np.where(np.isfinite(spread), survival * np.exp(-spread), np.nan)
        upper = np.where(np.isfinite(spread), np.minimum(survival * np.exp(spread), 1.0), np.nan)
    return {"time": moments, "survival": survival, "lower": lower, "upper": upper}


def curve_quantile(moments: np.ndarray, curve: np.ndarray, level: float) -> float | None:
    """First time the curve is <= level (R's rule, midpoint on a flat stretch at the level); None if never."""
    below_or_on = np.flatnonzero(np.nan_to_num(curve, nan=np.inf) <= level + _TOLERANCE)
    if below_or_on.size == 0:
        return None
    first = below_or_on[0]
    if abs(curve[first] - level) > _TOLERANCE:
        return float(moments[first])
    strictly_below = np.flatnonzero(np.nan_to_num(curve, nan=np.inf) < level - _TOLERANCE)
    if strictly_below.size == 0:
        return float(moments[first])
    return float((moments[first] + moments[strictly_below[0]]) / 2.0)


def median_with_ci(time: np.ndarray, event: np.ndarray) -> dict:
    curve = kaplan_meier(time, event)
    return {"median": curve_quantile(curve["time"], curve["survival"], 0.5),
            "ci95": [curve_quantile(curve["time"], curve["lower"], 0.5),
                     curve_quantile(curve["time"], curve["upper"], 0.5)],
            "n": len(time), "events": int(np.sum(event))}


def reverse_km_follow_up(time: np.ndarray, event: np.ndarray) -> dict:
    """Median (q1-q3) potential follow-up: the KM of censoring (events become censored times and back)."""
    censoring = 1 - np.asarray(event, dtype=int)
    curve = kaplan_meier(time, censoring)
    return {"median": curve_quantile(curve["time"], curve["survival"], 0.5),
            "q1": curve_quantile(curve["time"], curve["survival"], 0.75),
            "q3": curve_quantile(curve["time"], curve["survival"], 0.25),
            "method": "reverse Kaplan-Meier (censoring as the event)"}
