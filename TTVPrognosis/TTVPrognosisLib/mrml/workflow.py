"""What "Compute TTV" does, from MRML nodes to filled result nodes; the panel only gathers the inputs.

Kept out of the Slicer module file so that it runs (and is tested) on the ``slicer-core`` wheel: measure
or compare the time points, predict survival from the baseline TTV, compute the clinical scores, warn
about lesions nobody has verified, and write every result table and the survival chart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..formats.segments import require_patterns_match
from ..measure.volumetry import Measurement, measure
from ..mrml.nodes import time_point_from_nodes
from ..mrml.results import (
    write_response_tables,
    write_result_tables,
    write_score_table,
    write_survival_chart,
    write_survival_table,
)
from ..pipeline import compare_volumes
from ..prognosis.scores import ClinicalInputs, ScoreResult, preoperative_scores
from ..prognosis.section import prognosis_section, survival_curves
from ..response.comparison import Comparison


@dataclass
class Outcome:
    """Everything the panel shows after Compute TTV."""

    result: Measurement | Comparison
    prognosis: dict | None
    scores: list[ScoreResult]
    warnings: list[str] = field(default_factory=list)
    scores_time_point: str = ""  # "followup" (after induction therapy) or "baseline": the scan scored
    scores_note: str = ""  # which scan, and why

    @property
    def baseline(self) -> Measurement:
        return self.result.baseline if isinstance(self.result, Comparison) else self.result

    @property
    def comparison(self) -> Comparison | None:
        return self.result if isinstance(self.result, Comparison) else None


def compute_outcome(baseline_segmentation, baseline_volume=None, followup_segmentation=None, followup_volume=None,
                    exclude: Sequence[str] = (), register: bool = True,
                    clinical: ClinicalInputs | None = None, lesion: Sequence[str] = (),
                    step: Callable[[str], object] | None = None) -> Outcome:
    """Measure (and compare, when a follow-up segmentation is given), predict and score. Nodes are not changed.

    ``step`` is called with what comes next before each stage (the panel's progress; it may raise to cancel).
    """
    step = step or (lambda text: None)
    has_followup = followup_segmentation is not None
    step("Reading the segmentations")
    baseline, baseline_image = time_point_from_nodes(baseline_segmentation, baseline_volume,
                                                     read_voxels=has_followup)
    if has_followup:
        followup, followup_image = time_point_from_nodes(followup_segmentation, followup_volume)
        step("Registering the scans and matching lesions" if register else "Matching lesions")
        result = compare_volumes(baseline, followup, exclude=exclude, baseline_image=baseline_image,
                                 followup_image=followup_image, register=register, lesion=lesion)
    else:
        require_patterns_match([baseline], lesion, "Lesion segment")
        result = measure(baseline, exclude=exclude, lesion=lesion)
    outcome = Outcome(result, None, [])
    baseline_measurement = outcome.baseline
    unverified = list(baseline_measurement.unverified_lesion_segments)
    if outcome.comparison is not None:
        unverified += outcome.comparison.followup.unverified_lesion_segments
    if unverified:
        outcome.warnings.append(f"{len(unverified)} lesion segment(s) are not marked verified yet: "
                                f"{', '.join(unverified)}. Review them before relying on the numbers.")
    step("Predicting survival")
    if baseline_measurement.ttv_ml > 0:
        followup_ttv = outcome.comparison.followup.ttv_ml if outcome.comparison is not None else None
        outcome.prognosis = prognosis_section(baseline_measurement.ttv_ml, followup_ttv)
    if baseline_measurement.lesion_count:
        followup = outcome.comparison.followup if outcome.comparison is not None else None
        timed = preoperative_scores(_burden(baseline_measurement, "baseline"),
                                    None if followup is None else _burden(followup, "follow-up"),
                                    clinical or ClinicalInputs())
        outcome.scores = [timed.fong, timed.game]
        outcome.scores_time_point = timed.time_point
        outcome.scores_note = (f"Fong and GAME computed on the {'follow-up' if followup is not None else 'baseline'} "
                               f"scan ({timed.scan}). {timed.reason}")
    return outcome


def _burden(measurement: Measurement, label: str) -> tuple:
    return measurement.lesion_count, measurement.largest_axial_diameter_mm, measurement.source or f"{label} scan"


@dataclass
class ResultNodes:
    """The table and chart nodes the panel shows (created once by the caller, then reused)."""

    summary: object
    lesions: object
    response: object
    matched_lesions: object
    survival: object
    survival_curves: object
    survival_chart: object
    scores: object


def write_outcome(outcome: Outcome, nodes: ResultNodes, scene) -> None:
    """Fill every result node from one outcome; tables of parts that do not apply are emptied."""
    write_result_tables(outcome.result, nodes.summary, nodes.lesions)
    if outcome.comparison is not None:
        write_response_tables(outcome.comparison, nodes.response, nodes.matched_lesions)
    else:
        for node in (nodes.response, nodes.matched_lesions):
            node.RemoveAllColumns()
    if outcome.prognosis is not None:
        write_survival_table(outcome.prognosis, nodes.survival)
    else:
        nodes.survival.RemoveAllColumns()
    if outcome.prognosis is not None and outcome.prognosis["overall_survival"]:
        write_survival_chart(survival_curves(outcome.prognosis["baseline_ttv_ml"]), nodes.survival_curves,
                             nodes.survival_chart, scene)
    else:  # no prognosis, or a TTV outside the model's range (its error is in the prognosis section)
        nodes.survival_chart.RemoveAllPlotSeriesNodeIDs()
    write_score_table(outcome.scores, nodes.scores, outcome.scores_time_point)


def clinical_inputs_from_panel(node_positive: str, disease_free_interval_months: float, cea_ng_ml: float,
                               kras_mutated: str, extrahepatic_disease: str) -> ClinicalInputs:
    """Panel values to ClinicalInputs: "Yes"/"No"/"Unknown" choices, and negative numbers for "unknown"."""
    def yes_no(value: str) -> bool | None:
        return {"yes": True, "no": False}.get((value or "").strip().lower())

    def known(value: float | None) -> float | None:
        return None if value is None or value < 0 else float(value)

    return ClinicalInputs(node_positive_primary=yes_no(node_positive),
                          disease_free_interval_months=known(disease_free_interval_months),
                          cea_ng_ml=known(cea_ng_ml), kras_mutated=yes_no(kras_mutated),
                          extrahepatic_disease=yes_no(extrahepatic_disease))
