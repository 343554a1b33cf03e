"""Batch mode: measure, compare and predict for every patient of a cohort manifest.

This module runs the patients on an executor. The manifest is read and checked in :mod:`.manifest`, one
patient's work is :mod:`.patient`, finished patients are kept safe (and resumed) by :mod:`.journal`, the
output files are checked in :mod:`.outputs`, :mod:`.progress` draws a bar in a terminal, and the tables are
:mod:`.tables`.

:func:`run_cohort` runs the jobs in-process (``workers=1``), in a local process pool (the default, one
process per core), or on any ``concurrent.futures.Executor`` (e.g. ``dask.distributed.Client(...)
.get_executor()``; a Dask ``Client`` itself is accepted too). The tables are rewritten after patients
finish (whole file to a temporary file, then renamed, so a killed run leaves complete tables), and a
``resume`` run skips the patients already in the results. A resumed table must equal an uninterrupted run
on the manifest as it is now: resuming with other options (recorded beside the table) or with patients
dropped from the manifest is refused, and damaged rows are computed again. Input files are only read.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, non_negative_number
from .companions import write_companions
from .journal import _check_resumed_settings, _IncrementalWriter, _record_settings, _resume, journal_path, run_settings
from .lock import locked_outputs
from .manifest import (
    BASELINE_IMAGE,
    BASELINE_SEGMENTATION,
    DICOM_SERIES,
    FOLLOWUP_IMAGE,
    FOLLOWUP_SEGMENTATION,
    Manifest,
    PatientEntry,
    read_manifest,
)
from .outputs import _remove_stale_temporaries, check_outputs
from .patient import PatientJob, PatientOutcome, _template, process_patient
from .pool import default_workers, run_on_executor
from .tables import ERROR, FIXED_COLUMNS, PATIENT_ID, STATUS, STATUS_FAILED, STATUS_OK, CohortTables, typed_rows

ProgressCallback = Callable[[int, int, "str | None"], None]


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


def run_cohort(manifest: str | os.PathLike | Manifest, output: str | os.PathLike,
               lesions_output: str | os.PathLike | None = None, *, patient_timeout: float | None = None,
               **options) -> CohortResult:
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
    - ``exclude``/``liver``/``lesion``: segment names applied to every patient, as in ``compare``, with each
      patient's own from the manifest (a name a patient lacks is a warning, not a failure); ``register=False``
      takes each patient's scans as aligned (no registration before lesion matching); ``registration_mode``
      ``"rigid"`` or ``"affine"``, as in ``compare --registration``.
    - Beside the tables: ``<stem>.codebook.csv`` for each and ``<results stem>.provenance.json``; with
      ``excel``, also ``<stem>.excel.csv`` copies for spreadsheets (:mod:`.companions`).
    - ``patient_timeout``: seconds one patient may take (None or 0: no limit); a patient over it is recorded
      as failed and its worker replaced (so a limit always runs patients in worker processes, also with
      ``workers=1``; on a foreign executor the job is given up, see :func:`.pool.run_on_executor`).
    - One run per output table at a time: a run holds a lock beside each table (:mod:`.lock`) and another
      run on the same table is refused with an :class:`InputError`.
    - ``reports_dir``: also write each computed patient's report there (``<patient id>.pdf``, as
      ``ttvprognosis report`` writes it); a report that cannot be made fails that patient.
    """
    if patient_timeout is not None:
        patient_timeout = non_negative_number(patient_timeout, "The time limit per patient (seconds)")
    outputs = [Path(output), None if lesions_output is None else Path(lesions_output)]
    with locked_outputs(outputs):
        return _run_cohort(manifest, output, lesions_output, patient_timeout=patient_timeout, **options)


def _run_cohort(manifest: str | os.PathLike | Manifest, output: str | os.PathLike,
                lesions_output: str | os.PathLike | None = None, *, workers: int | None = None,
                executor: concurrent.futures.Executor | None = None, resume: bool = False,
                retry_failed: bool = False, overwrite: bool = False, progress: ProgressCallback | None = None,
                should_cancel: Callable[[], bool] | None = None, read_segmentation: Callable | None = None,
                read_image: Callable | None = None, exclude: Sequence[str] = (), liver: Sequence[str] = (),
                register: bool = True, registration_mode: str = "rigid", excel: bool = False,
                patient_timeout: float | None = None, lesion: Sequence[str] = (),
                reports_dir: str | os.PathLike | None = None) -> CohortResult:
    """The run itself, with the outputs locked (:func:`run_cohort`)."""
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
    settings = run_settings(exclude, liver, register, registration_mode, lesion)
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
            entry.paths.get(BASELINE_IMAGE), entry.paths.get(FOLLOWUP_IMAGE),
            tuple(exclude) + entry.segment_option("exclude"), tuple(liver) + entry.segment_option("liver"),
            register, registration_mode, read_segmentation, read_image, clinical=entry.clinical_inputs(),
            series=tuple(uid.strip() for uid in entry.cells.get(DICOM_SERIES, "").split(";") if uid.strip()),
            lesion=tuple(lesion) + entry.segment_option("lesion"),
            report_dir=None if reports_dir is None else str(reports_dir))))
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
    checksums: dict[str, dict] = {}  # input path -> size and sha256, from the workers (provenance)

    def record(entry: PatientEntry, outcome: PatientOutcome) -> None:
        nonlocal done, computed
        row = {**outcome.row, **entry.cells, STATUS: outcome.status, ERROR: outcome.error}
        tables.add(entry.patient_id, row, outcome.lesions, outcome.containers)
        checksums.update(outcome.checksums)
        done += 1
        computed += 1
        writer.changed(entry.patient_id, row, outcome.lesions, outcome.containers)
        if progress is not None:
            progress(done, total, entry.patient_id)

    try:
        # A time limit needs a worker process to stop; without one, a single job or worker runs here.
        in_process = executor is None and (not jobs or (not patient_timeout and (
            len(jobs) <= 1 or (workers or default_workers()) == 1)))
        if in_process:
            for entry, job in jobs:
                if should_cancel is not None and should_cancel():
                    cancelled = True
                    break
                record(entry, process_patient(job))
        else:
            cancelled = run_on_executor(jobs, executor, workers, record, should_cancel, patient_timeout)
    finally:
        writer.write()
    listed = {entry.patient_id for entry in manifest.entries}
    rows = tables.rows()
    statuses = [row[STATUS] for row in rows if row[PATIENT_ID] in listed]
    result = CohortResult(output, lesions_output, tables.columns, rows, tables.lesion_columns, tables.lesion_rows(),
                          total, statuses.count(STATUS_OK), statuses.count(STATUS_FAILED), len(finished), computed,
                          cancelled, warnings, (*FIXED_COLUMNS, *manifest.columns))
    write_companions(result, manifest, settings, excel, checksums)
    return result
