"""The journal and resume: nothing a killed run finished is lost, and ``--resume`` continues it.

It is its own module because keeping finished patients safe is a job apart from running them: each finished
patient is logged at once (one JSON line per patient) until the next complete write of the tables; the
options of a run are recorded beside its table; and resuming reads the earlier tables and the journal back,
computing damaged rows again and refusing a resume that would mix two methods or two cohorts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from ..formats.io import _atomic_write
from .manifest import CLINICAL_COLUMNS, DICOM_SERIES, PATH_COLUMNS, SEGMENT_COLUMNS, Manifest
from .outputs import _writing
from .patient import _template
from .tables import FIXED_COLUMNS, PATIENT_ID, STATUS, STATUS_FAILED, STATUS_OK, CohortTables, read_csv, read_table

WRITE_TIME_SHARE = 0.01  # rewrite the tables at most this share of the run's time (always at the end)


def journal_path(output: Path) -> Path:
    """Where finished patients are logged until the next complete write of the tables."""
    return output.parent / f".{output.name}.journal.jsonl"


class _IncrementalWriter:
    """Keeps every finished patient safe at once, and rewrites the tables only ~1 % of the time.

    Each finished patient is appended to a journal (one JSON line, flushed to disk) before anything else,
    so a killed run loses nothing: ``--resume`` replays the journal. Rewriting whole tables after every
    patient would cost O(n) per patient; the journal costs O(1), and is emptied after each table write.
    """

    def __init__(self, tables: CohortTables, output: Path, lesions_output: Path | None):
        self.tables, self.output, self.lesions_output = tables, output, lesions_output
        self.journal = journal_path(output)
        self.last_end = 0.0
        self.last_duration = 0.0

    def changed(self, patient_id: str, row: dict[str, str], lesions: list[dict[str, str]],
                containers: set[str]) -> None:
        record = {"patient_id": patient_id, "row": row, "lesions": lesions, "containers": sorted(containers)}
        with _writing(self.journal), open(self.journal, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if time.monotonic() - self.last_end >= self.last_duration / WRITE_TIME_SHARE:
            self.write()

    def write(self) -> None:
        start = time.monotonic()
        with _writing(self.output):
            self.tables.write(self.output, self.lesions_output)
            self.journal.unlink(missing_ok=True)  # everything in it is in the tables now
        self.last_end = time.monotonic()
        self.last_duration = self.last_end - start


def settings_path(output: Path) -> Path:
    """Where a run records the options its results were computed with (checked by ``--resume``)."""
    return output.parent / f".{output.name}.settings.json"


def run_settings(exclude: Sequence[str], liver: Sequence[str], register: bool, registration_mode: str,
                 lesion: Sequence[str] = ()) -> dict:
    """The options that change a patient's results, in a form that compares equal when they do the same
    (lesion patterns only when given, so runs recorded before the option existed still compare equal)."""
    settings = {"exclude_segments": sorted(set(exclude)), "liver_segments": sorted(set(liver)),
                "registration": registration_mode if register else "off"}
    if lesion:
        settings["lesion_segments"] = sorted(set(lesion))
    return settings


SETTING_LABELS = {"exclude_segments": "excluded segments (--exclude-segment)",
                  "liver_segments": "liver segments (--liver-segment)",
                  "lesion_segments": "lesion segments (--lesion-segment)",
                  "registration": "registration (--registration / --no-registration)"}


def _check_resumed_settings(output: Path, settings: dict, warnings: list[str]) -> None:
    """A resumed run must compute its patients as the earlier run did, or its table would mix two methods."""
    path = settings_path(output)
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        warnings.append(f"'{output}' has no record of the options it was computed with (it was written by an "
                        f"earlier version, or '{path.name}' was removed); check that this run uses the same ones.")
        return
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"Cannot read '{path}', the options of the run being resumed ({error}). Delete it to "
                         f"resume without the check, or start again with --overwrite.") from error
    differences = [f"{SETTING_LABELS.get(key, key)}: {_setting_text(earlier.get(key))} before, "
                   f"{_setting_text(value)} now" for key, value in settings.items() if earlier.get(key) != value]
    if differences:
        raise InputError(f"The run in '{output}' was computed with other options; resuming it would mix results "
                         f"computed two ways. Use the same options as before, or start again with --overwrite "
                         f"(or a new output file). Differences: {'; '.join(differences)}.")


def _setting_text(value) -> str:
    if isinstance(value, list):
        return ", ".join(f"'{item}'" for item in value) if value else "none"
    return "not recorded" if value is None else f"'{value}'"


def _record_settings(output: Path, settings: dict) -> None:
    with _writing(output):
        _atomic_write(settings_path(output), lambda temporary: temporary.write_text(json.dumps(settings) + "\n",
                                                                                       encoding="utf-8"))


def read_journal(output: Path) -> list[dict]:
    """Patients a killed run finished after its last table write (a torn last line is ignored)."""
    path = journal_path(output)
    if not path.exists():
        return []
    records = []
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"Cannot read '{path}', the log of the run being resumed ({error.strerror or error}).") \
            from error
    for line in data.splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # the run was killed while writing this line (or it was damaged): computed again
        if _is_journal_record(record):
            records.append(record)
    return records


def _is_journal_record(record) -> bool:
    """A journal line as :class:`_IncrementalWriter` writes it (anything else is damage, and skipped)."""
    return (isinstance(record, dict) and isinstance(record.get("patient_id"), str)
            and isinstance(record.get("row"), dict) and isinstance(record.get("lesions"), list)
            and all(isinstance(lesion, dict) for lesion in record["lesions"])
            and isinstance(record.get("containers"), list))


def _resume(tables: CohortTables, manifest: Manifest, output: Path, lesions_output: Path | None,
            retry_failed: bool, warnings: list[str]) -> set[str]:
    """Load an earlier run's rows into ``tables``; returns the patients that need no new computation."""
    if not output.exists():
        return set()
    header, rows, damaged = read_table(output)
    journal = read_journal(output)
    if not header and not rows and not damaged and not journal:
        return set()
    if PATIENT_ID not in header or STATUS not in header:
        raise InputError(f"'{output}' is not a results table of this tool (it has no patient_id and status "
                         f"columns), so it cannot be resumed. Choose another output file, or --overwrite it.")
    lesions_by_patient: dict[str, list[dict[str, str]]] = {}
    have_lesions = lesions_output is None or lesions_output.exists()
    if lesions_output is not None and lesions_output.exists():
        for lesion in read_csv(lesions_output)[1]:
            lesions_by_patient.setdefault(lesion.get(PATIENT_ID, ""), []).append(lesion)
    logged = {record["patient_id"]: record for record in journal}
    damaged_ids = [values[0] for values in damaged if values[0] not in logged]
    if damaged_ids:
        warnings.append(f"{len(damaged_ids)} row(s) of '{output}' are incomplete (the file was damaged or cut "
                        f"short); those patients are computed again: "
                        f"{_some(damaged_ids)}")
    rows = [row for row in rows if row.get(PATIENT_ID, "") not in logged]
    for patient_id, record in logged.items():
        rows.append(record["row"])
        lesions_by_patient[patient_id] = record["lesions"]
        tables.add_containers(record["containers"])
    # The earlier run's manifest columns sit between the fixed columns and the first result column.
    result_names = set(_template().row)
    first_result = next((index for index, column in enumerate(header) if column in result_names), len(header))
    old_manifest_columns = {column for column in header[:first_result] if column not in FIXED_COLUMNS}
    entries = {entry.patient_id: entry for entry in manifest.entries}
    unlisted = [row.get(PATIENT_ID, "") for row in rows if row.get(PATIENT_ID, "") not in entries]
    if unlisted:
        raise InputError(
            f"'{output}' holds {len(unlisted)} patient(s) that the manifest no longer lists: "
            f"{_some(unlisted)}. --resume continues the same cohort, "
            f"and its table must match a run on the manifest as it is now. Put them back in the manifest, delete "
            f"their rows from '{output}', or write to a new output file (or start again with --overwrite).")
    finished = set()
    for row in rows:
        patient_id = row.get(PATIENT_ID, "")
        entry = entries[patient_id]
        if row.get(STATUS) == STATUS_FAILED and retry_failed:
            continue
        if row.get(STATUS) == STATUS_OK and not have_lesions:
            continue  # its lesion rows are needed and were not kept: compute it again
        if row.get(STATUS) not in (STATUS_OK, STATUS_FAILED):
            continue
        if any(row.get(column, "") != entry.cells.get(column, "")
               for column in (*PATH_COLUMNS, *CLINICAL_COLUMNS, DICOM_SERIES, *SEGMENT_COLUMNS)):
            continue  # other files, score inputs, series or segment options in the manifest: compute it again
        results = {key: value for key, value in row.items() if key not in old_manifest_columns}
        tables.add(patient_id, {**results, **entry.cells}, lesions_by_patient.get(patient_id, []))
        finished.add(patient_id)
    return finished


def _some(patient_ids: Sequence[str], shown: int = 10) -> str:
    """Patient ids for a message: the first few, and "..." when there are more."""
    return ", ".join(patient_ids[:shown]) + (" ..." if len(patient_ids) > shown else "")
