"""User errors end with exit 1 and a message, never "Internal error" (exit 3): folders the user cannot enter, a
full disk (files and stdout), a locale that cannot show the output, model files that cannot be models.

The command runs in a subprocess, because what matters is the process's environment: its user, its
encoding, its file size limit, where its stdout goes.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from TTVPrognosisLib.formats.demo_data import demo_time_point, write_demo_case
from TTVPrognosisLib.formats.io import write_segmentation
from TTVPrognosisLib.formats.segments import LabelVolume

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions, /dev/full and rlimits")
# Root enters every folder whatever its permissions; without these two capabilities it obeys them like any user.
WITHOUT_ROOT_ACCESS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def run_cli(*arguments: str, cwd: Path | None = None, prefix: Sequence[str] = (), **options
            ) -> subprocess.CompletedProcess:
    if "preexec_fn" in options:  # a file size limit would also cut the .pyc files Python caches: none written
        options.setdefault("env", {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return subprocess.run([*prefix, sys.executable, "-m", "TTVPrognosisLib", *arguments], capture_output=True,
                          text=True, timeout=120, cwd=cwd, **options)


SEVERAL_COMMANDS = """
import contextlib, io, json, sys
from TTVPrognosisLib.cli import main

results = []
for arguments in json.loads(sys.argv[1]):
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(arguments)
        except SystemExit as stop:
            code = stop.code
    results.append([code, errors.getvalue()])
