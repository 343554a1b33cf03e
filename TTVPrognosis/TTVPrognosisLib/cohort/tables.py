"""The cohort tables: one row per patient and one row per lesion, flattened from the JSON documents.

Column scheme of the results table (``ttvprognosis batch --output``, ``processCohort`` in Slicer):

1. ``patient_id``, ``status`` (``ok`` or ``failed``), ``error`` (empty when ``ok``; otherwise what went
   wrong and what to do, the same text the Slicer panel and the CLI show).
2. Every manifest column, in manifest order (input paths as written, clinical columns passed through;
   ``NaN``/``NA``/``N/A``/``null`` and empty cells come out empty).
3. The ``compare --json`` document (``measure --json`` nested under ``baseline`` when a patient has no
   follow-up), flattened:

   - nested keys are joined with ``_``: ``baseline_ttv_ml``, ``followup_lesion_count``,
     ``absolute_change_ml``, ``prognosis_model_id``, ``prognosis_ttv_change_direction``... A key added to
     the document later (RECIST, TBS, matching) becomes a column the same way, with no change here;
   - a list of plain values (warnings, spacing, segment names) is one cell, items joined with ``"; "``;
   - lists of records are not row columns: every list named ``lesions`` goes to the lesion table, and
     ``prognosis_overall_survival`` becomes, for 24, 36 and 60 months,
     ``prognosis_overall_survival_24m`` (probability 0-1), ``..._24m_ci95_low``, ``..._24m_ci95_high``
     (empty when the model gives no prediction; the reason is in ``prognosis_errors``);
     ``recist_target_lesions`` becomes ``recist_target_1_...`` and ``recist_target_2_...`` (lesion id and
     diameters); ``prognosis_ttv_change_cohorts`` becomes ``prognosis_ttv_change_position_cairo5`` and
     ``..._validation`` (below, within or above the cohort's IQR); ``clinical_scores`` becomes
     ``fong_score``, ``fong_risk_group``, ``game_score``, ``game_risk_group``, ``scores_time_point`` and the
     ``..._not_computable_reason`` columns. Other record lists (segments, cohort placements, base rates)
     stay in the JSON output only;
   - descriptive text that is the same for every patient (model title, intended use, published-effect
     notes) is left out (``OMITTED_COLUMNS``);
   - numbers are rounded by unit (:func:`decimals_for`: 4 decimals for mL and probabilities, 2 for mm and
     percentages, else 10 significant digits, which drops float noise; the voxel grid as read), booleans
     as ``true``/``false``, missing/undefined/non-finite values as empty cells.

Lesion table (``--lesions-output``): ``patient_id``, ``time_point`` (where the list sits: ``baseline`` or
``followup``), then each lesion record flattened the same way (``lesion_id``, ``voxel_count``,
``volume_ml``, ``centroid_r_mm``, ``centroid_a_mm``, ``centroid_s_mm``, ``max_diameter_mm``,
``longest_axial_diameter_mm``, ``segments``, ``matching_status``, ``recist_role``...).

Rows follow the manifest order whatever order patients finish in, so a resumed run writes the same table
as an uninterrupted one. Files are written with the stdlib ``csv`` module (no pandas: this runs inside
Slicer) to a temporary file that replaces the target only when complete. Text cells that a spreadsheet would
run as a formula (``=...``, ``+...``, ``-...``, ``@...``: patient ids, manifest columns, messages) get a leading
``'`` (OWASP's advice against CSV injection); numbers are written unchanged, and reading the table back
(``read_table``) removes the quote.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..formats.csv_safety import escape_cell, unescape_cell
from ..formats.io import _atomic_write
from ..prognosis.scores import score_columns

PATIENT_ID = "patient_id"
STATUS = "status"
ERROR = "error"
FIXED_COLUMNS = (PATIENT_ID, STATUS, ERROR)
STATUS_OK = "ok"
STATUS_FAILED = "failed"
TIME_POINT = "time_point"
LESION_FIXED_COLUMNS = (PATIENT_ID, TIME_POINT)

KEY_SEPARATOR = "_"
LIST_SEPARATOR = "; "
LESIONS_KEY = "lesions"
SURVIVAL_KEY = "overall_survival"
SCORES_KEY = "clinical_scores"  # Fong and GAME: fong_score, fong_risk_group, ... (prognosis.scores.score_columns)
PROGNOSIS_MONTHS = (24, 36, 60)
OMITTED_COLUMNS = frozenset({
    # the same descriptive text for every patient (it is in the JSON output and the model card)
    "prognosis_model_title", "prognosis_intended_use", "prognosis_ttv_change_effect",
    "prognosis_population", "recist_citation", "tbs_citation", "tbs_study_cut_off_source",
    # run time, not a result: it would make two runs of the same cohort differ
    "registration_diagnostics_seconds",
})
# Lists of records in today's documents, so that an empty one does not become an (empty) column; other record
# lists are recognised when they hold records.
KNOWN_RECORD_LISTS = frozenset({
    "baseline_lesions", "followup_lesions", "baseline_segments", "followup_segments",
    "prognosis_overall_survival", "prognosis_baseline_ttv_vs_cohorts", "prognosis_early_recurrence",
    "prognosis_ttv_change_cohorts", "recist_target_lesions", "recist_non_target_lesions",
    "lesion_matching_pairs", "lesion_matching_new", "lesion_matching_disappeared", "lesion_matching_merged",
    "lesion_matching_split", "registration_followup_to_baseline_ras",
})
GRID_COLUMNS = ("spacing_mm", "slice_thickness_mm", "voxel_volume_ml")
UNIT_ML = re.compile(r"_ml(_|$)")
UNIT_MM = re.compile(r"_mm(_|$)")
UNIT_PERCENT = re.compile(r"_percent(_|$)")
CENTROID_KEY = "centroid_ras"
TARGETS_KEY = "target_lesions"
CHANGE_COHORTS = "prognosis_ttv_change_cohorts"
TARGETS_PER_ORGAN = 2
TARGET_FIELDS = ("lesion_id", "baseline_mm", "followup_mm", "followup_measured_mm")
MISSING_TEXTS = frozenset({"", "nan", "na", "n/a", "#n/a", "null", "<na>", "nat"})


def clean_cell(text: str | None) -> str:
    """A manifest cell as passed through: stripped; NaN and the usual missing-value markers become empty."""
    if text is None:
        return ""
    stripped = text.strip()
    return "" if stripped.lower() in MISSING_TEXTS else stripped


def format_cell(value, decimals: int | None = None) -> str:
    """One CSV cell: numbers rounded to ``decimals`` (else to 10 significant digits, which drops float noise
    such as 0.30000000000000004), ``true``/``false``, empty for None/NaN/inf."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        with contextlib.suppress(TypeError, ValueError):
            value = value.item()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        rounded = round(value, decimals) if decimals is not None else float(f"{value:.10g}")
        return repr(rounded + 0.0)  # + 0.0: no "-0.0"
    return str(value)


