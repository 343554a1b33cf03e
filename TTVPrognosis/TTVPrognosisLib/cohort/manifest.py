"""The cohort manifest: reading it and checking it before anything runs.

It is its own module because the manifest is read on its own too (the CLI and the Slicer module read it
before a run, to list its problems), and because what makes a manifest usable is a job apart from running it.

A manifest is a CSV file with one row per patient:

- ``patient_id`` (required, unique), ``baseline_segmentation`` (required), ``followup_segmentation``,
  ``baseline_image``, ``followup_image`` (optional): file paths; relative paths start from the manifest's
  folder. Column names are matched ignoring case, spaces and hyphens (``Patient ID`` is ``patient_id``).
- ``node_positive_primary``, ``ras_mutated``, ``extrahepatic_disease`` (yes/no/1/0; empty or ``unknown``:
  not known) and ``disease_free_interval_months``, ``cea_ng_ml`` (a non-negative number, ``.`` or ``,`` as
  the decimal mark; empty: not known), optional: the clinical inputs of the Fong and GAME scores. Any other
  value is a manifest problem naming the line and the column. They are passed through to the results too.
- ``dicom_series`` (optional): DICOM SeriesInstanceUIDs, separated by ``;``, for input folders holding several
  series (as ``--series``).
- ``exclude_segments``, ``liver_segments``, ``lesion_segments`` (optional): this patient's segment options,
  names (or for lesions wildcard patterns) separated by ``;``, added to the run's ``--exclude-segment``,
  ``--liver-segment`` and ``--lesion-segment``. A name a patient's files do not have is a warning in its row,
  not a failure (many patients share the options).
- any other column (clinical data) is passed through to the results unchanged.

The manifest is checked before anything runs. Structural problems (missing columns, duplicate or empty
patient ids, unnamed columns, rows with too many cells) stop the run with every problem listed at once.
Missing, unreadable or empty input files are listed up front as well; those patients are recorded as
failed and the rest run.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .patient import _template
from .tables import FIXED_COLUMNS, PATIENT_ID, clean_cell

BASELINE_SEGMENTATION = "baseline_segmentation"
FOLLOWUP_SEGMENTATION = "followup_segmentation"
BASELINE_IMAGE = "baseline_image"
FOLLOWUP_IMAGE = "followup_image"
PATH_COLUMNS = (BASELINE_SEGMENTATION, FOLLOWUP_SEGMENTATION, BASELINE_IMAGE, FOLLOWUP_IMAGE)
YES_NO_COLUMNS = ("node_positive_primary", "ras_mutated", "extrahepatic_disease")
NUMBER_COLUMNS = ("disease_free_interval_months", "cea_ng_ml")
CLINICAL_COLUMNS = ("node_positive_primary", "disease_free_interval_months", "cea_ng_ml", "ras_mutated",
                    "extrahepatic_disease")
DICOM_SERIES = "dicom_series"  # SeriesInstanceUIDs ("; "-separated) to read from folders holding several series
# Per-patient segment options: column -> the option it adds to (names separated by ";").
SEGMENT_COLUMNS = {"exclude_segments": "exclude", "liver_segments": "liver", "lesion_segments": "lesion"}
REQUIRED_COLUMNS = (PATIENT_ID, BASELINE_SEGMENTATION)
KNOWN_COLUMNS = (PATIENT_ID, *PATH_COLUMNS, *CLINICAL_COLUMNS, DICOM_SERIES, *SEGMENT_COLUMNS)
PATH_LABELS = {BASELINE_SEGMENTATION: "Baseline segmentation", FOLLOWUP_SEGMENTATION: "Follow-up segmentation",
               BASELINE_IMAGE: "Baseline image", FOLLOWUP_IMAGE: "Follow-up image"}
DELIMITERS = (",", ";", "\t")
# Results whose keys depend on the case (CT or liver-mask registration): reserved as a whole, since the
# template comparison (_template) shows only one kind.
FREE_FORM_RESULTS = ("registration_diagnostics_",)
SEPARATOR_LINE = re.compile(r"^\s*sep=(.)\s*$")  # Excel's optional first line naming the delimiter


class ManifestError(InputError):
    """The manifest cannot be used as it is; ``problems`` lists every reason (the message lists them too)."""

    def __init__(self, path: str | os.PathLike, problems: Sequence[str]):
        self.path = str(path)
        self.problems = list(problems)
        count = len(self.problems)
        listed = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"The manifest '{path}' has {count} problem{'s' if count != 1 else ''}; nothing was "
                         f"run:\n{listed}\nFix the manifest and run again.")

@dataclass
class PatientEntry:
    """One manifest row: cells as passed through, resolved input paths, and file problems found up front."""

    patient_id: str
    line: int
    cells: dict[str, str]
    paths: dict[str, str]
    problems: list[str] = field(default_factory=list)
    clinical: dict[str, bool | float | None] = field(default_factory=dict)

    def clinical_inputs(self):
        """The Fong/GAME inputs of this row (unknown when the column is absent or the cell empty)."""
        from ..prognosis.scores import ClinicalInputs

        return ClinicalInputs(node_positive_primary=self.clinical.get("node_positive_primary"),
                              disease_free_interval_months=self.clinical.get("disease_free_interval_months"),
                              cea_ng_ml=self.clinical.get("cea_ng_ml"), kras_mutated=self.clinical.get("ras_mutated"),
                              extrahepatic_disease=self.clinical.get("extrahepatic_disease"))

    def segment_option(self, option: str) -> tuple[str, ...]:
        """This patient's names for ``option`` ("exclude", "liver" or "lesion"), from its manifest cell."""
        column = next(column for column, name in SEGMENT_COLUMNS.items() if name == option)
        return split_names(self.cells.get(column, ""))


