"""JSON documents for programs: what ``--json`` prints and the batch flattens, with no NaN in them.

Kept apart from the text tables (:mod:`.text`) so that programs reading the documents and people reading the
tables can change independently.
"""

from __future__ import annotations

from ..formats.json_document import to_json  # noqa: F401  (re-exported: where documents were always written)
from ..measure.volumetry import Measurement
from ..prognosis.model import SurvivalModel
from ..prognosis.scores import ClinicalInputs, TimedScores, preoperative_scores
from ..prognosis.section import prognosis_section
from ..response.comparison import Comparison


def comparison_document(comparison: Comparison, model: SurvivalModel | None = None,
                        clinical: ClinicalInputs | None = None) -> dict:
    """The full ``compare --json`` document: the comparison, the prognosis from the baseline TTV, and the
    Fong and GAME scores on the follow-up (the scan after induction therapy)."""
    document = comparison.to_dict()
    document["prognosis"] = prognosis_section(comparison.baseline.ttv_ml, comparison.followup.ttv_ml, model=model)
    document["clinical_scores"] = scores_section(comparison.baseline, comparison.followup, clinical)
    return document


def scores_section(baseline: Measurement, followup: Measurement | None, clinical: ClinicalInputs | None) -> dict:
    """Fong and GAME from the follow-up's measurements when there is one, else the baseline's (JSON-ready)."""
    return timed_scores(baseline, followup, clinical).to_dict()


def timed_scores(baseline: Measurement, followup: Measurement | None, clinical: ClinicalInputs | None) -> TimedScores:
    """Fong and GAME as ``compare`` computes them (on the follow-up when there is one): one place for the JSON
    documents and the patient reports, so both show the same scores."""
    def burden(measurement: Measurement) -> tuple:
        return measurement.lesion_count, measurement.largest_axial_diameter_mm, str(measurement.source)

    return preoperative_scores(burden(baseline), None if followup is None else burden(followup), clinical)
