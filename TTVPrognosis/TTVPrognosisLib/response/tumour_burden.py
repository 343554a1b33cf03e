"""Tumour Burden Score (TBS): lesion size and number in one number, with its prognostic zone.

Sasaki K, Morioka D, Conci S, et al. The Tumor Burden Score: a new "metro-ticket" prognostic tool for
colorectal liver metastases based on tumor size and number of tumors. Ann Surg 2018;267(1):132-141,
doi:10.1097/SLA.0000000000002064.

TBS = sqrt((largest diameter in cm)^2 + (number of liver lesions)^2), the distance from the origin of a
plane whose axes are size and number. Sasaki et al. grouped patients into three zones: zone 1 TBS < 3,
zone 2 3 <= TBS < 9, zone 3 TBS >= 9 (survival worsens from zone 1 to 3).

Here the number is the lesion count of the segmentation (26-connected components) and the size is the
largest *longest axial* diameter (the RECIST plane, DESIGN.md "Definitions"); Sasaki et al. took both from
pathology or preoperative imaging, so a measured TBS can differ from theirs for the same patient. With no
lesion at all (e.g. a complete response) TBS is 0.

Beside Sasaki's zones the study this tool follows (doi:10.1016/j.ejca.2024.114185) dichotomised TBS at 14.3
when comparing it with TTV; each time point says whether its TBS is at or above that cut-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, non_negative_number, whole_number

TBS_CITATION = ("Sasaki K, et al. The Tumor Burden Score: a new \"metro-ticket\" prognostic tool for colorectal "
                "liver metastases based on tumor size and number of tumors. Ann Surg 2018;267(1):132-141. "
                "doi:10.1097/SLA.0000000000002064")
ZONE_2_FROM = 3.0  # TBS >= 3: zone 2
ZONE_3_FROM = 9.0  # TBS >= 9: zone 3
STUDY_CUT_OFF = 14.3  # the TTV study's TBS cut-off (doi:10.1016/j.ejca.2024.114185)
STUDY_CUT_OFF_SOURCE = "doi:10.1016/j.ejca.2024.114185 (the TTV study's TBS cut-off)"
ZONE_LABELS = {1: "zone 1 (TBS < 3)", 2: "zone 2 (3 <= TBS < 9)", 3: "zone 3 (TBS >= 9)"}


def tumour_burden_score(lesion_count: int, largest_diameter_mm: float) -> float:
    """TBS = sqrt((largest diameter in cm)^2 + (number of lesions)^2); 0 lesions of 0 mm give 0."""
    count = _lesion_count(lesion_count)
    diameter_cm = non_negative_number(largest_diameter_mm, "Largest lesion diameter (mm)") / 10.0
    if count == 0 and diameter_cm > 0:
        raise InputError(f"A largest lesion diameter of {largest_diameter_mm} mm was given with no lesion.")
    return math.hypot(diameter_cm, count)


def tbs_zone(score: float) -> int:
    """Sasaki's zone of a TBS value: 1 (< 3), 2 (3 to < 9) or 3 (>= 9)."""
    value = non_negative_number(score, "Tumour burden score")
    if value >= ZONE_3_FROM:
        return 3
    return 2 if value >= ZONE_2_FROM else 1


@dataclass(frozen=True)
class TumourBurden:
    """TBS of one time point and what it was computed from."""

    score: float
    zone: int
    lesion_count: int
    largest_diameter_mm: float

    @property
    def zone_label(self) -> str:
        return ZONE_LABELS[self.zone]

    @property
    def above_study_cut_off(self) -> bool:
        """TBS >= 14.3, the study's cut-off (shown beside Sasaki's zones)."""
        return self.score >= STUDY_CUT_OFF

    def to_dict(self) -> dict:
        return {"score": self.score, "zone": self.zone, "zone_label": self.zone_label,
                "at_or_above_study_cut_off": self.above_study_cut_off,
                "lesion_count": self.lesion_count, "largest_diameter_mm": self.largest_diameter_mm}


def tumour_burden(lesion_count: int, largest_diameter_mm: float | None) -> TumourBurden:
    """TBS and zone; ``largest_diameter_mm`` may be None only when there is no lesion."""
    count = _lesion_count(lesion_count)
    if largest_diameter_mm is None:
        if count:
            raise InputError(f"The largest lesion diameter is needed for TBS when there are {count} lesion(s).")
        largest_diameter_mm = 0.0
    score = tumour_burden_score(count, largest_diameter_mm)
    return TumourBurden(score, tbs_zone(score), count, float(largest_diameter_mm))


def _lesion_count(value: Any) -> int:
    count = whole_number(value, "Number of liver lesions")
    if count < 0:
        raise InputError(f"Number of liver lesions cannot be negative, got {value!r}.")
    return count


@dataclass(frozen=True)
class TumourBurdenChange:
    """TBS at baseline and follow-up, side by side."""

    baseline: TumourBurden
    followup: TumourBurden

    @property
    def change(self) -> float:
        return self.followup.score - self.baseline.score

    def to_dict(self) -> dict:
        return {"baseline": self.baseline.score, "followup": self.followup.score, "change": self.change,
                "baseline_zone": self.baseline.zone, "followup_zone": self.followup.zone,
                "baseline_zone_label": self.baseline.zone_label, "followup_zone_label": self.followup.zone_label,
                "study_cut_off": STUDY_CUT_OFF, "study_cut_off_source": STUDY_CUT_OFF_SOURCE,
                "baseline_at_or_above_study_cut_off": self.baseline.above_study_cut_off,
                "followup_at_or_above_study_cut_off": self.followup.above_study_cut_off,
                "baseline_detail": self.baseline.to_dict(), "followup_detail": self.followup.to_dict(),
                "size_used": "largest longest axial diameter (cm)", "citation": TBS_CITATION}
