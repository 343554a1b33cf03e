"""Copies of the cohort tables that spreadsheets open right: ``<table stem>.excel.csv`` (``batch --excel``).

Excel reads a CSV without a byte-order mark in the computer's ANSI code page (accents come out garbled) and
splits it on the locale's list separator. The copy is UTF-8 with a byte-order mark and uses the manifest's
delimiter, on the view that a manifest saved by the user's spreadsheet has the separator that spreadsheet
expects. With ``;`` (locales whose decimal mark is a comma) numbers are written with a decimal comma. The
tables themselves stay plain comma-separated UTF-8 with decimal points (what programs and ``--resume`` read).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..formats.io import _atomic_write

EXCEL_SUFFIX = ".excel.csv"
DECIMAL_NUMBER = re.compile(r"^-?\d+\.\d+(e[-+]?\d+)?$", re.IGNORECASE)


def excel_path(table: str | os.PathLike) -> Path:
    """``results.csv`` -> ``results.excel.csv``."""
    path = Path(table)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(stem + EXCEL_SUFFIX)


def spreadsheet_cell(cell: str, decimal_comma: bool) -> str:
    return cell.replace(".", ",") if decimal_comma and DECIMAL_NUMBER.match(cell) else cell


def write_excel_copy(table: str | os.PathLike, columns: Sequence[str], rows: Sequence[Mapping[str, str]],
                     delimiter: str = ",") -> Path:
    """Write the spreadsheet copy of a table (UTF-8 with BOM, ``delimiter``; decimal comma with ``;``)."""
    decimal_comma = delimiter == ";"
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([spreadsheet_cell(row.get(column, ""), decimal_comma) for column in columns] for row in rows)
    text = buffer.getvalue()
    path = excel_path(table)
    _atomic_write(path, lambda temporary: _write_text(temporary, text, "utf-8-sig"))
    return path


def _write_text(path: Path, text: str, encoding: str) -> None:
    """Text exactly as given (no newline translation; ``Path.write_text(newline=)`` needs Python 3.10)."""
    with open(path, "w", encoding=encoding, newline="") as handle:
        handle.write(text)
