"""The command line's statistics commands: ``analyze`` (the study's analysis on a cohort table) and
``refit-model`` (the survival model refitted on a cohort). pandas, lifelines and statsmodels load only here."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli import _add_json_option, _emit, _print_warnings


def add_analysis_parsers(commands) -> None:
    """The analyze and refit-model commands (cohort statistics; their libraries are imported when run)."""
    analyze = commands.add_parser(
        "analyze", help="cohort statistics from a table (Cox models, added value, Table 1, follow-up)",
        description="The study's analysis on your cohort: Cox models with splines, likelihood-ratio tests, "
                    "Harrell's C with bootstrap, Table 1, follow-up, figures. Settings in a TOML file (see README, "
                    "'Analysis'). Needs pandas, lifelines, statsmodels and matplotlib.")
    analyze.add_argument("table", help="CSV with one row per patient (e.g. the batch's results.csv joined with "
                                       "clinical columns)")
    analyze.add_argument("--config", required=True, metavar="analysis.toml", help="analysis settings (TOML)")
    analyze.add_argument("--output", required=True, metavar="DIR", help="folder for analysis.json, tables, figures")
    analyze.add_argument("--overwrite", action="store_true", help="replace an existing analysis in DIR")
    analyze.set_defaults(handler=_run_analyze)

    refit = commands.add_parser(
        "refit-model", help="refit the survival model (Royston-Parmar, ln TTV) on your cohort",
        description="Report how the embedded model performs on a cohort (C, calibration slope, observed vs "
                    "predicted 5-year survival by TTV tertile), then refit the same model family on it and write a "
                    "model file that `predict --model` reads.")
    refit.add_argument("table", help="CSV with one row per patient")
    refit.add_argument("--time", required=True, metavar="COL", help="overall survival time column (months)")
    refit.add_argument("--event", required=True, metavar="COL", help="event column (1 = death, 0 = censored)")
    refit.add_argument("--ttv-column", required=True, metavar="COL", help="baseline TTV column (mL)")
    refit.add_argument("--output", required=True, metavar="model.json", help="model file to write")
    refit.add_argument("--time-origin", default="", help="what time 0 is (e.g. 'detection of liver metastases')")
    refit.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    _add_json_option(refit)
    refit.set_defaults(handler=_run_refit_model)


def _run_analyze(args: argparse.Namespace) -> int:
    from .analysis.run import analyze

    document = analyze(args.table, args.config, args.output, overwrite=args.overwrite)
    _print_warnings(document["warnings"])
    rows = document["rows"]
    print(f"Analysed {rows['analysed']} of {rows['read']} patients ({document['outcome']['events']} events); "
          f"wrote {Path(args.output) / 'analysis.json'} and {', '.join(document['files'])}.")
    for comparison in document["comparisons"]:
        print(f"{comparison['base']} -> {comparison['extended']}: LR chi-square {comparison['lr_chi2']:.2f} on "
              f"{comparison['df']} df, P = {comparison['p']:.3g}; C {comparison['concordance_base']:.3f} -> "
              f"{comparison['concordance_extended']:.3f}")
    return 0


def _run_refit_model(args: argparse.Namespace) -> int:
    from .analysis.refit import format_refit, refit_model_file

    report = refit_model_file(args.table, args.time, args.event, args.ttv_column, args.output,
                              time_origin=args.time_origin, overwrite=args.overwrite)
    _print_warnings(report["warnings"])
    _emit(report, format_refit(report), args.json)
    return 0
