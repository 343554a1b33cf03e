"""Plain-text tables of measurements, comparisons and prognoses: results as people read them in a terminal.

The same rows fill the panel's tables (:mod:`..mrml.results`); the JSON documents for programs are in
:mod:`.documents`, the panel's HTML summaries in :mod:`.html`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..measure.volumetry import Measurement

if TYPE_CHECKING:  # the response and prognosis code is imported where used: a measurement's table needs none of it
    from ..prognosis.model import OverallSurvivalPrediction
    from ..response.comparison import Comparison
    from ..response.recist import RecistAssessment
    from ..response.registration import RegistrationResult


def _number(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; first column left-aligned, the rest right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        padded = [str(cell).ljust(width) if index == 0 else str(cell).rjust(width)
                  for index, (cell, width) in enumerate(zip(cells, widths))]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *[line(row) for row in rows]])


def format_measurement(result: Measurement) -> str:
    """The measure command's human-readable output."""
    spacing = " x ".join(f"{s:.3g}" for s in result.spacing_mm)
    lines = [
        f"Segmentation: {result.source}",
        f"Voxel spacing: {spacing} mm (axial slices along {result.axial_axis}, {result.slice_thickness_mm:.3g} mm "
        f"apart); voxel volume {result.voxel_volume_ml * 1000:.4g} mm3",
        f"Total tumour volume (TTV): {result.ttv_ml:.2f} mL in {result.lesion_count} lesion(s)",
        f"Liver volume: {_number(result.liver_volume_ml, 1, ' mL').replace('n/a', 'no liver segment')}",
        f"Largest lesion: {_number(result.largest_diameter_mm, 1, ' mm')} (longest axial diameter "
        f"{_number(result.largest_axial_diameter_mm, 1, ' mm')})",
    ]
    if result.lesions:
        rows = [[str(lesion.lesion_id), f"{lesion.volume_ml:.2f}", f"{lesion.max_diameter_mm:.1f}",
                 f"{lesion.longest_axial_diameter_mm:.1f}",
                 "(" + ", ".join(f"{v:.1f}" for v in lesion.centroid_ras) + ")", ", ".join(lesion.segments)]
                for lesion in result.lesions]
        lines += ["", "Lesions (26-connected, largest first)",
                  table(["#", "Volume mL", "Max diam mm", "Axial diam mm", "Centroid RAS mm", "Segments"], rows)]
    if result.segments:
        rows = [[segment.name, segment.role, f"{segment.volume_ml:.2f}", "yes" if segment.verified else "no"]
                for segment in result.segments]
        lines += ["", "Segments", table(["Name", "Role", "Volume mL", "Verified"], rows)]
    return "\n".join(lines)


def summary_rows(baseline: Measurement, followup: Measurement | None = None) -> list[list[str]]:
    """Measure, baseline value, and (with a follow-up) follow-up value and change, as text cells."""
    from ..response.comparison import relative_change_percent

    def row(label: str, value, digits: int) -> list[str]:
        before = value(baseline)
        cells = [label, _number(before, digits)]
        if followup is not None:
            after = value(followup)
            change = "" if before is None or after is None else f"{after - before:+.{digits}f}"
            cells += [_number(after, digits), change]
        return cells

    rows = [row("TTV (mL)", lambda m: m.ttv_ml, 2), row("Lesions", lambda m: m.lesion_count, 0),
            row("Largest diameter (mm)", lambda m: m.largest_diameter_mm, 1),
            row("Longest axial diameter (mm)", lambda m: m.largest_axial_diameter_mm, 1),
            row("Liver volume (mL)", lambda m: m.liver_volume_ml, 1)]
    relative = None if followup is None else relative_change_percent(baseline.ttv_ml, followup.ttv_ml)
    if relative is not None:
        rows[0][3] += f" ({relative:+.1f} %)"
    return rows


def format_comparison(comparison: Comparison) -> str:
    """The compare command's human-readable output."""
    baseline, followup = comparison.baseline, comparison.followup
    rows = summary_rows(baseline, followup)
    lines = [f"Baseline:  {baseline.source}", f"Follow-up: {followup.source}"]
    if comparison.registration is not None:
        lines.append(f"Registration: {format_registration(comparison.registration)}")
    lines += ["", table(["", "Baseline", "Follow-up", "Change"], rows)]
    if comparison.recist is not None and comparison.tbs is not None:
        lines += ["", "Response: TTV, RECIST 1.1 and TBS side by side", format_response_table(comparison)]
        lines += ["", format_recist(comparison.recist)]
    if comparison.lesion_matching is not None:
        lines += ["", format_lesion_table(comparison)]
    return "\n".join(lines)


