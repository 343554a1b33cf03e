"""Baseline versus follow-up: TTV change (the study's response measure).

TTV change = follow-up TTV - baseline TTV (mL); relative change = change / baseline x 100 %, undefined
(None) when the baseline TTV is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .volumetry import Measurement


@dataclass
class Comparison:
    """Two measurements of one patient and what changed between them."""

    baseline: Measurement
    followup: Measurement
    absolute_change_ml: float
    relative_change_percent: float | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready document (the CLI's ``compare --json`` output)."""
        return {
            "baseline": self.baseline.to_dict(),
            "followup": self.followup.to_dict(),
            "absolute_change_ml": self.absolute_change_ml,
            "relative_change_percent": self.relative_change_percent,
            "warnings": list(self.warnings),
        }


def relative_change_percent(baseline_ml: float, followup_ml: float) -> float | None:
    """Change as a percentage of the baseline; None when there is no baseline volume to relate to."""
    if baseline_ml <= 0:
        return None
    return (followup_ml - baseline_ml) / baseline_ml * 100.0


def compare(baseline: Measurement, followup: Measurement) -> Comparison:
    """TTV change between two time points."""
    warnings = []
    if baseline.ttv_ml <= 0:
        warnings.append("Baseline TTV is 0 mL, so the relative change is undefined.")
    return Comparison(
        baseline=baseline,
        followup=followup,
        absolute_change_ml=followup.ttv_ml - baseline.ttv_ml,
        relative_change_percent=relative_change_percent(baseline.ttv_ml, followup.ttv_ml),
        warnings=warnings,
    )