def decimals_for(column: str) -> int | None:
    """Decimals a column is rounded to: 4 for mL and probabilities, 2 for mm and percentages; None (10
    significant digits) for the rest and for the voxel grid (spacing, slice thickness, voxel volume), which
    is kept as read."""
    if column.endswith(GRID_COLUMNS):
        return None
    if UNIT_ML.search(column) or column.startswith(f"prognosis_{SURVIVAL_KEY}_"):
        return 4
    if UNIT_MM.search(column) or UNIT_PERCENT.search(column):
        return 2
    return None


def split_centroid(lesion: Mapping) -> dict:
    """A lesion record with ``centroid_ras`` [R, A, S] as ``centroid_r_mm``, ``centroid_a_mm``, ``centroid_s_mm``."""
    record = dict(lesion)
    centroid = record.pop(CENTROID_KEY, None)
    if isinstance(centroid, (list, tuple)) and len(centroid) == 3:
        position = list(record).index("volume_ml") + 1 if "volume_ml" in record else len(record)
        items = list(record.items())
        items[position:position] = [(f"centroid_{axis}_mm", value) for axis, value in zip("ras", centroid)]
        record = dict(items)
    elif centroid is not None:
        record[CENTROID_KEY] = centroid
    return record


def target_columns(name: str, targets: Sequence[Mapping]) -> dict[str, str]:
    """RECIST target lesions 1 and 2 as columns: ``recist_target_1_lesion_id``, ``_baseline_mm``,
    ``_followup_mm`` (the value in the sum) and ``_followup_measured_mm``; empty when there is no such target."""
    prefix = name[: -len(TARGETS_KEY)]
    columns = {}
    for number in range(1, TARGETS_PER_ORGAN + 1):
        target = targets[number - 1] if number <= len(targets) else {}
        for field_name in TARGET_FIELDS:
            column = f"{prefix}target_{number}_{field_name}"
            columns[column] = format_cell(target.get(field_name), decimals_for(column))
    return columns


