"""Batch mode (issue 6): manifest checks, per-patient errors, tables, resume after an interruption, executors."""

from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from TTVPrognosisLib.cli import main
from TTVPrognosisLib.cohort import tables as cohort_table
from TTVPrognosisLib.cohort.journal import read_journal
from TTVPrognosisLib.cohort.manifest import ManifestError, read_manifest
from TTVPrognosisLib.cohort.patient import process_patient
from TTVPrognosisLib.cohort.progress import TerminalProgress
from TTVPrognosisLib.cohort.runner import run_cohort
from TTVPrognosisLib.cohort.tables import (
    CohortTables,
    flatten_document,
    format_cell,
    merge_columns,
    read_csv,
)
from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import axis_aligned_geometry, ellipsoid_mask
from TTVPrognosisLib.formats.io import read_segmentation, write_image, write_segmentation
from TTVPrognosisLib.formats.segments import LabelVolume, Segment

GRID_KJI = (24, 48, 48)
SPACING_MM = (2.5, 2.5, 4.0)
VOXEL_ML = 2.5 * 2.5 * 4.0 / 1000.0
LIVER_RADII_MM = (45.0, 40.0, 35.0)
LESIONS = (((10.0, 5.0, 0.0), (12.0, 10.0, 10.0)), ((-20.0, -10.0, 8.0), (7.0, 7.0, 8.0)))


# --- synthetic cohorts -----------------------------------------------------------------------------------

def synthetic_time_point(scale: float) -> tuple[LabelVolume, int]:
    """Liver layer + lesion layer (two lesions scaled by ``scale``); returns the volume and its lesion voxels."""
    geometry = axis_aligned_geometry(GRID_KJI, SPACING_MM)
    liver = ellipsoid_mask(geometry, (0.0, 0.0, 0.0), LIVER_RADII_MM)
    lesions = np.zeros(geometry.shape_kji, dtype=np.uint8)
    segments = [Segment("Liver", "Liver", 0, 1)]
    for number, (centre, radii) in enumerate(LESIONS, start=1):
        mask = ellipsoid_mask(geometry, centre, np.asarray(radii) * scale) & liver
        lesions[mask] = number
        segments.append(Segment(f"Lesion_{number}", f"Lesion {number}", 1, number))
    volume = LabelVolume([liver.astype(np.uint8), lesions], geometry, segments, "synthetic")
    return volume, int(np.count_nonzero(lesions))


def write_patient(folder: Path, patient_id: str, index: int, followup: bool = True) -> dict:
    """Baseline (and follow-up, 20 % smaller) segmentations of one patient; sizes differ between patients."""
    folder.mkdir(parents=True, exist_ok=True)
    scale = 0.8 + 0.05 * (index % 6)
    paths = {}
    volume, voxels = synthetic_time_point(scale)
    paths["baseline_segmentation"] = folder / f"{patient_id}_baseline.seg.nrrd"
    write_segmentation(volume, paths["baseline_segmentation"])
    paths["baseline_voxels"] = voxels
    if followup:
        volume, voxels = synthetic_time_point(scale * 0.8)
        paths["followup_segmentation"] = folder / f"{patient_id}_followup.seg.nrrd"
        write_segmentation(volume, paths["followup_segmentation"])
        paths["followup_voxels"] = voxels
    return paths


def write_manifest(path: Path, rows: list[dict], columns: list[str] | None = None, delimiter: str = ",") -> Path:
    columns = columns or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(column, "") for column in columns])
    return path


def good_cohort(folder: Path, count: int) -> Path:
    """``count`` patients with both time points (relative paths) and two clinical columns."""
    rows = []
    for index in range(count):
        patient_id = f"P{index + 1:03d}"
        paths = write_patient(folder / "data", patient_id, index)
        rows.append({"patient_id": patient_id,
                     "baseline_segmentation": f"data/{paths['baseline_segmentation'].name}",
                     "followup_segmentation": f"data/{paths['followup_segmentation'].name}",
                     "age": str(50 + index), "os_months": "" if index % 3 == 0 else f"{12.5 + index}"})
    return write_manifest(folder / "manifest.csv", rows)


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    return {row["patient_id"]: row for row in read_csv(path)[1]}


