"""Recovery: the analysis gives back the truth of synthetic cohorts (synthetic_cohort.py).

Fast tests use one large cohort each; the repeated-cohort properties (CI coverage, size and power of the
nonlinearity test) are marked slow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from synthetic_cohort import Truth, censoring_times, cohort

from TTVPrognosisLib.analysis.config import parse_config
from TTVPrognosisLib.analysis.dataset import analysed_rows
from TTVPrognosisLib.analysis.models import analyse_model
from TTVPrognosisLib.analysis.run import analyze
from TTVPrognosisLib.analysis.terms import build_term, term_values
from TTVPrognosisLib.cli import main

pd = pytest.importorskip("pandas")
pytest.importorskip("lifelines")

SETTINGS = """
[outcome]
time = "os_months"
event = "os_event"
[variables]
baseline_ttv_ml = { type = "log" }
absolute_change_ml = { type = "linear" }
change_spline = { type = "spline", knots = 3 }
age = { type = "linear" }
sex = { type = "categorical", reference = "female" }
cea = { type = "log" }
[models]
conventional = ["age", "sex", "cea"]
linear = ["age", "sex", "cea", "baseline_ttv_ml", "absolute_change_ml"]
spline = ["age", "sex", "cea", "baseline_ttv_ml", "change_spline"]
[[comparisons]]
base = "conventional"
extended = "linear"
[bootstrap]
replicates = 0
[plots]
formats = ["png"]
"""


def write(tmp_path: Path, frame: dict, settings: str = SETTINGS) -> tuple[Path, Path]:
    table = pd.DataFrame(frame)
    table["change_spline"] = table["absolute_change_ml"]
    table.to_csv(tmp_path / "cohort.csv", index=False)
    (tmp_path / "analysis.toml").write_text(settings, encoding="utf-8")
    return tmp_path / "cohort.csv", tmp_path / "analysis.toml"


def test_coefficients_are_recovered_within_four_standard_errors(tmp_path):
    truth = Truth()
    table, config = write(tmp_path, cohort(6000, seed=11, truth=truth))
    model = analyze(table, config, tmp_path / "out")["models"]["linear"]
    expected = {"ln(baseline_ttv_ml)": truth.ln_ttv, "absolute_change_ml": truth.change_per_100ml / 100.0,
                "age": truth.age_per_year, "sex[male]": -truth.female, "ln(cea)": truth.ln_cea}
    for row in model["coefficients"]:
        assert abs(row["coefficient"] - expected[row["term"]]) < 4.0 * row["se"], row
    assert model["events"] > 2000


def _nonlinearity_p(frame: dict) -> float:
    settings = parse_config(SETTINGS)
    table = pd.DataFrame(frame).astype(str)
    table["change_spline"] = table["absolute_change_ml"]
    rows = analysed_rows(table, settings)
    names = settings.models["spline"]
    terms = {name: build_term(rows, settings.variables[name]) for name in names}
    matrices = {name: term.matrix(term_values(rows, term)) for name, term in terms.items()}
    document, _ = analyse_model("spline", names, rows, terms, matrices, (), [])
    return document["nonlinearity"][0]["p"]


def test_nonlinearity_is_found_when_the_truth_bends_and_not_in_a_linear_truth():
    assert _nonlinearity_p(cohort(3000, seed=5, truth=Truth(change_kink=-6.0))) < 0.001
    assert _nonlinearity_p(cohort(3000, seed=5, truth=Truth())) > 0.01


@pytest.mark.slow
def test_nonlinearity_test_size_and_power_at_the_study_size():
    linear = [_nonlinearity_p(cohort(215, seed=1000 + i, truth=Truth())) for i in range(200)]
    bent = [_nonlinearity_p(cohort(215, seed=2000 + i, truth=Truth(change_kink=-6.0))) for i in range(200)]
    size = np.mean(np.array(linear) < 0.05)
    power = np.mean(np.array(bent) < 0.05)
    assert 0.015 <= size <= 0.09, size  # 200 cohorts: 95 % of sizes of a 5 % test fall in 2-8 %
    assert power >= 0.4, power  # log HR rising by 1.8 between -30 and 0 mL, then flat


@pytest.mark.slow
def test_confidence_intervals_cover_the_truth_about_95_percent_of_the_time():
    settings = parse_config(SETTINGS)
    names = settings.models["linear"]
    covered = []
    for index in range(200):
        table = pd.DataFrame(cohort(300, seed=3000 + index)).astype(str)
        table["change_spline"] = table["absolute_change_ml"]
        rows = analysed_rows(table, settings)
        terms = {name: build_term(rows, settings.variables[name]) for name in names}
        matrices = {name: term.matrix(term_values(rows, term)) for name, term in terms.items()}
        document, _ = analyse_model("linear", names, rows, terms, matrices, (), [])
        row = next(r for r in document["coefficients"] if r["term"] == "ln(baseline_ttv_ml)")
        low, high = (math.log(value) for value in row["ci95"])
        covered.append(low <= Truth().ln_ttv <= high)
    assert 0.91 <= np.mean(covered) <= 0.985, np.mean(covered)


def test_reverse_kaplan_meier_gives_the_potential_follow_up(tmp_path):
    table, config = write(tmp_path, cohort(4000, seed=21))
    follow_up = analyze(table, config, tmp_path / "out")["follow_up_months"]
    potential = censoring_times(np.random.default_rng(0), 1_000_000)
    assert follow_up["median"] == pytest.approx(np.median(potential), abs=1.5)
    assert follow_up["q1"] == pytest.approx(np.quantile(potential, 0.25), abs=1.5)
    assert follow_up["q3"] == pytest.approx(np.quantile(potential, 0.75), abs=1.5)
    observed = pd.read_csv(table)["os_months"].median()
    assert follow_up["median"] > observed + 10  # deaths shorten observed times, not follow-up


def test_early_recurrence_counts_the_study_definition_from_dates(tmp_path):
    frame = cohort(400, seed=4)
    settings = SETTINGS.replace('time = "os_months"\nevent = "os_event"', """