def _is_scalar(value) -> bool:
    return not isinstance(value, (dict, list, tuple))


@dataclass
class FlatDocument:
    """A document as one results row, its lesion rows, and the keys that are not columns.

    ``containers``: keys that held a record (its fields are the columns) or a list of records; when the
    same key is empty (None, ``[]``) in another patient's document, it must not become a column either.
    """

    row: dict[str, str] = field(default_factory=dict)
    lesions: list[dict[str, str]] = field(default_factory=list)
    containers: set[str] = field(default_factory=set)


def flatten_document(document: Mapping, patient_id: str | None = None) -> FlatDocument:
    """Flatten a ``compare --json`` style document into a results row and lesion rows (module docstring)."""
    flat = FlatDocument()
    _flatten_into(document, "", flat, patient_id)
    return flat


def flatten_record(record: Mapping) -> dict[str, str]:
    """A record (e.g. one lesion) as cells; nested records and lists follow the row rules."""
    flat = FlatDocument()
    _flatten_into(record, "", flat, None)
    return flat.row


def _join(prefix: str, key) -> str:
    return f"{prefix}{KEY_SEPARATOR}{key}" if prefix else str(key)


def _flatten_into(document: Mapping, prefix: str, flat: FlatDocument, patient_id: str | None) -> None:
    for key, value in document.items():
        name = _join(prefix, key)
        if name in OMITTED_COLUMNS:
            continue
        if name == CHANGE_COHORTS and isinstance(value, (list, tuple)):
            flat.containers.add(name)
            flat.row.update({f"{prefix}{KEY_SEPARATOR}position_{str(cohort.get('cohort', '')).lower()}":
                             format_cell(cohort.get("position")) for cohort in value if isinstance(cohort, Mapping)})
        elif key == TARGETS_KEY and isinstance(value, (list, tuple)):
            flat.containers.add(name)
            flat.row.update(target_columns(name, value))
        elif name == SCORES_KEY and isinstance(value, Mapping):
            flat.containers.add(name)
            flat.row.update({column: format_cell(cell) for column, cell in score_columns(value).items()})
        elif isinstance(value, Mapping):
            flat.containers.add(name)
            _flatten_into(value, name, flat, patient_id)
        elif isinstance(value, (list, tuple)):
            if key == SURVIVAL_KEY and all(isinstance(item, Mapping) for item in value):
                flat.containers.add(name)
                flat.row.update(survival_columns(name, value))
            elif key == LESIONS_KEY and all(isinstance(item, Mapping) for item in value):
                flat.containers.add(name)
                for lesion in value:
                    row = {PATIENT_ID: patient_id or "", TIME_POINT: prefix}
                    row.update(flatten_record(split_centroid(lesion)))
                    flat.lesions.append(row)
            elif not value and name in KNOWN_RECORD_LISTS:
                flat.containers.add(name)
            elif all(_is_scalar(item) for item in value):
                flat.row[name] = LIST_SEPARATOR.join(format_cell(item, decimals_for(name)) for item in value)
            else:
                flat.containers.add(name)
        else:
            flat.row[name] = format_cell(value, decimals_for(name))


