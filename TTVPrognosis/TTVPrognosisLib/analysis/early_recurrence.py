"""Early recurrence as the study defined it (doi:10.1016/j.ejca.2024.114185, Methods).

Recurrence within ``horizon_months`` (6) of the **last local liver treatment**; patients without recurrence are
censored at the last visit, and at death without recurrence (a cause-specific hazard: a death is not a
recurrence). Recurrences after the horizon are censored at the horizon. Columns hold ISO dates (YYYY-MM-DD),
or, with ``dates = false``, months from any common origin. A month is 365.25 / 12 days.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from ..errors import InputError
from .config import EarlyRecurrence

DAYS_PER_MONTH = 365.25 / 12.0


def early_recurrence_outcome(rows, spec: EarlyRecurrence, ids: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """(months from the last liver treatment, 1 = early recurrence, notes) per analysed row."""
    start = _moments(rows[spec.start], spec.start, ids, spec.dates)
    recurrence = _moments(rows[spec.recurrence], spec.recurrence, ids, spec.dates)
    last_visit = _moments(rows[spec.last_visit], spec.last_visit, ids, spec.dates)
    death = _moments(rows[spec.death], spec.death, ids, spec.dates) if spec.death else np.full(len(ids), np.nan)
    time = np.empty(len(ids))
    event = np.zeros(len(ids), dtype=int)
    deaths_censored = 0
    for index, identifier in enumerate(ids):
        if not np.isnan(recurrence[index]):
            months = recurrence[index] - start[index]
            if months < 0:
                raise InputError(f"{identifier}: recurrence ({spec.recurrence}) is before the last local liver "
                                 f"treatment ({spec.start}); check the dates.")
            event[index] = int(months <= spec.horizon_months)
            time[index] = min(months, spec.horizon_months)
            continue
        end = last_visit[index]
        if not np.isnan(death[index]):
            deaths_censored += int(death[index] - start[index] <= spec.horizon_months)
            end = min(end, death[index])
        months = end - start[index]
        if months < 0:
            raise InputError(f"{identifier}: the last visit or death is before the last local liver treatment "
                             f"({spec.start}); check the dates.")
        time[index] = min(months, spec.horizon_months)
    notes = [f"Early recurrence: recurrence within {spec.horizon_months:g} months of the last local liver "
             f"treatment; censored at the last visit, and at death without recurrence ({deaths_censored} "
             f"patients). A cause-specific hazard, not a probability of recurrence."]
    return time, event, notes


def _moments(cells, column: str, ids: list[str], dates: bool) -> np.ndarray:
    """Months since 1970-01-01 for ISO dates, or the months as given; empty cells are NaN."""
    values = np.full(len(ids), np.nan)
    for index, (identifier, cell) in enumerate(zip(ids, cells)):
        text = str(cell).strip()
        if text == "":
            continue
        try:
            if dates:
                values[index] = dt.date.fromisoformat(text).toordinal() / DAYS_PER_MONTH
            else:
                values[index] = float(text)
        except ValueError:
            kind = "an ISO date (YYYY-MM-DD)" if dates else "a number of months"
            raise InputError(f"{identifier}: {column} = {text!r} is not {kind}. Dates like 03/04/2020 are "
                             f"ambiguous (day or month first); write them as 2020-04-03.") from None
    return values
