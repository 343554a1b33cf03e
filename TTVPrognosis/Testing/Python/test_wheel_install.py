"""A normal install works: the wheel carries every subpackage, the survival model and its card.

The wheel is built from a copy of the sources (so the repository gets no ``build/`` folder), installed into a
fresh folder outside the repository, and the commands run from a temporary folder with Python's site
machinery off (``-S``): the editable install of this checkout is then invisible, and only the installed copy
(plus the virtual environment's third-party packages, by path) can be imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "TTVPrognosis/TTVPrognosisLib")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A folder holding the package installed from a freshly built wheel."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    for name in SOURCES:
        origin = REPOSITORY / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif origin.exists():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels),
                            str(source)], capture_output=True, text=True, cwd=work, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next(wheels.glob("ttvprognosis-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "TTVPrognosisLib/prognosis/models/ttv-os-ejca2024-rp-v1.json" in names
    assert "TTVPrognosisLib/prognosis/models/MODEL_CARD.md" in names
    assert "TTVPrognosisLib/cohort/runner.py" in names and "TTVPrognosisLib/formats/io.py" in names
    target = work / "installed"
    install = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                             capture_output=True, text=True, cwd=work, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    return target


def run_installed(installed: Path, cwd: Path, *arguments: str) -> subprocess.CompletedProcess:
    """``python -S -m TTVPrognosisLib ...`` seeing only the installed copy and the third-party packages."""
    third_party = sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    environment["PYTHONPATH"] = os.pathsep.join([str(installed), *dict.fromkeys(third_party)])
    return subprocess.run([sys.executable, "-S", "-m", "TTVPrognosisLib", *arguments], capture_output=True,
                          text=True, cwd=cwd, env=environment, timeout=300)


def test_installed_wheel_runs_predict_demo_and_compare(installed, tmp_path):
    where = subprocess.run([sys.executable, "-S", "-c", "import TTVPrognosisLib; print(TTVPrognosisLib.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(installed)})
    assert Path(where.stdout.strip()).resolve().is_relative_to(installed.resolve()), where.stdout + where.stderr

    predict = run_installed(installed, tmp_path, "predict", "--baseline-ttv-ml", "50", "--json")
    assert predict.returncode == 0, predict.stderr
    prediction = json.loads(predict.stdout)
    assert prediction["model_id"] == "ttv-os-ejca2024-rp-v1"
    assert all(0 < point["probability"] < 1 for point in prediction["overall_survival"])

    demo = run_installed(installed, tmp_path, "demo", "--output", "sample", "--json")
    assert demo.returncode == 0, demo.stderr
    shown = json.loads(demo.stdout)
    assert shown["prognosis"]["model_id"] == "ttv-os-ejca2024-rp-v1"

    files = shown["files"]
    compare = run_installed(installed, tmp_path, "compare", files["baseline_segmentation"],
                            files["followup_segmentation"], "--json")
    assert compare.returncode == 0, compare.stderr
    comparison = json.loads(compare.stdout)
    assert comparison["baseline"]["ttv_ml"] == pytest.approx(shown["baseline"]["ttv_ml"])
    assert comparison["prognosis"]["overall_survival"], comparison["prognosis"]
    assert not list(REPOSITORY.glob("build")), "the build must not write into the repository"