[outcome.early_recurrence]
start = "treatment_date"
recurrence = "recurrence_date"
last_visit = "last_visit_date"
death = "death_date"
horizon_months = 6
""".strip()).replace("[[comparisons]]\nbase = \"conventional\"\nextended = \"linear\"\n", "")
    table, config = write(tmp_path, frame, settings)
    document = analyze(table, config, tmp_path / "out")
    days = [(np.datetime64(r) - np.datetime64(t)).astype(int) if r and t else None
            for r, t in zip(frame["recurrence_date"], frame["treatment_date"])]
    expected = sum(1 for d in days if d is not None and d / (365.25 / 12) <= 6.0)
    untreated = int(np.sum(frame["treatment_date"] == ""))
    assert document["outcome"]["events"] == expected > 10
    assert len(document["rows"]["excluded"]) == untreated > 0
    assert all("treatment_date" in row["reason"] for row in document["rows"]["excluded"])
    assert any("cause-specific" in warning for warning in document["warnings"])


def _draw_from_model(model, ttv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Death times (months) with S(t | TTV) of the model: solve ln H(t) = ln(-ln U) on ln t by bisection."""
    target = np.log(-np.log(rng.uniform(size=ttv.size)))
    low, high = np.full(ttv.size, np.log(0.01)), np.full(ttv.size, np.log(1e5))
    for _ in range(60):
        middle = (low + high) / 2.0
        above = model.log_cumulative_hazard(np.exp(middle), ttv) > target
        high, low = np.where(above, middle, high), np.where(above, low, middle)
    return np.exp((low + high) / 2.0)


def test_refit_export_predict_round_trip_recovers_five_year_survival(tmp_path, capsys):
    from TTVPrognosisLib.prognosis.model import load_model

    shipped = load_model()
    rng = np.random.default_rng(8)
    ttv = np.exp(rng.normal(np.log(28.0), 1.2, 5000)).clip(1.0, 1500.0)
    death = _draw_from_model(shipped, ttv, rng)
    censoring = rng.uniform(36.0, 150.0, ttv.size)
    pd.DataFrame({"os": np.minimum(death, censoring), "dead": (death <= censoring).astype(int),
                  "ttv": ttv}).to_csv(tmp_path / "cohort.csv", index=False)
    model_path = tmp_path / "model.json"
    assert main(["refit-model", str(tmp_path / "cohort.csv"), "--time", "os", "--event", "dead", "--ttv-column",
                 "ttv", "--output", str(model_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shipped_model"]["calibration_slope"]["slope"] == pytest.approx(1.0, abs=0.15)
    for ttv_ml in (5.0, 30.0, 200.0):
        assert main(["predict", "--model", str(model_path), "--baseline-ttv-ml", str(ttv_ml), "--months", "60",
                     "--json"]) == 0
        predicted = json.loads(capsys.readouterr().out)["overall_survival"][0]
        truth = float(shipped.survival(60.0, ttv_ml))
        assert predicted["probability"] == pytest.approx(truth, abs=0.02), ttv_ml
        assert predicted["ci95"][0] <= truth <= predicted["ci95"][1]
