"""Result tables and plots for the panel, on slicer-core table and plot nodes."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from TTVPrognosisLib.formats.demo_data import demo_time_point
from TTVPrognosisLib.mrml import results as mrml_results
from TTVPrognosisLib.pipeline import compare_volumes
from TTVPrognosisLib.prognosis.scores import ClinicalInputs, fong_score, game_score
from TTVPrognosisLib.prognosis.section import prognosis_section, survival_curves


@pytest.fixture(scope="module")
def comparison():
    baseline_ct, baseline = demo_time_point(followup=False)
    followup_ct, followup = demo_time_point(followup=True)
    return compare_volumes(baseline, followup, baseline_image=baseline_ct, followup_image=followup_ct)


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def cells(table_node) -> list[list[str]]:
    return [[table_node.GetCellText(row, column) for column in range(table_node.GetNumberOfColumns())]
            for row in range(table_node.GetNumberOfRows())]


def test_response_table_puts_ttv_recist_and_tbs_side_by_side(comparison, scene):
    response = scene.AddNewNodeByClass("vtkMRMLTableNode")
    matched = scene.AddNewNodeByClass("vtkMRMLTableNode")
    mrml_results.write_response_tables(comparison, response, matched)
    rows = {row[0]: row for row in cells(response)}
    assert rows["TTV (mL)"][3].startswith(f"{comparison.absolute_change_ml:+.2f}")
    assert rows["RECIST sum of diameters (mm)"][4] == comparison.recist.response
    assert rows["Tumour burden score"][1].startswith(f"{comparison.tbs.baseline.score:.2f}")
    statuses = [row[7] for row in cells(matched)]
    assert statuses.count("disappeared") == 1 and statuses.count("matched") == 4
    assert matched.GetNumberOfRows() == len(comparison.lesion_table())


def test_survival_curves_fall_with_time_and_ttv():
    curves = survival_curves(53.5)
    names = list(curves)
    assert names[0].startswith("This patient") and len(names) == 4
    for _months, probability in curves.values():
        assert np.all(np.diff(probability) < 0)
    at_five_years = [float(np.interp(60.0, *curves[name])) for name in names[1:]]
    assert at_five_years == sorted(at_five_years, reverse=True)


def test_survival_chart_and_table(scene):
    section = prognosis_section(53.5, 19.0)
    table = scene.AddNewNodeByClass("vtkMRMLTableNode")
    mrml_results.write_survival_table(section, table)
    assert table.GetNumberOfRows() == len(section["overall_survival"])
    chart_table = scene.AddNewNodeByClass("vtkMRMLTableNode")
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode")
    curves = survival_curves(53.5)
    mrml_results.write_survival_chart(curves, chart_table, chart, scene)
    mrml_results.write_survival_chart(curves, chart_table, chart, scene)  # a second press reuses the series
    assert chart.GetNumberOfPlotSeriesNodes() == 4
    assert scene.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode") == 4
    first = next(iter(curves))
    assert float(chart_table.GetCellText(0, 1)) == pytest.approx(curves[first][1][0] * 100)


def test_score_table_shows_points_and_missing_inputs(scene):
    clinical = ClinicalInputs(node_positive_primary=True, disease_free_interval_months=6, cea_ng_ml=250,
                              kras_mutated=None, extrahepatic_disease=False)
    results = [fong_score(3, 60.0, clinical), game_score(3, 60.0, clinical)]
    table = scene.AddNewNodeByClass("vtkMRMLTableNode")
    mrml_results.write_score_table(results, table)
    totals = {row[0]: row[3] for row in cells(table) if row[1] == "total"}
    assert totals["Fong clinical risk score"].startswith("5 points")
    assert "not computable" in next(value for name, value in totals.items() if "GAME" in name)
