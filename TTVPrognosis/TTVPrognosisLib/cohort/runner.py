"""Batch mode: measure, compare and predict for every patient of a cohort manifest.

A manifest is a CSV file with one row per patient:

- ``patient_id`` (required, unique), ``baseline_segmentation`` (required), ``followup_segmentation``,
  ``baseline_image``, ``followup_image`` (optional): file paths; relative paths start from the manifest's
  folder. Column names are matched ignoring case, spaces and hyphens (``Patient ID`` is ``patient_id``).
- any other column (clinical data) is passed through to the results unchanged.

The manifest is checked before anything runs. Structural problems (missing columns, duplicate or empty
patient ids, unnamed columns, rows with too many cells) stop the run with every problem listed at once.
Missing, unreadable or empty input files are listed up front as well; those patients are recorded as
failed and the rest run.

Each patient is one job (:func:`process_patient`, a top-level function so process pools and Dask can ship
it): read the segmentations, check each against its CT when one is given (from the file header alone,
unless both CTs of a patient with a follow-up are given: then they are read and used for registration, as
``compare`` does), measure, compare, add the prognosis, flatten (:mod:`.cohort_table`). A patient without
a follow-up gets the baseline measurement and prognosis only. A baseline without lesion voxels is an error
(a baseline scan of a patient with liver metastases has lesions: the file is probably the wrong one); an
empty follow-up is valid (complete response) and only warned about.

:func:`run_cohort` runs the jobs in-process (``workers=1``), in a local process pool (the default, one
process per core), or on any ``concurrent.futures.Executor`` (e.g. ``dask.distributed.Client(...)
.get_executor()``; a Dask ``Client`` itself is accepted too). The tables are rewritten after patients
finish (whole file to a temporary file, then renamed, so a killed run leaves complete tables), and a
``resume`` run skips the patients already in the results. A resumed table must equal an uninterrupted run
on the manifest as it is now: resuming with other options (recorded beside the table) or with patients
dropped from the manifest is refused, and damaged rows are computed again. Input files are only read.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import csv
import difflib
import io
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..cohort.tables import (
    ERROR,
    FIXED_COLUMNS,
    PATIENT_ID,
    STATUS,
    STATUS_FAILED,
    STATUS_OK,
    CohortTables,
    FlatDocument,
    clean_cell,
    flatten_document,
    read_csv,
    read_table,
    typed_rows,
)
from ..errors import InputError
from ..formats.io import _atomic_write, require_writable_folder

BASELINE_SEGMENTATION = "baseline_segmentation"
FOLLOWUP_SEGMENTATION = "followup_segmentation"
BASELINE_IMAGE = "baseline_image"
FOLLOWUP_IMAGE = "followup_image"
PATH_COLUMNS = (BASELINE_SEGMENTATION, FOLLOWUP_SEGMENTATION, BASELINE_IMAGE, FOLLOWUP_IMAGE)
REQUIRED_COLUMNS = (PATIENT_ID, BASELINE_SEGMENTATION)
KNOWN_COLUMNS = (PATIENT_ID, *PATH_COLUMNS)
PATH_LABELS = {BASELINE_SEGMENTATION: "Baseline segmentation", FOLLOWUP_SEGMENTATION: "Follow-up segmentation",
               BASELINE_IMAGE: "Baseline image", FOLLOWUP_IMAGE: "Follow-up image"}
DELIMITERS = (",", ";", "\t")
# Results whose keys depend on the case (CT or liver-mask registration): reserved as a whole, since the
# template comparison (_template) shows only one kind.
FREE_FORM_RESULTS = ("registration_diagnostics_",)
SEPARATOR_LINE = re.compile(r"^\s*sep=(.)\s*$")  # Excel's optional first line naming the delimiter
POLL_SECONDS = 0.1
WORKER_STOP_SECONDS = 2.0  # a worker asked to stop (after Ctrl+C) is killed if it has not ended by then
WRITE_TIME_SHARE = 0.01  # rewrite the tables at most this share of the run's time (always at the end)

ProgressCallback = Callable[[int, int, "str | None"], None]


class ManifestError(InputError):
    """The manifest cannot be used as it is; ``problems`` lists every reason (the message lists them too)."""

    def __init__(self, path: str | os.PathLike, problems: Sequence[str]):
        self.path = str(path)
        self.problems = list(problems)
        count = len(self.problems)
        listed = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"The manifest '{path}' has {count} problem{'s' if count != 1 else ''}; nothing was "
                         f"run:\n{listed}\nFix the manifest and run again.")


# --- the manifest ----------------------------------------------------------------------------------------

@dataclass
class PatientEntry:
    """One manifest row: cells as passed through, resolved input paths, and file problems found up front."""

    patient_id: str
    line: int
    cells: dict[str, str]
    paths: dict[str, str]
    problems: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    """A checked manifest: its columns (known ones under their standard names) and patients in file order."""

    path: Path
    columns: list[str]
    entries: list[PatientEntry]
    warnings: list[str] = field(default_factory=list)

    @property
    def file_problems(self) -> list[str]:
        """Every patient's input-file problems, one line each, for listing before the run."""
        return [f"line {entry.line}, patient '{entry.patient_id}': {problem}"
                for entry in self.entries for problem in entry.problems]


