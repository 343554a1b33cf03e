"""The one-page HTML summary of an analysis: rows, models, added value, follow-up, figures, warnings."""

from __future__ import annotations

import html


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}"


def _p(value) -> str:
    return "n/a" if value is None else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def _table(header: list[str], lines: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in line) + "</tr>"
                   for line in lines)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_page(document: dict, files: list[str]) -> str:
    parts = [f"<h1>Cohort analysis</h1><p>{document['rows']['analysed']} of {document['rows']['read']} patients "
             f"analysed ({html.escape(document['rows']['rule'])}); {document['outcome']['events']} events. "
             f"Seed {document['seed']}. Research use only.</p>"]
    for name, model in document["models"].items():
        parts.append(f"<h2>Model '{html.escape(name)}'</h2><p>n = {model['n']}, events = {model['events']}, "
                     f"log-likelihood {model['log_likelihood']:.3f}, Harrell's C {_number(model['concordance'])}, "
                     f"{model['events_per_df']:.1f} events per degree of freedom.</p>")
        parts.append(_table(["term", "HR", "95 % CI", "P"],
                            [[row["term"], _number(row["hazard_ratio"]),
                              f"{_number(row['ci95'][0])} to {_number(row['ci95'][1])}", _p(row["p"])]
                             for row in model["coefficients"]]))
        parts.append(_table(["variable (all its columns)", "LR chi-square", "df", "P"],
                            [[row["variable"], _number(row["lr_chi2"], 2), row["df"], _p(row["p"])]
                             for row in model["variables"]]
                            + [[f"{row['variable']}: nonlinearity", _number(row["lr_chi2"], 2), row["df"],
                                _p(row["p"])] for row in model["nonlinearity"]]))
        for contrast in model["contrasts"]:
            parts.append(f"<p>HR {html.escape(contrast['variable'])} {contrast['value']} vs {contrast['reference']}: "
                         f"{_number(contrast['hazard_ratio'])} ({_number(contrast['ci95'][0])} to "
                         f"{_number(contrast['ci95'][1])})</p>")
    if document["comparisons"]:
        parts.append("<h2>Added value</h2>")
        parts.append(_table(["base", "extended", "LR chi-square (df)", "P", "C base", "C extended", "delta C (95 % CI)",
                             "optimism-corrected C"],
                            [[c["base"], c["extended"], f"{c['lr_chi2']:.2f} ({c['df']})", _p(c["p"]),
                              _number(c["concordance_base"]), _number(c["concordance_extended"]),
                              f"{_number(c['delta_c'])} ({_ci(c['delta_c_ci95'])})",
                              ", ".join(f"{k} {_number(v)}" for k, v in c["optimism_corrected_concordance"].items())
                              or "n/a"]
                             for c in document["comparisons"]]))
    follow = document["follow_up_months"]
    medians = document["survival_medians"]
    parts.append("<h2>Follow-up and survival</h2><p>Median follow-up (reverse Kaplan-Meier) "
                 f"{_number(follow['median'], 1)} "
                 f"(IQR {_number(follow['q1'], 1)} to {_number(follow['q3'], 1)}). Kaplan-Meier median "
                 f"{_number(medians['all']['median'], 1)} (95 % CI {_ci(medians['all']['ci95'], 1)}; "
                 f"{html.escape(medians['ci_method'])}).</p>")
    if "membership" in document:
        member = document["membership"]
        parts.append(f"<p>Membership model C ({html.escape(member['modelled_group'])} vs the other group): "
                     f"{_number(member['c_statistic'])} (95 % CI {_ci(member['ci95'])}).</p>")
    if "table1" in document:
        parts.append("<p><a href='table1.html'>Table 1</a> (<a href='table1.csv'>CSV</a>)</p>")
    for name in files:
        if name.endswith(".png"):
            parts.append(f"<p><img src='{html.escape(name)}' style='max-width:640px'></p>")
    if document["warnings"]:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in document["warnings"])
                     + "</ul>")
    if document["rows"]["excluded"]:
        parts.append("<h2>Excluded patients</h2>" + _table(["patient", "reason"], [[e["id"], e["reason"]] for e in
                                                                                  document["rows"]["excluded"]]))
    style = ("body{font-family:sans-serif;max-width:900px;margin:auto}table{border-collapse:collapse;margin:6px 0}"
             "td,th{border-bottom:1px solid #ccc;padding:2px 8px;text-align:left}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Cohort analysis</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")


def _ci(interval, digits: int = 3) -> str:
    if not interval or interval[0] is None or interval[1] is None:
        return "n/a"
    return f"{interval[0]:.{digits}f} to {interval[1]:.{digits}f}"
