"""What a patient report says, independent of how it is laid out (PDF or HTML).

One :class:`ReportContent` is built from the results (a measurement or a comparison, the prognosis section,
clinical scores), the pictures (PNG bytes, drawn by :mod:`.figures` or captured by the caller) and the
provenance; :mod:`.pdf` and :mod:`.html_report` only lay it out, so both documents always say the same.
The rows reuse the terminal tables of :mod:`.text`, so the report shows exactly the numbers ``compare`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..measure.volumetry import Measurement
from ..prognosis.model import STUDY_DOI
from ..prognosis.scores import ScoreResult
from ..response.comparison import Comparison
from .provenance import Provenance
from .text import (
    cohort_placement_sentence,
    format_registration,
    response_rows,
    summary_rows,
    survival_rows,
    ttv_change_sentence,
)

RESEARCH_NOTICE = ("RESEARCH USE ONLY. Not a medical device; not for clinical decisions about individual "
                   "patients.")
POPULATION = ("The survival model holds for patients with liver-only colorectal liver metastases who had complete "
              "local treatment (resection and/or ablation) after induction systemic therapy, as in CAIRO5 and the "
              f"external validation cohort (doi:{STUDY_DOI}). Overall survival is counted from randomisation "
              "(CAIRO5) or from detection of the liver metastases (validation cohort). For other patients its "
              "numbers do not apply.")


@dataclass
class KeyImage:
    """One key image: its caption and PNG bytes (None when no picture could be made; the caption says why)."""

    title: str
    kind: str
    png: bytes | None


@dataclass
class ReportContent:
    """Every part of the report as text rows and PNGs."""

    title: str
    case_label: str
    notice: str
    summary_headers: list[str]
    summary_rows: list[list[str]]
    response_headers: list[str]
    response_rows: list[list[str]]
    target_headers: list[str]
    target_rows: list[list[str]]
    facts: list[str]  # short sentences: RECIST verdict, registration, cohort placement, TTV change
    survival_headers: list[str]
    survival_rows: list[list[str]]
    model_lines: list[str]
    scores: list[str]
    warnings: list[str]
    provenance: Provenance
    key_image_note: str = ""
    key_image_subject: str = "targets, new and disappeared lesions"
    key_images: list[KeyImage] = field(default_factory=list)
    # Titles of the key lesions no picture could be made of (e.g. Slicer without matplotlib and without views):
    # the report then says so instead of "nothing to show".
    key_lesions_without_pictures: list[str] = field(default_factory=list)
    overview_png: bytes | None = None
    survival_png: bytes | None = None


def build_content(result: Measurement | Comparison, prognosis: dict | None, provenance: Provenance,
                  case_label: str = "", scores: list[ScoreResult] | None = None,
                  extra_warnings: list[str] | None = None, scores_note: str = "") -> ReportContent:
    """The report's text from the results (pictures are added by the caller)."""
    comparison = result if isinstance(result, Comparison) else None
    baseline = comparison.baseline if comparison else result
    followup = comparison.followup if comparison else None
    headers = ["", "Baseline", "Follow-up", "Change"] if comparison else ["", "Baseline"]
    rows = summary_rows(baseline, followup)
    facts: list[str] = []
    response_headers: list[str] = []
    response: list[list[str]] = []
    target_rows: list[list[str]] = []
    warnings = list(baseline.warnings)
    if comparison is not None:
        warnings += [*comparison.followup.warnings, *comparison.warnings]
        if comparison.recist is not None and comparison.tbs is not None:
            response_headers = ["Measure", "Baseline", "Follow-up", "Change", "Category"]
            response = response_rows(comparison)
            recist = comparison.recist
            new = ", ".join(str(number) for number in recist.new_lesions) or "none"
            facts.append(f"RECIST 1.1: {recist.response} (targets {recist.target_response or 'none'}, non-targets "
                         f"{recist.non_target_response or 'none'}, new lesions: {new}); measurable from "
                         f"{recist.measurable_threshold_mm:g} mm.")
            target_rows = [[f"Target {number}", f"baseline lesion {target.lesion_id}", f"{target.baseline_mm:.1f}",
                            f"{target.followup_mm:.1f}", target.note or target.followup_status]
                           for number, target in enumerate(recist.target_lesions, start=1)]
        if comparison.registration is not None:
            registration = format_registration(comparison.registration)
            facts.append(f"Registration of the follow-up to the baseline: {registration}.")
    facts += _prognosis_facts(prognosis)
    survival_headers, survival = (["Months", "Overall survival", "95 % band"], survival_rows(prognosis)) \
        if prognosis and prognosis["overall_survival"] else ([], [])
    model_lines = _model_lines(prognosis)
    warnings += list(extra_warnings or [])
    if prognosis:
        warnings += [*prognosis.get("warnings", []), *(f"Prognosis not available: {error}"
                                                       for error in prognosis.get("errors", []))]
    note = ("Axial CT slices (patient's right on the left); yellow = the lesion named, orange = other lesions, "
            "green = liver.")
    if comparison is not None:
        registered = comparison.lesion_matching is not None and comparison.lesion_matching.registered
        note += (" The other time point is shown at the position the registration maps the lesion to." if registered
                 else " The scans were not registered: the other time point is shown at the same scanner "
                      "coordinates.")
    return ReportContent(
        title="TTVPrognosis patient report: liver metastases",
        case_label=case_label, notice=RESEARCH_NOTICE, summary_headers=headers, summary_rows=rows,
        response_headers=response_headers, response_rows=response,
        target_headers=["RECIST 1.1", "Lesion", "Baseline mm", "Follow-up mm", "Follow-up"] if target_rows else [],
        target_rows=target_rows, facts=facts, survival_headers=survival_headers, survival_rows=survival,
        model_lines=model_lines, scores=_score_lines(scores, scores_note),
        warnings=warnings, provenance=provenance, key_image_note=note,
        key_image_subject="targets, new and disappeared lesions" if comparison else "the RECIST 1.1 target lesions")


def _score_lines(scores: list[ScoreResult] | None, note: str) -> list[str]:
    """Fong and GAME as ``compare`` prints them: which scan, then each score's points or what is missing."""
    lines = [f"{score.score}: {score.status}" for score in scores or []]
    return [note, *lines] if lines and note else lines


def _prognosis_facts(prognosis: dict | None) -> list[str]:
    if not prognosis:
        return ["No prognosis: the baseline TTV is 0 mL (the model describes patients with liver metastases)."]
    facts = [cohort_placement_sentence(placement) for placement in prognosis["baseline_ttv_vs_cohorts"]]
    change = prognosis.get("ttv_change")
    if change:
        facts.append(ttv_change_sentence(change))
    return facts


def _model_lines(prognosis: dict | None) -> list[str]:
    lines = [f"Population: {POPULATION}"]
    if prognosis:
        lines.insert(0, f"Model: {prognosis['model_title']} (id {prognosis['model_id']}); {prognosis['intended_use']}")
        lines.append(f"Survival is counted from {prognosis['time_origin']}.")
    return lines


def no_key_images_text(content: ReportContent) -> str:
    """What the key-image section says when it holds no picture: why, and which lesions it would show."""
    if content.key_lesions_without_pictures:
        lesions = ", ".join(content.key_lesions_without_pictures)
        return (f"No pictures could be made here of the key lesions ({lesions}); see them in the tables above and "
                f"in the viewer.")
    return "No target, new or disappeared lesion to show."
