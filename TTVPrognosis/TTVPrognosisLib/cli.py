"""Command line: ``ttvprognosis`` (also ``python -m TTVPrognosisLib``).

Each command is a thin wrapper over the same library functions the Slicer panel uses. Output is a
human-readable table, or with ``--json`` exactly one JSON document on stdout. Problems go to stderr with
a non-zero exit code: 1 for bad input (the message says what to fix), 2 for a wrong command line,
3 for an internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .allocator import reuse_freed_memory
from .errors import InputError, os_error_message
from .formats.io import require_writable_folder

EXIT_INPUT_ERROR = 1
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl+C
EXIT_TERMINATED = 143  # 128 + SIGTERM
DEFAULT_PATIENT_TIMEOUT_SECONDS = 1800.0  # batch: a patient taking longer is stopped (files that never end)
# Options whose values may start with "-" (negative RAS coordinates such as -52.9,14.7,4.9), and the forms a
# pasted point comes in: "(-40, -60, 61)" (Slicer's data probe), "[-40 -60 61]" (numpy), "-40;-60;61".
NUMERIC_LIST_OPTIONS = ("--point",)
_NUMBER = r"[-+\u2212]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?"
NUMERIC_LIST = re.compile(rf"^[\s(\[{{]*{_NUMBER}([\s,;]+{_NUMBER})*[\s)\]}}]*$", re.IGNORECASE)
SINGLE_NUMBER = re.compile(rf"^{_NUMBER}$", re.IGNORECASE)
POINT_SEPARATORS = re.compile(r"[\s,;]+")


def _add_segment_role_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exclude-segment", action="append", default=[], metavar="NAME",
                        help="leave this segment out (name, ID or label value); repeat for several")
    parser.add_argument("--liver-segment", action="append", default=[], metavar="NAME",
                        help="treat this segment as liver, not lesion (liver-named segments are by default)")
    parser.add_argument("--lesion-segment", action="append", default=[], metavar="NAME",
                        help="count only the segments named so as lesions (name, ID, label value or a wildcard "
                             "pattern such as 'Tumour*'; case is ignored); repeat for several")


def _add_clinical_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("clinical inputs of the Fong and GAME scores (computed on the follow-up; "
                                      "unknown when left out)")
    for name, what in (("--node-positive-primary", "node-positive primary tumour"), ("--ras-mutated",
                       "RAS-mutated tumour (GAME was derived with KRAS)"),
                       ("--extrahepatic-disease", "extrahepatic disease")):
        group.add_argument(name, choices=("yes", "no"), help=what)
    group.add_argument("--disease-free-interval-months", type=float, metavar="M",
                       help="months from the primary's resection to the liver metastases (0: synchronous)")
    group.add_argument("--cea-ng-ml", type=float, metavar="X", help="serum CEA (ng/mL) before liver treatment")


def _clinical_inputs(args: argparse.Namespace):
    from .prognosis.scores import ClinicalInputs

    def yes_no(value):
        return None if value is None else value == "yes"

    return ClinicalInputs(node_positive_primary=yes_no(args.node_positive_primary),
                          disease_free_interval_months=args.disease_free_interval_months, cea_ng_ml=args.cea_ng_ml,
                          kras_mutated=yes_no(args.ras_mutated), extrahepatic_disease=yes_no(args.extrahepatic_disease))
def _add_series_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--series", action="append", default=[], metavar="UID",
                        help="DICOM SeriesInstanceUID to read from a folder holding several series (the message "
                             "for such a folder lists them); repeat for several folders")


def _add_registration_options(parser: argparse.ArgumentParser,
                               no_registration_help: str = "do not register: the scans are already aligned (same "
                                                           "scanner coordinates)") -> None:
    parser.add_argument("--no-registration", action="store_true", help=no_registration_help)
    parser.add_argument("--registration", choices=("rigid", "affine"), default="rigid",
                        help="registration transform (default: rigid)")


def _add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttvprognosis",
        description="Total tumour volume (TTV), response and prognosis for colorectal liver metastases. "
                    "Research use only.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    measure = commands.add_parser("measure", help="TTV, lesions and diameters of one segmentation",
                                  description="Measure TTV, lesion count and diameters of a segmentation "
                                              "(.seg.nrrd or label image: each non-zero value is a segment).")
    measure.add_argument("segmentation", help="segmentation file (.seg.nrrd, .nrrd, .nii.gz, .mha, DICOM folder, "
                                              "DICOM SEG or RTSTRUCT)")
    measure.add_argument("--image", help="the CT it was drawn on (checks that both belong to the same scan; an "
                                         "RTSTRUCT's contours are rasterised on it)")
    _add_segment_role_options(measure)
    _add_series_option(measure)
    _add_json_option(measure)
    measure.set_defaults(handler=_run_measure)

    compare = commands.add_parser("compare", help="baseline versus follow-up: TTV change, RECIST 1.1, TBS",
                                  description="Compare a baseline and a follow-up segmentation: TTV change, lesions "
                                              "matched across time points (new, disappeared, merged, split), "
                                              "RECIST 1.1 and the Tumour Burden Score. The follow-up is registered "
                                              "to the baseline using the CTs when both are given, else the liver "
                                              "segments.")
    compare.add_argument("baseline", help="baseline segmentation file")
    compare.add_argument("followup", help="follow-up segmentation file")
    compare.add_argument("--baseline-image", help="baseline CT (optional; used for registration)")
    compare.add_argument("--followup-image", help="follow-up CT (optional; used for registration)")
    _add_registration_options(compare)
    _add_segment_role_options(compare)
    _add_clinical_options(compare)
    _add_series_option(compare)
    _add_json_option(compare)
    compare.set_defaults(handler=_run_compare)

    predict = commands.add_parser("predict", help="overall survival from the baseline TTV (embedded model)",
                                  description="Expected overall survival with 95 % band from the baseline TTV, "
                                              "using the embedded model (see its model card, MODEL_CARD.md) or "
                                              "your own model file. Research use only.")
    predict.add_argument("--baseline-ttv-ml", required=True, type=float, metavar="ML", help="baseline TTV in mL")
    predict.add_argument("--months", type=_months_list, metavar="M,M,...",
                         help="times in months (default: yearly over the model's supported span)")
    predict.add_argument("--model", metavar="FILE", help="model file (JSON) instead of the embedded default")
    _add_json_option(predict)
    predict.set_defaults(handler=_run_predict)

    segment = commands.add_parser(
        "segment-lesion", help="one-click lesion segmentation into a Slicer segmentation",
        description="Segment the lesion under each --point (RAS millimetres, as Slicer shows them) on the CT and "
                    "write one 'Lesion N' segment per point, tagged as an unverified lesion. If OUTPUT exists, "
                    "the new lesions are added to it and nothing already there is lost; existing lesions bound "
                    "the new ones. The liver (from --liver, or liver segments of OUTPUT) bounds them too.")
    segment.add_argument("image", help="the CT (any ITK format or a DICOM folder)")
    segment.add_argument("--point", action="append", required=True, type=_ras_point, metavar="R,A,S",
                         help="a point inside a lesion, in RAS mm; repeat for several lesions")
    segment.add_argument("--liver", metavar="SEGMENTATION",
                         help="liver segmentation (its liver-named segments, else all its segments)")
    segment.add_argument("--one-lesion", action="store_true",
                         help="all points belong to one lesion (e.g. a heterogeneous one) instead of one each")
    segment.add_argument("--output", required=True, metavar="OUT.seg.nrrd", help="Slicer segmentation to write")
    _add_series_option(segment)
    _add_json_option(segment)
    segment.set_defaults(handler=_run_segment_lesion)

    # here, not at the top: these modules import helpers from this one
    from .cli_analysis import add_analysis_parsers
    from .cli_batch import add_batch_parser
    from .cli_reports import add_export_seg_parser, add_report_parser

    add_report_parser(commands)
    add_export_seg_parser(commands)

    demo = commands.add_parser("demo", help="write the embedded sample case and compare it",
                               description="Write a synthetic baseline/follow-up pair (CT + Slicer "
                                           "segmentation) and show the comparison. Needs no data files.")
    demo.add_argument("--output", default="ttvprognosis-demo", help="folder for the sample files "
                                                                      "(default: ./ttvprognosis-demo)")
    _add_json_option(demo)
    demo.set_defaults(handler=_run_demo)

    add_batch_parser(commands)
    add_analysis_parsers(commands)
    return parser


def _months_list(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of months") from error


def _print_warnings(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"Warning: {warning}", file=sys.stderr)


def _emit(document: dict, text: str, as_json: bool) -> None:
    from .formats.json_document import to_json

    print(to_json(document) if as_json else text)


def _run_measure(args: argparse.Namespace) -> int:
    from .pipeline import measure_file
    from .report.text import format_measurement

    result = measure_file(args.segmentation, args.image, exclude=args.exclude_segment, liver=args.liver_segment,
                          series=args.series, lesion=args.lesion_segment)
    _print_warnings(result.warnings)
    _emit(result.to_dict(), format_measurement(result), args.json)
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from .pipeline import compare_files
    from .report.documents import comparison_document
    from .report.text import format_comparison, format_prognosis, format_scores

    comparison = compare_files(args.baseline, args.followup, args.baseline_image, args.followup_image,
                               exclude=args.exclude_segment, liver=args.liver_segment,
                               register=not args.no_registration, registration_mode=args.registration,
                               series=args.series, lesion=args.lesion_segment)
    _print_warnings(comparison.baseline.warnings + comparison.followup.warnings + comparison.warnings)
    document = comparison_document(comparison, clinical=_clinical_inputs(args))
    _emit(document, f"{format_comparison(comparison)}\n\n{format_prognosis(document['prognosis'])}\n\n"
                    f"{format_scores(document['clinical_scores'])}", args.json)
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from .prognosis.model import load_model, predict_overall_survival
    from .report.text import format_prediction

    prediction = predict_overall_survival(args.baseline_ttv_ml, load_model(args.model), months=args.months)
    _print_warnings(prediction.warnings)
    _emit(prediction.to_dict(), format_prediction(prediction), args.json)
    return 0


def _ras_point(text: str) -> tuple[float, float, float]:
    """R,A,S as typed or pasted: "-52.9,14.7,4.9", "(-40, -60, 61)", "[-40 -60 61]", "-40;-60;61"."""
    values: tuple[float, ...] = ()
    if NUMERIC_LIST.match(text.strip()):
        parts = POINT_SEPARATORS.split(text.strip().strip("()[]{} \t").replace("\u2212", "-"))
        try:
            values = tuple(float(part) for part in parts if part)
        except ValueError:
            values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"'{text}' is not a point: give R,A,S in millimetres, e.g. -52.9,14.7,4.9 "
                                         f"(also accepted: (-52.9, 14.7, 4.9) or -52.9;14.7;4.9)")
    return values[0], values[1], values[2]


def _run_segment_lesion(args: argparse.Namespace) -> int:
    from .formats.io import read_image, read_segmentation, write_segmentation
    from .segment.editing import add_lesion_at_points, liver_mask_from, on_grid

    output = Path(args.output)
    if not output.name.lower().endswith(".seg.nrrd"):
        raise InputError(f"segment-lesion writes a Slicer segmentation: give --output a name ending in .seg.nrrd "
                         f"(an existing one is added to), not '{output.name}'.")
    require_writable_folder(output)
    if not output.absolute().parent.is_dir():
        raise InputError(f"The folder '{output.absolute().parent}' does not exist, so '{output.name}' cannot be "
                         f"written there. Create it first, or give --output a path in an existing folder.")
    image = read_image(args.image, args.series)
    segmentation = on_grid(read_segmentation(output), image.geometry) if output.exists() else None
    liver = None
    if args.liver:
        liver, note = liver_mask_from(on_grid(read_segmentation(args.liver, args.image, args.series), image.geometry))
        if note:
            print(f"Note: {note}", file=sys.stderr)
    groups = [args.point] if args.one_lesion else [[point] for point in args.point]
    added, failed = [], []
    for number, points in enumerate(groups, start=1):
        try:
            step = add_lesion_at_points(image, segmentation, points, liver_mask_kji=liver)
        except InputError as error:
            message = str(error)
            if len(points) == 1 and message.startswith("Point 1 ("):  # each point is segmented on its own
                message = f"Point {number} (" + message[len("Point 1 ("):]
            failed.append({"points_ras": [list(point) for point in points], "error": message})
            print(f"Error: {message}", file=sys.stderr)
            continue
        segmentation = step.segmentation
        result = step.result
        added.append({"name": step.name, "segment_id": step.segment_id, "points_ras": [list(p) for p in points],
                      "volume_ml": result.volume_ml, "polarity": result.polarity,
                      "hu_band": [result.intensity.lower_hu, result.intensity.upper_hu],
                      "warnings": list(result.warnings)})
        _print_warnings(result.warnings)
    if added:
        try:
            write_segmentation(segmentation, output)
        except OSError as error:
            raise InputError(f"Could not write '{output}' ({error.strerror or error}); nothing was changed. Choose "
                             f"another --output and run again.") from error
    document = {"output": str(output), "written": bool(added), "added": added, "failed": failed}
    lines = [f"{item['name']}: {item['volume_ml']:.2f} mL ({item['polarity']})" for item in added]
    lines.append(f"Wrote {output}" if added else f"Nothing written: no lesion could be segmented ({output} unchanged).")
    _emit(document, "\n".join(lines), args.json)
    return EXIT_INPUT_ERROR if failed else 0


DEMO_MARKER = "ABOUT-THIS-DEMO.txt"


def _run_demo(args: argparse.Namespace) -> int:
    from .formats.demo_data import write_demo_case
    from .pipeline import compare_files
    from .report.documents import comparison_document
    from .report.text import format_comparison, format_prognosis, format_scores

    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"'{folder}' is a file; give --output a folder (new or empty) for the sample case.")
    require_writable_folder(folder / DEMO_MARKER)
    if folder.exists() and any(folder.iterdir()) and not (folder / DEMO_MARKER).exists():
        raise InputError(f"The folder '{folder}' already holds other files; choose an empty or new folder "
                         f"with --output so nothing of yours is overwritten.")
    paths = write_demo_case(folder)
    (folder / DEMO_MARKER).write_text(
        "Synthetic sample case written by 'ttvprognosis demo' (generated by code, no patient data).\n"
        "Open the CTs and .seg.nrrd files in 3D Slicer, or run:\n"
        f"  ttvprognosis compare {paths['baseline_segmentation'].name} {paths['followup_segmentation'].name}\n")
    comparison = compare_files(paths["baseline_segmentation"], paths["followup_segmentation"],
                               paths["baseline_image"], paths["followup_image"])
    _print_warnings(comparison.baseline.warnings + comparison.followup.warnings + comparison.warnings)
    document = comparison_document(comparison)
    document["files"] = {role: str(path) for role, path in paths.items()}
    text = (f"Sample case written to {folder.resolve()}\n\n{format_comparison(comparison)}\n\n"
            f"{format_prognosis(document['prognosis'])}\n\n{format_scores(document['clinical_scores'])}")
    _emit(document, text, args.json)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds (0 or more; 0 = no limit)")
    return value


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler stopping the run): handled as Ctrl+C, but exits with the usual 143."""


