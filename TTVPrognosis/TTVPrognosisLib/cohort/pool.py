"""Running patients on an executor: our own process pool (guarded workers, per-patient time limit) or any
``concurrent.futures.Executor`` (Dask, threads).

It is its own module because supervising workers is a job apart from what a run computes (:mod:`.runner`):
a few jobs per worker are kept in flight (quick to cancel, flat memory); a worker that dies (e.g. killed for
memory) is found out and only its patient is recorded as failed; a patient that runs longer than the time
limit is stopped (its worker killed and replaced) and recorded as failed, so no single patient can stall a
cohort; and workers end with the run, also when it is killed (:mod:`.worker_guard`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import multiprocessing
import os
import signal
import time
from collections.abc import Callable

from .patient import PatientOutcome, process_patient
from .tables import STATUS_FAILED
from .worker_guard import guard_worker, report_started

POLL_SECONDS = 0.1
WORKER_STOP_SECONDS = 2.0  # a worker asked to stop (after Ctrl+C) is killed if it has not ended by then


def default_workers() -> int:
    """One worker per available core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def executor_capacity(executor) -> int | None:
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


def prepare_worker(parent_pid: int | None = None, started_queue=None) -> None:
    """Set up a batch worker process: it ends with the run (``parent_pid``, :mod:`.worker_guard`), reports
    the jobs it starts on ``started_queue``, leaves Ctrl+C to the parent (which writes what is finished and
    stops the workers), and keeps freed memory for the next patient (:mod:`..allocator`)."""
    from ..allocator import reuse_freed_memory

    guard_worker(parent_pid, started_queue)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (the CLI's): stopping ends a worker
    reuse_freed_memory()


class _GuardedPool:
    """A process pool whose workers end with this process and report the jobs they start."""

    def __init__(self, workers: int):
        context = multiprocessing.get_context()
        self.started_queue = context.SimpleQueue()
        self.executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=prepare_worker,
            initargs=(os.getpid(), self.started_queue))

    def started(self) -> list[tuple[int, int]]:
        """(token, pid) of the jobs that started since the last call."""
        reports = []
        while not self.started_queue.empty():
            reports.append(self.started_queue.get())
        return reports

    def stop(self, wait: bool) -> None:
        if not wait:
            _stop_workers(self.executor)
        self.executor.shutdown(wait=wait, cancel_futures=True)


def _process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A guarded process pool (for callers that need only the executor)."""
    return _GuardedPool(workers).executor


def run_reported(token: int, job) -> PatientOutcome:
    """A job in a guarded pool: say it starts (for the time limit), then run it."""
    report_started(token)
    return process_patient(job)


def timed_out_outcome(patient_id: str, seconds: float) -> PatientOutcome:
    return PatientOutcome(patient_id, STATUS_FAILED, f"Stopped after the time limit of {seconds:g} s per patient "
                          f"(--patient-timeout): its files took too long to read or process (a very large or "
                          f"damaged file, or a path that never delivers data, such as a pipe or a hung network "
                          f"share). Check the files, or raise the limit; then run again with --resume "
                          f"--retry-failed.")


def run_on_executor(jobs: list, executor, workers: int | None, record: Callable,
                    should_cancel: Callable[[], bool] | None, patient_timeout: float | None = None) -> bool:
    """Run ``jobs`` ((entry, PatientJob) pairs), calling ``record(entry, outcome)`` as each ends; True if
    cancelled.

    If a worker process of our own pool dies, every job it shared the pool with fails with it; those jobs
    are run again one at a time in a new pool, so only the culprit is recorded as failed. A job running
    longer than ``patient_timeout`` seconds is recorded as failed; in our pool its worker is killed and the
    pool replaced (the other running jobs are run again), on a foreign executor it is cancelled (a task
    already running there may go on until it ends).
    """
    owned = executor is None
    pool = _GuardedPool(min(workers or default_workers(), len(jobs))) if owned else None
    if owned:
        executor = pool.executor
    elif not isinstance(executor, concurrent.futures.Executor) and hasattr(executor, "get_executor"):
        executor = executor.get_executor()  # a dask.distributed Client
    capacity = executor_capacity(executor) or workers
    limit = 2 * capacity if capacity else len(jobs)
    if patient_timeout and not owned:
        limit = capacity or 1  # a job's clock starts when it is submitted: only as many as run at once
    waiting = collections.deque((entry, job, False) for entry, job in jobs)
    suspects: collections.deque = collections.deque()  # (entry, job, True): run alone after a pool broke
    in_flight: dict[concurrent.futures.Future, tuple] = {}
    tokens: dict[int, concurrent.futures.Future] = {}
    running: dict[concurrent.futures.Future, tuple[int, float]] = {}  # future -> (worker pid or 0, start)
    numbers = itertools.count()
    cancelled = False
    interrupted = True

    def replace_pool(requeue_innocent: bool) -> None:
        nonlocal executor, pool
        for entry, job, alone in in_flight.values():
            if requeue_innocent:
                (suspects if alone else waiting).appendleft((entry, job, alone))
            else:
                suspects.append((entry, job, True))
        in_flight.clear()
        running.clear()
        tokens.clear()
        pool.stop(wait=False)
        pool = _GuardedPool(capacity or 1)
        executor = pool.executor

    def submit(queue: collections.deque) -> None:
        item = queue.popleft()
        try:
            if owned:
                token = next(numbers)
                future = executor.submit(run_reported, token, item[1])
                tokens[token] = future
            else:
                future = executor.submit(process_patient, item[1])
                running[future] = (0, time.monotonic())
            in_flight[future] = item
        except concurrent.futures.BrokenExecutor:
            if not owned:
                raise
            queue.appendleft(item)  # it never ran
            replace_pool(requeue_innocent=False)

    def stop_overdue() -> None:
        if owned:
            for token, pid in pool.started():
                future = tokens.pop(token, None)
                if future is not None and future in in_flight and not future.done():
                    running[future] = (pid, time.monotonic())
        if not patient_timeout:
            return
        now = time.monotonic()
        overdue = [future for future, (_, start) in running.items()
                   if now - start > patient_timeout and not future.done() and future in in_flight]
        for future in overdue:
            entry, job, _ = in_flight.pop(future)
            pid, _ = running.pop(future)
            if owned and pid:
                _kill(pid)
            else:
                future.cancel()
            record(entry, timed_out_outcome(job.patient_id, patient_timeout))
        if overdue and owned:
            replace_pool(requeue_innocent=True)  # the killed worker broke the pool; the others did nothing wrong

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
                        replace_pool(requeue_innocent=False)
                        continue
                    outcome = PatientOutcome(job.patient_id, STATUS_FAILED, f"The worker stopped while processing "
                                             f"this patient ({type(error).__name__}: {error}); it may have run out "
                                             f"of memory. Try it again with --resume --retry-failed and fewer "
                                             f"workers.")
                del in_flight[future]
                running.pop(future, None)
                record(entry, outcome)
            stop_overdue()
        interrupted = False
    finally:
        for future in in_flight:
            future.cancel()
        if owned:
            pool.stop(wait=not interrupted)
    return cancelled


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):  # it may have ended by itself meanwhile
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """End our pool's worker processes at once (after Ctrl+C, an error or a patient over its time limit).

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
