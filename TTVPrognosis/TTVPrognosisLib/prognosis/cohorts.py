"""The study cohorts' published figures, and where one patient's values fall against them.

Descriptive facts from the publications (quartiles, the direction of the TTV-change effect, early-recurrence
base rates), kept apart from the survival model in :mod:`.model` because they are shown beside it, never used
as model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .model import CAIRO5_TTV_DOI, STUDY_DOI, _finite_number

EXTERNAL_COHORT = "External validation cohort (n = 85)"
CAIRO5_COHORT = "CAIRO5 (n = 215)"

BASELINE_TTV = "baseline_ttv_ml"
OVERALL_SURVIVAL = "overall_survival_months"
RECURRENCE_FREE_SURVIVAL = "recurrence_free_survival_months"


@dataclass(frozen=True)
class CohortQuartiles:
    """Published median and interquartile range of one quantity in one cohort (None: not reached)."""

    cohort: str
    quantity: str
    unit: str
    first_quartile: float | None
    median: float
    third_quartile: float | None
    note: str
    citation: str


REFERENCE_QUARTILES = (
    CohortQuartiles(EXTERNAL_COHORT, BASELINE_TTV, "mL", 9.0, 28.0, 62.0, "", f"doi:{STUDY_DOI}"),
    CohortQuartiles(CAIRO5_COHORT, BASELINE_TTV, "mL", 17.0, 48.0, 178.0, "", f"doi:{STUDY_DOI}"),
    CohortQuartiles(EXTERNAL_COHORT, OVERALL_SURVIVAL, "months", 33.0, 57.0, 125.0,
                    "from detection of liver metastases", f"doi:{STUDY_DOI}"),
    CohortQuartiles(CAIRO5_COHORT, OVERALL_SURVIVAL, "months", 28.0, 46.0, None,
                    "from randomization; third quartile not reached", f"doi:{STUDY_DOI}"),
    CohortQuartiles(EXTERNAL_COHORT, RECURRENCE_FREE_SURVIVAL, "months", 4.0, 9.0, 22.0,
                    "from the last local treatment", f"doi:{STUDY_DOI}"),
    CohortQuartiles(CAIRO5_COHORT, RECURRENCE_FREE_SURVIVAL, "months", 4.0, 7.0, 13.0,
                    "from the last local treatment", f"doi:{STUDY_DOI}"),
)


@dataclass(frozen=True)
class CohortPlacement:
    """Where one value falls against a published cohort's quartiles."""

    cohort: str
    quantity: str
    value: float
    first_quartile: float | None
    median: float
    third_quartile: float | None
    position: str
    citation: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def place_against_cohorts(value: float, quantity: str = BASELINE_TTV) -> tuple[CohortPlacement, ...]:
    """Place a value (e.g. baseline TTV in mL) against each published cohort's median and IQR.

    Cohorts with no published quartiles for ``quantity`` are left out, so the result can be empty.
    """
    number = _finite_number(value, "The value to compare with the study cohorts")
    return tuple(
        CohortPlacement(reference.cohort, quantity, number, reference.first_quartile, reference.median,
                        reference.third_quartile, _quartile_position(number, reference), reference.citation)
        for reference in REFERENCE_QUARTILES if reference.quantity == quantity)


def _quartile_position(value: float, reference: CohortQuartiles) -> str:
    if reference.first_quartile is not None and value < reference.first_quartile:
        return "below the interquartile range (lowest quarter)"
    if reference.third_quartile is not None and value > reference.third_quartile:
        return "above the interquartile range (highest quarter)"
    if value < reference.median:
        return "within the interquartile range, below the median"
    if value > reference.median:
        return "within the interquartile range, above the median"
    return "at the median"


RELATIVE_TTV_CHANGE = "relative_ttv_change_percent"
TTV_CHANGE_EFFECT = (
    "TTV change during systemic treatment was prognostic for overall survival in the study "
    f"(doi:{STUDY_DOI}), but its curve is not published, so it is shown descriptively and is not a model "
    "input. In CAIRO5, no change in TTV carried a higher risk of death than a 50 % decrease (adjusted HR "
    f"2.57, 95 % CI 1.83-3.60; doi:{CAIRO5_TTV_DOI}): a larger decrease goes with longer survival."
)
NO_CHANGE_QUARTILES = "The cohorts' published interquartile ranges of TTV change are not recorded here yet."