def _standard_name(name: str) -> str:
    """Header text as a known column name if it is one (case, spaces, hyphens ignored), else stripped."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower()).replace("follow_up", "followup")
    return key if key in KNOWN_COLUMNS else name.strip()


def _decode(data: bytes) -> tuple[str, list[str]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with its byte-order mark (Excel's "Unicode Text")
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text, ["The manifest is not UTF-8 encoded; it was read as Windows-1252 (Latin-1). Save it as UTF-8 "
                  "if names with accents look wrong in the results."]


def _delimiter(text: str) -> str:
    """Comma, semicolon (spreadsheets in many European locales) or tab: the most frequent in the header."""
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    counts = {delimiter: first_line.count(delimiter) for delimiter in DELIMITERS}
    best = max(DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def read_manifest(path: str | os.PathLike, outputs: Sequence[str | os.PathLike] = ()) -> Manifest:
    """Read and check a cohort manifest; raises :class:`ManifestError` listing every structural problem.

    ``outputs``: files the run will write; naming one of them as an input is a structural problem.
    """
    manifest_path = Path(path)
    if manifest_path.is_dir():
        raise InputError(f"'{manifest_path}' is a folder; give the manifest CSV file.")
    try:
        data = manifest_path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"Manifest not found: '{manifest_path}'. Check the path (relative paths start from "
                         f"'{Path.cwd()}').") from None
    except OSError as error:
        raise InputError(f"Cannot read the manifest '{manifest_path}': {error.strerror or error}.") from None
    text, warnings = _decode(data)
    if "\x00" in text:  # Python 3.9's csv (Slicer 5.8) stops at it; later versions read it into a cell
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ManifestError(manifest_path, [f"line {line} holds a NUL character: the file is not plain text (or "
                                            f"UTF-16 without its byte-order mark); save it as CSV (UTF-8)"])
    first_line, _, rest = text.partition("\n")
    declared = SEPARATOR_LINE.match(first_line)
    if declared:
        text = "\n" + rest  # Excel's "sep=;" line: not the header (kept as a blank line so line numbers hold)
    delimiter = declared.group(1) if declared else _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = [(reader.line_num, row) for row in reader]
    except csv.Error as error:
        raise ManifestError(manifest_path, [f"line {reader.line_num}: {error} (check the quotes)"]) from None
    records = [(line, row) for line, row in records if any(cell.strip() for cell in row)]
    if not records:
        raise ManifestError(manifest_path, ["the file is empty: it needs a header row (patient_id, "
                                            "baseline_segmentation, ...) and one row per patient"])
    problems: list[str] = []
    header_line, header = records[0]
    columns = [_standard_name(name) for name in header]
    spare = {index for index, name in enumerate(columns) if not name  # spreadsheets' empty trailing columns
             and all(index >= len(row) or not row[index].strip() for _, row in records[1:])}
    problems += _header_problems(columns, header, spare)
    entries = []
    lines_of_id: dict[str, list[int]] = {}
    for line, row in records[1:]:
        if len(row) > len(columns) and any(cell.strip() for cell in row[len(columns):]):
            problems.append(f"line {line} has {len(row)} cells but the header has {len(columns)} (a value "
                            f"with a '{delimiter}' in it must be in double quotes)")
        cells = {column: clean_cell(row[index] if index < len(row) else "")
                 for index, column in enumerate(columns) if column}
        patient_id = cells.get(PATIENT_ID, "")
        if PATIENT_ID in columns and not patient_id:
            problems.append(f"line {line}: patient_id is empty")
        lines_of_id.setdefault(patient_id, []).append(line)
        entries.append(PatientEntry(patient_id, line, cells, {}))
    for patient_id, lines in lines_of_id.items():
        if patient_id and len(lines) > 1:
            problems.append(f"patient_id '{patient_id}' appears {len(lines)} times (lines "
                            f"{', '.join(map(str, lines))}); each patient needs one row with a unique id")
    if not entries:
        problems.append(f"no patients: the file has a header (line {header_line}) but no rows below it")
    folder = Path(os.path.abspath(manifest_path)).parent  # where the user sees it (not a link's target's)
    written = {Path(output).resolve() for output in outputs}
    if manifest_path.resolve() in written:
        problems.append("the manifest itself is named as an output file; choose another output name")
    for entry in entries:
        for column in PATH_COLUMNS:
            if entry.cells.get(column):
                entry.paths[column] = str(_resolve(entry.cells[column], folder))
        for column, resolved in entry.paths.items():
            if Path(resolved).resolve() in written:
                problems.append(f"line {entry.line}: {column} '{entry.cells[column]}' is also an output file; "
                                f"inputs are never written, choose another output name")
    if problems:
        raise ManifestError(manifest_path, problems)
    for entry in entries:
        entry.problems = _file_problems(entry, folder)
        for image, segmentation in ((BASELINE_IMAGE, BASELINE_SEGMENTATION), (FOLLOWUP_IMAGE, FOLLOWUP_SEGMENTATION)):
            if entry.cells.get(image) and not entry.cells.get(segmentation):
                warnings.append(f"line {entry.line}, patient '{entry.patient_id}': {image} is given but "
                                f"{segmentation} is empty; the image is not used.")
    return Manifest(manifest_path, [column for column in columns if column], entries, warnings)


def _header_problems(columns: list[str], header: list[str], spare: set[int]) -> list[str]:
    """Problems of the header; ``spare``: indices of unnamed columns without any value (ignored)."""
    problems = []
    for index, name in enumerate(columns, start=1):
        if not name and index - 1 not in spare:
            problems.append(f"column {index} has no name (pandas writes its row index like this: use "
                            f"to_csv(..., index=False)); name the column or remove it")
    seen: dict[str, int] = {}
    for name in columns:
        if name:
            seen[name] = seen.get(name, 0) + 1
    problems += [f"column '{name}' appears {count} times; column names must be unique"
                 for name, count in seen.items() if count > 1]
    for required in REQUIRED_COLUMNS:
        if required not in columns:
            close = difflib.get_close_matches(required, [name for name in header if name.strip()], n=1, cutoff=0.6)
            hint = f" (is '{close[0]}' meant to be '{required}'?)" if close else ""
            problems.append(f"required column '{required}' is missing{hint}; the header has: "
                            f"{', '.join(repr(name) for name in header)}")
    reserved = set(FIXED_COLUMNS) | set(_template().row) | _template().containers
    clashes = [name for name in columns
               if (name in reserved or name.startswith(FREE_FORM_RESULTS)) and name not in KNOWN_COLUMNS]
    if clashes:
        problems.append(f"column{'s' if len(clashes) > 1 else ''} {', '.join(repr(name) for name in clashes)} "
                        f"would clash with result columns of the same name; rename "
                        f"{'them' if len(clashes) > 1 else 'it'} (a results table cannot be used as a manifest)")
    return problems


def _resolve(cell: str, folder: Path) -> Path:
    path = Path(os.path.expanduser(cell))
    return path if path.is_absolute() else folder / path


def _file_problems(entry: PatientEntry, folder: Path) -> list[str]:
    problems = []
    if not entry.cells.get(BASELINE_SEGMENTATION):
        problems.append(f"no baseline segmentation given (the {BASELINE_SEGMENTATION} cell is empty)")
    for column, resolved in entry.paths.items():
        if column in (BASELINE_IMAGE, FOLLOWUP_IMAGE) and not entry.cells.get(column.replace("image", "segmentation")):
            continue  # not used (warned about)
        label, path, written = PATH_LABELS[column], Path(resolved), entry.cells[column]
        try:
            problem = _path_problem(path)
        except OSError as error:  # a folder on the way cannot be searched, a name too long
            reason = error.strerror or str(error)
            problem = f"cannot be checked ({reason})"
        if problem is None:
            continue
        if problem == "not found":
            where = "" if Path(written).is_absolute() else \
                f" (relative paths start from the manifest's folder '{folder}')"
            problems.append(f"{label} not found: '{_shortened(written)}' -> '{_shortened(str(path))}'{where}")
        else:
            problems.append(f"{label} '{_shortened(str(path))}' {problem}")
    return problems


def _path_problem(path: Path) -> str | None:
    """Why an input file cannot be used, or None; may raise OSError for paths the system rejects."""
    if not path.exists():  # raises when a folder on the way cannot be searched
        return "not found"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    if path.is_file() and path.stat().st_size == 0:
        return "is an empty file (0 bytes); it may have been copied incompletely"
    return None


def _shortened(text: str, limit: int = 200) -> str:
    """A path cell as it goes into a message: very long ones (shifted columns, pasted text) cut in the middle."""
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


# --- one patient -----------------------------------------------------------------------------------------

@dataclass
class PatientJob:
    """Everything one worker needs for one patient (picklable when the readers are top-level functions)."""

    patient_id: str
    baseline_segmentation: str
    followup_segmentation: str | None = None
    baseline_image: str | None = None
    followup_image: str | None = None
    exclude: tuple[str, ...] = ()
    liver: tuple[str, ...] = ()
    register: bool = True
    registration_mode: str = "rigid"
    read_segmentation: Callable | None = None  # path -> LabelVolume; default io.read_segmentation
    read_image: Callable | None = None  # path -> ImageVolume; default io.read_image (only the header when
    #                                     the voxels are not needed)


@dataclass
class PatientOutcome:
    """A patient's flattened results (``row``, lesion rows) or the reason it failed (``error``)."""

    patient_id: str
    status: str
    error: str = ""
    row: dict[str, str] = field(default_factory=dict)
    lesions: list[dict[str, str]] = field(default_factory=list)
    containers: set[str] = field(default_factory=set)
    seconds: float = 0.0