def survival_columns(name: str, points: Sequence[Mapping], months: Sequence[int] = PROGNOSIS_MONTHS
                     ) -> dict[str, str]:
    """``{name}_{m}m`` probability and ``_ci95_low``/``_ci95_high`` at each of ``months`` (empty if absent)."""
    columns = {}
    for month in months:
        point = next((point for point in points if _is_month(point.get("months"), month)), None)
        band = list(point.get("ci95") or ()) if point else []
        columns[f"{name}_{month}m"] = format_cell(point.get("probability"), 4) if point else ""
        columns[f"{name}_{month}m_ci95_low"] = format_cell(band[0], 4) if len(band) == 2 else ""
        columns[f"{name}_{month}m_ci95_high"] = format_cell(band[1], 4) if len(band) == 2 else ""
    return columns


def _is_month(value, month: int) -> bool:
    try:
        return abs(float(value) - month) < 1e-6
    except (TypeError, ValueError):
        return False


def merge_columns(order: list[str], keys: Iterable[str], known: set[str] | None = None) -> None:
    """Add the keys missing from ``order`` (in place), each right after the key that precedes it in ``keys``.

    So every row's own order is kept and the result does not depend on which row came first.
    """
    known = set(order) if known is None else known
    keys = list(keys)
    if not any(key not in known for key in keys):
        return
    anchor = -1
    for key in keys:
        if key in known:
            anchor = order.index(key)
        else:
            anchor += 1
            order.insert(anchor, key)
            known.add(key)


def typed_rows(columns: Sequence[str], rows: Sequence[Mapping[str, str]], text_columns: Iterable[str] = ()
               ) -> list[list]:
    """Rows as lists; a column outside ``text_columns`` whose cells are all numbers (or empty) becomes floats
    (NaN for empty), e.g. for a Slicer table node, so that it sorts and plots as numbers."""
    text = set(text_columns)
    numeric = {column for column in columns if column not in text and _all_numbers(row.get(column, "") for row in rows)}
    return [[(float(row.get(column) or "nan") if column in numeric else row.get(column, "")) for column in columns]
            for row in rows]


def _all_numbers(cells: Iterable[str]) -> bool:
    seen = False
    for cell in cells:
        if cell == "":
            continue
        try:
            float(cell)
        except ValueError:
            return False
        if cell.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
            return False
        seen = True
    return seen


# --- CSV files ------------------------------------------------------------------------------------------

