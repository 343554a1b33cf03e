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
