"""Segment roles on the command line and in batches: --lesion-segment, refusals (exit 1), label-map
conventions, and per-patient segment options in the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from TTVPrognosisLib.cli import main
from TTVPrognosisLib.cohort.tables import read_csv
from TTVPrognosisLib.formats.demo_data import demo_time_point
from TTVPrognosisLib.formats.io import write_image, write_segmentation
from TTVPrognosisLib.formats.segments import LabelVolume, Segment


def renamed_demo(followup: bool, names: dict[str, str], extra: bool = True) -> tuple[LabelVolume, float]:
    """The demo time point with renamed, untagged segments (as another tool writes them), plus a cyst segment;
    returns it with its lesion volume (the truth)."""
    _, volume = demo_time_point(followup)
    layers = list(volume.layers)
    segments = [Segment(segment.segment_id, names.get(segment.segment_id, segment.name), segment.layer,
                        segment.label_value) for segment in volume.segments]
    if extra:
        cyst = np.zeros_like(layers[0])
        cyst[30:34, 70:74, 60:64] = 1
        layers.append(cyst)
        segments.append(Segment("Cyst", "Segment_99", len(layers) - 1, 1))
    truth = np.count_nonzero(volume.layers[1]) * volume.geometry.voxel_volume_ml
    return LabelVolume(layers, volume.geometry, segments, "demo"), truth


def measure_json(capsys, *arguments: str) -> tuple[int, dict | None, str]:
    code = main(["measure", *arguments, "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_lesion_segment_globs_name_the_lesions(tmp_path, capsys):
    names = {f"Lesion_{n}": f"Tumour {n}" for n in range(1, 6)}
    volume, truth = renamed_demo(False, {"Liver": "Segment_1", **names})
    path = tmp_path / "renamed.seg.nrrd"
    write_segmentation(volume, path)
    # Without options, the unnamed liver encloses the tumours: refused, naming it and the options.
    code, _, error = measure_json(capsys, str(path))
    assert code == 1 and "'Segment_1'" in error and "--liver-segment 'Segment_1'" in error
    code, document, _ = measure_json(capsys, str(path), "--lesion-segment", "TUMOUR*")
    assert code == 0 and document["ttv_ml"] == pytest.approx(truth)
    roles = {segment["name"]: segment["role"] for segment in document["segments"]}
    assert roles["Segment_1"] == "excluded" and roles["Segment_99"] == "excluded" and roles["Tumour 3"] == "lesion"
    code, document, _ = measure_json(capsys, str(path), "--lesion-segment", "tumour [12]",
                                     "--lesion-segment", "Tumour 3")
    assert code == 0 and sorted(lesion for segment in document["lesions"] for lesion in segment["segments"]) == \
        ["Tumour 1", "Tumour 2", "Tumour 3"]
    code, _, error = measure_json(capsys, str(path), "--lesion-segment", "Tumor*")  # a typo stays an error
    assert code == 1 and "--lesion-segment 'Tumor*' matches no segment" in error


def test_lits_label_map_file_measures_the_tumour_with_a_warning(tmp_path, capsys):
    _, volume = demo_time_point(False)
    liver, lesions = volume.layers[0] > 0, volume.layers[1] > 0
    labels = np.where(lesions, 2, np.where(liver, 1, 0)).astype(np.uint8)
    path = tmp_path / "lits.nii.gz"
    write_image(labels, volume.geometry, path)
    code, document, error = measure_json(capsys, str(path))
    truth = np.count_nonzero(lesions) * volume.geometry.voxel_volume_ml
    assert code == 0 and document["ttv_ml"] == pytest.approx(truth, rel=1e-6)  # ~53 mL, not 749
    assert "LiTS" in error and any("LiTS" in warning for warning in document["warnings"])
    code, document, _ = measure_json(capsys, str(path), "--lesion-segment", "1", "--lesion-segment", "2")
    assert document["ttv_ml"] == pytest.approx(np.count_nonzero(liver) * volume.geometry.voxel_volume_ml, rel=1e-6)


def test_compare_takes_lesion_segments(tmp_path, capsys):
    names = {"Liver": "Liver mask", **{f"Lesion_{n}": f"Met {n}" for n in range(1, 6)}}
    paths = []
    truths = []
    for followup in (False, True):
        volume, truth = renamed_demo(followup, names)
        paths.append(tmp_path / f"{'followup' if followup else 'baseline'}.seg.nrrd")
        write_segmentation(volume, paths[-1])
        truths.append(truth)
    code = main(["compare", str(paths[0]), str(paths[1]), "--lesion-segment", "met*", "--json", "--no-registration"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["baseline"]["ttv_ml"] == pytest.approx(truths[0])
    assert document["followup"]["ttv_ml"] == pytest.approx(truths[1])


def test_batch_per_patient_segment_options(tmp_path, capsys):
    """Each patient's own options from the manifest; a name a patient does not have is a warning there."""
    rows = []
    truths = {}
    for patient_id, names, cells in (
            ("P1", {"Liver": "Segment_1"}, {"liver_segments": "Segment_1", "exclude_segments": "Segment_99; Ghost"}),
            ("P2", {"Liver": "Leber", **{f"Lesion_{n}": f"T{n}" for n in range(1, 6)}},
             {"lesion_segments": "t*"}),
            ("P3", {}, {})):
        volume, truth = renamed_demo(False, names)
        path = tmp_path / f"{patient_id}.seg.nrrd"
        write_segmentation(volume, path)
        truths[patient_id] = truth + (0 if patient_id != "P3" else 64 * volume.geometry.voxel_volume_ml)
        rows.append({"patient_id": patient_id, "baseline_segmentation": path.name, **cells})
    manifest = tmp_path / "manifest.csv"
    columns = ["patient_id", "baseline_segmentation", "Exclude segments", "liver_segments", "lesion_segments"]
    lines = [",".join(columns)] + [",".join([row["patient_id"], row["baseline_segmentation"],
                                             row.get("exclude_segments", ""), row.get("liver_segments", ""),
                                             row.get("lesion_segments", "")]) for row in rows]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "results.csv"
    assert main(["batch", str(manifest), "--output", str(output), "--workers", "1"]) == 0, capsys.readouterr().err
    _, table = read_csv(output)
    by_patient = {row["patient_id"]: row for row in table}
    for patient_id, truth in truths.items():
        assert by_patient[patient_id]["status"] == "ok", by_patient[patient_id]["error"]
        assert float(by_patient[patient_id]["baseline_ttv_ml"]) == pytest.approx(truth, rel=1e-6)
    assert "'Ghost'" in by_patient["P1"]["baseline_warnings"]
    assert by_patient["P1"]["exclude_segments"] == "Segment_99; Ghost"  # passed through as given


def test_lits_followup_with_only_the_liver_is_a_complete_response(tmp_path, capsys):
    """Baseline read as the LiTS convention; the follow-up holds only label 1 (the liver, 700 mL, below the
    organ-size limit): it follows the baseline's convention, so its TTV is 0, not 700 mL."""
    _, volume = demo_time_point(False)
    liver, lesions = volume.layers[0] > 0, volume.layers[1] > 0
    baseline, followup = tmp_path / "baseline.nii.gz", tmp_path / "followup.nii.gz"
    write_image(np.where(lesions, 2, np.where(liver, 1, 0)).astype(np.uint8), volume.geometry, baseline)
    write_image(liver.astype(np.uint8), volume.geometry, followup)
    code = main(["compare", str(baseline), str(followup), "--json", "--no-registration"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(captured.out)
    assert document["baseline"]["ttv_ml"] == pytest.approx(np.count_nonzero(lesions) * volume.geometry.voxel_volume_ml,
                                                           rel=1e-6)
    assert document["followup"]["ttv_ml"] == 0.0
    assert document["followup"]["liver_volume_ml"] == pytest.approx(
        np.count_nonzero(liver) * volume.geometry.voxel_volume_ml, rel=1e-6)
    assert document["recist"]["response"] == "CR"
