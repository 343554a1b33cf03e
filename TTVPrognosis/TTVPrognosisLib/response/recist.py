"""RECIST 1.1 for liver-only disease, automated from segmented lesions at two time points.

Eisenhauer EA, Therasse P, Bogaerts J, et al. New response evaluation criteria in solid tumours: revised
RECIST guideline (version 1.1). Eur J Cancer 2009;45(2):228-247, doi:10.1016/j.ejca.2008.10.026; and the
RECIST working group's published clarifications (recist.eortc.org).

The rules as applied here (paraphrased; DESIGN.md "Definitions"):

- **Measurable** at baseline: longest axial diameter >= 10 mm; when axial slices are more than 5 mm apart,
  >= twice the slice spacing (the guideline's minimum of two slice thicknesses).
- **Target lesions**: at most two per organ; the disease is liver-only, so the (up to) two measurable liver
  lesions with the largest longest axial diameter. Every other baseline lesion is a **non-target** lesion.
- **Sum of diameters** of the targets at baseline and, for the *same* lesions, at follow-up. A target that
  disappeared counts 0 mm. A target that is present is recorded as measured, even when very small (e.g.
  2 mm): RECIST 1.1's default of 5 mm is for a lesion the reader sees but is too small to measure, which a
  segmented lesion never is. The one exception is a present lesion whose measured longest axial diameter is
  0 mm (a single voxel across in every axial slice): it is there but has no measurable extent, so it counts
  5 mm (recording 0 mm would read as gone). Targets 40 + 10 mm shrinking to 31 + 3 mm are -32 %, PR;
  replacing the measured 3 mm by 5 mm would give -28 %, SD. Lesions that fragment: the longest diameters of
  the fragments are added. Lesions that coalesce so they can no longer be separated: the coalesced lesion's
  longest diameter is recorded for one of them and 0 mm for the others (:mod:`matching` decides which).
- **Target response**: CR = all targets gone (sum 0 mm); PR = sum at least 30 % below baseline; PD = sum at
  least 20 % *and* at least 5 mm above the smallest sum on study (the nadir); SD = neither PR nor PD.
  **Nadir = baseline here**: with only two time points the smallest sum before the follow-up is the
  baseline sum.
- **Non-target response**: CR = all non-target lesions gone; otherwise non-CR/non-PD. "Unequivocal
  progression" of non-target lesions is a reader's overall judgement and is not made automatically.
- **New lesions**: any new lesion is PD, whatever the targets do (so RECIST can say PD while TTV falls).
- **Overall response** (the guideline's tables 1 and 2): PD if targets are PD or any lesion is new;
  CR if targets are CR and no non-target remains; PR if targets are CR with non-targets remaining, or
  targets are PR; SD if targets are SD. Without measurable disease at baseline only CR, non-CR/non-PD and
  PD are possible (the guideline prefers "non-CR/non-PD" to SD there). With no lesion at all at baseline
  and none new the response is NE (not evaluable).

Confirmation of CR/PR by a later scan and lymph-node rules do not apply to a two-scan, liver-only setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..errors import InputError

RECIST_CITATION = ("Eisenhauer EA, et al. New response evaluation criteria in solid tumours: revised RECIST "
                   "guideline (version 1.1). Eur J Cancer 2009;45(2):228-247. doi:10.1016/j.ejca.2008.10.026")

CR, PR, SD, PD = "CR", "PR", "SD", "PD"
NON_CR_NON_PD = "non-CR/non-PD"
NOT_EVALUABLE = "NE"
RESPONSES = (CR, PR, SD, PD, NON_CR_NON_PD, NOT_EVALUABLE)

MEASURABLE_MIN_MM = 10.0
THICK_SLICE_MM = 5.0  # slices farther apart than this: measurable from 2 x slice spacing
TARGETS_PER_ORGAN = 2
TOO_SMALL_TO_MEASURE_MM = 5.0  # default for a target present but with no measurable extent (0 mm measured)
PR_DECREASE_PERCENT = 30.0
PD_INCREASE_PERCENT = 20.0
PD_INCREASE_MM = 5.0
TOLERANCE = 1e-9  # boundaries are inclusive: exactly 30 % less is PR, exactly 20 % and 5 mm more is PD

# Follow-up status of a baseline lesion (set by lesion matching).
PRESENT = "present"
DISAPPEARED = "disappeared"
MERGED = "merged"  # coalesced with another lesion whose record carries the coalesced diameter
SPLIT = "split"  # fragmented: the diameters of the fragments are added
FOLLOWUP_STATUSES = (PRESENT, DISAPPEARED, MERGED, SPLIT)

NOTES = (
    "Nadir = baseline: with two time points the smallest sum on study before the follow-up is the baseline sum.",
    "Liver-only disease: at most 2 target lesions (2 per organ).",
    "Unequivocal progression of non-target lesions is a reader's judgement and is not assessed automatically.",
    "Response is not confirmed by a later scan (two time points only).",
)


@dataclass(frozen=True)
class TrackedLesion:
    """A baseline lesion and what became of it at follow-up.

    ``followup_diameter_mm`` is the measured longest axial diameter at follow-up (for a split lesion the sum
    over its fragments; 0 when it disappeared or when it coalesced and the coalesced diameter is recorded
    with another lesion). ``followup_lesion_ids`` are the follow-up lesions it became.
    """

    lesion_id: int
    baseline_diameter_mm: float
    followup_diameter_mm: float
    followup_status: str = PRESENT
    followup_lesion_ids: tuple[int, ...] = ()
    merged_with: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.followup_status not in FOLLOWUP_STATUSES:
            raise InputError(f"Unknown follow-up status '{self.followup_status}' of lesion {self.lesion_id}; "
                             f"use one of {', '.join(FOLLOWUP_STATUSES)}.")
        for name in ("baseline_diameter_mm", "followup_diameter_mm"):
            value = getattr(self, name)
            if not value >= 0:  # also catches NaN
                raise InputError(f"Lesion {self.lesion_id}: {name} must be a non-negative number, got {value!r}.")


@dataclass(frozen=True)
class TargetLesion:
    """One target lesion's diameters as recorded for the sums (``followup_mm``) and as measured."""

    lesion_id: int
    baseline_mm: float
    followup_mm: float
    followup_measured_mm: float
    followup_status: str
    followup_lesion_ids: tuple[int, ...]
    note: str = ""

    def to_dict(self) -> dict:
        document = asdict(self)
        document["followup_lesion_ids"] = list(self.followup_lesion_ids)
        return document