_MODEL = None


def _survival_model():
    """The embedded survival model, loaded once per process."""
    global _MODEL
    if _MODEL is None:
        from ..prognosis.model import load_model

        _MODEL = load_model()
    return _MODEL


def _load_time_point(job: PatientJob, label: str, segmentation: str, image: str | None, need_image: bool):
    """:func:`.pipeline.load_time_point` with the job's readers; errors say which time point they concern."""
    from ..pipeline import load_time_point

    try:
        return load_time_point(segmentation, image or None, need_image, job.read_segmentation, job.read_image)
    except InputError as error:
        raise InputError(f"{label}: {error}") from error


def patient_document(job: PatientJob) -> dict:
    """One patient's ``compare --json`` document (``baseline`` and ``prognosis`` only without a follow-up).

    The same steps as ``ttvprognosis compare``: both CTs, when given, are read and used for registration.
    """
    from ..formats.segments import names_matching, require_segments_named
    from ..measure.volumetry import measure
    from ..pipeline import compare_volumes
    from ..prognosis.model import prognosis_section
    from ..report.text import comparison_document

    with_followup = bool(job.followup_segmentation)
    both_images = with_followup and bool(job.baseline_image) and bool(job.followup_image) and job.register
    baseline, baseline_ct = _load_time_point(job, "Baseline", job.baseline_segmentation, job.baseline_image,
                                             both_images)
    if not with_followup:
        require_segments_named([baseline], job.exclude, "--exclude-segment")
        require_segments_named([baseline], job.liver, "--liver-segment")
        measurement = measure(baseline, exclude=names_matching(baseline, job.exclude),
                              liver=names_matching(baseline, job.liver))
        _require_baseline_lesions(measurement, job.baseline_segmentation)
        return {"baseline": measurement.to_dict(),
                "prognosis": prognosis_section(measurement.ttv_ml, None, model=_survival_model())}
    followup, followup_ct = _load_time_point(job, "Follow-up", job.followup_segmentation, job.followup_image,
                                             both_images)
    comparison = compare_volumes(baseline, followup, exclude=job.exclude, liver=job.liver, baseline_image=baseline_ct,
                                 followup_image=followup_ct, register=job.register,
                                 registration_mode=job.registration_mode)
    _require_baseline_lesions(comparison.baseline, job.baseline_segmentation)
    return comparison_document(comparison, model=_survival_model())