def _interrupt(signum, frame) -> None:
    raise Terminated


def _attach_negative_values(argv: Sequence[str]) -> list[str]:
    """Turn ``--point -52.9,14.7,4.9`` into ``--point=-52.9,14.7,4.9`` so argparse does not read an option."""
    joined: list[str] = []
    arguments = list(argv)
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        following = arguments[index + 1:index + 4]
        if (argument in NUMERIC_LIST_OPTIONS and len(following) == 3
                and all(SINGLE_NUMBER.match(value) for value in following)):
            joined.append(f"{argument}={','.join(following)}")  # --point -40 -60 61: three arguments
            index += 4
            continue
        if argument in NUMERIC_LIST_OPTIONS and following and NUMERIC_LIST.match(following[0].strip()):
            joined.append(f"{argument}={following[0]}")
            index += 2
            continue
        joined.append(argument)
        index += 1
    return joined


def _print_what_the_terminal_can() -> None:
    """A terminal or locale that cannot show some characters (``LANG=C``, ``PYTHONIOENCODING=ascii``) gets
    them replaced (``?``) instead of a crash; JSON output is ASCII anyway (escaped)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="replace")


def _drop_unwritable_stdout() -> None:
    """If stdout itself failed (e.g. redirected to a full disk), send what is still buffered nowhere, so that
    Python's flush at exit does not fail a second time."""
    try:
        sys.stdout.flush()
    except OSError:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_attach_negative_values(sys.argv[1:] if argv is None else argv))
    reuse_freed_memory()  # a short-lived process: keeping freed memory makes reading 3x faster (allocator.py)
    _print_what_the_terminal_can()
    try:
        code = args.handler(args)
        sys.stdout.flush()  # here, so that output the system refuses (a full disk) is reported, not lost at exit
        return code
    except InputError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except BrokenPipeError:  # output piped into a command that stopped reading (e.g. head)
        sys.stderr.close()
        return 0
    except OSError as error:  # the system refused: permissions, a full disk (also of stdout), a lost share
        _drop_unwritable_stdout()
        print(f"Error: {os_error_message(error)}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except UnicodeEncodeError as error:  # a path with characters the locale cannot use for file names
        print(f"Error: a file name holds characters ('{error.object[error.start:error.end]}') that this system's "
              f"locale ({sys.getfilesystemencoding()}) cannot use for file names. Run in a UTF-8 locale (e.g. "
              f"LANG=C.UTF-8) or rename the file.", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt as interruption:
        print("Interrupted.", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(interruption, Terminated) else EXIT_INTERRUPTED
    except Exception as error:  # last resort: say what happened instead of a bare traceback
        print(f"Internal error ({type(error).__name__}): {error}\nPlease report this with the command you ran.",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR
