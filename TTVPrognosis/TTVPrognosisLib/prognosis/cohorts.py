"""The study cohorts' published figures, and where one patient's values fall against them.

Descriptive facts from the publications (quartiles, the direction of the TTV-change effect, early-recurrence
base rates), kept apart from the survival model in :mod:`.model` because they are shown beside it, never used
as model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .model import CAIRO5_TTV_DOI, POPULATION, STUDY_DOI, _finite_number  # noqa: F401  (POPULATION re-exported)

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


STUDY_TABLE_1 = f"doi:{STUDY_DOI}, Table 1 and section 3.2"


@dataclass(frozen=True)
class PublishedTtvChange:
    """A cohort's published TTV change between the two scans: medians and interquartile ranges."""

    cohort: str
    size: int
    absolute_change_median_ml: float
    absolute_change_iqr_ml: tuple[float, float]
    relative_change_median_percent: float
    relative_change_iqr_percent: tuple[float, float]
    months_between_scans_median: float
    months_between_scans_iqr: tuple[float, float]
    citation: str = STUDY_TABLE_1


# doi:10.1016/j.ejca.2024.114185, Table 1 and section 3.2: median (IQR) per cohort.
PUBLISHED_TTV_CHANGES = (
    PublishedTtvChange("CAIRO5", 215, -22.0, (-81.0, -6.0), -60.0, (-73.0, -44.0), 2.3, (2.1, 2.5)),
    PublishedTtvChange("validation", 85, -13.0, (-37.0, -3.0), -64.0, (-76.0, -44.0), 3.0, (2.5, 3.8)),
)
TTV_CHANGE_EFFECT = (
    "Absolute change in TTV is the study's variable (relative change was deliberately not analysed): it was "
    "prognostic for early recurrence (P = 0.040 and 0.021) and overall survival (P = 0.006 and 0.012), with "
    "evidence of a nonlinear relation (P = 0.006 for early recurrence, 0.009 for overall survival; "
    f"doi:{STUDY_DOI}, Results). The curve is in the study's Supplementary Fig. 1, which is not available "
    "to this tool, so the change is placed against the cohorts' published quartiles and is not a model "
    f"input. In CAIRO5, no change in TTV carried a higher risk of death than a 50 % decrease (adjusted HR "
    f"2.57, 95 % CI 1.83-3.60; doi:{CAIRO5_TTV_DOI})."
)
BELOW, WITHIN, ABOVE = "below", "within", "above"


def change_position(change_ml: float, reference: PublishedTtvChange) -> str:
    """Where an absolute change (mL) falls against a cohort's interquartile range: below, within or above."""
    first, third = reference.absolute_change_iqr_ml
    if change_ml < first:
        return BELOW
    return ABOVE if change_ml > third else WITHIN


def ttv_change_against_cohorts(change_ml: float) -> list[dict]:
    """One record per published cohort with its figures and the ``position`` of this absolute change."""
    change = _finite_number(change_ml, "TTV change (mL)")
    return [{"cohort": reference.cohort, "cohort_size": reference.size,
             "absolute_change_median_ml": reference.absolute_change_median_ml,
             "absolute_change_iqr_ml": list(reference.absolute_change_iqr_ml),
             "relative_change_median_percent": reference.relative_change_median_percent,
             "relative_change_iqr_percent": list(reference.relative_change_iqr_percent),
             "months_between_scans_median": reference.months_between_scans_median,
             "months_between_scans_iqr": list(reference.months_between_scans_iqr),
             "position": change_position(change, reference), "citation": reference.citation}
            for reference in PUBLISHED_TTV_CHANGES]


@dataclass(frozen=True)
class TtvChangeDescription:
    """Baseline-to-follow-up TTV change, described against the published cohorts (not modelled)."""

    baseline_ttv_ml: float
    follow_up_ttv_ml: float
    change_ml: float
    relative_change_percent: float
    direction: str
    effect: str
    cohorts: tuple[dict, ...]

    def to_dict(self) -> dict:
        document = dict(self.__dict__)
        document["cohorts"] = [dict(cohort) for cohort in self.cohorts]
        return document


def describe_ttv_change(baseline_ttv_ml: float, follow_up_ttv_ml: float) -> TtvChangeDescription:
    """Change and relative change (DESIGN.md definitions), placed against the published cohorts' IQRs."""
    baseline = _finite_number(baseline_ttv_ml, "Baseline TTV (mL)")
    follow_up = _finite_number(follow_up_ttv_ml, "Follow-up TTV (mL)")
    if baseline <= 0 or follow_up < 0:
        raise InputError(f"TTV change needs a positive baseline TTV and a non-negative follow-up TTV, got "
                         f"{baseline:g} mL and {follow_up:g} mL.")
    change = follow_up - baseline
    relative = change / baseline * 100.0
    direction = "decrease" if change < 0 else "increase" if change > 0 else "no change"
    return TtvChangeDescription(baseline, follow_up, change, relative, direction, TTV_CHANGE_EFFECT,
                                tuple(ttv_change_against_cohorts(change)))


EARLY_RECURRENCE_MONTHS = 6.0
EARLY_RECURRENCE_TTV_EFFECT = (
    "In the study, absolute TTV change was prognostic for early recurrence (P = 0.040 and 0.021; nonlinear, "
    f"P = 0.006; doi:{STUDY_DOI}, Results), but the curve that would turn a TTV into a probability is in its "
    "Supplementary Fig. 1, not available to this tool, so the cohort base rates are shown instead."
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
