"""The ``analyze`` use case: a table and a settings file in, ``DIR/analysis.json`` plus tables and figures out.

The same settings, table and seed give a byte-identical ``analysis.json`` (no clock time in it; one seeded
generator per bootstrap). Existing outputs are not overwritten unless asked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from .bootstrap import bootstrap_added_value
from .concordance import harrell_c
from .config import AnalysisConfig, load_config
from .dataset import CohortRows, analysed_rows, read_table
from .followup import CI_METHOD, median_with_ci, reverse_km_follow_up
from .models import analyse_model, design
from .terms import build_term, term_values

OUTPUT_NAMES = ("analysis.json", "table1.csv", "table1.html", "summary.html")


def analyze(table_path: str | Path, config_path: str | Path, output_dir: str | Path,
            overwrite: bool = False) -> dict:
    """Run the whole analysis; returns the document written to ``output_dir/analysis.json``."""
    config = load_config(config_path)
    output = Path(output_dir)
    if not overwrite and (output / "analysis.json").exists():
        raise InputError(f"{output / 'analysis.json'} exists; choose another output folder or add --overwrite.")
    frame = read_table(table_path, config.missing_values)
    rows = analysed_rows(frame, config)
    document, context = analyse(rows, config)
    document["input"] = {"table": Path(table_path).name, "table_sha256": _sha256(table_path),
                         "settings": Path(config_path).name, "settings_sha256": _sha256(config_path)}
    output.mkdir(parents=True, exist_ok=True)
    from .outputs import write_outputs

    write_outputs(document, rows, config, context, output)
    _write_json(document, output / "analysis.json")
    return document


def analyse(rows: CohortRows, config: AnalysisConfig) -> tuple[dict, dict]:
    """Every number of the analysis, and the fits and terms the figures need."""
    warnings: list[str] = list(rows.outcome_notes)
    needed = list(dict.fromkeys(config.model_columns() + list(config.membership_variables)))
    terms = {name: build_term(rows, config.variables[name]) for name in needed}
    matrices = {name: term.matrix(term_values(rows, term)) for name, term in terms.items()}
    models, fits = {}, {}
    for name, members in config.models.items():
        models[name], fits[name] = analyse_model(name, members, rows, terms, matrices, config.contrasts, warnings)
    comparisons = []
    for index, (base, extended) in enumerate(config.comparisons):
        comparisons.append(_comparison(rows, config, terms, matrices, fits, base, extended, index))
    document = {
        "tool": "ttvprognosis analyze", "settings": config.settings, "seed": config.seed,
        "versions": _versions(),
        "rows": {"read": rows.rows_read, "analysed": len(rows.ids), "excluded": rows.excluded,
                 "rule": "complete cases over the outcome and every variable of the models, Table 1 and the "
                         "membership model"},
        "outcome": {"events": int(rows.event.sum()), "censored": int(len(rows.event) - rows.event.sum())},
        "models": models, "comparisons": comparisons,
        "follow_up_months": reverse_km_follow_up(rows.time, rows.event),
        "survival_medians": _medians(rows, config),
    }
    if config.table1_by:
        from .table1 import table_one

        categorical = {name for name in config.table1_variables if config.variables[name].kind == "categorical"}
        document["table1"] = table_one(rows, config.table1_by, config.table1_variables, categorical)
    if config.membership_by:
        from .membership import membership_c

        columns = design(config.membership_variables, terms, matrices)
        document["membership"] = membership_c(rows.texts(config.membership_by), columns.matrix,
                                              config.replicates, np.random.default_rng([config.seed, 1000]))
        document["membership"]["variables"] = list(config.membership_variables)
    document["warnings"] = warnings
    return document, {"terms": terms, "matrices": matrices, "fits": fits}


def _comparison(rows, config, terms, matrices, fits, base: str, extended: str, index: int) -> dict:
    from .cox import likelihood_ratio

    base_design = design(config.models[base], terms, matrices)
    extended_design = design(config.models[extended], terms, matrices)
    test = likelihood_ratio(fits[extended], fits[base], f"Comparison {base} -> {extended}")
    c_base = harrell_c(rows.time, rows.event, fits[base].linear_predictor(base_design.matrix))
    c_extended = harrell_c(rows.time, rows.event, fits[extended].linear_predictor(extended_design.matrix))
    boot = bootstrap_added_value(rows.time, rows.event, base_design.matrix, base_design.columns,
                                 extended_design.matrix, extended_design.columns, config.replicates,
                                 np.random.default_rng([config.seed, index]))
    corrected = {}
    if boot["optimism_base"] is not None:
        corrected = {"base": c_base - boot["optimism_base"], "extended": c_extended - boot["optimism_extended"]}
    return {"base": base, "extended": extended, "added_variables": [v for v in config.models[extended]
                                                                     if v not in config.models[base]],
            **test, "concordance_base": c_base, "concordance_extended": c_extended, "delta_c": c_extended - c_base,
            "delta_c_ci95": boot["delta_c_ci95"], "optimism_corrected_concordance": corrected,
            "bootstrap": {"replicates": boot["replicates"], "failed_replicates": boot["failed_replicates"],
                          "method": "patients resampled with replacement; both models refitted on each resample "
                                    "(paired); percentile CI; optimism = mean(C on resample - C on original)"}}


def _medians(rows: CohortRows, config: AnalysisConfig) -> dict:
    result = {"ci_method": CI_METHOD, "all": median_with_ci(rows.time, rows.event)}
    if config.follow_up_by:
        labels = np.asarray(rows.texts(config.follow_up_by))
        result["by"] = config.follow_up_by
        result["groups"] = {group: median_with_ci(rows.time[labels == group], rows.event[labels == group])
                            for group in sorted(set(labels.tolist()))}
    return result


def _versions() -> dict:
    versions = {"ttvprognosis": __version__, "python": platform.python_version()}
    for package in ("numpy", "scipy", "pandas", "lifelines", "statsmodels", "matplotlib"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = None
    return versions


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def json_ready(value):
    """Plain JSON types; non-finite numbers become null (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    return value


def _write_json(document: dict, path: Path) -> None:
    text = json.dumps(json_ready(document), indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