def format_registration(registration: RegistrationResult) -> str:
    """One line: how the follow-up was brought into the baseline frame, and how well."""
    from ..response.registration import FAILED, SKIPPED, UNAVAILABLE, rotation_angle_deg

    if registration.status == SKIPPED:
        return "not done (scans taken as already aligned)"
    if registration.status == UNAVAILABLE:
        return "not possible (no CTs and no liver segment at both time points); scanner coordinates used"
    details = registration.diagnostics
    checks = []
    if details.get("correlation") is not None:
        checks.append(f"CT correlation {details['correlation']:.2f}")
    if details.get("liver_dice") is not None:
        checks.append(f"liver Dice {details['liver_dice']:.2f}")
    if registration.status == FAILED:
        return f"FAILED ({registration.method}, {registration.mode}: {'; '.join(registration.problems)}); " \
               f"lesions matched unregistered"
    matrix = registration.followup_to_baseline_ras
    shift = float(sum(value ** 2 for value in matrix[:3, 3]) ** 0.5)
    return (f"{registration.method}, {registration.mode}: rotation {rotation_angle_deg(matrix):.1f} deg, shift "
            f"{shift:.1f} mm" + (f" ({', '.join(checks)})" if checks else ""))


RESPONSE_HEADERS = ("Measure", "Baseline", "Follow-up", "Change", "Category")


def response_rows(comparison: Comparison) -> list[list[str]]:
    """TTV change, RECIST sum of diameters and TBS side by side, each with its verdict (they can disagree)."""
    from ..response.tumour_burden import STUDY_CUT_OFF

    recist, tbs = comparison.recist, comparison.tbs
    relative = comparison.relative_change_percent
    ttv_change = f"{comparison.absolute_change_ml:+.2f}" + (f" ({relative:+.1f} %)" if relative is not None else "")
    if recist.measurable_disease:
        recist_row = ["RECIST sum of diameters (mm)", _number(recist.baseline_sum_mm), _number(recist.followup_sum_mm),
                      f"{recist.absolute_change_mm:+.1f} ({recist.percent_change:+.1f} %)", recist.response]
    else:
        recist_row = ["RECIST (no measurable lesion)", "-", "-", "", recist.response]
    return [
        ["TTV (mL)", f"{comparison.baseline.ttv_ml:.2f}", f"{comparison.followup.ttv_ml:.2f}", ttv_change,
         "study measure (continuous)"],
        recist_row,
        ["Tumour burden score", f"{tbs.baseline.score:.2f} (zone {tbs.baseline.zone})",
         f"{tbs.followup.score:.2f} (zone {tbs.followup.zone})", f"{tbs.change:+.2f}",
         f"zone {tbs.baseline.zone} -> zone {tbs.followup.zone}; cut-off {STUDY_CUT_OFF:g}: "
         f"{_cut_off_side(tbs.baseline)} -> {_cut_off_side(tbs.followup)}"],
    ]


def _cut_off_side(burden) -> str:
    return "at/above" if burden.above_study_cut_off else "below"


def format_response_table(comparison: Comparison) -> str:
    return table(["", *RESPONSE_HEADERS[1:]], response_rows(comparison))


def format_recist(recist: RecistAssessment) -> str:
    """RECIST 1.1 verdict, target lesions, non-target lesions and the reasons."""
    new = ", ".join(str(number) for number in recist.new_lesions) or "none"
    lines = [f"RECIST 1.1: {recist.response} (targets {recist.target_response or 'none'}, non-targets "
             f"{recist.non_target_response or 'none'}, new lesions: {new}); measurable from "
             f"{recist.measurable_threshold_mm:g} mm (axial slices {recist.slice_thickness_mm:.3g} mm apart); "
             f"nadir = baseline"]
    if recist.target_lesions:
        rows = [[f"target {lesion.lesion_id}", f"{lesion.baseline_mm:.1f}", f"{lesion.followup_mm:.1f}",
                 lesion.note or lesion.followup_status] for lesion in recist.target_lesions]
        rows += [[f"non-target {lesion.lesion_id}", f"{lesion.baseline_mm:.1f}", "", lesion.followup_status]
                 for lesion in recist.non_target_lesions]
        lines.append(table(["Baseline lesion", "Baseline mm", "Follow-up mm", "Follow-up"], rows))
    lines += [f"  {reason}" for reason in recist.reasons]
    return "\n".join(lines)


MATCHED_HEADERS = ("Baseline lesion", "Follow-up lesion", "Baseline volume (mL)", "Follow-up volume (mL)",
                   "Volume change", "Baseline axial diameter (mm)", "Follow-up axial diameter (mm)", "Status",
                   "RECIST role")


