"""The Slicer panel's "Save report": the same report from the panel's outcome, HTML even without matplotlib."""

from __future__ import annotations

import base64
import sys

import pytest

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import demo_time_point
from TTVPrognosisLib.pipeline import compare_volumes
from TTVPrognosisLib.prognosis.section import prognosis_section
from TTVPrognosisLib.report.content import RESEARCH_NOTICE
from TTVPrognosisLib.report.key_images import key_lesions
from TTVPrognosisLib.report.patient_report import write_outcome_report

workflow = pytest.importorskip("TTVPrognosisLib.mrml.workflow", reason="needs the slicer-core wheel")

CAPTURED = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                         "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@pytest.fixture(scope="module")
def outcome():
    (baseline_ct, baseline), (followup_ct, followup) = demo_time_point(False), demo_time_point(True)
    comparison = compare_volumes(baseline, followup, baseline_image=baseline_ct, followup_image=followup_ct)
    return workflow.Outcome(comparison, prognosis_section(comparison.baseline.ttv_ml, comparison.followup.ttv_ml),
                            [], ["2 lesion segment(s) are not marked verified yet"])


def test_html_without_matplotlib_uses_the_callers_pictures(outcome, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in Slicer, which does not bundle it
    keys = key_lesions(outcome.result)
    pictures = [(key.title, CAPTURED) for key in keys]
    written = write_outcome_report(outcome, html_path=tmp_path / "panel.html", key_images=pictures)
    html = written[0].read_text(encoding="utf-8")
    assert html.count(base64.b64encode(CAPTURED).decode()) == len(keys) == 3
    assert RESEARCH_NOTICE in html and f"{outcome.result.baseline.ttv_ml:.2f}" in html
    assert "not marked verified" in html, "the panel's warnings are in the report"
    assert html.count("data:image/png;base64,") == len(keys), "no survival chart without matplotlib"
    assert "Overall survival" in html, "the survival table is there all the same"
    with pytest.raises(InputError, match="needs matplotlib"):
        write_outcome_report(outcome, html_path=tmp_path / "b.html", pdf_path=tmp_path / "b.pdf")
    assert not (tmp_path / "b.pdf").exists() and not (tmp_path / "b.html").exists()


def test_with_matplotlib_the_survival_chart_is_drawn(outcome, tmp_path):
    pytest.importorskip("matplotlib")
    write_outcome_report(outcome, html_path=tmp_path / "panel.html", pdf_path=tmp_path / "panel.pdf")
    html = (tmp_path / "panel.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 1
    assert (tmp_path / "panel.pdf").read_bytes().startswith(b"%PDF")
