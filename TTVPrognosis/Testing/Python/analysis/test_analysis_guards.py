"""Guard rails of the analysis: bad tables and settings get clear messages, nothing is overwritten, the same
seed gives the same bytes, and the building blocks agree with their definitions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from synthetic_cohort import cohort

from TTVPrognosisLib.analysis.concordance import harrell_c
from TTVPrognosisLib.analysis.config import parse_config
from TTVPrognosisLib.analysis.cox import CoxFit, FitError, likelihood_ratio
from TTVPrognosisLib.analysis.run import analyze
from TTVPrognosisLib.analysis.table1 import fisher_exact
from TTVPrognosisLib.cli import main
from TTVPrognosisLib.errors import InputError

pd = pytest.importorskip("pandas")
pytest.importorskip("lifelines")

SETTINGS = """
[outcome]
time = "os_months"
event = "os_event"
[variables]
baseline_ttv_ml = { type = "spline", knots = 3, transform = "log" }
absolute_change_ml = { type = "linear" }
age = { type = "linear" }
sex = { type = "categorical", reference = "female" }
[models]
conventional = ["age", "sex"]
with_ttv = ["age", "sex", "baseline_ttv_ml", "absolute_change_ml"]
[[comparisons]]
base = "conventional"
extended = "with_ttv"
[table1]
by = "cohort"
variables = ["age", "sex", "baseline_ttv_ml"]
[membership]
by = "cohort"
variables = ["age", "baseline_ttv_ml"]
[bootstrap]
replicates = 8
seed = 1
[plots]
formats = ["png"]
"""
REFERENCE_CSV = Path(__file__).resolve().parent / "r_reference" / "reference.csv"


def files(tmp_path: Path, frame=None, settings: str = SETTINGS) -> tuple[Path, Path]:
    table = pd.DataFrame(cohort(300, seed=3) if frame is None else frame)
    table.to_csv(tmp_path / "cohort.csv", index=False)
    (tmp_path / "analysis.toml").write_text(settings, encoding="utf-8")
    return tmp_path / "cohort.csv", tmp_path / "analysis.toml"


def refused(tmp_path: Path, frame=None, settings: str = SETTINGS) -> str:
    table, config = files(tmp_path, frame, settings)
    with pytest.raises(InputError) as error:
        analyze(table, config, tmp_path / "out")
    assert not (tmp_path / "out" / "analysis.json").exists()
    return str(error.value)


def test_same_seed_same_bytes_other_seed_other_bootstrap(tmp_path):
    table, config = files(tmp_path)
    first = analyze(table, config, tmp_path / "a")
    analyze(table, config, tmp_path / "b")
    assert (tmp_path / "a" / "analysis.json").read_bytes() == (tmp_path / "b" / "analysis.json").read_bytes()
    config.write_text(SETTINGS.replace("seed = 1", "seed = 2"), encoding="utf-8")
    other = analyze(table, config, tmp_path / "c")
    assert other["comparisons"][0]["delta_c_ci95"] != first["comparisons"][0]["delta_c_ci95"]
    assert other["comparisons"][0]["lr_chi2"] == first["comparisons"][0]["lr_chi2"]
    assert first["versions"]["lifelines"] and first["seed"] == 1


def test_an_existing_analysis_is_not_overwritten(tmp_path):
    table, config = files(tmp_path)
    analyze(table, config, tmp_path / "out")
    before = (tmp_path / "out" / "analysis.json").read_bytes()
    with pytest.raises(InputError, match="--overwrite"):
        analyze(table, config, tmp_path / "out")
    assert (tmp_path / "out" / "analysis.json").read_bytes() == before


def test_negative_times_are_refused(tmp_path):
    frame = cohort(300, seed=3)
    frame["os_months"][5] = -2.0
    assert "Negative follow-up times" in refused(tmp_path, frame) and "S00005" not in refused(tmp_path, frame)


def test_events_other_than_0_and_1_are_refused(tmp_path):
    frame = cohort(300, seed=3)
    frame["os_event"] = frame["os_event"] + 1  # R's 2/1 coding
    assert "must be 1 (event) or 0 (censored)" in refused(tmp_path, frame)


def test_a_constant_variable_is_refused(tmp_path):
    frame = cohort(300, seed=3)
    frame["age"][:] = 60
    assert "same value (60) for every analysed patient" in refused(tmp_path, frame)


def test_a_level_with_under_five_patients_is_refused(tmp_path):
    frame = cohort(300, seed=3)
    frame["sex"] = np.array(["unknown"] * 3 + list(frame["sex"][3:]), dtype=object)
    assert "fewer than 5 patients: unknown (3)" in refused(tmp_path, frame)


def test_separation_is_refused(tmp_path):
    frame = cohort(300, seed=3)
    frame["sex"] = np.where(frame["os_event"] == 1, "male", frame["sex"])  # no woman dies
    message = refused(tmp_path, frame)
    assert "sex[male]" in message and "infinity" in message


def test_a_log_of_zero_and_a_missing_column_are_refused(tmp_path):
    frame = cohort(300, seed=3)
    frame["baseline_ttv_ml"][7] = 0.0
    assert "log scale but is 0 or negative for row 9" in refused(tmp_path, frame)
    frame = cohort(300, seed=3)
    del frame["age"]
    assert "no column 'age'" in refused(tmp_path, frame)


def test_settings_mistakes_are_named():
    with pytest.raises(InputError, match="unknown key 'knot'"):
        parse_config(SETTINGS.replace("knots = 3", "knot = 3"))
    with pytest.raises(InputError, match="strict subset"):
        parse_config(SETTINGS.replace('extended = "with_ttv"', 'extended = "conventional"'))
    with pytest.raises(InputError, match="knots must be 3, 4 or 5"):
        parse_config(SETTINGS.replace("knots = 3", "knots = 7"))
    with pytest.raises(InputError, match=r"table1\.variables names 'cea'"):
        parse_config(SETTINGS.replace('variables = ["age", "sex", "baseline_ttv_ml"]', 'variables = ["age", "cea"]'))
    with pytest.raises(InputError, match=r"plots\.model is needed"):
        parse_config(SETTINGS.replace('formats = ["png"]', 'partial_effect = "age"'))
    with pytest.raises(InputError, match="not valid TOML"):
        parse_config("[outcome\n")


def test_few_events_per_degree_of_freedom_give_a_warning(tmp_path):
    table, config = files(tmp_path, cohort(60, seed=9))
    document = analyze(table, config, tmp_path / "out")
    assert any("per df, under 10" in warning for warning in document["warnings"])


def test_an_extended_model_below_its_base_is_an_error():
    base = CoxFit(("a",), np.zeros(1), np.eye(1), -100.0, -110.0, 50, 20)
    extended = CoxFit(("a", "b"), np.zeros(2), np.eye(2), -101.0, -110.0, 50, 20)
    with pytest.raises(FitError, match="wrong optimum"):
        likelihood_ratio(extended, base, "test")


def test_cli_reports_bad_input_with_exit_code_1(tmp_path, capsys):
    frame = cohort(300, seed=3)
    frame["os_event"][0] = 3
    table, config = files(tmp_path, frame)
    assert main(["analyze", str(table), "--config", str(config), "--output", str(tmp_path / "out")]) == 1
    assert "Error: Event column 'os_event'" in capsys.readouterr().err
    assert main(["refit-model", str(table), "--time", "os_months", "--event", "os_event", "--ttv-column",
                 "baseline_ttv_ml", "--output", str(tmp_path / "model.json")]) == 1
    assert not (tmp_path / "model.json").exists()


def test_harrell_c_is_r_s_pairwise_definition_with_ties():
    rng = np.random.default_rng(4)
    time = rng.integers(1, 15, 120).astype(float)  # many tied times
    event = (rng.random(120) < 0.6).astype(int)
    risk = rng.integers(0, 5, 120).astype(float)  # many tied risks
    concordant = discordant = tied = 0.0
    for i in np.flatnonzero(event == 1):
        later = (time > time[i]) | ((time == time[i]) & (event == 0))
        concordant += np.sum(risk[i] > risk[later])
        discordant += np.sum(risk[i] < risk[later])
        tied += np.sum(risk[i] == risk[later])
    assert harrell_c(time, event, risk) == pytest.approx((concordant + tied / 2) / (concordant + discordant + tied),
                                                         abs=1e-12)


def test_fisher_exact_on_r_by_c_tables_equals_r():
    with open(REFERENCE_CSV, newline="", encoding="utf-8") as handle:
        reference = {row["quantity"]: float(row["value"]) for row in csv.DictReader(handle)}
    assert fisher_exact(np.array([[3, 1, 2], [1, 4, 0]])) == pytest.approx(reference["fisher.2x3"], rel=1e-6)
    assert fisher_exact(np.array([[8, 5, 2], [3, 6, 9], [2, 1, 4]])) == pytest.approx(reference["fisher.3x3"],
                                                                                       rel=1e-6)


def test_duplicate_columns_are_refused(tmp_path):
    table, config = files(tmp_path)
    lines = table.read_text(encoding="utf-8").splitlines()
    table.write_text("\n".join(line + "," + line.split(",")[5] for line in lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="duplicate columns: age"):
        analyze(table, config, tmp_path / "out")


def test_a_horizon_censors_later_events_there(tmp_path, capsys):
    frame = cohort(300, seed=3)
    settings = SETTINGS.replace('event = "os_event"', 'event = "os_event"\nhorizon_months = 12')
    table, config = files(tmp_path, frame, settings)
    assert main(["analyze", str(table), "--config", str(config), "--output", str(tmp_path / "out")]) == 0
    assert "Analysed 300 of 300 patients" in capsys.readouterr().out
    document = json.loads((tmp_path / "out" / "analysis.json").read_text(encoding="utf-8"))
    early = int(np.sum((frame["os_event"] == 1) & (frame["os_months"] <= 12)))
    assert document["outcome"]["events"] == early < int(np.sum(frame["os_event"]))


def test_a_membership_model_that_separates_the_cohorts_is_refused(tmp_path):
    pytest.importorskip("statsmodels")
    frame = cohort(300, seed=3)
    frame["age"] = np.where(frame["cohort"] == "trial", frame["age"] % 40 + 20, frame["age"] % 30 + 61)
    assert "separates the groups" in refused(tmp_path, frame)
