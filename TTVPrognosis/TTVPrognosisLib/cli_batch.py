"""The command line's ``batch`` command: a whole cohort from a manifest, on local processes or a Dask cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import (
    DEFAULT_PATIENT_TIMEOUT_SECONDS,
    EXIT_INPUT_ERROR,
    _add_registration_options,
    _add_segment_role_options,
    _interrupt,
    _positive_int,
    _print_warnings,
    _seconds,
)
from .errors import InputError


def add_batch_parser(commands) -> None:
    batch = commands.add_parser(
        "batch", help="a whole cohort from a manifest CSV: one results row per patient",
        description="Measure, compare and predict for every patient listed in a manifest CSV (columns patient_id, "
                    "baseline_segmentation, and optionally followup_segmentation, baseline_image, followup_image; "
                    "other columns are passed through; relative paths start from the manifest's folder). Writes "
                    "one row per patient with status and error columns; a failing patient is recorded and the "
                    "others go on. Exit code 0 when every patient succeeded, 1 when some failed or the manifest "
                    "is unusable.")
    batch.add_argument("manifest", help="cohort manifest (CSV)")
    batch.add_argument("--output", required=True, metavar="RESULTS.csv", help="results table to write")
    batch.add_argument("--lesions-output", metavar="LESIONS.csv", help="also write one row per lesion")
    batch.add_argument("--workers", type=_positive_int, metavar="N",
                       help="parallel processes (default: one per core; 1 with --patient-timeout 0 runs in this "
                            "process)")
    batch.add_argument("--patient-timeout", type=_seconds, default=DEFAULT_PATIENT_TIMEOUT_SECONDS, metavar="SECONDS",
                       help=f"stop a patient that takes longer and record it as failed (default "
                            f"{DEFAULT_PATIENT_TIMEOUT_SECONDS:g}; 0 = no limit)")
    batch.add_argument("--dask-scheduler", metavar="ADDRESS",
                       help="run on a Dask cluster (e.g. tcp://10.0.0.5:8786) instead of local processes; the "
                            "workers must see the input files under the same paths")
    rerun = batch.add_mutually_exclusive_group()
    rerun.add_argument("--resume", action="store_true",
                       help="continue an interrupted run: keep the patients already in --output, compute the rest")
    rerun.add_argument("--overwrite", action="store_true", help="replace existing output tables")
    batch.add_argument("--retry-failed", action="store_true",
                       help="with --resume: compute the patients recorded as failed again")
    _add_registration_options(batch, "do not register follow-ups: each patient's scans are already aligned")
    batch.add_argument("--excel", action="store_true",
                       help="also write RESULTS.excel.csv (and LESIONS.excel.csv) for spreadsheets: UTF-8 with BOM, "
                            "the manifest's delimiter, decimal commas with ';'")
    batch.add_argument("--reports", metavar="DIR",
                       help="also write each patient's report (PDF, as the report command makes it) into DIR")
    _add_segment_role_options(batch)
    batch.set_defaults(handler=_run_batch)


def _run_batch(args: argparse.Namespace) -> int:
    import signal

    from .cohort.manifest import read_manifest
    from .cohort.outputs import check_outputs
    from .cohort.progress import LogProgress, TerminalProgress
    from .cohort.runner import run_cohort

    if args.retry_failed and not args.resume:
        raise InputError("--retry-failed continues an earlier run: use it together with --resume.")
    outputs = [path for path in (args.output, args.lesions_output) if path]
    check_outputs(args.output, args.lesions_output, args.resume, args.overwrite, args.manifest)
    manifest = read_manifest(args.manifest, outputs=outputs)
    _print_warnings(manifest.warnings)
    if args.reports:
        from .cli_reports import prepare_reports_folder

        prepare_reports_folder(Path(args.reports), [entry.patient_id for entry in manifest.entries],
                                args.resume or args.overwrite)
    problems = manifest.file_problems
    if problems:
        print(f"{len(problems)} input problem(s) found; these patients are recorded as failed and the others run:",
              file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else LogProgress(sys.stderr)
    client = _dask_client(args.dask_scheduler) if args.dask_scheduler else None
    previous_handler = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)  # a killed job still writes what is finished
    try:
        result = run_cohort(manifest, args.output, args.lesions_output, workers=args.workers, executor=client,
                            resume=args.resume, retry_failed=args.retry_failed, overwrite=args.overwrite,
                            progress=progress, exclude=args.exclude_segment, liver=args.liver_segment,
                            lesion=args.lesion_segment,
                            register=not args.no_registration, registration_mode=args.registration,
                            excel=args.excel, patient_timeout=args.patient_timeout or None,
                            reports_dir=args.reports)
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        print(f"Stopped. Finished patients are saved in '{args.output}'; add --resume to the same command to go "
              f"on from there.", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if progress is not None:
            progress.close()
        if client is not None:
            client.close()
    _print_warnings(result.warnings[len(manifest.warnings):])  # the manifest's were printed before the run
    for patient_id, error in result.failures:
        print(f"Failed: {patient_id}: {error}", file=sys.stderr)
    kept = f"; {result.resumed} kept from the earlier run, {result.computed} computed now" if args.resume else ""
    print(f"{result.succeeded} of {result.total} patients succeeded, {result.failed} failed{kept}.")
    print(f"Results: {Path(args.output).resolve()}")
    if args.lesions_output:
        print(f"Lesions: {Path(args.lesions_output).resolve()}")
    print("Beside them: a codebook per table (*.codebook.csv) and the provenance (*.provenance.json)"
          + ("; spreadsheet copies (*.excel.csv)." if args.excel else "."))
    return 0 if result.ok else EXIT_INPUT_ERROR


def _dask_client(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--dask-scheduler needs Dask: pip install 'dask[distributed]'.") from None
    try:
        return Client(address, timeout=30)
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(f"Could not connect to the Dask scheduler at '{address}': {error}.") from None
