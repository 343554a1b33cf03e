"""The analysed rows: the table read as written, the outcome checked, complete cases over everything used.

Every model and test of one run uses the same rows (complete cases over the outcome and all variables of all
models, Table 1 and the membership model), so likelihood-ratio tests compare nested fits of the same patients.
Excluded patients are listed with the reason. Cells are read as text so categorical levels stay as written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .config import AnalysisConfig
from .early_recurrence import early_recurrence_outcome

MISSING_TEXT = ("", "na", "nan", "n/a", "none", "null", ".")


@dataclass(frozen=True)
class CohortRows:
    """The analysed patients: their cells (text), outcome arrays and what was left out."""

    frame: object  # pandas.DataFrame of the analysed rows, cells as text
    time: np.ndarray
    event: np.ndarray
    ids: list[str]
    rows_read: int
    excluded: list[dict]
    outcome_notes: list[str]

    def numbers(self, column: str) -> np.ndarray:
        return np.asarray([float(value) for value in self.frame[column]], dtype=float)

    def texts(self, column: str) -> list[str]:
        return [str(value).strip() for value in self.frame[column]]


def read_table(path: str | Path, missing_values: tuple[str, ...] = ()):
    """The CSV as text cells (pandas), with the missing-value markers (text, or numbers by value) made empty."""
    import pandas as pd

    table_path = Path(path)
    try:
        frame = pd.read_csv(table_path, dtype=str, keep_default_na=False, encoding="utf-8-sig", sep=None,
                            engine="python")
    except FileNotFoundError:
        raise InputError(f"Table not found: {table_path}.") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(f"Cannot read the table {table_path} as CSV: {error}.") from None
    header = pd.read_csv(table_path, header=None, nrows=1, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                         sep=None, engine="python").iloc[0].str.strip().tolist()  # names before pandas renames twins
    frame.columns = [str(column).strip() for column in frame.columns]
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:
        raise InputError(f"The table {table_path} has duplicate columns: {', '.join(duplicated)}.")
    markers = {marker.strip().lower() for marker in missing_values} | set(MISSING_TEXT)
    numeric_markers = {_number_or_none(marker) for marker in missing_values} - {None}

    def cleaned(cell: str) -> str:
        text = cell.strip()
        if text.lower() in markers or (numeric_markers and _number_or_none(text) in numeric_markers):
            return ""
        return text

    return frame.apply(lambda column: column.map(cleaned))


def _number_or_none(text: str) -> float | None:
    """A marker such as -999 also matches -999.0 as a spreadsheet or pandas writes it."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def analysed_rows(frame, config: AnalysisConfig) -> CohortRows:
    """Check the outcome and take complete cases over every column the analysis uses."""
    used = _used_columns(config)
    outcome = config.outcome
    needed = list(used)
    if outcome.early_recurrence is None:
        needed += [outcome.time, outcome.event]
    else:
        spec = outcome.early_recurrence
        needed += [spec.start, spec.recurrence, spec.last_visit] + ([spec.death] if spec.death else [])
    if config.id_column:
        needed.append(config.id_column)
    missing_columns = [column for column in dict.fromkeys(needed) if column not in frame.columns]
    if missing_columns:
        raise InputError(f"The table has no column {', '.join(repr(c) for c in missing_columns)} named in the "
                         f"settings; its columns are: {', '.join(frame.columns)}.")
    ids = (list(frame[config.id_column]) if config.id_column
           else [f"row {index + 2}" for index in range(len(frame))])
    if config.id_column and len(set(ids)) != len(ids):
        raise InputError(f"Patient ids in column {config.id_column!r} are not unique.")
    excluded = []
    keep = np.ones(len(frame), dtype=bool)
    required = list(used) + ([outcome.time, outcome.event] if outcome.early_recurrence is None else
                             [outcome.early_recurrence.start, outcome.early_recurrence.last_visit])
    for index in range(len(frame)):
        empty = [column for column in dict.fromkeys(required) if frame[column].iat[index] == ""]
        if empty:
            keep[index] = False
            excluded.append({"id": ids[index], "reason": "missing " + ", ".join(empty)})
    rows = frame[keep].reset_index(drop=True)
    kept_ids = [identifier for identifier, kept in zip(ids, keep) if kept]
    if outcome.early_recurrence is None:
        time = _numbers(rows[outcome.time], outcome.time, kept_ids)
        event = _events(rows[outcome.event], outcome.event, kept_ids)
        notes = []
    else:
        time, event, notes = early_recurrence_outcome(rows, outcome.early_recurrence, kept_ids)
    negative = [identifier for identifier, value in zip(kept_ids, time) if value < 0]
    if negative:
        raise InputError(f"Negative follow-up times in '{outcome.time or 'early recurrence'}' for "
                         f"{_listed(negative)}: check the dates or the time origin.")
    if outcome.horizon_months is not None:
        beyond = time > outcome.horizon_months
        event = np.where(beyond, 0, event)
        time = np.minimum(time, outcome.horizon_months)
        notes.append(f"Events after {outcome.horizon_months:g} (time units of the table) are censored there.")
    if len(rows) < 10 or int(event.sum()) == 0:
        raise InputError(f"Only {len(rows)} complete patients with {int(event.sum())} events remain; the analysis "
                         f"needs at least 10 patients and 1 event. Excluded: {len(excluded)} (missing values).")
    return CohortRows(frame=rows, time=time, event=event.astype(int), ids=kept_ids, rows_read=len(frame),
                      excluded=excluded, outcome_notes=notes)


def _used_columns(config: AnalysisConfig) -> list[str]:
    used = config.model_columns() + list(config.table1_variables) + list(config.membership_variables)
    for column in (config.table1_by, config.membership_by, config.follow_up_by):
        if column:
            used.append(column)
    return list(dict.fromkeys(used))


def _numbers(cells, column: str, ids: list[str]) -> np.ndarray:
    values, bad = [], []
    for identifier, cell in zip(ids, cells):
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            bad.append(f"{identifier} ({cell!r})")
        values.append(value)
    if bad:
        raise InputError(f"Column {column!r} must hold numbers; not readable for {_listed(bad)}.")
    return np.asarray(values, dtype=float)


def _events(cells, column: str, ids: list[str]) -> np.ndarray:
    values = _numbers(cells, column, ids)
    bad = [f"{identifier} ({cell!r})" for identifier, cell, value in zip(ids, cells, values)
           if value not in (0.0, 1.0)]
    if bad:
        raise InputError(f"Event column {column!r} must be 1 (event) or 0 (censored); found other values for "
                         f"{_listed(bad)}. Recode it (e.g. R's 2/1 coding as 1/0).")
    return values.astype(int)


def numeric_column(rows: CohortRows, column: str) -> np.ndarray:
    return _numbers(rows.frame[column], column, rows.ids)


def _listed(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
