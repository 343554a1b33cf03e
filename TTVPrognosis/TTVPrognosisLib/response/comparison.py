"""Baseline versus follow-up: TTV change (the study's response measure), beside RECIST 1.1 and TBS.

TTV change = follow-up TTV - baseline TTV (mL); relative change = change / baseline x 100 %, undefined
(None) when the baseline TTV is 0.

The same comparison also matches lesions across the time points (:mod:`matching`, in the baseline frame
given by a :mod:`registration` result, or unregistered), assesses RECIST 1.1 on the matched lesions
(:mod:`recist`) and gives the Tumour Burden Score at both time points (:mod:`tumour_burden`). Only
measurements are needed: without lesion label maps matching uses centroids alone, and without a
registration the scans are taken as aligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..measure.volumetry import Measurement
from ..response.matching import DEFAULT_MAX_DISTANCE_MM, LesionMatching, match_lesions
from ..response.recist import PD, RecistAssessment, assess
from ..response.registration import FAILED, UNAVAILABLE, RegistrationResult
from ..response.tumour_burden import TumourBurdenChange, tumour_burden


@dataclass
class Comparison:
    """Two measurements of one patient and what changed between them."""

    baseline: Measurement
    followup: Measurement
    absolute_change_ml: float
    relative_change_percent: float | None
    warnings: list[str] = field(default_factory=list)
    lesion_matching: LesionMatching | None = field(default=None, repr=False)
    recist: RecistAssessment | None = None
    tbs: TumourBurdenChange | None = None
    registration: RegistrationResult | None = None

    def to_dict(self) -> dict:
        """JSON-ready document (the CLI's ``compare --json`` output); each lesion record also says its matching
        status and RECIST role."""
        document = {
            "baseline": self.baseline.to_dict(),
            "followup": self.followup.to_dict(),
            "absolute_change_ml": self.absolute_change_ml,
            "relative_change_percent": self.relative_change_percent,
            **self.lesion_counts(),
            "recist": None if self.recist is None else self.recist.to_dict(),
            "tbs": None if self.tbs is None else self.tbs.to_dict(),
            "lesion_matching": None if self.lesion_matching is None else self.lesion_matching.to_dict(),
            "registration": None if self.registration is None else self.registration.to_dict(),
            "warnings": list(self.warnings),
        }
        self._annotate_lesions(document["baseline"]["lesions"], document["followup"]["lesions"])
        return document

    def lesion_counts(self) -> dict:
        """New and disappeared lesions, merges (follow-up lesions formed by several baseline lesions) and
        splits (baseline lesions that fragmented); None without lesion matching."""
        matching = self.lesion_matching
        if matching is None:
            return dict.fromkeys(("new_lesion_count", "disappeared_lesion_count", "merged_lesion_count",
                                  "split_lesion_count"))
        return {"new_lesion_count": len(matching.new_lesion_ids),
                "disappeared_lesion_count": len(matching.disappeared_lesion_ids),
                "merged_lesion_count": len(matching.merged), "split_lesion_count": len(matching.split)}

    def _annotate_lesions(self, baseline_lesions: list[dict], followup_lesions: list[dict]) -> None:
        """Give each lesion record its matching status and RECIST role (target, non-target, new)."""
        if self.lesion_matching is None:
            return
        targets = {lesion.lesion_id for lesion in self.recist.target_lesions} if self.recist else set()
        for group in self.lesion_matching.groups:
            role = "new" if not group.baseline_ids else ("target" if targets & set(group.baseline_ids)
                                                         else "non-target")
            for records, ids in ((baseline_lesions, group.baseline_ids), (followup_lesions, group.followup_ids)):
                for number in ids:
                    if 0 < number <= len(records):
                        records[number - 1]["matching_status"] = group.kind
                        records[number - 1]["recist_role"] = role

    def lesion_table(self) -> list[dict]:
        """Matched-lesion table for the panel: one plain dict per row (see ``LesionMatching.table_rows``).

        Columns: baseline_lesion, followup_lesion (text ids), baseline_volume_ml, followup_volume_ml,
        volume_change_percent, baseline_diameter_mm, followup_diameter_mm (longest axial), status (matched,
        merged, split, merged and split, new, disappeared) and recist_role (target, non-target, new).
        """
        if self.lesion_matching is None:
            return []
        targets = {lesion.lesion_id for lesion in self.recist.target_lesions} if self.recist else set()
        rows = []
        for row, group in zip(self.lesion_matching.table_rows(), self.lesion_matching.groups):
            if not group.baseline_ids:
                role = "new"
            elif targets & set(group.baseline_ids):
                role = "target"
            else:
                role = "non-target"
            rows.append({**row, "recist_role": role})
        return rows


def relative_change_percent(baseline_ml: float, followup_ml: float) -> float | None:
    """Change as a percentage of the baseline; None when there is no baseline volume to relate to."""
    if baseline_ml <= 0:
        return None
    return (followup_ml - baseline_ml) / baseline_ml * 100.0


def compare(baseline: Measurement, followup: Measurement, registration: RegistrationResult | None = None,
            max_distance_mm: float = DEFAULT_MAX_DISTANCE_MM) -> Comparison:
    """TTV change, lesion matching, RECIST 1.1 and TBS between two time points.

    ``registration`` maps the follow-up into the baseline frame; None means the scans are taken as aligned
    (no registration was asked for). Lesion matching uses the lesion label maps when both measurements
    kept them (``measure(..., keep_labels=True)``).
    """
    warnings = []
    if baseline.ttv_ml <= 0:
        warnings.append("Baseline TTV is 0 mL, so the relative change is undefined.")
    registered = registration is not None and registration.registered
    if registration is not None:
        warnings.extend(registration.warnings)
    transform = None if registration is None else registration.followup_to_baseline_ras
    matching = match_lesions(baseline, followup, transform, registered=registered, max_distance_mm=max_distance_mm)
    warnings.extend(matching.warnings)
    recist = assess(matching.tracked_lesions(), matching.new_lesion_ids, baseline.slice_thickness_mm)
    if recist.response == PD and recist.new_lesions and registration is not None \
            and registration.status in (FAILED, UNAVAILABLE):
        warnings.append("RECIST says PD because of new lesions, but the scans were not registered: a lesion that "
                        "merely moved can look new. Check the matched-lesion table.")
    tbs = TumourBurdenChange(tumour_burden(baseline.lesion_count, baseline.largest_axial_diameter_mm),
                             tumour_burden(followup.lesion_count, followup.largest_axial_diameter_mm))
    return Comparison(
        baseline=baseline,
        followup=followup,
        absolute_change_ml=followup.ttv_ml - baseline.ttv_ml,
        relative_change_percent=relative_change_percent(baseline.ttv_ml, followup.ttv_ml),
        warnings=warnings,
        lesion_matching=matching,
        recist=recist,
        tbs=tbs,
        registration=registration,
    )