def _require_baseline_lesions(measurement, path: str) -> None:
    if measurement.ttv_ml > 0:
        return
    lesion_segments = [segment.name for segment in measurement.segments if segment.role == "lesion"]
    what = ("has no lesion segments" if not lesion_segments
            else f"has lesion segments ({', '.join(lesion_segments)}) but none holds a voxel")
    raise InputError(f"Baseline: the segmentation '{path}' {what}, so TTV is 0 mL. A baseline scan of a patient "
                     f"with liver metastases has lesions: check that the right file is listed and that it was "
                     f"saved after segmenting (liver-named and excluded segments are not lesions).")


def process_patient(job: PatientJob) -> PatientOutcome:
    """Run one patient; any failure becomes an outcome with a readable ``error`` instead of an exception."""
    start = time.perf_counter()
    try:
        flat = flatten_document(patient_document(job), job.patient_id)
    except InputError as error:
        return PatientOutcome(job.patient_id, STATUS_FAILED, str(error), seconds=time.perf_counter() - start)
    except MemoryError:
        return PatientOutcome(job.patient_id, STATUS_FAILED, "Out of memory while processing this patient; run "
                              "it with fewer workers (--workers 1).", seconds=time.perf_counter() - start)
    except Exception as error:  # a bug must not stop the other patients
        return PatientOutcome(job.patient_id, STATUS_FAILED, f"Internal error ({type(error).__name__}): {error}. "
                              f"Please report this with the files of this patient.",
                              seconds=time.perf_counter() - start)
    return PatientOutcome(job.patient_id, STATUS_OK, "", flat.row, flat.lesions, flat.containers,
                          time.perf_counter() - start)


