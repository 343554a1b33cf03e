"""What people look at, beside ``analysis.json``: Table 1 (CSV, HTML), figures (PNG/SVG), a one-page summary."""

from __future__ import annotations

import csv
import html
from pathlib import Path

import numpy as np

from .config import AnalysisConfig
from .cox import breslow_cumulative_hazard
from .dataset import numeric_column
from .models import design
from .summary_html import summary_page


def write_outputs(document: dict, rows, config: AnalysisConfig, context: dict, folder: Path) -> None:
    files: list[str] = []
    if "table1" in document:
        lines = table1_lines(document["table1"])
        with open(folder / "table1.csv", "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(lines)
        (folder / "table1.html").write_text(table1_html(lines), encoding="utf-8")
        files += ["table1.csv", "table1.html"]
    files += _figures(document, rows, config, context, folder)
    document["files"] = [*files, "summary.html"]
    (folder / "summary.html").write_text(summary_page(document, files), encoding="utf-8")


def table1_lines(table: dict) -> list[list[str]]:
    groups = [group["group"] for group in table["groups"]]
    lines = [["Characteristic", *[f"{table['by']} = {g} (n = {n['n']})" for g, n in zip(groups, table["groups"])],
              "P", "Test"]]
    for row in table["rows"]:
        p = "" if row["p"] is None else _p_text(row["p"])
        if row["kind"] == "continuous":
            cells = [f"{s['median']:.4g} ({s['q1']:.4g} to {s['q3']:.4g})"
                     for s in (row["summary"][g] for g in groups)]
            lines.append([f"{row['variable']}, median (IQR)", *cells, p, row["test"]])
            continue
        lines.append([f"{row['variable']}, n (%)", *[""] * len(groups), p, row["test"] or ""])
        for level in row.get("levels", []):
            counts = [row["summary"][g][level] for g in groups]
            lines.append([f"  {level}", *[f"{c['n']} ({c['percent']:.0f} %)" for c in counts], "", ""])
    return lines


def table1_html(lines: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in lines[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in line) + "</tr>" for line in lines[1:])
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Table 1</title><style>"
            "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border-bottom:1px solid #ccc;"
            "padding:3px 8px;text-align:left}</style></head><body><table>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n")


def _p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _figures(document: dict, rows, config: AnalysisConfig, context: dict, folder: Path) -> list[str]:
    from . import plots

    settings = config.plots
    model = settings.model or next(iter(config.models))
    formats = settings.formats
    files = plots.save(plots.importance_chart(model, document["models"][model]["variables"]), folder,
                       "variable_importance", formats)
    time_label = f"Time ({config.outcome.time or 'months from the last liver treatment'})"
    terms, fits, matrices = context["terms"], context["fits"], context["matrices"]
    if settings.burden_variable and config.variables[settings.burden_variable].kind != "categorical":
        values = numeric_column(rows, settings.burden_variable)
        files += plots.save(plots.km_by_tertile(rows.time, rows.event, values, settings.burden_variable, time_label),
                            folder, "km_by_tertile", formats)
    members = config.models[model]
    model_design = design(members, terms, matrices)
    if settings.partial_effect and terms[settings.partial_effect].kind != "categorical":
        term = terms[settings.partial_effect]
        figure = plots.partial_effect(term, fits[model], model_design.slices[term.variable],
                                      numeric_column(rows, term.variable), model)
        files += plots.save(figure, folder, "partial_effect", formats)
    if settings.adjusted_values and settings.burden_variable in members:
        profile, text = _profile(rows, members, terms, settings.burden_variable)
        term = terms[settings.burden_variable]
        baseline = breslow_cumulative_hazard(fits[model], rows.time, rows.event, model_design.matrix)
        figure = plots.adjusted_curves(fits[model], baseline, profile, model_design.slices[term.variable], term,
                                       settings.adjusted_values, time_label, text, model)
        files += plots.save(figure, folder, "adjusted_curves", formats)
    return files


def _profile(rows, members, terms, skipped: str) -> tuple[np.ndarray, str]:
    """Design row of the covariate profile the adjusted curves condition on, and its description; the columns
    of ``skipped`` (the burden variable, set per curve) are left 0."""
    parts, described = [], []
    for name in members:
        term = terms[name]
        if name == skipped:
            parts.append(np.zeros(len(term.columns)))
        elif term.kind == "categorical":
            parts.append(term.matrix([term.reference])[0])
            described.append(f"{name} = {term.reference}")
        else:
            values = numeric_column(rows, name)
            distinct, counts = np.unique(values, return_counts=True)
            typical = float(distinct[np.argmax(counts)]) if distinct.size <= 2 else float(np.median(values))
            parts.append(term.matrix([typical])[0])
            described.append(f"{name} = {typical:.4g}")
    return np.concatenate(parts), ("; ".join(described)
                                   + " (medians; the commoner value of two-valued variables; reference levels)")