@dataclass(frozen=True)
class NonTargetLesion:
    lesion_id: int
    baseline_mm: float
    reason: str
    followup_status: str
    followup_lesion_ids: tuple[int, ...]

    @property
    def gone(self) -> bool:
        return self.followup_status == DISAPPEARED

    def to_dict(self) -> dict:
        document = asdict(self)
        document["followup_lesion_ids"] = list(self.followup_lesion_ids)
        return document


@dataclass
class RecistAssessment:
    """RECIST 1.1 response between baseline and follow-up, with every number it rests on."""

    measurable_threshold_mm: float
    slice_thickness_mm: float
    target_lesions: list[TargetLesion]
    non_target_lesions: list[NonTargetLesion]
    new_lesions: list[int]
    baseline_sum_mm: float | None
    followup_sum_mm: float | None
    nadir_sum_mm: float | None
    absolute_change_mm: float | None
    percent_change: float | None
    target_response: str | None
    non_target_response: str | None
    response: str
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=lambda: list(NOTES))

    @property
    def measurable_disease(self) -> bool:
        return bool(self.target_lesions)

    def to_dict(self) -> dict:
        return {
            "response": self.response,
            "target_response": self.target_response,
            "non_target_response": self.non_target_response,
            "measurable_disease": self.measurable_disease,
            "target_lesions": [lesion.to_dict() for lesion in self.target_lesions],
            "non_target_lesions": [lesion.to_dict() for lesion in self.non_target_lesions],
            "new_lesion_ids": list(self.new_lesions),
            "baseline_sum_mm": self.baseline_sum_mm,
            "followup_sum_mm": self.followup_sum_mm,
            "nadir_sum_mm": self.nadir_sum_mm,
            "absolute_change_mm": self.absolute_change_mm,
            "percent_change": self.percent_change,
            "measurable_threshold_mm": self.measurable_threshold_mm,
            "slice_thickness_mm": self.slice_thickness_mm,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "citation": RECIST_CITATION,
        }


