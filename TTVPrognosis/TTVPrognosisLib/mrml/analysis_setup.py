"""Cohort statistics from Slicer's Python console: install their packages only after the user agrees.

Slicer bundles numpy and scipy but not pandas, lifelines, statsmodels or matplotlib (lifelines 0.30 needs
Python 3.11+, so Slicer 5.10 or later). Nothing here runs at import time: ``ensure_analysis_packages`` asks
first, then installs with ``slicer.pydeps.pip_ensure`` (Slicer 5.11+; ``slicer.packaging`` in some builds)
or ``slicer.util.pip_install`` on older Slicer.

    from TTVPrognosisLib.mrml.analysis_setup import analyze_in_slicer
    document = analyze_in_slicer("/data/results_with_clinical.csv", "/data/analysis.toml", "/data/analysis")
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from ..errors import InputError

# (import name, pip requirement); versions as pinned for the command line (requirements.txt), floors here.
ANALYSIS_PACKAGES = (("pandas", "pandas>=1.5,<3"), ("lifelines", "lifelines>=0.27"),
                     ("statsmodels", "statsmodels>=0.13"), ("matplotlib", "matplotlib>=3.5"))


def missing_analysis_packages() -> list[str]:
    """Requirements whose module cannot be found (checked without importing them)."""
    return [requirement for module, requirement in ANALYSIS_PACKAGES if importlib.util.find_spec(module) is None]


def ensure_analysis_packages(ask: Callable[[str], bool] | None = None) -> bool:
    """True when the packages are available, installing them after ``ask`` (a Slicer dialog by default) agrees."""
    missing = missing_analysis_packages()
    if not missing:
        return True
    import slicer

    question = (f"The cohort analysis needs these Python packages, which Slicer does not include: "
                f"{', '.join(missing)}. Download and install them now (a few minutes, internet needed)?")
    agreed = ask(question) if ask is not None else slicer.util.confirmOkCancelDisplay(question)
    if not agreed:
        return False
    _install(slicer, missing)
    importlib.invalidate_caches()
    still_missing = missing_analysis_packages()
    if still_missing:
        raise InputError(f"Installing {', '.join(still_missing)} did not succeed; see the Python console output.")
    return True


def _install(slicer, requirements: list[str]) -> None:
    ensure = None
    for module_name in ("pydeps", "packaging"):
        module = getattr(slicer, module_name, None)
        if module is not None and hasattr(module, "pip_ensure"):
            ensure = module.pip_ensure
            break
    if ensure is not None:
        from packaging.requirements import Requirement

        ensure([Requirement(text) for text in requirements], requester="TTVPrognosis")
    else:
        slicer.util.pip_install(" ".join(requirements))


def analyze_in_slicer(table: str, config: str, output: str, overwrite: bool = False,
                      ask: Callable[[str], bool] | None = None) -> dict | None:
    """The ``analyze`` use case inside Slicer; None when the user declines installing the packages."""
    if not ensure_analysis_packages(ask):
        return None
    from ..analysis.run import analyze

    return analyze(table, config, output, overwrite=overwrite)
