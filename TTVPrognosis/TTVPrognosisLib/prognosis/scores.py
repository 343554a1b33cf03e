"""Clinical risk scores for colorectal liver metastases, from measured burden plus clinical inputs.

Two published point scores are computed item by item so the reader sees where each point comes from:

- **Fong clinical risk score** (Fong Y, Fortner J, Sun RL, Brennan MF, Blumgart LH. Clinical score for
  predicting recurrence after hepatic resection for metastatic colorectal cancer: analysis of 1001
  consecutive cases. Ann Surg 1999;230(3):309-318, doi:10.1097/00000658-199909000-00004). One point each
  for: node-positive primary; disease-free interval from primary to liver metastases < 12 months; more
  than one hepatic tumour; largest hepatic tumour > 5 cm; preoperative CEA > 200 ng/mL. Fong et al.
  concluded that patients with a score of up to 2 can have a favourable outcome; the score is reported
  here as low risk (0-2) or high risk (3-5), the grouping used in later validations.
- **GAME score** (Margonis GA, Sasaki K, Gholami S, et al. Genetic And Morphological Evaluation (GAME)
  score for patients with colorectal liver metastases. Br J Surg 2018;105(9):1210-1220,
  doi:10.1002/bjs.10838). KRAS-mutated tumour 1 point; CEA >= 20 ng/mL 1 point; primary tumour lymph node
  metastasis 1 point; Tumour Burden Score 3-8 1 point, >= 9 2 points; extrahepatic disease 2 points.
  Risk groups: low 0-1, medium 2-3, high >= 4.

Tumour Burden Score (TBS) = sqrt((largest diameter, cm)^2 + (number of lesions)^2) (DESIGN.md); it is
computed in :mod:`tumour_burden` (Sasaki 2018) and re-exported here.

A score with a missing input is "not computable" and names what is missing: no point is guessed. No
survival figures per score are given: those belong to the original cohorts (resected patients, pathology
counts and sizes), not to measurements from a segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import InputError, non_negative_number, whole_number
from ..response.tumour_burden import tumour_burden_score

FONG_CITATION = ("Fong Y, et al. Clinical score for predicting recurrence after hepatic resection for "
                 "metastatic colorectal cancer: analysis of 1001 consecutive cases. "
                 "Ann Surg 1999;230(3):309-318. doi:10.1097/00000658-199909000-00004")
GAME_CITATION = ("Margonis GA, et al. Genetic And Morphological Evaluation (GAME) score for patients with "
                 "colorectal liver metastases. Br J Surg 2018;105(9):1210-1220. doi:10.1002/bjs.10838")
MEASUREMENT_NOTE = ("Lesion count and largest diameter come from the segmentation (connected components, "
                    "largest diameter as measured); the original scores counted and sized tumours on "
                    "preoperative imaging or pathology, so the points can differ.")

FONG_LARGEST_DIAMETER_MM = 50.0  # > 5 cm scores
FONG_DISEASE_FREE_INTERVAL_MONTHS = 12.0  # < 12 months scores
FONG_CEA_NG_ML = 200.0  # > 200 ng/mL scores
GAME_CEA_NG_ML = 20.0  # >= 20 ng/mL scores
GAME_TBS_ONE_POINT = 3.0
GAME_TBS_TWO_POINTS = 9.0
FONG_EXTRAHEPATIC_NOTE = ("Extrahepatic disease is not one of the five criteria, but Fong et al. found it an "
                          "independent predictor of poor outcome on its own.")


@dataclass(frozen=True)
class ClinicalInputs:
    """What the images cannot tell; ``None`` means not known (the score then says what is missing).

    ``disease_free_interval_months``: from resection of the primary to detection of liver metastases;
    0 for synchronous metastases. ``cea_ng_ml``: serum CEA before liver treatment. ``kras_mutated``: the
    GAME score was derived with KRAS status; an extended RAS result is a reasonable stand-in, not the same.
    """

    node_positive_primary: bool | None = None
    disease_free_interval_months: float | None = None
    cea_ng_ml: float | None = None
    kras_mutated: bool | None = None
    extrahepatic_disease: bool | None = None


@dataclass(frozen=True)
class ScoreItem:
    """One criterion: its name, the value it was judged on, the rule, and the points (None if missing)."""

    name: str
    value: Any
    rule: str
    points: int | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ScoreResult:
    """Points per item, total and risk group; ``total`` and ``risk_group`` are None when not computable."""

    score: str
    items: tuple[ScoreItem, ...]
    total: int | None
    risk_group: str | None
    missing: tuple[str, ...]
    citation: str
    notes: tuple[str, ...] = ()

    @property
    def computable(self) -> bool:
        return not self.missing

    @property
    def status(self) -> str:
        if self.computable:
            return f"{self.total} points: {self.risk_group}"
        return f"not computable: missing {', '.join(self.missing)}"

    def to_dict(self) -> dict:
        return {"score": self.score, "computable": self.computable, "status": self.status,
                "total": self.total, "risk_group": self.risk_group, "missing": list(self.missing),
                "items": [item.to_dict() for item in self.items], "citation": self.citation,
                "notes": list(self.notes)}


def fong_score(lesion_count: int | None, largest_diameter_mm: float | None,
               clinical: ClinicalInputs) -> ScoreResult:
    """Fong clinical risk score (Ann Surg 1999): five criteria, one point each; low 0-2, high 3-5."""
    interval = _optional_non_negative(clinical.disease_free_interval_months, "Disease-free interval (months)")
    cea = _optional_non_negative(clinical.cea_ng_ml, "CEA (ng/mL)")
    count = None if lesion_count is None else _lesion_count(lesion_count)
    diameter = _optional_non_negative(largest_diameter_mm, "Largest lesion diameter (mm)")
    items = (
        _yes_no_item("node-positive primary", _optional_bool(clinical.node_positive_primary,
                                                             "Node-positive primary"), "node-positive: 1"),
        _threshold_item("disease-free interval (months)", interval, "< 12 months: 1",
                        lambda months: months < FONG_DISEASE_FREE_INTERVAL_MONTHS),
        _threshold_item("number of liver lesions", count, "> 1: 1", lambda number: number > 1),
        _threshold_item("largest lesion diameter (mm)", diameter, "> 50 mm (5 cm): 1",
                        lambda millimetres: millimetres > FONG_LARGEST_DIAMETER_MM),
        _threshold_item("CEA (ng/mL)", cea, "> 200 ng/mL: 1", lambda level: level > FONG_CEA_NG_ML),
    )
    notes = (MEASUREMENT_NOTE,) + ((FONG_EXTRAHEPATIC_NOTE,) if clinical.extrahepatic_disease else ())
    return _result("Fong clinical risk score", items, _fong_risk_group, FONG_CITATION, notes)


def game_score(lesion_count: int | None, largest_diameter_mm: float | None,
               clinical: ClinicalInputs) -> ScoreResult:
    """GAME score (Br J Surg 2018): KRAS, CEA, node-positive primary, TBS, extrahepatic disease; 0-7.

    TBS bands are published as "3-8" and ">= 9" for whole numbers; a measured TBS is continuous, so
    3 <= TBS < 9 scores 1 point and TBS >= 9 scores 2.
    """
    cea = _optional_non_negative(clinical.cea_ng_ml, "CEA (ng/mL)")
    tbs = (None if lesion_count is None or largest_diameter_mm is None
           else tumour_burden_score(_lesion_count(lesion_count), largest_diameter_mm))
    items = (
        _yes_no_item("RAS (KRAS) mutated", _optional_bool(clinical.kras_mutated, "RAS (KRAS) mutated"),
                     "mutated: 1"),
        _threshold_item("CEA (ng/mL)", cea, ">= 20 ng/mL: 1", lambda level: level >= GAME_CEA_NG_ML),
        _yes_no_item("node-positive primary", _optional_bool(clinical.node_positive_primary,
                                                             "Node-positive primary"), "node-positive: 1"),
        ScoreItem("tumour burden score", None if tbs is None else round(tbs, 2),
                  "< 3: 0; 3 to < 9: 1; >= 9: 2", None if tbs is None else _tbs_points(tbs)),
        _yes_no_item("extrahepatic disease",
                     _optional_bool(clinical.extrahepatic_disease, "Extrahepatic disease"), "present: 2",
                     points_if_yes=2),
    )
    return _result("GAME score", items, _game_risk_group, GAME_CITATION, (MEASUREMENT_NOTE,))


def _tbs_points(tbs: float) -> int:
    if tbs >= GAME_TBS_TWO_POINTS:
        return 2
    return 1 if tbs >= GAME_TBS_ONE_POINT else 0


def _fong_risk_group(total: int) -> str:
    return "low risk (0-2)" if total <= 2 else "high risk (3-5)"


def _game_risk_group(total: int) -> str:
    if total <= 1:
        return "low risk (0-1)"
    return "medium risk (2-3)" if total <= 3 else "high risk (4-7)"


def _result(score: str, items: tuple[ScoreItem, ...], risk_group: Callable[[int], str], citation: str,
            notes: tuple[str, ...]) -> ScoreResult:
    missing = tuple(item.name for item in items if item.points is None)
    total = None if missing else sum(item.points for item in items)
    group = None if total is None else risk_group(total)
    return ScoreResult(score, items, total, group, missing, citation, notes)


def _yes_no_item(name: str, value: bool | None, rule: str, points_if_yes: int = 1) -> ScoreItem:
    return ScoreItem(name, value, rule, None if value is None else (points_if_yes if value else 0))


def _threshold_item(name: str, value: float | None, rule: str, scores: Callable[[float], bool]) -> ScoreItem:
    return ScoreItem(name, value, rule, None if value is None else int(bool(scores(value))))


def _optional_bool(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InputError(f"{name} must be yes (True), no (False) or unknown (None), got {value!r}.")


def _optional_non_negative(value: Any, name: str) -> float | None:
    return None if value is None else non_negative_number(value, name)


def _lesion_count(value: Any) -> int:
    count = whole_number(value, "Number of liver lesions")
    if count < 1:
        raise InputError("The scores need at least one liver lesion; none was measured.")
    return count


# --------------------------------------------------------------------------------------------------------
# Which scan the scores are computed on, and the scores as table columns
# --------------------------------------------------------------------------------------------------------

BASELINE_SCAN, FOLLOWUP_SCAN = "baseline", "followup"
FOLLOWUP_REASON = ("Fong and GAME are preoperative scores; with a follow-up scan (after induction therapy, "
                   "before local treatment) they are computed on it.")
BASELINE_REASON = ("Fong and GAME are preoperative scores; no follow-up scan (after induction therapy) was given, "
                   "so they are computed on the baseline scan.")


@dataclass(frozen=True)
class TimedScores:
    """Fong and GAME computed on one scan, saying which and why."""

    time_point: str
    scan: str
    reason: str
    fong: ScoreResult
    game: ScoreResult

    def to_dict(self) -> dict:
        return {"time_point": self.time_point, "scan": self.scan, "reason": self.reason,
                "fong": self.fong.to_dict(), "game": self.game.to_dict()}


def preoperative_scores(baseline: tuple[int, float | None, str], followup: tuple[int, float | None, str] | None,
                        clinical: ClinicalInputs | None = None) -> TimedScores:
    """Fong and GAME on the follow-up (the scan after induction therapy) when there is one, else the baseline.

    ``baseline``/``followup``: (lesion count, largest longest axial diameter in mm, scan name). A scan without
    any lesion (a complete response on imaging) makes both scores not computable, with the reason.
    """
    clinical = clinical or ClinicalInputs()
    time_point, reason = (FOLLOWUP_SCAN, FOLLOWUP_REASON) if followup is not None else (BASELINE_SCAN,
                                                                                       BASELINE_REASON)
    count, diameter, scan = followup if followup is not None else baseline
    if count:
        return TimedScores(time_point, scan, reason, fong_score(count, diameter, clinical),
                           game_score(count, diameter, clinical))
    nothing = f"liver lesions (none measured on the {'follow-up' if followup is not None else 'baseline'} scan)"
    return TimedScores(time_point, scan, reason,
                       ScoreResult("Fong clinical risk score", (), None, None, (nothing,), FONG_CITATION),
                       ScoreResult("GAME score", (), None, None, (nothing,), GAME_CITATION))


def score_columns(section: dict | None) -> dict[str, Any]:
    """The batch's score columns from a ``clinical_scores`` section (empty cells and a reason when unknown).

    ``fong_score``/``game_score`` (points), ``fong_risk_group``/``game_risk_group``, ``scores_time_point``
    (baseline or followup), and ``fong_not_computable_reason``/``game_not_computable_reason`` (empty when
    the score was computed).
    """
    columns: dict[str, Any] = {}
    for name in ("fong", "game"):
        score = (section or {}).get(name) or {}
        columns[f"{name}_score"] = score.get("total")
        columns[f"{name}_risk_group"] = score.get("risk_group")
        missing = score.get("missing") or []
        columns[f"{name}_not_computable_reason"] = f"missing {', '.join(missing)}" if missing else None
    columns["scores_time_point"] = (section or {}).get("time_point")
    return columns