def measurable_threshold_mm(slice_thickness_mm: float) -> float:
    """Smallest measurable longest diameter: 10 mm, or twice the slice spacing when slices are > 5 mm apart."""
    if not slice_thickness_mm > 0:
        raise InputError(f"Slice thickness must be positive, got {slice_thickness_mm!r}.")
    if slice_thickness_mm > THICK_SLICE_MM:
        return max(MEASURABLE_MIN_MM, 2.0 * slice_thickness_mm)
    return MEASURABLE_MIN_MM


def recorded_followup_mm(lesion: TrackedLesion, too_small_mm: float = TOO_SMALL_TO_MEASURE_MM) -> tuple[float, str]:
    """The value a target contributes to the follow-up sum, and why when it is not the measurement."""
    if lesion.followup_status == DISAPPEARED:
        return 0.0, "disappeared: 0 mm"
    if lesion.followup_status == MERGED:
        into = ", ".join(str(number) for number in lesion.followup_lesion_ids) or "another lesion"
        return 0.0, (f"coalesced into follow-up lesion {into}; its diameter is recorded with baseline lesion "
                     f"{', '.join(str(number) for number in lesion.merged_with) or 'another lesion'}: 0 mm")
    parts = []
    if lesion.merged_with:
        parts.append(f"coalesced with baseline lesion {', '.join(str(number) for number in lesion.merged_with)}: "
                     f"the coalesced lesion's diameter")
    if lesion.followup_status == SPLIT:
        parts.append(f"fragmented into {len(lesion.followup_lesion_ids)} lesions: fragment diameters added")
    note = "; ".join(parts)
    if lesion.followup_diameter_mm <= 0.0:
        small = f"present but too small to measure (0 mm measured, one voxel across): {too_small_mm:g} mm default"
        return too_small_mm, f"{note}; {small}" if note else small
    if lesion.followup_diameter_mm < too_small_mm:
        small = (f"{lesion.followup_diameter_mm:.1f} mm recorded as measured (the {too_small_mm:g} mm default is "
                 f"only for a lesion too small to measure)")
        return float(lesion.followup_diameter_mm), f"{note}; {small}" if note else small
    return float(lesion.followup_diameter_mm), note


def assess(lesions: Sequence[TrackedLesion], new_lesion_ids: Sequence[int] = (), slice_thickness_mm: float = 1.0,
           max_targets: int = TARGETS_PER_ORGAN, too_small_mm: float = TOO_SMALL_TO_MEASURE_MM) -> RecistAssessment:
    """RECIST 1.1 response from baseline lesions tracked to follow-up and the new follow-up lesions.

    ``slice_thickness_mm`` is the baseline's axial slice spacing (it decides what is measurable).
    """
    threshold = measurable_threshold_mm(slice_thickness_mm)
    ids = [lesion.lesion_id for lesion in lesions]
    if len(set(ids)) != len(ids):
        raise InputError(f"Baseline lesion ids must be unique, got {ids}.")
    ranked = sorted(lesions, key=lambda lesion: (-lesion.baseline_diameter_mm, lesion.lesion_id))
    measurable = [lesion for lesion in ranked if lesion.baseline_diameter_mm >= threshold - TOLERANCE]
    chosen = measurable[:max_targets]
    chosen_ids = {lesion.lesion_id for lesion in chosen}

    targets = []
    for lesion in chosen:
        value, note = recorded_followup_mm(lesion, too_small_mm)
        targets.append(TargetLesion(lesion.lesion_id, float(lesion.baseline_diameter_mm), value,
                                    float(lesion.followup_diameter_mm), lesion.followup_status,
                                    tuple(lesion.followup_lesion_ids), note))
    non_targets = []
    for lesion in ranked:
        if lesion.lesion_id in chosen_ids:
            continue
        reason = (f"not measurable (longest axial diameter {lesion.baseline_diameter_mm:.1f} mm < {threshold:g} mm)"
                  if lesion.baseline_diameter_mm < threshold - TOLERANCE
                  else f"measurable, beyond the {max_targets} target lesions per organ")
        non_targets.append(NonTargetLesion(lesion.lesion_id, float(lesion.baseline_diameter_mm), reason,
                                           lesion.followup_status, tuple(lesion.followup_lesion_ids)))

    reasons: list[str] = []
    baseline_sum = followup_sum = change = percent = None
    target_response = None
    if targets:
        baseline_sum = sum(target.baseline_mm for target in targets)
        followup_sum = sum(target.followup_mm for target in targets)
        change = followup_sum - baseline_sum
        percent = change / baseline_sum * 100.0
        target_response = _target_response(baseline_sum, followup_sum, baseline_sum, reasons)
    else:
        reasons.append(f"No measurable lesion at baseline (none with a longest axial diameter >= {threshold:g} mm): "
                       f"no target lesions.")
    non_target_response = _non_target_response(non_targets, reasons)
    new = sorted(int(number) for number in new_lesion_ids)
    response = _overall_response(target_response, non_target_response, new, reasons)
    return RecistAssessment(threshold, float(slice_thickness_mm), targets, non_targets, new, baseline_sum,
                            followup_sum, baseline_sum, change, percent, target_response, non_target_response,
                            response, reasons)


