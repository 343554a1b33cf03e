"""The ttvprognosis command line as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from TTVPrognosisLib.cli import _attach_negative_values, main
from TTVPrognosisLib.formats.demo_data import write_demo_case
from TTVPrognosisLib.formats.io import write_image
from TTVPrognosisLib.geometry import Geometry

MEASURE_KEYS = {"ttv_ml", "lesion_count", "voxel_volume_ml", "liver_volume_ml", "largest_diameter_mm", "lesions",
                "segments"}
LESION_KEYS = {"volume_ml", "max_diameter_mm", "longest_axial_diameter_mm", "centroid_ras", "segments"}


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    return write_demo_case(tmp_path_factory.mktemp("demo"))


def run(*arguments: str) -> subprocess.CompletedProcess:
    """The installed console entry point, as a user runs it (``python -m`` is the same code)."""
    return subprocess.run([sys.executable, "-m", "TTVPrognosisLib", *arguments], capture_output=True, text=True,
                          timeout=300)


def test_measure_json_document(demo_files):
    completed = run("measure", str(demo_files["baseline_segmentation"]), "--json")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document.keys() >= MEASURE_KEYS
    assert document["lesion_count"] == len(document["lesions"]) == 5
    assert all(lesion.keys() >= LESION_KEYS for lesion in document["lesions"])
    volumes = [lesion["volume_ml"] for lesion in document["lesions"]]
    assert volumes == sorted(volumes, reverse=True)
    assert sum(volumes) == pytest.approx(document["ttv_ml"])
    assert {segment["role"] for segment in document["segments"]} == {"liver", "lesion"}
    assert {"name", "volume_ml", "role"} <= document["segments"][0].keys()
    assert document["liver_volume_ml"] > 500


def test_compare_json_document(demo_files):
    completed = run("compare", str(demo_files["baseline_segmentation"]), str(demo_files["followup_segmentation"]),
                    "--json")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    baseline, followup = document["baseline"], document["followup"]
    assert baseline.keys() >= MEASURE_KEYS and followup.keys() >= MEASURE_KEYS
    assert document["absolute_change_ml"] == pytest.approx(followup["ttv_ml"] - baseline["ttv_ml"])
    assert document["relative_change_percent"] == pytest.approx(
        (followup["ttv_ml"] - baseline["ttv_ml"]) / baseline["ttv_ml"] * 100)
    assert followup["lesion_count"] == baseline["lesion_count"] - 1


def test_relative_change_is_null_when_baseline_is_empty(tmp_path, capsys):
    geometry = Geometry(np.diag([1.0, 1.0, 2.0, 1.0]), (10, 20, 20))
    empty = np.zeros(geometry.shape_kji, dtype=np.uint8)
    lesion = empty.copy()
    lesion[2:4, 5:8, 5:8] = 1
    write_image(empty, geometry, tmp_path / "baseline.nrrd")
    write_image(lesion, geometry, tmp_path / "followup.nrrd")
    assert main(["compare", str(tmp_path / "baseline.nrrd"), str(tmp_path / "followup.nrrd"), "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["relative_change_percent"] is None
    assert document["absolute_change_ml"] == pytest.approx(18 * 2.0 / 1000)
    assert "relative change is undefined" in captured.err


def test_human_readable_tables(demo_files):
    completed = run("measure", str(demo_files["followup_segmentation"]))
    assert completed.returncode == 0
    assert "Total tumour volume (TTV):" in completed.stdout
    assert "Lesions (26-connected, largest first)" in completed.stdout


def test_missing_file_error_goes_to_stderr_with_exit_code(tmp_path):
    completed = run("measure", str(tmp_path / "missing.seg.nrrd"), "--json")
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "File not found" in completed.stderr


def test_ct_given_as_segmentation_is_explained(demo_files):
    completed = run("measure", str(demo_files["baseline_image"]))
    assert completed.returncode == 1
    assert "looks like a CT" in completed.stderr


def test_exclude_segment(demo_files, capsys):
    assert main(["measure", str(demo_files["baseline_segmentation"]), "--exclude-segment", "Lesion 1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["lesion_count"] == 4
    assert main(["measure", str(demo_files["baseline_segmentation"]), "--exclude-segment", "Lesion 99"]) == 1
    assert "matches no segment" in capsys.readouterr().err


def test_compare_accepts_a_name_present_at_one_time_point_only(demo_files, capsys):
    """Lesion 4 disappeared at follow-up: excluding it must still work."""
    assert main(["compare", str(demo_files["baseline_segmentation"]), str(demo_files["followup_segmentation"]),
                 "--exclude-segment", "Lesion 4", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["baseline"]["lesion_count"] == 4


def test_measure_with_image_checks_geometry(demo_files, capsys):
    assert main(["measure", str(demo_files["baseline_segmentation"]), "--image",
                 str(demo_files["baseline_image"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []


def test_demo_writes_files_and_refuses_foreign_folders(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["demo", "--output", str(output), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["absolute_change_ml"] < 0
    assert all((output / name).exists() for name in ("baseline.seg.nrrd", "followup.seg.nrrd", "baseline_ct.nrrd"))
    assert main(["demo", "--output", str(output)]) == 0, "re-running into its own folder is fine"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["demo", "--output", str(foreign)]) == 1
    assert "already holds other files" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_measure_on_files_does_not_import_slicer(demo_files):
    code = ("import sys\nfrom TTVPrognosisLib.cli import main\n"
            f"assert main(['measure', {str(demo_files['baseline_segmentation'])!r}, '--json']) == 0\n"
            "assert 'slicer' not in sys.modules, 'measuring files must not pay for importing slicer'\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("argv, expected", [
    (["segment-lesion", "ct.nrrd", "--point", "-52.9,14.7,4.9"],
     ["segment-lesion", "ct.nrrd", "--point=-52.9,14.7,4.9"]),
    (["--point", "1,2,3", "--point", "-1e-3,-2,-3"], ["--point=1,2,3", "--point=-1e-3,-2,-3"]),
    (["--point", "-5e+1,0,1E+2"], ["--point=-5e+1,0,1E+2"]),
    (["--point", "--json"], ["--point", "--json"]),
])
def test_negative_coordinates_are_kept_as_values(argv, expected):
    assert _attach_negative_values(argv) == expected


def test_segment_lesion_writes_only_slicer_segmentations(demo_files, tmp_path, capsys):
    """An existing NIfTI label image named as --output is refused, not replaced by NRRD bytes under its name."""
    labels = tmp_path / "labels.nii.gz"
    labels.write_bytes(b"my labels")
    assert main(["segment-lesion", str(demo_files["baseline_image"]), "--point", "60,20,10",
                 "--output", str(labels)]) == 1
    assert "ending in .seg.nrrd" in capsys.readouterr().err and labels.read_bytes() == b"my labels"


def test_outputs_that_cannot_be_written_are_user_errors(demo_files, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    assert main(["segment-lesion", str(demo_files["baseline_image"]), "--point", "60,20,10",
                 "--output", str(tmp_path / "a-file" / "out.seg.nrrd")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["demo", "--output", str(tmp_path / "a-file")]) == 1
    assert "is a file" in capsys.readouterr().err


def test_each_failing_point_is_numbered_as_given(demo_files, tmp_path, capsys):
    code = main(["segment-lesion", str(demo_files["baseline_image"]), "--point", "60,20,10", "--point", "500,0,0",
                 "--point", "0,600,0", "--output", str(tmp_path / "new.seg.nrrd")])
    errors = capsys.readouterr().err
    assert code == 1 and "Point 2 (R 500.0" in errors and "Point 3 (R 0.0, A 600.0" in errors
    assert "Point 1 (" not in errors


def test_prediction_rows_show_months_as_given(capsys):
    assert main(["predict", "--baseline-ttv-ml", "50", "--months", "24.0000001,24,30.5"]) == 0
    labels = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()]
    assert labels == ["24", "24.0000001", "30.5"]