@dataclass(frozen=True)
class TtvChangeDescription:
    """Baseline-to-follow-up TTV change, described (not modelled)."""

    baseline_ttv_ml: float
    follow_up_ttv_ml: float
    change_ml: float
    relative_change_percent: float
    direction: str
    effect: str
    cohort_placements: tuple[CohortPlacement, ...]
    note: str

    def to_dict(self) -> dict:
        document = dict(self.__dict__)
        document["cohort_placements"] = [placement.to_dict() for placement in self.cohort_placements]
        return document


def describe_ttv_change(baseline_ttv_ml: float, follow_up_ttv_ml: float) -> TtvChangeDescription:
    """Change and relative change (DESIGN.md definitions) with the published direction of its effect.

    Placements against the cohorts come from :data:`REFERENCE_QUARTILES`; the study's quartiles of relative
    TTV change are not transcribed there yet, so ``cohort_placements`` is empty and ``note`` says so.
    """
    baseline = _finite_number(baseline_ttv_ml, "Baseline TTV (mL)")
    follow_up = _finite_number(follow_up_ttv_ml, "Follow-up TTV (mL)")
    if baseline <= 0 or follow_up < 0:
        raise InputError(f"TTV change needs a positive baseline TTV and a non-negative follow-up TTV, got "
                         f"{baseline:g} mL and {follow_up:g} mL.")
    change = follow_up - baseline
    relative = change / baseline * 100.0
    direction = "decrease" if change < 0 else "increase" if change > 0 else "no change"
    placements = place_against_cohorts(relative, RELATIVE_TTV_CHANGE)
    return TtvChangeDescription(baseline, follow_up, change, relative, direction, TTV_CHANGE_EFFECT,
                                placements, "" if placements else NO_CHANGE_QUARTILES)


EARLY_RECURRENCE_MONTHS = 6.0
EARLY_RECURRENCE_TTV_EFFECT = (
    "Higher TTV went with a higher risk of early recurrence in the study, but no effect size is published "
    f"(doi:{STUDY_DOI}), so no TTV-specific probability is given: the cohort base rates are shown instead."
)


@dataclass(frozen=True)
class EarlyRecurrenceBaseRate:
    """Share of a cohort with recurrence within 6 months of the last local treatment, read off its RFS."""

    cohort: str
    window_months: float
    probability: float
    method: str
    ttv_effect: str
    citation: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def early_recurrence_base_rates() -> tuple[EarlyRecurrenceBaseRate, ...]:
    """Cohort base rates of early recurrence from the published RFS quartiles (about 35 % and 42 %)."""
    method = ("linear interpolation of the published RFS quartiles (first quartile 25 %, median 50 %) at "
              f"{EARLY_RECURRENCE_MONTHS:g} months; where RFS counts deaths without recurrence as events, "
              "this slightly overstates recurrence")
    return tuple(
        EarlyRecurrenceBaseRate(reference.cohort, EARLY_RECURRENCE_MONTHS,
                                _share_with_event_by(EARLY_RECURRENCE_MONTHS, reference), method,
                                EARLY_RECURRENCE_TTV_EFFECT, reference.citation)
        for reference in REFERENCE_QUARTILES if reference.quantity == RECURRENCE_FREE_SURVIVAL)


def _share_with_event_by(months: float, reference: CohortQuartiles) -> float:
    """Fraction with the event by ``months``, interpolating linearly between 0 (t=0) and the quartiles."""
    times = [0.0, reference.first_quartile, reference.median, reference.third_quartile]
    shares = [0.0, 0.25, 0.5, 0.75]
    known = [(t, s) for t, s in zip(times, shares) if t is not None]
    if months > known[-1][0]:
        raise InputError(f"{months:g} months is beyond the last published quartile of {reference.cohort}.")
    return float(np.interp(months, [t for t, _ in known], [s for _, s in known]))
