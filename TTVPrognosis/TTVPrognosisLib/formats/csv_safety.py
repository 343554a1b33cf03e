"""Spreadsheet formula injection: text cells that a spreadsheet would run as a formula are written inert.

Patient ids, manifest columns and error messages come from users' files; a cell such as
``=HYPERLINK("http://...")`` or ``@SUM(A1)`` in a results table opened in Excel or LibreOffice would be
evaluated. As OWASP recommends (CSV Injection), a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return gets a leading single quote. Numbers are never changed: ``-22.5``, ``+3`` or ``1e-5``
(and this tool's lists of numbers, ``-40.2; 10; 5``) stay as they are, so they still read as numbers.

The escape can be undone exactly (:func:`unescape_cell`): a cell that already starts with quotes followed by
a trigger gets one more quote, so reading the tool's own tables back (``--resume``) gives the original text.
It lives in ``formats`` so that every stage that writes a CSV file can use it.
"""

from __future__ import annotations

import re

# The characters a spreadsheet reads as the start of a formula (OWASP), and their full-width forms, which
# some East Asian spreadsheet versions read the same way.
FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
ESCAPE = "'"
_NUMBER = r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?"
NUMBER_OR_NUMBER_LIST = re.compile(rf"^\s*{_NUMBER}(?:\s*;\s*{_NUMBER})*\s*$")


def _starts_formula(text: str) -> bool:
    """True when a spreadsheet could take ``text`` (after any leading quotes and spaces) for a formula."""
    if text[:1] in FORMULA_STARTS:
        return True
    rest = text.lstrip(" \n")
    return bool(rest) and rest[0] in FORMULA_STARTS


def _needs_escape(text: str) -> bool:
    core = text.lstrip(ESCAPE)
    return bool(core) and _starts_formula(core) and not NUMBER_OR_NUMBER_LIST.match(core)


def escape_cell(text: str) -> str:
    """``text`` as a spreadsheet shows it without running it (numbers unchanged)."""
    return ESCAPE + text if _needs_escape(text) else text


def unescape_cell(text: str) -> str:
    """The text :func:`escape_cell` was given (inverse for every input)."""
    return text[1:] if text.startswith(ESCAPE) and _needs_escape(text) else text