@lru_cache(maxsize=1)
def _template() -> FlatDocument:
    """Columns of a full comparison of a tiny synthetic case: the canonical column order, and reserved names."""
    import numpy as np

    from ..formats.demo_data import axis_aligned_geometry, ellipsoid_mask
    from ..formats.segments import LabelVolume, Segment
    from ..pipeline import compare_volumes
    from ..report.text import comparison_document

    try:
        geometry = axis_aligned_geometry((12, 16, 16), (2.0, 2.0, 2.0))
        liver = ellipsoid_mask(geometry, (0.0, 0.0, 0.0), (15.0, 15.0, 11.0)).astype(np.uint8)
        lesion = ellipsoid_mask(geometry, (2.0, 2.0, 0.0), (6.0, 6.0, 6.0)).astype(np.uint8)
        volume = LabelVolume([liver, lesion], geometry, [Segment("Liver", "Liver", 0, 1),
                                                         Segment("Lesion_1", "Lesion 1", 1, 1)], "template")
        return flatten_document(comparison_document(compare_volumes(volume, volume), model=_survival_model()))
    except Exception:  # the order then follows the first rows; never stop a batch over a column order
        return FlatDocument()


# --- the run ---------------------------------------------------------------------------------------------

@dataclass
class CohortResult:
    """What a run produced: the tables (as written) and counts over the whole results table."""

    output: Path
    lesions_output: Path | None
    columns: list[str]
    rows: list[dict[str, str]]
    lesion_columns: list[str]
    lesion_rows: list[dict[str, str]]
    total: int
    succeeded: int
    failed: int
    resumed: int
    computed: int
    cancelled: bool
    warnings: list[str] = field(default_factory=list)  # the manifest's first, then the run's
    text_columns: tuple[str, ...] = ()

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(patient_id, error) of every failed patient, in manifest order."""
        return [(row[PATIENT_ID], row[ERROR]) for row in self.rows if row[STATUS] == STATUS_FAILED]

    def typed_rows(self) -> list[list]:
        """Rows as lists in ``columns`` order, result columns that hold only numbers as floats (NaN when
        empty), for ``mrml.fill_table``; patient id, status, error and manifest columns stay text."""
        return typed_rows(self.columns, self.rows, self.text_columns)

    def typed_lesion_rows(self) -> list[list]:
        return typed_rows(self.lesion_columns, self.lesion_rows, ("patient_id", "time_point"))

    @property
    def complete(self) -> bool:
        """Every manifest patient has a row (the run was not cancelled half-way)."""
        return self.succeeded + self.failed >= self.total and not self.cancelled

    @property
    def ok(self) -> bool:
        """Every patient of the manifest finished without error."""
        return self.complete and self.failed == 0


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


@contextlib.contextmanager
def _writing(path: Path):
    """A failed write (disk full, folder made read-only during the run) as a message for the user."""
    try:
        yield
    except OSError as error:
        raise InputError(f"Could not write the results beside '{path}' ({error.strerror or error}). Patients "
                         f"finished before are kept; free space or fix the folder, then run again with "
                         f"--resume.") from error


def settings_path(output: Path) -> Path:
    """Where a run records the options its results were computed with (checked by ``--resume``)."""
    return output.parent / f".{output.name}.settings.json"


def run_settings(exclude: Sequence[str], liver: Sequence[str], register: bool, registration_mode: str) -> dict:
    """The options that change a patient's results, in a form that compares equal when they do the same."""
    return {"exclude_segments": sorted(set(exclude)), "liver_segments": sorted(set(liver)),
            "registration": registration_mode if register else "off"}


