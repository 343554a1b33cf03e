"""Harrell's C as R's ``survival::concordance`` computes it for a Cox model.

A pair is comparable when the shorter time is an event and the other time is longer, or equal and censored
(a censored time counts as just after an event at the same time); pairs with tied event times are not
comparable. Tied risk scores count one half. This is what ``lifelines.utils.concordance_index`` computes with
``-risk`` as its prediction (a higher risk means a shorter time); a test checks it pair by pair against this
definition and against R.
"""

from __future__ import annotations

import numpy as np


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C of ``risk`` (a linear predictor: higher = worse) for right-censored ``time``/``event``."""
    from lifelines.utils import concordance_index

    return float(concordance_index(np.asarray(time, dtype=float), -np.asarray(risk, dtype=float),
                                   np.asarray(event, dtype=int)))
