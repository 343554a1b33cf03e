"""The Slicer panel's short HTML summaries of a result and of its prognosis.

Plain strings with Qt's rich-text subset (no Slicer import), so they can be tested without Slicer.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from ..measure.volumetry import Measurement
from ..response.comparison import Comparison
from ..response.tumour_burden import STUDY_CUT_OFF
from .text import cohort_placement_sentence, ttv_change_sentence


def _warning_html(text: str) -> str:
    return f"<span style='color:#b35900'>Warning: {html.escape(text)}</span>"


def summary_html(result: Measurement | Comparison, extra_warnings: Sequence[str] = ()) -> str:
    """Short summary for the Slicer panel: TTV at each time point, change, RECIST, TBS, then warnings."""
    comparison = result if isinstance(result, Comparison) else None
    baseline = comparison.baseline if comparison else result
    lines = [f"<b>Baseline TTV {baseline.ttv_ml:.1f} mL</b> in {baseline.lesion_count} lesion(s)."]
    warnings = [*baseline.warnings, *extra_warnings]
    if comparison:
        relative = comparison.relative_change_percent
        change = f"{comparison.absolute_change_ml:+.1f} mL" + (f" ({relative:+.0f} %)" if relative is not None else "")
        lines.append(f"<b>Follow-up TTV {comparison.followup.ttv_ml:.1f} mL</b> in {comparison.followup.lesion_count} "
                     f"lesion(s): change {change}.")
        if comparison.recist is not None and comparison.tbs is not None:
            lines.append(f"RECIST 1.1: <b>{comparison.recist.response}</b>; Tumour Burden Score "
                         f"{comparison.tbs.baseline.score:.1f} &rarr; {comparison.tbs.followup.score:.1f} (zone "
                         f"{comparison.tbs.baseline.zone} &rarr; {comparison.tbs.followup.zone}; the study's cut-off "
                         f"{STUDY_CUT_OFF:g}).")
        warnings += [*comparison.followup.warnings, *comparison.warnings]
    return "<br>".join(lines + [_warning_html(warning) for warning in warnings])


def prognosis_html(section: dict | None, scores_note: str = "") -> str:
    """2-, 3- and 5-year OS with bands and who they are for, cohort placement, TTV change against the published
    cohorts, early-recurrence base rates, and which scan the clinical scores were computed on."""
    if section is None:
        return "No prognosis: the baseline TTV is 0 mL (the model describes patients with liver metastases)."
    lines = [f"<b>{html.escape(section['intended_use'])}</b>",
             f"Model: {html.escape(section['model_title'])} (<i>{section['model_id']}</i>); overall survival counted "
             f"from {html.escape(section['time_origin'])}.",
             f"<i>Who this is for:</i> {html.escape(section.get('population') or '')}"]
    points = {round(point["months"]): point for point in section["overall_survival"]}
    for months in (24, 36, 60):
        if months in points:
            point = points[months]
            lines.append(f"{months // 12}-year overall survival: <b>{point['probability'] * 100:.0f} %</b> "
                         f"(95 % band {point['ci95'][0] * 100:.0f}-{point['ci95'][1] * 100:.0f} %)")
    lines += [_warning_html(text) for text in [*section["warnings"], *section.get("errors", [])]]
    lines += [html.escape(cohort_placement_sentence(placement)) for placement in section["baseline_ttv_vs_cohorts"]]
    change = section.get("ttv_change")
    if change:
        lines.append(html.escape(ttv_change_sentence(change)))
        for cohort in change.get("cohorts", []):
            low, high = cohort["absolute_change_iqr_ml"]
            lines.append(f"Absolute change is <b>{cohort['position']}</b> the IQR of the "
                         f"{html.escape(cohort['cohort'])} cohort (median {cohort['absolute_change_median_ml']:g} mL, "
                         f"IQR {low:g} to {high:g} mL; "
                         f"{html.escape(cohort['citation'])}).")
    for rate in section["early_recurrence"]:
        lines.append(f"Early recurrence (within {rate['window_months']:g} months of the last local treatment) in the "
                     f"{html.escape(rate['cohort'])}: about {rate['probability'] * 100:.0f} %. "
                     f"{html.escape(rate['ttv_effect'])}")
    if scores_note:
        lines.append(html.escape(scores_note))
    return "<br>".join(lines)
