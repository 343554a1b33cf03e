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

import collections
import concurrent.futures
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .journal import _check_resumed_settings, _IncrementalWriter, _record_settings, _resume, journal_path, run_settings
from .manifest import (
    BASELINE_IMAGE,
    BASELINE_SEGMENTATION,
    FOLLOWUP_IMAGE,
    FOLLOWUP_SEGMENTATION,
    Manifest,
    PatientEntry,
    read_manifest,
)
from .outputs import _remove_stale_temporaries, check_outputs
from .patient import PatientJob, PatientOutcome, _template, process_patient
from .tables import ERROR, FIXED_COLUMNS, PATIENT_ID, STATUS, STATUS_FAILED, STATUS_OK, CohortTables, typed_rows

POLL_SECONDS = 0.1
WORKER_STOP_SECONDS = 2.0  # a worker asked to stop (after Ctrl+C) is killed if it has not ended by then

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
               register: bool = True, registration_mode: str = "rigid",
               reports_dir: str | os.PathLike | None = None) -> CohortResult:
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
    - ``reports_dir``: also write each computed patient's report there (``<patient id>.pdf``, as
      ``ttvprognosis report`` writes it); a report that cannot be made fails that patient.
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
            register, registration_mode, read_segmentation, read_image,
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
