"""JSON text of a result document, with no NaN in it.

Kept apart from :mod:`..report.documents` (which needs the prognosis and response code to build documents)
so that printing a measurement as JSON imports nothing beyond the standard library (command start-up time).
"""

from __future__ import annotations

import json
import math


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
