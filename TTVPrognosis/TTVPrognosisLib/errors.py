"""Errors meant for people: what is wrong, where, and what to do about it; and the value checks that raise them."""

from __future__ import annotations

import math
import numbers
from typing import Any


class InputError(ValueError):
    """Bad input a user can fix (missing file, wrong image type, mismatched geometry, bad value).

    The message is shown as is in the Slicer panel, on the command line and in batch result tables, so it
    names the file or value and says what to do.
    """


def non_negative_number(value: Any, name: str) -> float:
    """``value`` as a float, or an InputError naming ``name`` when it is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InputError(f"{name} must be a finite number, got {value!r}.")
    if value < 0:
        raise InputError(f"{name} cannot be negative, got {value!r}.")
    return float(value)


def whole_number(value: Any, name: str) -> int:
    """``value`` as an int, or an InputError when it is not a whole number (1.0 counts, True does not)."""
    whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise InputError(f"{name} must be a whole number, got {value!r}.")
    return int(value)


def os_error_message(error: OSError) -> str:
    """What the operating system refused, in words a user can act on: the path, the reason, what to do.

    Permission errors name the folder on the way that this user cannot enter (a file deep inside a folder
    without search permission reads as "Permission denied" on the file itself, which misleads).
    """
    import errno

    path = error.filename if isinstance(error.filename, str) else None
    where = f"'{path}'" if path else "a file"
    reason = error.strerror or str(error)
    if error.errno in (errno.EACCES, errno.EPERM):
        blocked = _unsearchable_folder(path) if path else None
        if blocked:
            return (f"Cannot reach {where}: the folder '{blocked}' on the way cannot be opened by you (no search "
                    f"permission). Ask its owner for access, or copy the files to a folder you can read.")
        return f"Permission denied for {where}. Check that you may read it (and write where output goes)."
    if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG):
        return (f"Could not write {where if path else 'the output'}: {reason} (the disk or your quota is full, or "
                f"the file is larger than allowed). Files written before are complete; free some space or choose "
                f"another place, then run again.")
    if error.errno == errno.EROFS:
        return f"Could not write {where}: the file system is read-only. Choose another place for the output."
    if error.errno == errno.ENAMETOOLONG:
        return f"The path {where} is too long for the file system; use a shorter path."
    if error.errno == errno.EIO:
        return (f"Input/output error on {where} (a failing disk or a lost network share). Check the storage, "
                f"then run again.")
    target = f" ({path})" if path else ""
    return f"The operating system refused an operation{target}: {reason}. Check the path and its permissions."


def _unsearchable_folder(path: str) -> str | None:
    """The first folder from the root down to ``path`` that this user cannot search (enter), if any."""
    import os
    from pathlib import Path

    folder = Path(os.path.abspath(path))
    for parent in reversed(folder.parents):
        if not os.access(parent, os.X_OK):
            return str(parent)
    return None