def fingerprint(folder: Path) -> dict[str, tuple]:
    return {str(path): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def mixed_cohort(tmp_path_factory) -> dict:
    """Good patients (one without follow-up, one as a NIfTI label image with its CT), a corrupt file, a
    missing file, and an empty baseline segmentation."""
    folder = tmp_path_factory.mktemp("mixed")
    data = folder / "data"
    rows, expected = [], {}
    for index, patient_id in enumerate(("GOOD1", "GOOD2")):
        paths = write_patient(data, patient_id, index)
        rows.append({"patient_id": patient_id, "baseline_segmentation": f"data/{patient_id}_baseline.seg.nrrd",
                     "followup_segmentation": f"data/{patient_id}_followup.seg.nrrd", "age": "61",
                     "sex": "F", "os_months": "NaN"})
        expected[patient_id] = paths
    paths = write_patient(data, "BASEONLY", 3, followup=False)
    rows.append({"patient_id": "BASEONLY", "baseline_segmentation": str(paths["baseline_segmentation"]),
                 "age": "70", "sex": "M", "os_months": "31.5"})
    expected["BASEONLY"] = paths
    # label image (each label a segment) with its CT header checked
    volume, voxels = synthetic_time_point(1.0)
    write_image(volume.layers[1], volume.geometry, data / "NIFTI_baseline.nii.gz")
    write_image(np.full(volume.geometry.shape_kji, 40, dtype=np.int16), volume.geometry, data / "NIFTI_ct.nrrd")
    rows.append({"patient_id": "NIFTI", "baseline_segmentation": "data/NIFTI_baseline.nii.gz",
                 "baseline_image": "data/NIFTI_ct.nrrd", "age": "55", "sex": "F", "os_months": "N/A"})
    expected["NIFTI"] = {"baseline_voxels": voxels}
    # corrupt: a truncated segmentation
    good = (data / "GOOD1_baseline.seg.nrrd").read_bytes()
    (data / "CORRUPT_baseline.seg.nrrd").write_bytes(good[: len(good) // 2])
    rows.append({"patient_id": "CORRUPT", "baseline_segmentation": "data/CORRUPT_baseline.seg.nrrd",
                 "followup_segmentation": "data/GOOD1_followup.seg.nrrd", "age": "48"})
    rows.append({"patient_id": "MISSING", "baseline_segmentation": "data/does_not_exist.seg.nrrd", "age": "66"})
    # empty: a segmentation whose lesion segments hold no voxel
    empty, _ = synthetic_time_point(1.0)
    empty.layers[1][:] = 0
    write_segmentation(empty, data / "EMPTY_baseline.seg.nrrd")
    rows.append({"patient_id": "EMPTY", "baseline_segmentation": "data/EMPTY_baseline.seg.nrrd",
                 "followup_segmentation": "data/GOOD2_followup.seg.nrrd", "age": "59"})
    columns = ["patient_id", "baseline_segmentation", "followup_segmentation", "baseline_image", "age", "sex",
               "os_months"]
    manifest = write_manifest(folder / "cohort.csv", rows, columns)
    before = fingerprint(folder)
    results, lesions = folder / "out" / "results.csv", folder / "out" / "lesions.csv"
    code = main(["batch", str(manifest), "--output", str(results), "--lesions-output", str(lesions),
                 "--workers", "2"])
    return {"folder": folder, "manifest": manifest, "results": results, "lesions": lesions, "code": code,
            "expected": expected, "before": before,
            "after": {path: value for path, value in fingerprint(folder).items() if "/out/" not in path}}


# --- the acceptance cohort -------------------------------------------------------------------------------

def test_mixed_cohort_good_rows_right_bad_rows_explained(mixed_cohort):
    assert mixed_cohort["code"] == 1  # some patients failed
    rows = read_rows(mixed_cohort["results"])
    assert list(rows) == ["GOOD1", "GOOD2", "BASEONLY", "NIFTI", "CORRUPT", "MISSING", "EMPTY"]  # manifest order
    for patient_id in ("GOOD1", "GOOD2", "BASEONLY", "NIFTI"):
        row, expected = rows[patient_id], mixed_cohort["expected"][patient_id]
        assert row["status"] == "ok" and row["error"] == ""
        assert float(row["baseline_ttv_ml"]) == pytest.approx(expected["baseline_voxels"] * VOXEL_ML, rel=1e-6)
        assert 0.0 < float(row["prognosis_overall_survival_60m"]) < float(row["prognosis_overall_survival_24m"]) < 1
        assert (float(row["prognosis_overall_survival_36m_ci95_low"]) < float(row["prognosis_overall_survival_36m"])
                < float(row["prognosis_overall_survival_36m_ci95_high"]))
    for patient_id in ("GOOD1", "GOOD2"):
        row, expected = rows[patient_id], mixed_cohort["expected"][patient_id]
        assert float(row["followup_ttv_ml"]) == pytest.approx(expected["followup_voxels"] * VOXEL_ML, rel=1e-6)
        assert row["recist_response"] in ("PR", "SD") and row["tbs_baseline"]
        assert row["registration_status"] == "registered"
    assert rows["BASEONLY"]["followup_ttv_ml"] == "" and rows["BASEONLY"]["absolute_change_ml"] == ""
    assert rows["NIFTI"]["baseline_lesion_count"] == "2"

    errors = {patient_id: rows[patient_id]["error"] for patient_id in ("CORRUPT", "MISSING", "EMPTY")}
    assert all(rows[patient_id]["status"] == "failed" for patient_id in errors)
    assert errors["CORRUPT"].startswith("Baseline: Could not read") and "CORRUPT_baseline.seg.nrrd" in errors["CORRUPT"]
    assert "not found" in errors["MISSING"] and "does_not_exist.seg.nrrd" in errors["MISSING"]
    assert "manifest's folder" in errors["MISSING"]
    assert "EMPTY_baseline.seg.nrrd" in errors["EMPTY"] and "TTV is 0 mL" in errors["EMPTY"]
    assert all(rows[patient_id]["baseline_ttv_ml"] == "" for patient_id in errors)


def test_mixed_cohort_passes_clinical_columns_through(mixed_cohort):
    header, _ = read_csv(mixed_cohort["results"])
    assert header[:10] == ["patient_id", "status", "error", "baseline_segmentation", "followup_segmentation",
                           "baseline_image", "age", "sex", "os_months", "baseline_ttv_ml"]
    rows = read_rows(mixed_cohort["results"])
    assert [rows[p]["os_months"] for p in ("GOOD1", "BASEONLY", "NIFTI")] == ["", "31.5", ""]  # NaN, N/A -> empty
    assert rows["GOOD1"]["baseline_segmentation"] == "data/GOOD1_baseline.seg.nrrd"  # as written in the manifest
    assert rows["MISSING"]["age"] == "66"


def test_mixed_cohort_rows_equal_the_compare_command(mixed_cohort, capsys):
    """A batch row holds exactly what ``compare --json`` says, flattened (new document keys included)."""
    data = mixed_cohort["folder"] / "data"
    capsys.readouterr()
    assert main(["compare", str(data / "GOOD1_baseline.seg.nrrd"), str(data / "GOOD1_followup.seg.nrrd"),
                 "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    flat = flatten_document(document, "GOOD1")
    row = read_rows(mixed_cohort["results"])["GOOD1"]
    differing = {key: (value, row.get(key)) for key, value in flat.row.items() if row.get(key) != value}
    assert differing == {}
    assert len(flat.row) > 60


def test_both_cts_are_used_for_registration_as_in_compare(tmp_path, capsys):
    from TTVPrognosisLib.formats.demo_data import synthetic_ct

    paths = write_patient(tmp_path, "CT", 1)
    for name, scale in (("baseline", 1.0), ("followup", 0.8)):
        volume, _ = synthetic_time_point(scale)
        ct = synthetic_ct(volume.geometry, volume.layers[0] > 0, [volume.layers[1] > 0], seed=7)
        write_image(ct, volume.geometry, tmp_path / f"CT_{name}_ct.nrrd")
    manifest = write_manifest(tmp_path / "m.csv", [{
        "patient_id": "CT", "baseline_segmentation": paths["baseline_segmentation"].name,
        "followup_segmentation": paths["followup_segmentation"].name, "baseline_image": "CT_baseline_ct.nrrd",
        "followup_image": "CT_followup_ct.nrrd"}])
    row = run_cohort(manifest, tmp_path / "r.csv", workers=1).rows[0]
    assert row["status"] == "ok" and row["registration_method"] == "CT"
    capsys.readouterr()
    assert main(["compare", str(paths["baseline_segmentation"]), str(paths["followup_segmentation"]),
                 "--baseline-image", str(tmp_path / "CT_baseline_ct.nrrd"),
                 "--followup-image", str(tmp_path / "CT_followup_ct.nrrd"), "--json"]) == 0
    flat = flatten_document(json.loads(capsys.readouterr().out), "CT")
    # CT registration (ITK, multi-threaded) differs between any two runs in the last digits
    assert {key: value for key, value in flat.row.items() if not same_cell(row.get(key), value)} == {}


def same_cell(first: str | None, second: str) -> bool:
    """Equal text, or lists of numbers equal to 1e-9 relative."""
    if first == second:
        return True
    try:
        return np.allclose([float(v) for v in first.split("; ")], [float(v) for v in second.split("; ")],
                           rtol=1e-9, atol=1e-12)
    except (AttributeError, ValueError):
        return False


def test_mixed_cohort_lesion_table(mixed_cohort):
    header, lesions = read_csv(mixed_cohort["lesions"])
    assert header[:4] == ["patient_id", "time_point", "lesion_id", "voxel_count"]
    good1 = [lesion for lesion in lesions if lesion["patient_id"] == "GOOD1"]
    assert [(lesion["time_point"], lesion["lesion_id"]) for lesion in good1] == [
        ("baseline", "1"), ("baseline", "2"), ("followup", "1"), ("followup", "2")]
    expected = mixed_cohort["expected"]["GOOD1"]
    assert sum(int(lesion["voxel_count"]) for lesion in good1 if lesion["time_point"] == "baseline") == \
        expected["baseline_voxels"]
    centroid = [float(good1[0][f"centroid_{axis}_mm"]) for axis in "ras"]  # three columns, not one "R; A; S"
    assert len(centroid) == 3 and "centroid_ras" not in good1[0]
    assert {lesion["patient_id"] for lesion in lesions} == {"GOOD1", "GOOD2", "BASEONLY", "NIFTI"}


def test_mixed_cohort_inputs_untouched_and_no_temporary_files_left(mixed_cohort):
    assert mixed_cohort["after"] == mixed_cohort["before"]
    assert sorted(path.name for path in (mixed_cohort["folder"] / "out").iterdir()) == [
        ".results.csv.settings.json", "lesions.codebook.csv", "lesions.csv", "results.codebook.csv", "results.csv",
        "results.provenance.json"]  # the tables, their codebooks and provenance, and the options they used


def test_failed_patients_are_listed_up_front_and_on_stderr(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "m.csv", [{"patient_id": "A", "baseline_segmentation": "nope.seg.nrrd"}])
    assert main(["batch", str(manifest), "--output", str(tmp_path / "r.csv")]) == 1
    captured = capsys.readouterr()
    assert "1 input problem(s) found" in captured.err and "line 2, patient 'A'" in captured.err
    assert "0 of 1 patients succeeded, 1 failed." in captured.out


# --- the manifest ----------------------------------------------------------------------------------------

def test_structural_problems_are_all_listed_and_nothing_runs(tmp_path):
    manifest = tmp_path / "bad.csv"
    manifest.write_text("patient_id,baseline_segmentaton,,status\nA,a.nrrd,,1\nA,b.nrrd,,2\n,c.nrrd,,3\n"
                        "B,d.nrrd,x,4,extra\n")
    with pytest.raises(ManifestError) as caught:
        run_cohort(manifest, tmp_path / "out.csv")
    problems = caught.value.problems
    text = str(caught.value)
    assert len(problems) == 6, problems
    for needle in ("required column 'baseline_segmentation' is missing", "'baseline_segmentaton' meant to be",
                   "column 3 has no name", "'status' would clash", "line 4: patient_id is empty",
                   "'A' appears 2 times (lines 2, 3)", "line 5 has 5 cells but the header has 4"):
        assert needle in text
    assert not (tmp_path / "out.csv").exists()


def test_manifest_dialects_relative_paths_and_missing_values(tmp_path, monkeypatch):
    folder = tmp_path / "study"
    paths = write_patient(folder / "segs", "X1", 0, followup=False)
    text = ("\ufeffPatient ID;Baseline-Segmentation;Follow-up segmentation;cea\n"
            "X1;segs/X1_baseline.seg.nrrd;nan;12,5\n")
    (folder / "m.csv").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # relative paths must start from the manifest's folder, not from here
    manifest = read_manifest(folder / "m.csv")
    assert manifest.columns == ["patient_id", "baseline_segmentation", "followup_segmentation", "cea"]
    entry = manifest.entries[0]
    assert entry.paths == {"baseline_segmentation": str(paths["baseline_segmentation"].resolve())}
    assert entry.cells["followup_segmentation"] == "" and entry.cells["cea"] == "12,5" and not entry.problems
    result = run_cohort(manifest, tmp_path / "r.csv", workers=1)
    assert result.ok and result.rows[0]["cea"] == "12,5"


def test_manifest_not_utf8_and_empty_and_missing(tmp_path):
    (tmp_path / "latin.csv").write_bytes("patient_id,baseline_segmentation,name\nA,a.nrrd,Müller\n".encode("cp1252"))
    manifest = read_manifest(tmp_path / "latin.csv")
    assert manifest.entries[0].cells["name"] == "Müller" and "not UTF-8" in manifest.warnings[0]
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ManifestError, match="the file is empty"):
        read_manifest(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("patient_id,baseline_segmentation\n")
    with pytest.raises(ManifestError, match="no patients"):
        read_manifest(tmp_path / "header.csv")
    with pytest.raises(InputError, match="Manifest not found"):
        read_manifest(tmp_path / "nothing.csv")


def test_outputs_must_not_be_inputs(tmp_path):
    paths = write_patient(tmp_path, "A", 0, followup=False)
    manifest = write_manifest(tmp_path / "m.csv", [{"patient_id": "A",
                                                    "baseline_segmentation": paths["baseline_segmentation"].name}])
    with pytest.raises(InputError, match="also an output file"):
        run_cohort(manifest, paths["baseline_segmentation"], overwrite=True)
    with pytest.raises(InputError, match="is the manifest"):
        run_cohort(manifest, manifest, overwrite=True)
    with pytest.raises(ManifestError, match="manifest itself is named as an output"):  # checked there too
        read_manifest(manifest, outputs=[manifest])
    assert read_segmentation(paths["baseline_segmentation"]).layers[1].any()


def test_image_without_segmentation_is_a_warning(tmp_path):
    paths = write_patient(tmp_path, "A", 0, followup=False)
    manifest = write_manifest(tmp_path / "m.csv", [{"patient_id": "A", "baseline_segmentation":
                                                    paths["baseline_segmentation"].name,
                                                    "followup_image": "ct.nrrd"}])
    manifest = read_manifest(manifest)
    assert not manifest.entries[0].problems
    assert "followup_image is given but followup_segmentation is empty" in manifest.warnings[0]


# --- no lost work ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cohort8(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("cohort8")
    manifest = good_cohort(folder, 8)
    reference = folder / "reference.csv"
    result = run_cohort(manifest, reference, folder / "reference_lesions.csv", workers=1)
    assert result.ok and result.computed == 8
    return {"folder": folder, "manifest": manifest, "reference": reference,
            "reference_lesions": folder / "reference_lesions.csv"}


class CountingReader:
    """Reads segmentations and remembers which (in-process runs only)."""

    def __init__(self):
        self.paths: list[str] = []

    def __call__(self, path):
        self.paths.append(str(path))
        return read_segmentation(path)


def test_cancel_half_way_then_resume_equals_uninterrupted(cohort8, tmp_path):
    output, lesions = tmp_path / "results.csv", tmp_path / "lesions.csv"
    seen = []
    first = run_cohort(cohort8["manifest"], output, lesions, workers=1,
                       progress=lambda done, total, patient: seen.append((done, total, patient)),
                       should_cancel=lambda: len(seen) > 3)
    assert first.cancelled and not first.complete and not first.ok
    assert seen == [(0, 8, None), (1, 8, "P001"), (2, 8, "P002"), (3, 8, "P003")]
    assert [row["patient_id"] for row in read_csv(output)[1]] == ["P001", "P002", "P003"]

    reader = CountingReader()
    second = run_cohort(cohort8["manifest"], output, lesions, workers=1, resume=True, read_segmentation=reader)
    assert second.ok and second.resumed == 3 and second.computed == 5
    assert sorted({Path(path).name.split("_")[0] for path in reader.paths}) == ["P004", "P005", "P006", "P007",
                                                                                "P008"]
    assert len(reader.paths) == 10  # baseline + follow-up of the 5 remaining patients, nothing else
    assert output.read_bytes() == cohort8["reference"].read_bytes()
    assert lesions.read_bytes() == cohort8["reference_lesions"].read_bytes()

    third = run_cohort(cohort8["manifest"], output, lesions, workers=1, resume=True, read_segmentation=reader)
    assert third.ok and third.computed == 0 and len(reader.paths) == 10
    assert output.read_bytes() == cohort8["reference"].read_bytes()


KILLED_RUN = textwrap.dedent("""
    import sys, time
    from TTVPrognosisLib.cohort.runner import run_cohort
    from TTVPrognosisLib.formats.io import read_segmentation

    calls = []

    def slow_reader(path):
        calls.append(path)
        if len(calls) > 6:  # patient 4 never finishes: the test kills the run here, whatever the machine's load
            time.sleep(600)
        return read_segmentation(path)

    run_cohort(sys.argv[1], sys.argv[2], sys.argv[3], workers=1, read_segmentation=slow_reader)
""")


def finished_patients(output: Path) -> list[str]:
    in_table = [row["patient_id"] for row in read_csv(output)[1]] if output.exists() else []
    return sorted(set(in_table) | {record["patient_id"] for record in read_journal(output)})


def test_killed_process_leaves_complete_tables_and_resume_finishes_them(cohort8, tmp_path):
    output, lesions = tmp_path / "results.csv", tmp_path / "lesions.csv"
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    process = subprocess.Popen([sys.executable, str(script), str(cohort8["manifest"]), str(output), str(lesions)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if len(finished_patients(output)) >= 3:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.2)  # let a write that may be under way finish or not: either way the table must be whole
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert all(row["status"] == "ok" for row in read_csv(output)[1])  # a complete table, never a torn one
    finished = finished_patients(output)  # in the table, or logged in the journal since its last write
    assert finished == ["P001", "P002", "P003"]

    reader = CountingReader()
    result = run_cohort(cohort8["manifest"], output, lesions, workers=1, resume=True, read_segmentation=reader)
    assert result.ok and result.resumed == len(finished) and result.computed == 8 - len(finished)
    assert not any(Path(path).name.split("_")[0] in finished for path in reader.paths)
    assert output.read_bytes() == cohort8["reference"].read_bytes()
    assert lesions.read_bytes() == cohort8["reference_lesions"].read_bytes()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == [  # no temporaries, journal
        ".results.csv.settings.json"]


def test_refuses_to_overwrite_unless_told(cohort8, tmp_path, capsys):
    output = tmp_path / "results.csv"
    output.write_text("my precious table\n")
    with pytest.raises(InputError, match="already exists"):
        run_cohort(cohort8["manifest"], output, workers=1)
    assert main(["batch", str(cohort8["manifest"]), "--output", str(output)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert output.read_text() == "my precious table\n"
    with pytest.raises(InputError, match="not a results table"):
        run_cohort(cohort8["manifest"], output, workers=1, resume=True)
    with pytest.raises(SystemExit):  # --resume and --overwrite together is a wrong command line
        main(["batch", str(cohort8["manifest"]), "--output", str(output), "--resume", "--overwrite"])
    result = run_cohort(cohort8["manifest"], output, workers=1, overwrite=True)
    assert result.ok and output.read_bytes() == cohort8["reference"].read_bytes()


def test_resume_keeps_failures_unless_retried_and_recomputes_changed_paths(tmp_path):
    paths = [write_patient(tmp_path, name, index) for index, name in enumerate(("A", "B"))]
    rows = [{"patient_id": "A", "baseline_segmentation": paths[0]["baseline_segmentation"].name,
             "followup_segmentation": paths[0]["followup_segmentation"].name},
            {"patient_id": "B", "baseline_segmentation": "later.seg.nrrd", "group": "x"}]
    manifest = write_manifest(tmp_path / "m.csv", rows, ["patient_id", "baseline_segmentation",
                                                          "followup_segmentation", "group"])
    output = tmp_path / "r.csv"
    assert run_cohort(manifest, output, workers=1).failed == 1
    paths[1]["baseline_segmentation"].rename(tmp_path / "later.seg.nrrd")  # the user fixes the missing file
    reader = CountingReader()
    kept = run_cohort(manifest, output, workers=1, resume=True, read_segmentation=reader)
    assert kept.failed == 1 and kept.computed == 0 and reader.paths == []
    retried = run_cohort(manifest, output, workers=1, resume=True, retry_failed=True, read_segmentation=reader)
    assert retried.ok and retried.computed == 1 and [Path(p).name for p in reader.paths] == ["later.seg.nrrd"]
    # the manifest now points patient A to other files, and a clinical column was added: A is computed again
    rows[0]["followup_segmentation"] = ""
    rows[0]["new_column"] = "7"
    write_manifest(manifest, rows, ["patient_id", "baseline_segmentation", "followup_segmentation", "group",
                                    "new_column"])
    again = run_cohort(manifest, output, workers=1, resume=True, read_segmentation=reader)
    assert again.ok and again.computed == 1 and again.resumed == 1
    table = read_rows(output)
    assert table["A"]["followup_ttv_ml"] == "" and table["A"]["new_column"] == "7"
    assert table["B"]["group"] == "x" and table["B"]["new_column"] == ""
    assert read_csv(output)[0][:8] == ["patient_id", "status", "error", "baseline_segmentation",
                                       "followup_segmentation", "group", "new_column", "baseline_ttv_ml"]


# --- executors, callbacks, crashes -----------------------------------------------------------------------

def test_any_executor_gives_the_same_table(cohort8, tmp_path):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        result = run_cohort(cohort8["manifest"], tmp_path / "r.csv", executor=executor)
    assert result.ok and (tmp_path / "r.csv").read_bytes() == cohort8["reference"].read_bytes()


def test_cancel_with_a_pool_keeps_finished_work(cohort8, tmp_path):
    done = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        result = run_cohort(cohort8["manifest"], tmp_path / "r.csv", executor=executor,
                            progress=lambda d, t, p: done.append(p), should_cancel=lambda: len(done) > 2)
    assert result.cancelled and 2 <= result.computed < 8
    assert len(read_csv(tmp_path / "r.csv")[1]) == result.computed


def crash_on_patient_b(path):
    """Reader that kills its worker process for patient B (as the kernel does when memory runs out)."""
    if Path(path).name.startswith("B_"):
        os._exit(9)
    return read_segmentation(path)


def test_a_dying_worker_fails_only_its_patient(tmp_path):
    rows = []
    for index, name in enumerate("ABCDE"):
        paths = write_patient(tmp_path, name, index, followup=False)
        rows.append({"patient_id": name, "baseline_segmentation": paths["baseline_segmentation"].name})
    manifest = write_manifest(tmp_path / "m.csv", rows)
    result = run_cohort(manifest, tmp_path / "r.csv", workers=2, read_segmentation=crash_on_patient_b,
                        register=False)
    statuses = {row["patient_id"]: row["status"] for row in result.rows}
    assert statuses == {"A": "ok", "B": "failed", "C": "ok", "D": "ok", "E": "ok"}
    assert "worker stopped" in dict(result.failures)["B"]


def test_result_rows_typed_for_slicer_tables(cohort8):
    result = run_cohort(cohort8["manifest"], cohort8["folder"] / "typed.csv", workers=1)
    rows = result.typed_rows()
    column = result.columns.index
    first = rows[0]
    assert first[column("patient_id")] == "P001" and first[column("age")] == "50"  # manifest columns stay text
    assert isinstance(first[column("baseline_ttv_ml")], float) and first[column("recist_response")] in ("PR", "SD")
    assert first[column("os_months")] == "" and rows[1][column("os_months")] == "13.5"
    assert isinstance(result.typed_lesion_rows()[0][result.lesion_columns.index("volume_ml")], float)


def test_process_patient_turns_bugs_into_errors():
    def broken_reader(path):
        raise ZeroDivisionError("boom")

    from TTVPrognosisLib.cohort.patient import PatientJob

    outcome = process_patient(PatientJob("Z", "/x.seg.nrrd", read_segmentation=broken_reader))
    assert outcome.status == "failed" and outcome.error.startswith("Internal error (ZeroDivisionError): boom")


def test_terminal_progress_bar():
    stream = io.StringIO()
    bar = TerminalProgress(stream, redraw_seconds=0.0)
    bar(2, 10, None)
    bar(5, 10, "P005")
    bar(10, 10, "P010")
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\r[") and "5/10 patients" in text and "left" in text and "(last: P010)" in text
    assert text.endswith("\n")


def test_cli_draws_progress_only_on_a_terminal(cohort8, tmp_path, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["batch", str(cohort8["manifest"]), "--output", str(tmp_path / "r.csv"), "--workers", "1"]) == 0
    assert "\r[" in terminal.getvalue() and "8/8 patients" in terminal.getvalue()
    monkeypatch.undo()
    assert main(["batch", str(cohort8["manifest"]), "--output", str(tmp_path / "r2.csv"), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "8 of 8 patients succeeded, 0 failed." in captured.out


# --- flattening ------------------------------------------------------------------------------------------

def test_flatten_is_generic():
    document = {
        "baseline": {"ttv_ml": 12.5, "lesion_count": 2, "liver_volume_ml": None, "spacing_mm": [1.0, 1.0, 2.5],
                     "warnings": [], "lesions": [{"lesion_id": 1, "centroid_ras": [1.0, -2.0, 3.0],
                                                  "segments": ["L1", "L2"]}],
                     "segments": [{"name": "L1"}]},
        "recist": {"response": "PR", "measurable_disease": True, "target_lesions": [{"lesion_id": 1}],
                   "new_lesions": [], "brand_new": {"score": np.float64(0.25), "count": np.int64(3)}},
        "prognosis": {"model_id": "m", "model_title": "long text", "ttv_change": None,
                      "overall_survival": [{"months": 24.0, "probability": 0.81, "ci95": [0.7, 0.9]},
                                           {"months": 36.0, "probability": 0.6, "ci95": [0.5, 0.7]}]},
        "ratio": float("nan"),
    }
    flat = flatten_document(document, "P1")
    assert flat.row == {
        "baseline_ttv_ml": "12.5", "baseline_lesion_count": "2", "baseline_liver_volume_ml": "",
        "baseline_spacing_mm": "1.0; 1.0; 2.5", "baseline_warnings": "",
        "recist_response": "PR", "recist_measurable_disease": "true", "recist_new_lesions": "",
        "recist_target_1_lesion_id": "1", "recist_target_1_baseline_mm": "", "recist_target_1_followup_mm": "",
        "recist_target_1_followup_measured_mm": "", "recist_target_2_lesion_id": "",
        "recist_target_2_baseline_mm": "", "recist_target_2_followup_mm": "",
        "recist_target_2_followup_measured_mm": "",
        "recist_brand_new_score": "0.25", "recist_brand_new_count": "3",
        "prognosis_model_id": "m", "prognosis_ttv_change": "",
        "prognosis_overall_survival_24m": "0.81", "prognosis_overall_survival_24m_ci95_low": "0.7",
        "prognosis_overall_survival_24m_ci95_high": "0.9", "prognosis_overall_survival_36m": "0.6",
        "prognosis_overall_survival_36m_ci95_low": "0.5", "prognosis_overall_survival_36m_ci95_high": "0.7",
        "prognosis_overall_survival_60m": "", "prognosis_overall_survival_60m_ci95_low": "",
        "prognosis_overall_survival_60m_ci95_high": "", "ratio": ""}
    assert flat.lesions == [{"patient_id": "P1", "time_point": "baseline", "lesion_id": "1",
                             "centroid_r_mm": "1.0", "centroid_a_mm": "-2.0", "centroid_s_mm": "3.0",
                             "segments": "L1; L2"}]
    assert {"baseline_lesions", "baseline_segments", "recist_target_lesions", "recist_brand_new"} <= flat.containers


def test_tables_drop_containers_and_keep_each_rows_order():
    tables = CohortTables(["patient_id", "age"], ["A", "B"], ["x_a", "x_b"], {"x_c"})
    tables.add("B", {"patient_id": "B", "status": "ok", "error": "", "age": "3", "x_a": "1", "new": "2",
                     "x_b": "3", "x_c": ""})
    tables.add("A", {"patient_id": "A", "status": "failed", "error": "bad", "age": ""})
    assert tables.columns == ["patient_id", "status", "error", "age", "x_a", "new", "x_b"]
    assert [row["patient_id"] for row in tables.rows()] == ["A", "B"]
    order = ["a", "b", "c"]
    merge_columns(order, ["a", "z", "b", "y"])
    assert order == ["a", "z", "b", "y", "c"]


def test_cells():
    assert format_cell(0.1 + 0.2) == "0.3" and format_cell(1 / 3) == "0.3333333333"  # no float noise
    assert format_cell(12.345678, 4) == "12.3457" and format_cell(-0.001, 2) == "0.0"
    assert format_cell(True) == "true" and format_cell(None) == "" and format_cell(float("inf")) == ""
    assert format_cell(np.float32(0.5)) == "0.5" and format_cell(np.bool_(False)) == "false"
    assert cohort_table.clean_cell(" NaN ") == "" and cohort_table.clean_cell("#N/A") == ""
    assert cohort_table.clean_cell(" none ") == "none"


def test_torn_journal_line_is_ignored(tmp_path):
    from TTVPrognosisLib.cohort.journal import journal_path

    output = tmp_path / "results.csv"
    journal_path(output).write_text('{"patient_id": "P1", "row": {"patient_id": "P1"}, "lesions": [], '
                                    '"containers": []}\n{"patient_id": "P2", "row": {"pat')
    assert [record["patient_id"] for record in read_journal(output)] == ["P1"]


# --- found by a review as a demanding user --------------------------------------------------------------

def test_bad_path_cells_fail_only_their_patient(tmp_path, monkeypatch):
    """A path the system rejects (too long, a folder that cannot be searched) is that patient's error; a NUL in
    the file is a damaged manifest."""
    paths = write_patient(tmp_path, "GOOD", 0, followup=False)
    rows = [{"patient_id": "GOOD", "baseline_segmentation": paths["baseline_segmentation"].name},
            {"patient_id": "LONG", "baseline_segmentation": "x" * 300 + ".seg.nrrd"},
            {"patient_id": "LOCKED", "baseline_segmentation": "locked/baseline.seg.nrrd"}]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    real_exists = Path.exists

    def exists(path, *args, **kwargs):  # root may search any folder: a refusal is simulated
        if "locked" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_exists(path, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", exists)
    result = run_cohort(manifest, tmp_path / "r.csv", workers=1, register=False)
    errors = dict(result.failures)
    assert result.succeeded == 1 and sorted(errors) == ["LOCKED", "LONG"]
    assert "File name too long" in errors["LONG"] and len(errors["LONG"]) < 500
    assert "Permission denied" in errors["LOCKED"]
    rows.append({"patient_id": "NUL", "baseline_segmentation": "base\x00line.seg.nrrd"})
    with pytest.raises(ManifestError, match="line 5 holds a NUL character"):  # as Python 3.9's csv (Slicer) would
        read_manifest(write_manifest(tmp_path / "m.csv", rows))


def test_unwritable_output_is_a_clear_error(cohort8, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        run_cohort(cohort8["manifest"], tmp_path / "a-file" / "r.csv", workers=1)
    monkeypatch.setattr(os, "access", lambda path, mode: not (mode & os.W_OK and Path(path) == tmp_path))
    with pytest.raises(InputError, match="not writable"):
        run_cohort(cohort8["manifest"], tmp_path / "r.csv", workers=1)


def test_a_failing_write_is_a_clear_error_and_keeps_the_journal(cohort8, tmp_path, monkeypatch):
    """Disk full half-way: a message saying what to do (not an internal error); finished patients are kept."""
    output = tmp_path / "r.csv"
    writes = []

    def write(self, *args):
        writes.append(1)
        if len(writes) > 1:
            raise OSError(28, "No space left on device")
        real_write(self, *args)

    real_write = cohort_table.CohortTables.write
    monkeypatch.setattr(cohort_table.CohortTables, "write", write)
    monkeypatch.setattr("TTVPrognosisLib.cohort.journal.WRITE_TIME_SHARE", 1e9)  # rewrite the tables after each patient
    with pytest.raises(InputError, match=r"No space left on device.*--resume"):
        run_cohort(cohort8["manifest"], output, workers=1)
    monkeypatch.undo()
    assert [record["patient_id"] for record in read_journal(output)] == ["P001"]
    result = run_cohort(cohort8["manifest"], output, workers=1, resume=True)
    assert result.ok and result.resumed == 1 and output.read_bytes() == cohort8["reference"].read_bytes()


def test_resume_refuses_other_options(cohort8, tmp_path):
    """Resuming with other options would mix results computed two ways in one table."""
    output = tmp_path / "r.csv"
    run_cohort(cohort8["manifest"], output, workers=1, should_cancel=lambda: len(read_journal(output)) >= 2)
    for options, named in (({"register": False}, "registration"), ({"registration_mode": "affine"}, "registration"),
                           ({"exclude": ["Lesion 2"]}, "excluded segments"), ({"liver": ["Liver"]}, "liver")):
        with pytest.raises(InputError, match=f"other options.*{named}"):
            run_cohort(cohort8["manifest"], output, workers=1, resume=True, **options)
    settings = json.loads((tmp_path / ".r.csv.settings.json").read_text())
    assert settings == {"exclude_segments": [], "liver_segments": [], "registration": "rigid"}
    (tmp_path / ".r.csv.settings.json").unlink()  # a table from an earlier version: resumed, with a warning
    result = run_cohort(cohort8["manifest"], output, workers=1, resume=True)
    assert result.ok and any("no record of the options" in warning for warning in result.warnings)
    assert output.read_bytes() == cohort8["reference"].read_bytes()


def test_resume_refuses_patients_dropped_from_the_manifest(tmp_path):
    rows = []
    for index, name in enumerate("ABC"):
        paths = write_patient(tmp_path, name, index, followup=False)
        rows.append({"patient_id": name, "baseline_segmentation": paths["baseline_segmentation"].name})
    output = tmp_path / "r.csv"
    run_cohort(write_manifest(tmp_path / "m.csv", rows), output, workers=1, register=False)
    before = output.read_bytes()
    with pytest.raises(InputError, match=r"no longer lists: B.*delete their rows"):
        run_cohort(write_manifest(tmp_path / "m.csv", rows[::2]), output, workers=1, register=False, resume=True)
    assert output.read_bytes() == before
    with pytest.raises(InputError, match="already exists"):
        run_cohort(tmp_path / "m.csv", output, workers=1, register=False)


def test_resume_computes_damaged_rows_again(cohort8, tmp_path):
    """A copy of the results cut short: the cut rows are computed again, the rest kept."""
    output, lesions = tmp_path / "r.csv", tmp_path / "l.csv"
    run_cohort(cohort8["manifest"], output, lesions, workers=1)
    text = output.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    output.write_text("".join(lines[:4]) + lines[4][:len(lines[4]) // 2], encoding="utf-8")  # P004 cut
    reader = CountingReader()
    result = run_cohort(cohort8["manifest"], output, lesions, workers=1, resume=True, read_segmentation=reader)
    assert result.ok and result.resumed == 3 and result.computed == 5
    assert any("P004" in warning and "computed again" in warning for warning in result.warnings)
    assert output.read_bytes() == cohort8["reference"].read_bytes()
    output.write_text(text[:-1], encoding="utf-8")  # the last line end missing: its last cell may be cut
    result = run_cohort(cohort8["manifest"], output, lesions, workers=1, resume=True)
    assert result.computed == 1 and output.read_bytes() == cohort8["reference"].read_bytes()


def test_damaged_journal_lines_are_skipped(tmp_path):
    from TTVPrognosisLib.cohort.journal import journal_path

    output = tmp_path / "results.csv"
    good = {"patient_id": "P1", "row": {"patient_id": "P1"}, "lesions": [], "containers": []}
    lines = [json.dumps(good).encode(), b'{"row": {}, "lesions": [], "containers": []}', b"\xff\xfe garbage",
             json.dumps({**good, "patient_id": "P2", "lesions": "x"}).encode(), b"[1, 2]"]
    journal_path(output).write_bytes(b"\n".join(lines) + b"\n")
    assert [record["patient_id"] for record in read_journal(output)] == ["P1"]


def test_spreadsheet_exports(tmp_path):
    """Excel's empty trailing columns, its UTF-16 "Unicode Text" and its "sep=" first line are understood."""
    paths = write_patient(tmp_path, "A", 0, followup=False)
    name = paths["baseline_segmentation"].name
    (tmp_path / "trailing.csv").write_text(f"patient_id,baseline_segmentation,age,,\nA,{name},60,,\n")
    (tmp_path / "utf16.csv").write_bytes(f"patient_id\tbaseline_segmentation\tage\r\nA\t{name}\t60\r\n"
                                         .encode("utf-16"))
    (tmp_path / "sep.csv").write_text(f"sep=;\npatient_id;baseline_segmentation;age\nA;{name};60\n")
    for manifest in ("trailing.csv", "utf16.csv", "sep.csv"):
        read = read_manifest(tmp_path / manifest)
        assert read.columns == ["patient_id", "baseline_segmentation", "age"], manifest
        assert read.entries[0].cells["age"] == "60" and not read.entries[0].problems and not read.warnings
    (tmp_path / "named.csv").write_text(f"patient_id,baseline_segmentation,,\nA,{name},,5\n")
    with pytest.raises(ManifestError, match="column 4 has no name") as error:
        read_manifest(tmp_path / "named.csv")  # an unnamed column with values is still a problem
    assert "column 3" not in str(error.value)
    (tmp_path / "sep-lines.csv").write_text(f"sep=;\npatient_id;baseline_segmentation\nA;{name}\nA;{name}\n")
    with pytest.raises(ManifestError, match=r"lines 3, 4"):  # line numbers still count the sep= line
        read_manifest(tmp_path / "sep-lines.csv")


def report_sigterm_handler() -> bool:
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_pool_workers_end_on_sigterm_and_are_stopped_after_ctrl_c():
    """Workers must not inherit the CLI's SIGTERM handler, and an interrupted run ends them at once (a second
    Ctrl+C while waiting for them used to hang the batch and leave them running)."""
    from TTVPrognosisLib.cohort.pool import _process_pool, _stop_workers

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        pool = _process_pool(2)
        assert pool.submit(report_sigterm_handler).result(timeout=60)
        busy = pool.submit(time.sleep, 60)
        time.sleep(0.5)
        processes = list(pool._processes.values())
        started = time.monotonic()
        _stop_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        alive = [(process.pid, process.exitcode) for process in processes if process.is_alive()]
        assert not alive and time.monotonic() - started < 10, alive
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            busy.result(timeout=10)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_manifest_columns_named_like_ct_registration_results_are_refused(tmp_path):
    """The CT registration reports diagnostics the template (liver masks) lacks; a column named like one
    would silently replace the computed value."""
    paths = write_patient(tmp_path, "A", 0, followup=False)
    row = {"patient_id": "A", "baseline_segmentation": paths["baseline_segmentation"].name,
           "registration_diagnostics_correlation": "0.9"}
    write_manifest(tmp_path / "m.csv", [row])
    with pytest.raises(ManifestError, match="registration_diagnostics_correlation' would clash"):
        read_manifest(tmp_path / "m.csv")


def test_output_named_as_the_manifest_is_refused_first(cohort8, tmp_path, capsys):
    """Not "use --overwrite" (which would then be refused too): the manifest is never an output."""
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(cohort8["manifest"].read_bytes())
    for extra in ([], ["--overwrite"]):
        assert main(["batch", str(manifest), "--output", str(manifest), *extra]) == 1
        assert "is the manifest" in capsys.readouterr().err
    assert manifest.read_bytes() == cohort8["manifest"].read_bytes()


def test_relative_paths_start_from_the_folder_of_a_linked_manifest(tmp_path):
    paths = write_patient(tmp_path / "study", "A", 0, followup=False)
    (tmp_path / "elsewhere").mkdir()
    target = write_manifest(tmp_path / "elsewhere" / "m.csv", [{"patient_id": "A", "baseline_segmentation":
                                                                 paths["baseline_segmentation"].name}])
    link = tmp_path / "study" / "m.csv"
    link.symlink_to(target)
    assert not read_manifest(link).entries[0].problems
    assert read_manifest(target).entries[0].problems  # from its own folder the file is not there
