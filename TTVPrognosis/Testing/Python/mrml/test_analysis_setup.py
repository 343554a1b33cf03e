"""Cohort statistics in Slicer: packages are installed only after the user agrees, and never at import time.

Slicer itself is not available here, so a stand-in ``slicer`` module records what would be called; these tests
check the decisions (ask, install with the right call, refuse quietly), not Slicer's installer.
"""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from TTVPrognosisLib.mrml import analysis_setup

HEAVY = ("pandas", "lifelines", "statsmodels", "matplotlib")


def test_importing_the_analysis_and_its_slicer_entry_loads_no_statistics_package():
    code = ("import sys\nimport TTVPrognosisLib.mrml.analysis_setup\n"
            "from TTVPrognosisLib.analysis import run, refit, table1, cox, plots, outputs, membership\n"
            f"print([name for name in {HEAVY!r} if name in sys.modules])")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


@pytest.fixture
def fake_slicer(monkeypatch):
    calls = []
    slicer = types.ModuleType("slicer")
    slicer.util = types.SimpleNamespace(pip_install=lambda text: calls.append(("pip_install", text)),
                                        confirmOkCancelDisplay=lambda text: calls.append(("asked", text)) or False)
    monkeypatch.setitem(sys.modules, "slicer", slicer)
    monkeypatch.setattr(analysis_setup, "missing_analysis_packages", lambda: ["lifelines>=0.27"])
    return slicer, calls


def test_nothing_is_installed_when_the_user_declines(fake_slicer):
    _slicer, calls = fake_slicer
    assert analysis_setup.ensure_analysis_packages() is False
    assert [kind for kind, _ in calls] == ["asked"]
    assert "lifelines" in calls[0][1]
    assert analysis_setup.analyze_in_slicer("t.csv", "a.toml", "out", ask=lambda text: False) is None


def test_pip_ensure_is_used_where_slicer_has_it(fake_slicer, monkeypatch):
    slicer, calls = fake_slicer
    slicer.pydeps = types.SimpleNamespace(pip_ensure=lambda requirements, requester: calls.append(
        ("pip_ensure", [str(r) for r in requirements], requester)))
    pytest.importorskip("packaging")
    with pytest.raises(analysis_setup.InputError, match="did not succeed"):  # the stand-in installs nothing
        analysis_setup.ensure_analysis_packages(ask=lambda text: True)
    assert calls == [("pip_ensure", ["lifelines>=0.27"], "TTVPrognosis")]


def test_older_slicer_falls_back_to_pip_install(fake_slicer, monkeypatch):
    _slicer, calls = fake_slicer
    answers = iter([["lifelines>=0.27"], []])
    monkeypatch.setattr(analysis_setup, "missing_analysis_packages", lambda: next(answers))
    assert analysis_setup.ensure_analysis_packages(ask=lambda text: True) is True
    assert calls == [("pip_install", "lifelines>=0.27")]


def test_installed_packages_are_not_asked_for(monkeypatch):
    monkeypatch.setattr(analysis_setup, "missing_analysis_packages", lambda: [])
    assert analysis_setup.ensure_analysis_packages(ask=lambda text: pytest.fail("asked")) is True