def matched_lesion_rows(comparison: Comparison) -> list[list[str]]:
    """One row per matched group, new or disappeared lesion (``Comparison.lesion_table`` as text)."""
    return [[row["baseline_lesion"] or "-", row["followup_lesion"] or "-", _number(row["baseline_volume_ml"], 2),
             _number(row["followup_volume_ml"], 2), _number(row["volume_change_percent"], 0, " %"),
             _number(row["baseline_diameter_mm"]), _number(row["followup_diameter_mm"]), row["status"],
             row["recist_role"]] for row in comparison.lesion_table()]


def format_lesion_table(comparison: Comparison) -> str:
    """The matched-lesion table, with the frame the lesions were matched in."""
    matching = comparison.lesion_matching
    if not comparison.lesion_table():
        return "Matched lesions: no lesion at either time point"
    frame = "baseline frame after registration" if matching.registered else "unregistered (scanner coordinates)"
    return "\n".join([f"Matched lesions ({frame}; lesion 1 = largest at each time point; axial = longest axial "
                      f"diameter)",
                      table(["Baseline", "Follow-up", "Vol B mL", "Vol F mL", "Vol change", "Axial B mm",
                             "Axial F mm", "Status", "RECIST"], matched_lesion_rows(comparison))])


SURVIVAL_HEADERS = ("Months", "Overall survival", "95 % band")


def survival_rows(section: dict) -> list[list[str]]:
    """Overall survival with its 95 % band at the model's times (e.g. yearly from 2 years)."""
    return [[_months_text(point['months']), f"{point['probability'] * 100:.0f} %",
             f"{point['ci95'][0] * 100:.0f}-{point['ci95'][1] * 100:.0f} %"] for point in section["overall_survival"]]


def format_prognosis(section: dict) -> str:
    """Survival table of a prognosis section, with its model, time origin and limits."""
    lines = [f"Prognosis (model {section['model_id']}; {section['intended_use']})"]
    if section["overall_survival"]:
        lines += [f"Overall survival from {section['time_origin']} at baseline TTV {section['baseline_ttv_ml']:.1f} mL",
                  table(SURVIVAL_HEADERS, survival_rows(section)), f"Who this is for: {section['population']}"]
    lines += [f"Not available: {error}" for error in section.get("errors", [])]
    change = section.get("ttv_change")
    if change:
        lines += ["", f"TTV change {change['change_ml']:+.1f} mL against the study cohorts (absolute change, "
                      f"median and IQR; {change['cohorts'][0]['citation'] if change['cohorts'] else ''})",
                  table(["Cohort", "Median mL", "IQR mL", "This patient"],
                        [[cohort["cohort"], f"{cohort['absolute_change_median_ml']:g}",
                          f"{cohort['absolute_change_iqr_ml'][0]:g} to {cohort['absolute_change_iqr_ml'][1]:g}",
                          f"{cohort['position']} the IQR"] for cohort in change["cohorts"]]),
                  change["effect"]]
    return "\n".join(lines)


def format_scores(section: dict) -> str:
    """Fong and GAME: totals or what is missing, and which scan they were computed on."""
    scan = "follow-up" if section["time_point"] == "followup" else "baseline"
    lines = [f"Clinical scores on the {scan} scan ({section['scan']}): {section['reason']}"]
    lines += [f"  {section[name]['score']}: {section[name]['status']}" for name in ("fong", "game")]
    return "\n".join(lines)


def _months_text(months: float) -> str:
    """Months as given (24, 30.5): two different times never print alike."""
    return f"{months:.10g}"


def format_prediction(prediction: OverallSurvivalPrediction) -> str:
    """The predict command's table."""
    section = prediction.to_dict()
    rows = [[_months_text(point['months']), f"{point['probability'] * 100:.1f} %",
             f"{point['ci95'][0] * 100:.1f}-{point['ci95'][1] * 100:.1f} %"] for point in section["overall_survival"]]
    return "\n".join([f"Model: {prediction.model_id}",
                      f"Overall survival from {prediction.time_origin}, baseline TTV {prediction.baseline_ttv_ml:g} mL",
                      table(["Months", "Survival", "95 % band"], rows),
                      f"Who this is for: {prediction.population}",
                      "Research use only: not for clinical decisions."])


def cohort_placement_sentence(placement: dict) -> str:
    """Where the baseline TTV lies against one published cohort (a ``baseline_ttv_vs_cohorts`` entry)."""
    quartiles = f"{placement['first_quartile']:g}-{placement['third_quartile']:g}"
    return (f"Baseline TTV is {placement['position']} of the {placement['cohort']} (median "
            f"{placement['median']:g} mL, IQR {quartiles} mL).")


def ttv_change_sentence(change: dict) -> str:
    """The TTV change as the prognosis section describes it (not a model input)."""
    relative = change.get("relative_change_percent")
    shown = f" ({relative:+.0f} %)" if relative is not None else ""
    return (f"TTV change {change['change_ml']:+.1f} mL{shown}, shown descriptively (not a model input): "
            f"{change['effect']}")

