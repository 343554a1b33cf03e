"""One patient's prognosis as the panel and ``compare --json`` show it: model survival and cohort facts together.

Joins :mod:`.model` (survival) and :mod:`.cohorts` (published figures) for one baseline TTV, so neither of them
needs to know about the other's output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError
from .cohorts import describe_ttv_change, early_recurrence_base_rates, place_against_cohorts
from .model import SurvivalModel, check_baseline_ttv, load_model, predict_overall_survival

REFERENCE_CURVE_TTVS_ML = (3.0, 50.0, 300.0)  # the published 5-year OS targets (doi:10.1016/j.ejca.2024.114185)


def survival_curves(baseline_ttv_ml: float, model: SurvivalModel | None = None, step_months: float = 3.0
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The patient's survival curve and the reference curves (3, 50, 300 mL) over the supported months.

    Keys are plot labels; values are (months, survival probability). Refuses a TTV the model cannot take.
    """
    model = load_model() if model is None else model
    check_baseline_ttv(baseline_ttv_ml, model)
    first, last = model.supported_months
    months = np.arange(first, last + 1e-9, step_months)
    curves = {f"This patient ({float(baseline_ttv_ml):.0f} mL)": (months, model.survival(months, baseline_ttv_ml))}
    for reference in REFERENCE_CURVE_TTVS_ML:
        curves[f"Reference {reference:g} mL"] = (months, model.survival(months, reference))
    return curves


# --------------------------------------------------------------------------------------------------------
# The model's survival and the cohort facts for one patient, as the panel and `compare --json` show them
# --------------------------------------------------------------------------------------------------------

def prognosis_section(baseline_ttv_ml: float, follow_up_ttv_ml: float | None = None,
                      model: SurvivalModel | None = None) -> dict:
    """JSON-ready prognosis for one patient: model survival, cohort placement, TTV change, base rates.

    ``population`` is the model's population sentence (who the figures are for, and that survival for a scan
    before treatment is conditional on reaching complete local treatment); every output showing survival
    shows it.

    A part that cannot be computed (e.g. a TTV outside the model's range) is left empty and its reason is
    listed under ``errors``, so the rest of a comparison report still comes out.
    """
    model = load_model() if model is None else model
    errors: list[str] = []
    prediction = _or_error(errors, lambda: predict_overall_survival(baseline_ttv_ml, model))
    placements = _or_error(errors, lambda: place_against_cohorts(baseline_ttv_ml)) or ()
    change = (None if follow_up_ttv_ml is None
              else _or_error(errors, lambda: describe_ttv_change(baseline_ttv_ml, follow_up_ttv_ml)))
    return {
        "model_id": model.model_id,
        "model_title": model.title,
        "intended_use": model.intended_use,
        "time_origin": model.time_origin,
        "population": model.population,
        "baseline_ttv_ml": baseline_ttv_ml,
        "overall_survival": [] if prediction is None else prediction.to_dict()["overall_survival"],
        "warnings": [] if prediction is None else list(prediction.warnings),
        "baseline_ttv_vs_cohorts": [placement.to_dict() for placement in placements],
        "ttv_change": None if change is None else change.to_dict(),
        "early_recurrence": [rate.to_dict() for rate in early_recurrence_base_rates()],
        "errors": errors,
    }


def _or_error(errors: list[str], compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except InputError as error:
        errors.append(str(error))
        return None