print(json.dumps(results))
"""


def run_commands(commands: Sequence[Sequence[str]], cwd: Path | None = None, prefix: Sequence[str] = ()
                 ) -> list[subprocess.CompletedProcess]:
    """Several commands in one process (each as ``ttvprognosis`` runs it, with its own exit code and stderr), to
    pay for starting Python once."""
    completed = subprocess.run([*prefix, sys.executable, "-c", SEVERAL_COMMANDS, json.dumps(commands)],
                               capture_output=True, text=True, timeout=300, cwd=cwd)
    assert completed.returncode == 0, completed.stderr
    return [subprocess.CompletedProcess(arguments, code, "", stderr)
            for arguments, (code, stderr) in zip(commands, json.loads(completed.stdout))]


def assert_user_error(completed: subprocess.CompletedProcess, *words: str) -> None:
    assert completed.returncode == 1, (completed.returncode, completed.stderr)
    assert "Internal error" not in completed.stderr and "Traceback" not in completed.stderr, completed.stderr
    for word in words:
        assert word in completed.stderr, completed.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    return write_demo_case(tmp_path_factory.mktemp("demo"))


# --- folders the user cannot enter -------------------------------------------------------------------------

@pytest.fixture
def locked_folder(demo):
    """A readable folder holding ``locked/inner/`` (with a segmentation and a model) where ``locked`` cannot be
    entered by the user the commands run as; yields (root, command prefix)."""
    root = Path(tempfile.mkdtemp(prefix="ttv-locked-"))
    try:
        inner = root / "locked" / "inner"
        inner.mkdir(parents=True)
        shutil.copy(demo["baseline_segmentation"], inner / "baseline.seg.nrrd")
        (inner / "model.json").write_text("{}")
        os.chmod(root, 0o777)
        os.chmod(root / "locked", 0o000)
        prefix = []
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root, and setpriv (util-linux) is not there to drop root's file access")
            prefix = WITHOUT_ROOT_ACCESS
        yield root, prefix
    finally:
        os.chmod(root / "locked", 0o755)
        shutil.rmtree(root)


def test_files_behind_a_folder_without_search_permission(locked_folder, demo):
    root, prefix = locked_folder
    hidden = root / "locked" / "inner"
    cases = [
        ("measure", str(hidden / "baseline.seg.nrrd")),
        ("compare", str(hidden / "baseline.seg.nrrd"), str(demo["followup_segmentation"])),
        ("measure", str(demo["baseline_segmentation"]), "--image", str(hidden / "ct.nrrd")),
        ("predict", "--baseline-ttv-ml", "10", "--model", str(hidden / "model.json")),
        ("demo", "--output", str(hidden / "demo")),
        ("segment-lesion", str(demo["baseline_image"]), "--point", "60,20,10", "--output",
         str(hidden / "new.seg.nrrd")),
    ]
    for completed in run_commands(cases, cwd=root, prefix=prefix):
        assert_user_error(completed, str(root / "locked"))


# --- a full disk ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("arguments", [("predict", "--baseline-ttv-ml", "10"),
                                       ("predict", "--baseline-ttv-ml", "10", "--json")])
def test_stdout_on_a_full_disk(arguments):
    with open("/dev/full", "w") as full:
        completed = subprocess.run([sys.executable, "-m", "TTVPrognosisLib", *arguments], stdout=full,
                                   stderr=subprocess.PIPE, text=True, timeout=120)
    assert_user_error(completed, "No space left")


def file_size_limit(limit_bytes: int):
    """For ``preexec_fn``: writing past ``limit_bytes`` fails with EFBIG, as a write to a full disk fails."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def test_writes_that_fail_half_way_leave_nothing_half_written(demo, tmp_path):
    completed = run_cli("demo", "--output", str(tmp_path / "sample"), preexec_fn=file_size_limit(20_000))
    assert_user_error(completed, "Could not write")
    assert not [path for path in (tmp_path / "sample").iterdir() if path.suffix == ".nrrd"
                and path.stat().st_size >= 20_000]

    output = tmp_path / "review.seg.nrrd"
    _, truth = demo_time_point(followup=False)
    write_segmentation(LabelVolume([truth.layers[0]], truth.geometry, [truth.segments[0]], "liver"), output)
    before = output.read_bytes()
    completed = run_cli("segment-lesion", str(demo["baseline_image"]), "--point", "80,-20,-20", "--output",
                        str(output), preexec_fn=file_size_limit(len(before) // 2))
    assert_user_error(completed, "Could not write", "nothing was changed")
    assert output.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["review.seg.nrrd", "sample"]  # no temporaries

    manifest = tmp_path / "m.csv"
    manifest.write_text(f"patient_id,baseline_segmentation\nA,{demo['baseline_segmentation']}\n")
    completed = run_cli("batch", str(manifest), "--output", str(tmp_path / "r.csv"), "--workers", "1",
                        preexec_fn=file_size_limit(1500))
    assert_user_error(completed, "Could not write")


# --- a locale that cannot show the output ------------------------------------------------------------------

ASCII_ONLY = ({"PYTHONIOENCODING": "ascii"},
              {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""})


@pytest.mark.parametrize("environment", ASCII_ONLY, ids=["PYTHONIOENCODING=ascii", "LC_ALL=C"])
def test_non_ascii_names_on_an_ascii_terminal(demo, tmp_path, environment):
    folder = tmp_path / "Müller – Läsionen"
    folder.mkdir()
    segmentation = folder / "Basis ✓.seg.nrrd"
    shutil.copy(demo["baseline_segmentation"], segmentation)
    environment = {key: value for key, value in environment.items() if value}
    clean = {key: value for key, value in os.environ.items() if key not in ("PYTHONIOENCODING", "LC_ALL", "LANG")}
    measured = subprocess.run([sys.executable, "-m", "TTVPrognosisLib", "measure", str(segmentation)],
                              capture_output=True, timeout=120, env={**clean, **environment})
    assert measured.returncode == 0, measured.stderr
    assert b"Total tumour volume (TTV): 53.46 mL" in measured.stdout
    as_json = subprocess.run([sys.executable, "-m", "TTVPrognosisLib", "measure", str(segmentation), "--json"],
                             capture_output=True, timeout=120, env={**clean, **environment})
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["ttv_ml"] == pytest.approx(53.4625, abs=0.01)

    manifest = folder / "m.csv"
    manifest.write_text(f"patient_id,baseline_segmentation\nJosé,{segmentation.name}\nZoë,missing.seg.nrrd\n",
                        encoding="utf-8")
    batch = subprocess.run([sys.executable, "-m", "TTVPrognosisLib", "batch", str(manifest), "--output",
                            str(folder / "r.csv"), "--workers", "1"], capture_output=True, timeout=120,
                           env={**clean, **environment})
    assert batch.returncode == 1 and b"Internal error" not in batch.stderr, batch.stderr
    if "LC_ALL" in environment:  # file names in the manifest that an ASCII file system encoding cannot hold
        assert b"locale" in batch.stderr and b"UTF-8" in batch.stderr
    else:
        assert b"1 of 2 patients succeeded" in batch.stdout and b"Failed: Zo" in batch.stderr


# --- model files that cannot be models ---------------------------------------------------------------------

def test_model_files_that_cannot_be_models_are_refused_before_reading(tmp_path):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse: takes no disk space, but reading it would take 2 GB of memory
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    cases = ((huge, ("2147 MB", "--model")), (pipe, ("not a regular file",)), (tmp_path, ("not a regular file",)),
             (deep, ("nested too deeply",)))
    commands = [["predict", "--baseline-ttv-ml", "10", "--model", str(model)] for model, _ in cases]
    for completed, (_, words) in zip(run_commands(commands), cases):
        assert_user_error(completed, *words)