def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    """Write a table atomically (temporary file in the same folder, then rename); text that a spreadsheet
    would run as a formula is written inert (:mod:`..formats.csv_safety`), numbers as they are."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([escape_cell(column) for column in columns])
    writer.writerows([escape_cell(row.get(column, "")) for column in columns] for row in rows)
    text = buffer.getvalue()

    def write(temporary: Path) -> None:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    _atomic_write(Path(path), write)


def read_csv(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """A table written by :func:`write_csv` (or any CSV with a header row): columns and rows of text (short
    rows padded with empty cells)."""
    header, rows, uneven = read_table(path)
    padded = [dict(zip(header, values + [""] * (len(header) - len(values)))) for values in uneven]
    return header, rows + padded if padded else rows


def read_table(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]], list[list[str]]]:
    """(header, rows, uneven), cells as they were before :func:`write_csv` made formulas inert: rows with as
    many cells as the header, and apart, as lists of cells, those with fewer or more, and a last row without its
    line end. This tool writes only whole, even rows, so such a row in its table is damage (a copy cut short)."""
    file_path = Path(path)
    try:
        with open(file_path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
        records = [[unescape_cell(cell) for cell in record] for record in csv.reader(io.StringIO(text, newline=""))]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"Could not read the table '{file_path}': {error}.") from error
    if not records:
        return [], [], []
    header = records[0]
    rows, uneven = [], []
    for number, values in enumerate(records[1:], start=2):
        cut = number == len(records) and not text.endswith(("\n", "\r"))
        if len(values) == len(header) and not cut:
            rows.append(dict(zip(header, values)))
        elif values:
            uneven.append(values)
    return header, rows, uneven


# --- the two tables of a run ----------------------------------------------------------------------------

class CohortTables:
    """Results and lesion rows of a run, kept in manifest order and written out as whole files."""

    def __init__(self, manifest_columns: Sequence[str], patient_order: Sequence[str],
                 result_columns: Sequence[str] = (), containers: Iterable[str] = ()):
        self.manifest_columns = [column for column in manifest_columns if column not in FIXED_COLUMNS]
        self._rank = {patient_id: index for index, patient_id in enumerate(patient_order)}
        self._result_order = list(result_columns)
        self._result_known = set(self._result_order)
        self._lesion_order: list[str] = []
        self._lesion_known: set[str] = set()
        self._containers = set(containers)
        self._rows: dict[str, dict[str, str]] = {}
        self._lesions: dict[str, list[dict[str, str]]] = {}
        self._extra_order: list[str] = []  # patients from an earlier run that the manifest no longer lists

    def __contains__(self, patient_id: str) -> bool:
        return patient_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, patient_id: str) -> dict[str, str] | None:
        return self._rows.get(patient_id)

    def add(self, patient_id: str, row: Mapping[str, str], lesions: Sequence[Mapping[str, str]] = (),
            containers: Iterable[str] = ()) -> None:
        """Store (or replace) a patient's row; keys that are not fixed or manifest columns are results."""
        reserved = set(FIXED_COLUMNS) | set(self.manifest_columns)
        merge_columns(self._result_order, [key for key in row if key not in reserved], self._result_known)
        self._containers.update(containers)
        for lesion in lesions:
            merge_columns(self._lesion_order, [key for key in lesion if key not in LESION_FIXED_COLUMNS],
                          self._lesion_known)
        if patient_id not in self._rank and patient_id not in self._rows:
            self._extra_order.append(patient_id)
        self._rows[patient_id] = dict(row)
        self._lesions[patient_id] = [dict(lesion) for lesion in lesions]

    def add_containers(self, containers: Iterable[str]) -> None:
        """Result keys that hold lists of records (kept out of the results table)."""
        self._containers.update(containers)

    @property
    def columns(self) -> list[str]:
        shown = set(FIXED_COLUMNS) | set(self.manifest_columns)
        return [*FIXED_COLUMNS, *self.manifest_columns,
                *[column for column in self._result_order if column not in shown
                  and column not in self._containers]]

    @property
    def lesion_columns(self) -> list[str]:
        return [*LESION_FIXED_COLUMNS, *[column for column in self._lesion_order
                                         if column not in LESION_FIXED_COLUMNS]]

    def _patients(self) -> list[str]:
        listed = sorted((patient for patient in self._rows if patient in self._rank), key=self._rank.__getitem__)
        return listed + [patient for patient in self._extra_order if patient in self._rows]

    def rows(self) -> list[dict[str, str]]:
        """All rows in manifest order, every column present."""
        columns = self.columns
        return [{column: self._rows[patient].get(column, "") for column in columns} for patient in self._patients()]

    def lesion_rows(self) -> list[dict[str, str]]:
        columns = self.lesion_columns
        return [{column: lesion.get(column, "") for column in columns}
                for patient in self._patients() for lesion in self._lesions.get(patient, [])]

    def write(self, output: str | os.PathLike, lesions_output: str | os.PathLike | None = None) -> None:
        """Write the lesion table first, then the results: a results row never lacks its lesion rows."""
        if lesions_output is not None:
            write_csv(lesions_output, self.lesion_columns, self.lesion_rows())
        write_csv(output, self.columns, self.rows())
