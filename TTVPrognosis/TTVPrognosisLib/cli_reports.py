"""The command line's report commands: ``report`` (patient report) and ``export-seg`` (DICOM SEG, SR).

Kept beside :mod:`.cli` so that the command line stays one small module per group of commands; the parsers are
added to the same ``ttvprognosis`` command and share its options, output and exit codes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli import (
    _add_clinical_options,
    _add_json_option,
    _add_registration_options,
    _add_segment_role_options,
    _add_series_option,
    _clinical_inputs,
    _emit,
    _print_warnings,
)
from .errors import InputError
from .formats.io import require_writable_folder


def add_report_parser(commands) -> None:
    report = commands.add_parser(
        "report", help="a patient report (PDF and/or HTML) with key numbers, key images and prognosis",
        description="Write a one- to three-page patient report: TTV at both time points and its change, lesion "
                    "counts and diameters, RECIST 1.1 and TBS side by side, key images (an axial CT slice through "
                    "each target, new and disappeared lesion, baseline beside follow-up), an overview of all "
                    "lesions, the survival chart, the model's population and the provenance of every number. "
                    "Give one segmentation for a single time point. Research use only.")
    report.add_argument("baseline", help="baseline segmentation file (or the only one)")
    report.add_argument("followup", nargs="?", help="follow-up segmentation file (optional)")
    report.add_argument("--baseline-image", "--image", dest="baseline_image", metavar="CT",
                        help="baseline CT (for the key images and registration)")
    report.add_argument("--followup-image", metavar="CT", help="follow-up CT")
    report.add_argument("--output", metavar="REPORT.pdf", help="PDF report to write")
    report.add_argument("--html", metavar="REPORT.html", help="self-contained HTML report to write (pictures inside)")
    report.add_argument("--overwrite", action="store_true", help="replace existing report files")
    report.add_argument("--window", default="150,75", metavar="WIDTH,LEVEL",
                        help="CT window of the key images in HU (default: 150,75, a liver window)")
    report.add_argument("--case", default="", metavar="LABEL", help="a case label to print on the report")
    report.add_argument("--include-identifiers", action="store_true",
                        help="also show the patient fields of DICOM CTs (name, ID, birth date...) and full paths")
    report.add_argument("--date", metavar="YYYY-MM-DD[THH:MM]",
                        help="the report's date (default: SOURCE_DATE_EPOCH if set, else now): fixes the bytes")
    report.add_argument("--model", metavar="FILE", help="survival model file (JSON) instead of the embedded default")
    _add_registration_options(report)
    _add_clinical_options(report)
    _add_segment_role_options(report)
    _add_series_option(report)
    _add_json_option(report)
    report.set_defaults(handler=_run_report)


def _check_report_outputs(args: argparse.Namespace) -> None:
    if not args.output and not args.html:
        raise InputError("Name the report to write: --output REPORT.pdf and/or --html REPORT.html.")
    inputs = {Path(path).resolve() for path in (args.baseline, args.followup, args.baseline_image,
                                                  args.followup_image, args.model) if path}
    for path in (args.output, args.html):
        if path and Path(path).resolve() in inputs:
            raise InputError(f"'{path}' is one of the inputs; choose another name for the report.")
    if args.output and not args.output.lower().endswith(".pdf"):
        raise InputError(f"--output writes a PDF: give it a name ending in .pdf, not '{args.output}'.")
    if args.html and not args.html.lower().endswith((".html", ".htm")):
        raise InputError(f"--html writes an HTML file: give it a name ending in .html, not '{args.html}'.")
    for path in (args.output, args.html):
        if path and Path(path).exists() and not args.overwrite:
            raise InputError(f"'{path}' already exists; add --overwrite to replace it, or choose another name.")
        if path:
            require_writable_folder(path)


def _run_report(args: argparse.Namespace) -> int:
    from .pipeline import report_inputs, write_patient_report
    from .prognosis.model import load_model
    from .report.documents import scores_section
    from .report.figures import parse_window
    from .report.patient_report import ReportOptions
    from .response.comparison import Comparison

    _check_report_outputs(args)
    if args.followup_image and not args.followup:
        raise InputError("--followup-image needs a follow-up segmentation (the second file).")
    window = parse_window(args.window)
    model = load_model(args.model)
    result, time_points = report_inputs(args.baseline, args.followup, args.baseline_image, args.followup_image,
                                        exclude=args.exclude_segment, liver=args.liver_segment,
                                        register=not args.no_registration, registration_mode=args.registration,
                                        series=args.series, lesion=args.lesion_segment)
    comparison = result if isinstance(result, Comparison) else None
    baseline = comparison.baseline if comparison else result
    _print_warnings(baseline.warnings + (comparison.followup.warnings + comparison.warnings if comparison else []))
    clinical = _clinical_inputs(args)
    registration = "off" if args.no_registration else args.registration
    settings = {"Registration": registration if args.followup else "not applicable (one time point)",
                "CT window (W/L, HU)": f"{window[0]:g} / {window[1]:g}", "Model": model.model_id,
                "Excluded segments": ", ".join(args.exclude_segment) or "none",
                "Liver segments named": ", ".join(args.liver_segment) or "none (liver-named segments)",
                "Lesion segments named": ", ".join(args.lesion_segment) or "none (all other segments)"}
    if args.series:
        settings["DICOM series chosen"] = ", ".join(args.series)
    paths = {"Baseline segmentation": args.baseline, "Baseline CT": args.baseline_image,
             "Follow-up segmentation": args.followup, "Follow-up CT": args.followup_image,
             "Model file": args.model}
    options = ReportOptions(window, tuple(args.exclude_segment), tuple(args.liver_segment), args.case, model,
                            lesion=tuple(args.lesion_segment))
    written = write_patient_report(result, time_points, paths, args.output, args.html, settings, options,
                                   include_identifiers=args.include_identifiers, date=args.date, clinical=clinical)
    document = {"written": [str(path) for path in written], "ttv_ml": baseline.ttv_ml,
                "followup_ttv_ml": comparison.followup.ttv_ml if comparison else None,
                "clinical_scores": scores_section(baseline, comparison.followup if comparison else None, clinical)}
    _emit(document, "\n".join(f"Wrote {path}" for path in written), args.json)
    return 0


def add_export_seg_parser(commands) -> None:
    export = commands.add_parser(
        "export-seg", help="write a segmentation as a DICOM Segmentation object on its CT series (for PACS)",
        description="Write a standard DICOM Segmentation (SEG) object referencing the CT series the segmentation "
                    "was drawn on: one segment per lesion segment (coded as a metastatic neoplasm in the liver), "
                    "the liver coded as liver, segment names and the Verified state kept. The segmentation must lie "
                    "on the CT's voxel grid (or on a part of it).")
    export.add_argument("segmentation", help="segmentation file (.seg.nrrd or label image)")
    export.add_argument("--image", required=True, metavar="CT_DICOM_FOLDER", help="folder of the CT series (DICOM)")
    export.add_argument("--output", required=True, metavar="SEG.dcm", help="DICOM SEG file to write")
    export.add_argument("--sr", metavar="SR.dcm",
                        help="also write the measurements (TTV, lesion volumes and diameters) as a DICOM SR "
                             "(TID 1500) referencing the SEG")
    export.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_segment_role_options(export)
    _add_json_option(export)
    export.set_defaults(handler=_run_export_seg)


def _run_export_seg(args: argparse.Namespace) -> int:
    from .formats.io import read_segmentation
    from .report.dicom_seg_export import export_dicom_seg

    output = Path(args.output)
    targets = [output] + ([Path(args.sr)] if args.sr else [])
    if args.sr and Path(args.sr).resolve() == output.resolve():
        raise InputError("--sr and --output name the same file; give the SR its own name.")
    for target in targets:
        if target.exists() and not args.overwrite:
            raise InputError(f"'{target}' already exists; add --overwrite to replace it, or choose another name.")
        require_writable_folder(target)
    volume = read_segmentation(args.segmentation)
    summary = export_dicom_seg(volume, args.image, output, exclude=args.exclude_segment, liver=args.liver_segment)
    _print_warnings(summary.warnings)
    if args.sr:
        from .measure.volumetry import measure
        from .report.dicom_sr_export import export_measurement_sr

        measurement = measure(volume, exclude=args.exclude_segment, liver=args.liver_segment)
        if abs(measurement.ttv_ml - summary.ttv_ml) > 1e-9 * max(measurement.ttv_ml, 1.0):
            raise InputError("Internal check failed: the TTV measured differs from the TTV stored in the SEG; no "
                             "SR written.")
        export_measurement_sr(summary.dataset, summary.ct_datasets, measurement, summary.segments, args.sr)
    lines = [f"Wrote {output}: {len(summary.segments)} segment(s) on CT series {summary.series_instance_uid}"]
    if args.sr:
        lines.append(f"Wrote {args.sr}: TTV {summary.ttv_ml:.2f} mL, lesion volumes and diameters (DICOM SR)")
    lines += [f"  {item['number']}: {item['label']} ({item['role']}, "
              f"{'verified' if item['verified'] else 'not verified'}, {item['voxels']} voxels)"
              for item in summary.segments]
    _emit(summary.to_dict(), "\n".join(lines), args.json)
    return 0


def prepare_reports_folder(folder: Path, patient_ids: list[str], replace: bool) -> None:
    """Create the reports folder; refuse to overwrite reports of an earlier run unless resuming or overwriting."""
    from .cohort.patient import report_file_name

    names = [report_file_name(patient_id) for patient_id in patient_ids]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise InputError(f"Patient ids that differ only in characters a file name cannot hold would share a report "
                         f"file ({', '.join(clashes)}); make them distinct in the manifest.")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--reports '{folder}' is a file; give a folder for the reports.")
    existing = [name for name in names if (folder / name).exists()]
    if existing and not replace:
        raise InputError(f"The reports folder '{folder}' already holds reports of these patients ({existing[0]}"
                         f"{', ...' if len(existing) > 1 else ''}); add --overwrite to replace them, or --resume.")
    require_writable_folder(folder / names[0] if names else folder / "report.pdf")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"Could not create the reports folder '{folder}' ({error.strerror or error}).") from error
