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
    assert written == ["results.codebook.csv", "results.csv", "results.provenance.json"]  # the table's companions