SETTING_LABELS = {"exclude_segments": "excluded segments (--exclude-segment)",
                  "liver_segments": "liver segments (--liver-segment)",
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


def check_outputs(output: str | os.PathLike, lesions_output: str | os.PathLike | None = None, resume: bool = False,
                  overwrite: bool = False, manifest: str | os.PathLike | None = None) -> None:
    """Refuse to overwrite an earlier run's tables unless told to resume it or overwrite it, and never
    write over the ``manifest``."""
    output = Path(output)
    lesions_output = Path(lesions_output) if lesions_output is not None else None
    if resume and overwrite:
        raise InputError("Choose either resume (continue the run in the output file) or overwrite (start again), "
                         "not both.")
    for path in (output, lesions_output):
        if manifest is not None and path is not None and path.resolve() == Path(manifest).resolve():
            raise InputError(f"'{path}' is the manifest; choose another name for the output table.")
    if lesions_output is not None and output.resolve() == lesions_output.resolve():
        raise InputError(f"The results and the lesion table would both be written to '{output}'; give them "
                         f"different names.")
    for path in (output, lesions_output):
        if path is None:
            continue
        if path.is_dir():
            raise InputError(f"'{path}' is a folder; give a file name for the table, e.g. '{path / 'results.csv'}'.")
        if path.exists() and not resume and not overwrite:
            raise InputError(f"'{path}' already exists. Resume that run (--resume; finished patients are kept) or "
                             f"replace it (--overwrite).")
        require_writable_folder(path)


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files an earlier, killed run left beside ``path`` (named as ``io._atomic_write`` names them)."""
    suffix = "".join(path.suffixes[-2:]) or ".tmp"
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}$")
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            if pattern.match(candidate.name) and candidate.is_file():
                candidate.unlink()


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
        if any(row.get(column, "") != entry.cells.get(column, "") for column in PATH_COLUMNS):
            continue  # the manifest now points to other files: compute it again
        results = {key: value for key, value in row.items() if key not in old_manifest_columns}
        tables.add(patient_id, {**results, **entry.cells}, lesions_by_patient.get(patient_id, []))
        finished.add(patient_id)
    return finished


def _some(patient_ids: Sequence[str], shown: int = 10) -> str:
    """Patient ids for a message: the first few, and "..." when there are more."""
    return ", ".join(patient_ids[:shown]) + (" ..." if len(patient_ids) > shown else "")


def _executor_capacity(executor) -> int | None:
    """How many jobs the executor runs at once, when it can tell (process/thread pools, Dask)."""
    workers = getattr(executor, "_max_workers", None)
    if isinstance(workers, int) and workers > 0:
        return workers
    client = getattr(executor, "_client", None)
    if client is not None and hasattr(client, "nthreads"):
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:
            return None
    return None


def default_workers() -> int:
    """One worker per available core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_cohort(manifest: str | os.PathLike | Manifest, output: str | os.PathLike,
               lesions_output: str | os.PathLike | None = None, *, workers: int | None = None,
               executor: concurrent.futures.Executor | None = None, resume: bool = False,
               retry_failed: bool = False, overwrite: bool = False, progress: ProgressCallback | None = None,
               should_cancel: Callable[[], bool] | None = None, read_segmentation: Callable | None = None,
               read_image: Callable | None = None, exclude: Sequence[str] = (), liver: Sequence[str] = (),
               register: bool = True, registration_mode: str = "rigid") -> CohortResult:
    """Process every patient of ``manifest`` and write the results table (and the lesion table, if named).

    - ``workers``: 1 runs in this process (use it inside Slicer); N > 1 a local process pool; default one per
      core. Ignored when ``executor`` is given: any ``concurrent.futures.Executor`` (not shut down here),
      or a ``dask.distributed.Client`` (its executor is used). Workers must see the input paths.
    - ``resume``: keep the patients already in ``output`` (failed ones too, unless ``retry_failed``) and
      compute the rest; a patient whose manifest paths changed is computed again. Other options than the
      earlier run's, or patients no longer in the manifest, are an :class:`InputError`. Without ``resume``,
      an existing output is an error unless ``overwrite``.
    - ``progress(done, total, patient_id)`` after each patient (and once at the start with ``None``);
      ``should_cancel()`` is polled between patients: finished patients are written, running ones are
      waited for, the others are left for a later ``resume``.
    - ``read_segmentation(path) -> LabelVolume`` and ``read_image(path) -> ImageVolume`` replace the file
      readers (inside Slicer, to load with Slicer's readers); with a process pool they must be top-level
      functions. Raise :class:`InputError` for a bad file: its message goes into the ``error`` column.
      (The default image reader reads only the header of a CT that is not needed for registration.)
    - ``exclude``/``liver``: segment names applied to every patient, as in ``compare``; ``register=False``
      takes each patient's scans as aligned (no registration before lesion matching); ``registration_mode``
      ``"rigid"`` or ``"affine"``, as in ``compare --registration``.
    """
    output = Path(output)
    lesions_output = Path(lesions_output) if lesions_output is not None else None
    check_outputs(output, lesions_output, resume, overwrite, None if isinstance(manifest, Manifest) else manifest)
    from ..response.registration import MODES

    if registration_mode not in MODES:
        raise InputError(f"Unknown registration mode '{registration_mode}'; use one of {', '.join(MODES)}.")
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest, outputs=[path for path in (output, lesions_output) if path])
    warnings = list(manifest.warnings)
    template = _template()
    tables = CohortTables(manifest.columns, [entry.patient_id for entry in manifest.entries], list(template.row),
                          template.containers)
    settings = run_settings(exclude, liver, register, registration_mode)
    finished = set()
    if resume and (output.exists() or journal_path(output).exists()):
        _check_resumed_settings(output, settings, warnings)
        finished = _resume(tables, manifest, output, lesions_output, retry_failed, warnings)
    jobs = []
    for entry in manifest.entries:
        if entry.patient_id in finished:
            continue
        if entry.problems:
            tables.add(entry.patient_id, {**entry.cells, STATUS: STATUS_FAILED, ERROR: " ".join(
                problem[0].upper() + problem[1:] + ("" if problem.endswith(".") else ".")
                for problem in entry.problems)})
            continue
        jobs.append((entry, PatientJob(
            entry.patient_id, entry.paths[BASELINE_SEGMENTATION], entry.paths.get(FOLLOWUP_SEGMENTATION),
            entry.paths.get(BASELINE_IMAGE), entry.paths.get(FOLLOWUP_IMAGE), tuple(exclude), tuple(liver),
            register, registration_mode, read_segmentation, read_image)))
    total = len(manifest.entries)
    done = total - len(jobs)
    for path in (output, lesions_output):
        if path is not None:
            _remove_stale_temporaries(path)
    if not resume:
        journal_path(output).unlink(missing_ok=True)  # an earlier run's log; not wanted when starting again
    writer = _IncrementalWriter(tables, output, lesions_output)
    _record_settings(output, settings)
    writer.write()
    if progress is not None:
        progress(done, total, None)
    computed = 0
    cancelled = False

    def record(entry: PatientEntry, outcome: PatientOutcome) -> None:
        nonlocal done, computed
        row = {**outcome.row, **entry.cells, STATUS: outcome.status, ERROR: outcome.error}
        tables.add(entry.patient_id, row, outcome.lesions, outcome.containers)
        done += 1
        computed += 1
        writer.changed(entry.patient_id, row, outcome.lesions, outcome.containers)
        if progress is not None:
            progress(done, total, entry.patient_id)

    try:
        in_process = executor is None and (len(jobs) <= 1 or (workers or default_workers()) == 1)
        if in_process:
            for entry, job in jobs:
                if should_cancel is not None and should_cancel():
                    cancelled = True
                    break
                record(entry, process_patient(job))
        else:
            cancelled = _run_on_executor(jobs, executor, workers, record, should_cancel)
    finally:
        writer.write()
    listed = {entry.patient_id for entry in manifest.entries}
    rows = tables.rows()
    statuses = [row[STATUS] for row in rows if row[PATIENT_ID] in listed]
    return CohortResult(output, lesions_output, tables.columns, rows, tables.lesion_columns, tables.lesion_rows(),
                        total, statuses.count(STATUS_OK), statuses.count(STATUS_FAILED), len(finished), computed,
                        cancelled, warnings, (*FIXED_COLUMNS, *manifest.columns))


