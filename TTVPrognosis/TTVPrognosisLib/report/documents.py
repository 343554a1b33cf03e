"""JSON documents for programs: what ``--json`` prints and the batch flattens, with no NaN in them.

Kept apart from the text tables (:mod:`.text`) so that programs reading the documents and people reading the
tables can change independently.
"""

from __future__ import annotations

import json
import math

from ..prognosis.model import SurvivalModel
from ..prognosis.section import prognosis_section
from ..response.comparison import Comparison


def to_json(document: dict) -> str:
    """One JSON document; NaN is never written (undefined values are null)."""
    return json.dumps(_finite(document), indent=2, allow_nan=False)


def _finite(value):
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def comparison_document(comparison: Comparison, model: SurvivalModel | None = None) -> dict:
    """The full ``compare --json`` document: the comparison plus the prognosis from the baseline TTV."""
    document = comparison.to_dict()
    document["prognosis"] = prognosis_section(comparison.baseline.ttv_ml, comparison.followup.ttv_ml, model=model)
    return document
