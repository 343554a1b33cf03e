"""Batch worker processes that never outlive the run, and that say which patient they are working on.

A worker busy with a patient would otherwise go on (using memory and cores, holding files) after its batch
was killed, even with ``kill -9``, which no handler can catch. On Linux the kernel ends it with its parent
(``prctl(PR_SET_PDEATHSIG)``); everywhere, a watchdog thread ends it when its parent is gone (POSIX: the
parent process id changes; Windows: the parent's process handle is signalled).

For the per-patient time limit the run must know when each patient really started and in which process
(jobs wait in the pool's queues first): a worker reports ``(token, pid)`` on a queue before it starts a job.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 0.5

_started_queue = None


def guard_worker(parent_pid: int | None, started_queue=None) -> None:
    """Make this process end with the run's process ``parent_pid`` (call first thing in a worker).

    The worker's own parent is the run (fork, spawn) or a fork server that ends with the run (Python 3.14's
    default on Linux); the kernel request and the watchdog follow the own parent, the watchdog also the run.
    """
    global _started_queue
    _started_queue = started_queue
    if parent_pid is None:
        return
    own_parent = os.getppid()
    _die_with_parent_linux()
    if not _exists(parent_pid) or os.getppid() != own_parent:  # it ended before the request was in place
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid, own_parent), name="parent-watchdog",
                     daemon=True).start()


def report_started(token: int) -> None:
    """Tell the run that job ``token`` starts now in this process (no-op outside a guarded pool)."""
    if _started_queue is not None:
        _started_queue.put((token, os.getpid()))


def _die_with_parent_linux() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _exists(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # the watchdog waits on the process handle instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_parent(parent_pid: int, own_parent: int) -> None:
    if sys.platform == "win32":
        _wait_for_windows_process(parent_pid)
    else:
        while os.getppid() == own_parent and _exists(parent_pid):
            time.sleep(WATCH_SECONDS)
    os._exit(1)


def _wait_for_windows_process(pid: int) -> None:
    synchronize, infinite = 0x00100000, 0xFFFFFFFF
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(synchronize, False, pid)
    if not handle:
        return  # already gone
    kernel32.WaitForSingleObject(handle, infinite)