def split_names(cell: str) -> tuple[str, ...]:
    """Segment names of one manifest cell: separated by ";" (a name may hold commas and spaces)."""
    return tuple(name.strip() for name in cell.split(";") if name.strip())


@dataclass
class Manifest:
    """A checked manifest: its columns (known ones under their standard names) and patients in file order."""

    path: Path
    columns: list[str]
    entries: list[PatientEntry]
    warnings: list[str] = field(default_factory=list)
    delimiter: str = ","  # the manifest's own (``batch --excel`` writes its copies with it)

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
        entry = PatientEntry(patient_id, line, cells, {})
        problems += _read_clinical(entry)
        entries.append(entry)
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
    return Manifest(manifest_path, [column for column in columns if column], entries, warnings, delimiter)


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


YES_TEXTS, NO_TEXTS, UNKNOWN_TEXTS = ("yes", "1"), ("no", "0"), ("", "unknown")


def _read_clinical(entry: PatientEntry) -> list[str]:
    """Parse the row's clinical cells into ``entry.clinical``; a value that is not allowed is a problem."""
    problems = []
    for column in YES_NO_COLUMNS:
        text = entry.cells.get(column, "").strip().lower()
        if text in YES_TEXTS or text in NO_TEXTS:
            entry.clinical[column] = text in YES_TEXTS
        elif text in UNKNOWN_TEXTS:
            entry.clinical[column] = None
        else:
            problems.append(f"line {entry.line}, column '{column}': '{_shortened(entry.cells[column], 40)}' is not "
                            f"yes, no, 1, 0 or empty (unknown)")
    for column in NUMBER_COLUMNS:
        text = entry.cells.get(column, "").strip()
        if text.lower() in UNKNOWN_TEXTS:
            entry.clinical[column] = None
            continue
        value = _number(text)
        if value is not None and 0 <= value < float("inf"):
            entry.clinical[column] = value
        else:
            problems.append(f"line {entry.line}, column '{column}': '{_shortened(text, 40)}' is not a non-negative "
                            f"number (or empty for unknown)")
    return problems


def _number(text: str) -> float | None:
    """A number with ``.`` or ``,`` as its decimal mark (not both: ``1,234.5`` is refused as ambiguous)."""
    if "," in text and "." in text:
        return None
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


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
