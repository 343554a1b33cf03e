"""One run per output table at a time: an exclusive lock file beside each table a run writes.

Two runs writing the same table would each rewrite it whole from their own rows, and one cohort would be
lost while both report success. A run therefore holds an operating-system lock on ``.RESULTS.csv.lock``
(``flock`` on POSIX, ``msvcrt.locking`` on Windows) from before it checks the outputs until it has written
them. The system releases such a lock when its process ends in any way, ``kill -9`` included, so a lock file
left behind by a dead run never blocks the next one; only a live run does, and the refusal names it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import InputError


def lock_path(output: Path) -> Path:
    """The lock file of a table (hidden, beside it, as the journal and the settings record are)."""
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def locked_outputs(outputs: Iterable[Path | None]) -> Iterator[None]:
    """Hold the lock of every given table for the ``with`` block; refuse at once if a live run holds one."""
    paths = sorted({Path(path).absolute() for path in outputs if path is not None})
    with contextlib.ExitStack() as stack:
        for path in paths:
            stack.enter_context(_locked(path))
        yield


@contextlib.contextmanager
def _locked(output: Path) -> Iterator[None]:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)  # a new folder for the tables: lock there too
    except OSError:
        yield  # no folder to lock in: the output checks that follow explain why
        return
    path = lock_path(output)
    descriptor = _acquire(path, output)
    try:
        yield
    finally:
        _release(path, descriptor)


def _acquire(path: Path, output: Path) -> int:
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise InputError(f"Cannot create the lock file '{path}' beside the output ({error.strerror or error}); "
                             f"choose a folder you can write to.") from error
        if not _try_lock(descriptor):
            holder = _holder_text(descriptor)
            os.close(descriptor)
            raise InputError(f"Another batch run{holder} is writing '{output}' right now; two runs writing one "
                             f"table would lose one cohort. Wait until it has finished (then add --resume to go "
                             f"on from its results), or give this run another --output.")
        if _same_file(path, descriptor):
            break
        os.close(descriptor)  # the file was removed by the run that held it before us: lock the new one
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    return descriptor


def _same_file(path: Path, descriptor: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


def _release(path: Path, descriptor: int) -> None:
    """Remove the file while holding the lock (a waiting run then locks a new file), then unlock."""
    with contextlib.suppress(OSError):
        path.unlink()
    _unlock(descriptor)
    os.close(descriptor)


def _holder_text(descriptor: int) -> str:
    """" (process 123 on host, since ...)" from what the holding run wrote into the lock file, if readable."""
    try:
        parts = os.pread(descriptor, 200, 0).decode("utf-8", "replace").split() if hasattr(os, "pread") else []
    except OSError:
        parts = []
    if len(parts) >= 4 and parts[0].isdigit():
        return f" (process {parts[0]} on {parts[1]}, since {parts[2]} {parts[3]})"
    return ""


if sys.platform == "win32":
    import msvcrt

    def _try_lock(descriptor: int) -> bool:
        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(descriptor: int) -> None:
        with contextlib.suppress(OSError):
            os.lseek(descriptor, 0, os.SEEK_SET)
            msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(descriptor: int) -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as error:  # a file system without locks: say so rather than run unprotected silently
            raise InputError(f"The output folder does not support file locks ({error.strerror or error}), so this "
                             f"run cannot make sure no other run writes the same table. Write to a local "
                             f"folder.") from error
        return True

    def _unlock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
