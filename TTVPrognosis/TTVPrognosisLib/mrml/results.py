"""Results into MRML table and plot nodes, as the panel and the Tables/Plots modules show them.

Every function here fills nodes from results computed elsewhere (volumetry, response, prognosis, scores);
nothing is computed twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import vtk

from ..measure.volumetry import Measurement
from ..report import text as report

LESION_HEADERS = ("Time point", "Lesion", "Volume (mL)", "Max diameter (mm)", "Longest axial diameter (mm)",
                  "Segments", "Centroid R (mm)", "Centroid A (mm)", "Centroid S (mm)")


def fill_table(table_node, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Replace a table node's content; all-number columns become numeric columns, the rest text."""
    table = table_node.GetTable()
    was_modifying = table_node.StartModify()
    table_node.RemoveAllColumns()
    for column_index, header in enumerate(headers):
        cells = [row[column_index] for row in rows]
        numeric = bool(cells) and all(isinstance(cell, (int, float)) and not isinstance(cell, bool) for cell in cells)
        column = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        column.SetName(header)
        for cell in cells:
            column.InsertNextValue(float(cell) if numeric else ("" if cell is None else str(cell)))
        table.AddColumn(column)
    table_node.Modified()
    table_node.EndModify(was_modifying)


def lesion_table_rows(measurement: Measurement, time_point: str = "Baseline") -> list[list[object]]:
    """One row per lesion, largest first (the "Compute TTV" lesion table)."""
    return [[time_point, lesion.lesion_id, round(lesion.volume_ml, 3), round(lesion.max_diameter_mm, 1),
             round(lesion.longest_axial_diameter_mm, 1), ", ".join(lesion.segments),
             *(round(value, 1) for value in lesion.centroid_ras)] for lesion in measurement.lesions]


def write_result_tables(result, summary_table_node, lesion_table_node) -> None:
    """Fill the summary and lesion tables from a Measurement or a Comparison (baseline and follow-up)."""
    baseline = getattr(result, "baseline", result)
    followup = getattr(result, "followup", None)
    headers = ["Measure", "Baseline"] + (["Follow-up", "Change"] if followup is not None else [])
    fill_table(summary_table_node, headers, report.summary_rows(baseline, followup))
    rows = lesion_table_rows(baseline, "Baseline")
    if followup is not None:
        rows += lesion_table_rows(followup, "Follow-up")
    fill_table(lesion_table_node, LESION_HEADERS, rows)


def write_response_tables(comparison, response_table_node, matched_table_node) -> None:
    """TTV change / RECIST / TBS table and the matched-lesion table (the same rows as the CLI prints)."""
    fill_table(response_table_node, report.RESPONSE_HEADERS, report.response_rows(comparison))
    fill_table(matched_table_node, report.MATCHED_HEADERS, report.matched_lesion_rows(comparison))


def write_survival_table(section: dict, table_node) -> None:
    fill_table(table_node, report.SURVIVAL_HEADERS, report.survival_rows(section))


def write_survival_chart(curves: dict[str, tuple[Sequence[float], Sequence[float]]], table_node, chart_node,
                         scene) -> None:
    """One plot series per curve (months against survival %) in ``chart_node``; the data lives in ``table_node``.

    ``curves`` maps a label (e.g. "This patient (53 mL)", "Reference 3 mL") to (months, probabilities).
    Series nodes are reused by name, so pressing the button again updates the chart.
    """
    names = list(curves)
    months = list(curves[names[0]][0])
    columns = [[float(value) for value in months]] + [[float(p) * 100.0 for p in curves[name][1]] for name in names]
    fill_table(table_node, ["Months", *names], list(map(list, zip(*columns))))
    chart_node.RemoveAllPlotSeriesNodeIDs()
    chart_node.SetTitle("Overall survival (model; research use only)")
    chart_node.SetXAxisTitle("Months")
    chart_node.SetYAxisTitle("Survival (%)")
    for index, name in enumerate(names):
        series = scene.GetFirstNode(f"OS {name}", "vtkMRMLPlotSeriesNode", False, True) or \
            scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"OS {name}")
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName("Months")
        series.SetYColumnName(name)
        # A line series is drawn against the point index, ignoring the X column (checked in Slicer's
        # vtkMRMLPlotSeriesNode); a scatter series without markers is a curve against months.
        series.SetPlotType(series.PlotTypeScatter)
        series.SetMarkerStyle(series.MarkerStyleNone)
        series.SetLineStyle(series.LineStyleSolid if index == 0 else series.LineStyleDash)
        series.SetLineWidth(4 if index == 0 else 2)
        chart_node.AddAndObservePlotSeriesNodeID(series.GetID())


SCANS = {"followup": "follow-up (after induction therapy)", "baseline": "baseline (no follow-up given)"}


def score_rows(results: Sequence, time_point: str = "") -> list[list[str]]:
    """Points per criterion and the risk group of each clinical score (Fong, GAME), first the scan scored."""
    rows = []
    for result in results:
        if time_point:
            rows.append([result.score, "scan", SCANS.get(time_point, time_point), ""])
        for item in result.items:
            rows.append([result.score, item.name, "" if item.value is None else str(item.value),
                         "missing" if item.points is None else str(item.points)])
        rows.append([result.score, "total", "", result.status])
    return rows


def write_score_table(results: Sequence, table_node, time_point: str = "") -> None:
    fill_table(table_node, ("Score", "Criterion", "Value", "Points"), score_rows(results, time_point))