def _target_response(baseline_sum: float, followup_sum: float, nadir_sum: float, reasons: list[str]) -> str:
    if followup_sum <= TOLERANCE:
        reasons.append("All target lesions disappeared: targets CR.")
        return CR
    increase = followup_sum - nadir_sum
    if increase >= PD_INCREASE_MM - TOLERANCE and increase >= nadir_sum * PD_INCREASE_PERCENT / 100.0 - TOLERANCE:
        reasons.append(f"Sum of diameters rose {increase:.1f} mm ({increase / nadir_sum * 100:+.1f} %) over the "
                       f"nadir: at least {PD_INCREASE_PERCENT:g} % and {PD_INCREASE_MM:g} mm: targets PD.")
        return PD
    decrease = baseline_sum - followup_sum
    if decrease >= baseline_sum * PR_DECREASE_PERCENT / 100.0 - TOLERANCE:
        reasons.append(f"Sum of diameters fell {decrease / baseline_sum * 100:.1f} % from baseline (at least "
                       f"{PR_DECREASE_PERCENT:g} %): targets PR.")
        return PR
    if increase >= nadir_sum * PD_INCREASE_PERCENT / 100.0 - TOLERANCE:
        reasons.append(f"Sum rose {increase / nadir_sum * 100:.1f} % but only {increase:.1f} mm (< "
                       f"{PD_INCREASE_MM:g} mm): not PD; targets SD.")
    else:
        reasons.append(f"Sum changed {(followup_sum - baseline_sum) / baseline_sum * 100:+.1f} %: neither PR nor "
                       f"PD: targets SD.")
    return SD


def _non_target_response(non_targets: Sequence[NonTargetLesion], reasons: list[str]) -> str | None:
    if not non_targets:
        return None
    if all(lesion.gone for lesion in non_targets):
        reasons.append("All non-target lesions disappeared: non-targets CR.")
        return CR
    return NON_CR_NON_PD


def _overall_response(target: str | None, non_target: str | None, new: Sequence[int], reasons: list[str]) -> str:
    if new:
        reasons.append(f"{len(new)} new lesion(s) at follow-up (follow-up lesion "
                       f"{', '.join(str(number) for number in new)}): PD whatever the targets do.")
        return PD
    if target is None:
        if non_target is None:
            reasons.append("No lesion at baseline and none new: not evaluable.")
            return NOT_EVALUABLE
        return non_target
    if target == PD:
        return PD
    if target == CR:
        if non_target in (None, CR):
            return CR
        reasons.append("Targets gone but non-target lesions remain: PR.")
        return PR
    return target