def prepare_worker() -> None:
    """Set up a batch worker process: Ctrl+C is left to the parent (which writes what is finished and stops
    the workers), and freed memory is kept for the next patient (:mod:`.allocator`)."""
    import signal

    from ..allocator import reuse_freed_memory

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (the CLI's): stopping ends a worker
    reuse_freed_memory()


def _process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, initializer=prepare_worker)


def _run_on_executor(jobs: list, executor, workers: int | None, record: Callable,
                     should_cancel: Callable[[], bool] | None) -> bool:
    """Keep a few jobs per worker in flight (so cancelling is quick and memory stays flat); True if cancelled.

    If a worker process of our own pool dies (e.g. killed for memory), every job it shared the pool with
    fails with it; those jobs are run again one at a time in a new pool, so only the culprit is recorded
    as failed.
    """
    owned = executor is None
    if owned:
        executor = _process_pool(min(workers or default_workers(), len(jobs)))
    elif not isinstance(executor, concurrent.futures.Executor) and hasattr(executor, "get_executor"):
        executor = executor.get_executor()  # a dask.distributed Client
    capacity = _executor_capacity(executor) or workers
    limit = 2 * capacity if capacity else len(jobs)
    waiting = collections.deque((entry, job, False) for entry, job in jobs)
    suspects: collections.deque = collections.deque()  # (entry, job, True): run alone after a pool broke
    in_flight: dict[concurrent.futures.Future, tuple] = {}
    cancelled = False
    interrupted = True

    def replace_broken_pool() -> None:
        nonlocal executor
        suspects.extend((entry, job, True) for entry, job, _ in in_flight.values())
        in_flight.clear()
        executor.shutdown(wait=False, cancel_futures=True)
        executor = _process_pool(capacity or 1)

    def submit(queue: collections.deque) -> None:
        item = queue.popleft()
        try:
            in_flight[executor.submit(process_patient, item[1])] = item
        except concurrent.futures.BrokenExecutor:
            if not owned:
                raise
            queue.appendleft(item)  # it never ran
            replace_broken_pool()

    try:
        while True:
            if not cancelled:
                if suspects:
                    if not in_flight:
                        submit(suspects)
                else:
                    while waiting and len(in_flight) < limit:
                        submit(waiting)
            if not in_flight:
                if cancelled or not (waiting or suspects):
                    break
                continue
            if not cancelled and should_cancel is not None and should_cancel():
                cancelled = True
                for future in list(in_flight):
                    if future.cancel():
                        del in_flight[future]
                continue
            done, _ = concurrent.futures.wait(list(in_flight), timeout=POLL_SECONDS,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                if future not in in_flight:  # already handed to a new pool after the old one broke
                    continue
                entry, job, alone = in_flight[future]
                if future.cancelled():
                    del in_flight[future]
                    continue
                try:
                    outcome = future.result()
                except Exception as error:
                    if owned and isinstance(error, concurrent.futures.BrokenExecutor) and not alone:
                        replace_broken_pool()
                        continue
                    outcome = PatientOutcome(job.patient_id, STATUS_FAILED, f"The worker stopped while processing "
                                             f"this patient ({type(error).__name__}: {error}); it may have run out "
                                             f"of memory. Try it again with --resume --retry-failed and fewer "
                                             f"workers.")
                del in_flight[future]
                record(entry, outcome)
        interrupted = False
    finally:
        for future in in_flight:
            future.cancel()
        if owned:
            if interrupted:
                _stop_workers(executor)
            executor.shutdown(wait=not interrupted, cancel_futures=True)
    return cancelled


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """End our pool's worker processes at once (after Ctrl+C or an error).

    Workers ignore Ctrl+C (:func:`prepare_worker`), so left alone they would finish their patients while
    this process waits at exit, where a second Ctrl+C can leave it hanging and them orphaned. Their
    unfinished patients are not in the tables and are computed on ``--resume``. The pool keeps its
    processes in a private attribute; without it (another Python), the pool's own shutdown is all there is.
    """
    processes = [process for process in list((getattr(pool, "_processes", None) or {}).values())
                 if process.is_alive()]
    for process in processes:
        process.terminate()
    for process in processes:
        if not _ended(process, WORKER_STOP_SECONDS):
            process.kill()
            _ended(process, WORKER_STOP_SECONDS)


def _ended(process, seconds: float) -> bool:
    """Wait until a process has ended and been reaped (``join`` can return a moment before: its pipe closes
    first); True if it did within ``seconds``."""
    deadline = time.monotonic() + seconds
    while process.exitcode is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


class TerminalProgress:
    """A ``progress`` callback drawing a one-line bar with an estimate of the time left (for a terminal)."""

    def __init__(self, stream, redraw_seconds: float = 0.1):
        self.stream = stream
        self.redraw_seconds = redraw_seconds
        self.started: float | None = None
        self.done_at_start = 0
        self.last_draw = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int, patient_id: str | None) -> None:
        now = time.monotonic()
        if self.started is None:  # patients kept from an earlier run do not count for the rate
            self.started, self.done_at_start = now, done
        if done < total and now - self.last_draw < self.redraw_seconds:
            return
        self.last_draw = now
        computed, elapsed = done - self.done_at_start, now - self.started
        text = f"{done}/{total} patients"
        if computed and done < total:
            text += f", about {_duration(elapsed / computed * (total - done))} left"
        if patient_id:
            text += f" (last: {patient_id})"
        import shutil

        columns = shutil.get_terminal_size((80, 20)).columns
        width = max(10, min(40, columns - len(text) - 4))
        filled = width if not total else int(width * done / total)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {text}"[:max(columns - 1, 20)]
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
