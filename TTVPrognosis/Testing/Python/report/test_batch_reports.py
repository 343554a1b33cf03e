"""`ttvprognosis batch --reports DIR`: the same report per patient, written by the workers, only when asked."""

from __future__ import annotations

import csv

import pytest

from TTVPrognosisLib.cli import main
from TTVPrognosisLib.formats.demo_data import write_demo_case

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("matplotlib")
pytestmark = pytest.mark.slow  # whole reports: a few seconds each


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch-reports")
    paths = write_demo_case(folder / "P 1")
    with open(folder / "cohort.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "baseline_segmentation", "followup_segmentation", "baseline_image",
                         "followup_image"])
        writer.writerow(["P 1", *(str(paths[key].relative_to(folder)) for key in (
            "baseline_segmentation", "followup_segmentation", "baseline_image", "followup_image"))])
        writer.writerow(["P2/baseline-only", str(paths["baseline_segmentation"].relative_to(folder)), "",
                         str(paths["baseline_image"].relative_to(folder)), ""])
    return folder


def read_rows(path) -> dict[str, dict]:
    with open(path, newline="") as handle:
        return {row["patient_id"]: row for row in csv.DictReader(handle)}


def test_batch_writes_one_report_per_patient_with_its_numbers(cohort, tmp_path):
    reports = tmp_path / "reports"
    assert main(["batch", str(cohort / "cohort.csv"), "--output", str(tmp_path / "results.csv"), "--workers", "2",
                 "--reports", str(reports)]) == 0
    rows = read_rows(tmp_path / "results.csv")
    assert sorted(path.name for path in reports.iterdir()) == ["P2_baseline-only.pdf", "P_1.pdf"]
    paired = " ".join(page.extract_text() for page in pypdf.PdfReader(reports / "P_1.pdf").pages)
    assert f"{float(rows['P 1']['baseline_ttv_ml']):.2f}" in paired
    assert f"{float(rows['P 1']['followup_ttv_ml']):.2f}" in paired
    assert "Case: P 1" in paired and "RESEARCH USE ONLY" in paired
    single = " ".join(page.extract_text() for page in pypdf.PdfReader(reports / "P2_baseline-only.pdf").pages)
    assert f"{float(rows['P2/baseline-only']['baseline_ttv_ml']):.2f}" in single
    # a second run must not silently replace the reports
    assert main(["batch", str(cohort / "cohort.csv"), "--output", str(tmp_path / "again.csv"), "--workers", "1",
                 "--reports", str(reports)]) == 1
    assert not (tmp_path / "again.csv").exists()


def test_without_reports_nothing_else_is_written(cohort, tmp_path):
    assert main(["batch", str(cohort / "cohort.csv"), "--output", str(tmp_path / "results.csv"), "--workers",
                 "1"]) == 0
    written = sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith("."))
    # the table and what the batch writes beside it (codebook, provenance): no report, no reports folder
    assert written == ["results.codebook.csv", "results.csv", "results.provenance.json"]


def test_batch_reports_use_the_patients_clinical_values_and_lesion_segments(cohort, tmp_path):
    """The report shows the Fong and GAME the results table has (clinical columns of the manifest, on the
    follow-up) and measures with the patient's lesion_segments, as ``ttvprognosis report`` would."""
    manifest = tmp_path / "clinical.csv"
    with open(cohort / "cohort.csv", newline="") as handle:
        first = next(row for row in csv.DictReader(handle) if row["patient_id"] == "P 1")
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "baseline_segmentation", "followup_segmentation", "baseline_image",
                         "followup_image", "node_positive_primary", "disease_free_interval_months", "cea_ng_ml",
                         "ras_mutated", "extrahepatic_disease", "lesion_segments"])
        writer.writerow(["P 1", *(str(cohort / first[key]) for key in (
            "baseline_segmentation", "followup_segmentation", "baseline_image", "followup_image")),
            "yes", "6", "250", "yes", "no", "Lesion 1;Lesion 3*"])
    reports = tmp_path / "reports"
    assert main(["batch", str(manifest), "--output", str(tmp_path / "results.csv"), "--workers", "1",
                 "--reports", str(reports)]) == 0
    row = read_rows(tmp_path / "results.csv")["P 1"]
    all_lesions = read_rows_of_cohort(cohort, tmp_path)
    assert float(row["baseline_ttv_ml"]) < float(all_lesions["baseline_ttv_ml"]), "lesion_segments chose fewer"
    assert row["fong_score"] and row["game_score"] and row["scores_time_point"] == "followup"
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(reports / "P_1.pdf").pages)
    assert f"{float(row['baseline_ttv_ml']):.2f}" in text
    assert f"Fong clinical risk score: {row['fong_score']} points: {row['fong_risk_group']}" in text
    assert f"GAME score: {row['game_score']} points: {row['game_risk_group']}" in text
    assert "Lesion segments named: Lesion 1, Lesion 3*" in text


def read_rows_of_cohort(cohort, tmp_path) -> dict:
    assert main(["batch", str(cohort / "cohort.csv"), "--output", str(tmp_path / "all.csv"), "--workers",
                 "1"]) == 0
    return read_rows(tmp_path / "all.csv")["P 1"]
