"""Spreadsheet formula injection: what is escaped, what is not, and that reading back undoes it exactly."""

from __future__ import annotations

import pytest

from TTVPrognosisLib.formats.csv_safety import escape_cell, unescape_cell


@pytest.mark.parametrize("text", ["=1+1", '=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx",
                                  " =1+1", "\n=1", "-", "-abc", "＝1+1", "＠x", "'=1+1", "''+x"])
def test_formula_starts_are_escaped(text):
    assert escape_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["-22.5", "+3", "1e-5", "-1.5e+3", ".5", "-0,5", "-40.2; 10; 5", "", "abc",
                                  "'s-Hertogenbosch", "a=b", "P-001", "12 mL"])
def test_numbers_and_plain_text_are_unchanged(text):
    assert escape_cell(text) == text


@pytest.mark.parametrize("text", ["=1+1", "'=1+1", "''=1", "'", "''", "'abc", "-22.5", "'-22.5", "-x", "'-x", "@",
                                  "\t", "", "x"])
def test_unescape_inverts_escape(text):
    assert unescape_cell(escape_cell(text)) == text
