"""The Extensions Index screenshot: the panel's results for the demo case, drawn with matplotlib.

Qt and Slicer do not run where this project is built, so the picture is a faithful mock, not a screen capture:
every number and curve comes from the library calls Compute TTV makes (mrml.workflow.compute_outcome on the
demo case's nodes, slicer-core), laid out like the panel (summary table, response, survival curves against
months as the plot view shows them). Run: .venv/bin/python packaging/make_screenshot.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import slicer

from TTVPrognosisLib.mrml.sample_data import load_demo_case
from TTVPrognosisLib.mrml.workflow import compute_outcome
from TTVPrognosisLib.prognosis.section import survival_curves
from TTVPrognosisLib.report import text as report

OUTPUT = Path(__file__).resolve().parents[1] / "Screenshots" / "TTVPrognosis-results.png"


def main() -> None:
    scene = slicer.vtkMRMLScene()
    baseline_ct, followup_ct, baseline, followup = load_demo_case(scene)
    outcome = compute_outcome(baseline, baseline_ct, followup, followup_ct)
    comparison = outcome.comparison
    figure = plt.figure(figsize=(14, 6.5), dpi=100)
    figure.suptitle("TTV Prognosis (3D Slicer): demo case, baseline and first follow-up", fontsize=14, x=0.02,
                    ha="left")
    summary = figure.add_axes([0.02, 0.47, 0.47, 0.42])
    summary.axis("off")
    summary.set_title("Baseline and follow-up", loc="left", fontsize=11)
    rows = report.summary_rows(comparison.baseline, comparison.followup)
    table = summary.table(cellText=rows, colLabels=["Measure", "Baseline", "Follow-up", "Change"], loc="upper left",
                          cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.3)
    table.auto_set_column_width(list(range(4)))
    response = figure.add_axes([0.02, 0.04, 0.47, 0.36])
    response.axis("off")
    response.set_title("Response: TTV change, RECIST 1.1, Tumour Burden Score", loc="left", fontsize=11)
    response_table = response.table(cellText=report.response_rows(comparison), colLabels=list(report.RESPONSE_HEADERS),
                                    loc="upper left", cellLoc="left")
    response_table.auto_set_font_size(False)
    response_table.set_fontsize(9)
    response_table.scale(1, 1.3)
    response_table.auto_set_column_width(list(range(len(report.RESPONSE_HEADERS))))
    chart = figure.add_axes([0.66, 0.12, 0.32, 0.72])
    for index, (label, (months, survival)) in enumerate(survival_curves(comparison.baseline.ttv_ml).items()):
        chart.plot(months, survival * 100.0, linewidth=3 if index == 0 else 1.5, linestyle="-" if index == 0 else "--",
                   label=label)
    chart.set_title("Overall survival (model; research use only)", fontsize=11)
    chart.set_xlabel("Months")
    chart.set_ylabel("Survival (%)")
    chart.set_ylim(0, 100)
    chart.grid(alpha=0.3)
    chart.legend(fontsize=9)
    OUTPUT.parent.mkdir(exist_ok=True)
    figure.savefig(OUTPUT)
    print(OUTPUT)


if __name__ == "__main__":
    main()
