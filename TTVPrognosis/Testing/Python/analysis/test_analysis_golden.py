"""Golden tests: `analyze` on lifelines' bundled data sets against R's survival, rms and stats.

The reference numbers are in r_reference/reference.csv, made by r_reference/make_reference.R (R 4.2.2,
survival 3.5-3, rms 6.5-0); R is needed only to regenerate them. Every number here goes through the whole
use case: a CSV and a TOML settings file in, analysis.json out. Tolerances (issue 16): coefficients 1e-4,
log-likelihoods 1e-3, C 1e-4, LR chi-square 1e-3, Table 1 P values 1e-6 relative.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from TTVPrognosisLib.analysis.run import analyze

pytest.importorskip("lifelines")
pytest.importorskip("statsmodels")

REFERENCE_CSV = Path(__file__).resolve().parent / "r_reference" / "reference.csv"


@pytest.fixture(scope="module")
def reference() -> dict[str, float]:
    with open(REFERENCE_CSV, newline="", encoding="utf-8") as handle:
        return {row["quantity"]: float(row["value"]) for row in csv.DictReader(handle)}


def run(tmp_path: Path, frame, settings: str, name: str) -> dict:
    table, config = tmp_path / f"{name}.csv", tmp_path / f"{name}.toml"
    frame.to_csv(table, index=False)
    config.write_text(settings, encoding="utf-8")
    analyze(table, config, tmp_path / name)
    return json.loads((tmp_path / name / "analysis.json").read_text(encoding="utf-8"))


def coefficient(model: dict, term: str) -> dict:
    return next(row for row in model["coefficients"] if row["term"] == term)


def by_variable(rows: list[dict], name: str) -> dict:
    return next(row for row in rows if row["variable"] == name)


ROSSI_SETTINGS = """
[outcome]
time = "week"
event = "arrest"
[variables]
fin = { type = "linear" }
age = { type = "spline", knots = 4 }
age_linear = { type = "linear" }
race = { type = "linear" }
wexp = { type = "linear" }
mar = { type = "linear" }
paro = { type = "linear" }
prio = { type = "spline", knots = 3 }
prio_linear = { type = "linear" }
[models]
linear = ["fin", "age_linear", "race", "wexp", "mar", "paro", "prio_linear"]
base = ["fin", "race", "wexp", "mar", "paro"]
spline = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
[[comparisons]]
base = "base"
extended = "spline"
[[contrasts]]
model = "spline"
variable = "age"
value = 40
reference = 20
[bootstrap]
replicates = 4
seed = 7
[plots]
model = "spline"
formats = ["png"]
"""


@pytest.fixture(scope="module")
def rossi(tmp_path_factory) -> dict:
    from lifelines.datasets import load_rossi

    frame = load_rossi()
    frame["age_linear"], frame["prio_linear"] = frame["age"], frame["prio"]
    return run(tmp_path_factory.mktemp("rossi"), frame, ROSSI_SETTINGS, "rossi")


def test_rossi_linear_cox_equals_r(rossi, reference):
    model = rossi["models"]["linear"]
    for term in ("fin", "race", "wexp", "mar", "paro"):
        assert coefficient(model, term)["coefficient"] == pytest.approx(reference[f"rossi_linear.coef.{term}"],
                                                                        abs=1e-4)
        assert coefficient(model, term)["se"] == pytest.approx(reference[f"rossi_linear.se.{term}"], abs=1e-4)
    assert coefficient(model, "age_linear")["coefficient"] == pytest.approx(reference["rossi_linear.coef.age"],
                                                                            abs=1e-4)
    assert model["log_likelihood"] == pytest.approx(reference["rossi_linear.loglik"], abs=1e-3)
    assert model["lr_test"]["lr_chi2"] == pytest.approx(reference["rossi_linear.lr_chi2"], abs=1e-3)
    assert model["lr_test"]["df"] == 7
    assert model["concordance"] == pytest.approx(reference["rossi_linear.concordance"], abs=1e-4)


def test_rossi_spline_model_equals_r(rossi, reference):
    model = rossi["models"]["spline"]
    assert model["knots"]["age"] == [reference[f"rossi_spline.knot.age.{i}"] for i in range(1, 5)]
    assert model["knots"]["prio"] == [reference[f"rossi_spline.knot.prio.{i}"] for i in range(1, 4)]
    for term in ("fin", "age", "age'", "age''", "race", "wexp", "mar", "paro", "prio", "prio'"):
        row = coefficient(model, term)
        assert row["coefficient"] == pytest.approx(reference[f"rossi_spline.coef.{term}"], abs=1e-4), term
        assert row["se"] == pytest.approx(reference[f"rossi_spline.se.{term}"], abs=1e-4), term
    assert model["log_likelihood"] == pytest.approx(reference["rossi_spline.loglik"], abs=1e-3)
    assert model["log_likelihood"] == pytest.approx(reference["rossi_spline.loglik_rms_cph"], abs=1e-3)
    assert model["concordance"] == pytest.approx(reference["rossi_spline.concordance"], abs=1e-4)


def test_rossi_drop_one_and_nonlinearity_equal_r(rossi, reference):
    model = rossi["models"]["spline"]
    for variable in ("fin", "age", "race", "wexp", "mar", "paro", "prio"):
        row = by_variable(model["variables"], variable)
        assert row["lr_chi2"] == pytest.approx(reference[f"rossi_spline.drop_one.{variable}"], abs=1e-3), variable
    assert by_variable(model["variables"], "age")["df"] == 3
    assert by_variable(model["variables"], "prio")["df"] == 2
    age = by_variable(model["nonlinearity"], "age")
    assert age["lr_chi2"] == pytest.approx(reference["rossi_spline.nonlinearity.age"], abs=1e-3)
    assert (age["df"], round(age["p"], 4)) == (2, 0.1241)  # STATISTICS.md: LR 4.1741 on 2 df, P 0.1241
    assert by_variable(model["nonlinearity"], "prio")["lr_chi2"] == pytest.approx(
        reference["rossi_spline.nonlinearity.prio"], abs=1e-3)


def test_rossi_comparison_and_contrast_equal_r(rossi, reference):
    comparison = rossi["comparisons"][0]
    assert comparison["lr_chi2"] == pytest.approx(reference["rossi_comparison.lr_chi2"], abs=1e-3)
    assert comparison["df"] == 5
    assert comparison["concordance_base"] == pytest.approx(reference["rossi_comparison.concordance_base"], abs=1e-4)
    assert comparison["delta_c"] == pytest.approx(reference["rossi_spline.concordance"]
                                                  - reference["rossi_comparison.concordance_base"], abs=2e-4)
    low, high = comparison["delta_c_ci95"]
    assert low <= high
    contrast = rossi["models"]["spline"]["contrasts"][0]
    # rms' summary uses cph's coefficients, which stop at eps = 1e-4: agreement to 1e-4 relative.
    assert contrast["hazard_ratio"] == pytest.approx(reference["rossi_spline.contrast.age_40_vs_20.hr"], rel=1e-4)
    assert contrast["ci95"][0] == pytest.approx(reference["rossi_spline.contrast.age_40_vs_20.low"], rel=1e-3)
    assert contrast["ci95"][1] == pytest.approx(reference["rossi_spline.contrast.age_40_vs_20.high"], rel=1e-3)


LUNG_KM_SETTINGS = """
[outcome]
time = "time"
event = "status"
[variables]
age = { type = "linear" }
[models]
age_only = ["age"]
[follow_up]
by = "sex"
[bootstrap]
replicates = 0
[plots]
formats = ["png"]
"""


def test_lung_follow_up_and_medians_equal_r(tmp_path, reference):
    from lifelines.datasets import load_lung

    document = run(tmp_path, load_lung(), LUNG_KM_SETTINGS, "lung")
    follow_up = document["follow_up_months"]
    assert (follow_up["median"], follow_up["q1"], follow_up["q3"]) == (
        reference["lung.follow_up.median"], reference["lung.follow_up.q1"], reference["lung.follow_up.q3"])
    medians = document["survival_medians"]
    assert medians["all"]["median"] == reference["lung.km.median"]
    assert medians["all"]["ci95"] == [reference["lung.km.median_low_log"], reference["lung.km.median_high_log"]]
    assert medians["groups"]["1"]["median"] == reference["lung.km.median.sex1"]
    assert medians["groups"]["2"]["ci95"] == [reference["lung.km.median_low_log.sex2"],
                                              reference["lung.km.median_high_log.sex2"]]
    assert "log" in medians["ci_method"]


LUNG_COX_SETTINGS = """
[outcome]
time = "time"
event = "status"
[variables]
age = { type = "linear" }
sex = { type = "categorical", reference = "1" }
"ph.ecog" = { type = "categorical", reference = "0" }
"wt.loss" = { type = "linear" }
[models]
without_ecog = ["age", "sex", "wt.loss"]
full = ["age", "sex", "ph.ecog", "wt.loss"]
[bootstrap]
replicates = 0
[plots]
formats = ["png"]
"""


def test_lung_categorical_cox_equals_r(tmp_path, reference):
    from lifelines.datasets import load_lung

    frame = load_lung()
    frame = frame[frame["ph.ecog"] != 3].copy()  # one patient: a level under 5 patients is refused (R kept it out)
    frame["ph.ecog"] = frame["ph.ecog"].astype("Int64")
    document = run(tmp_path, frame, LUNG_COX_SETTINGS, "lung_cox")
    model = document["models"]["full"]
    assert (model["n"], model["events"]) == (reference["lung_cox.n"], reference["lung_cox.events"])
    assert len(document["rows"]["excluded"]) == len(frame) - model["n"]
    assert model["log_likelihood"] == pytest.approx(reference["lung_cox.loglik"], abs=1e-3)
    for term, r_term in (("age", "age"), ("sex[2]", "factor(sex)2"), ("ph.ecog[1]", "ecog1"),
                         ("ph.ecog[2]", "ecog2"), ("wt.loss", "wt.loss")):
        assert coefficient(model, term)["coefficient"] == pytest.approx(reference[f"lung_cox.coef.{r_term}"],
                                                                        abs=1e-4)
    assert model["concordance"] == pytest.approx(reference["lung_cox.concordance"], abs=1e-4)
    ecog = by_variable(model["variables"], "ph.ecog")
    assert (ecog["df"], ecog["lr_chi2"]) == (2, pytest.approx(reference["lung_cox.drop_one.ecog"], abs=1e-3))


GBSG2_SETTINGS = """
[outcome]
time = "time"
event = "cens"
[variables]
horTh = { type = "categorical", reference = "no" }
age = { type = "linear" }
menostat = { type = "categorical", reference = "Post" }
tsize = { type = "linear" }
tgrade = { type = "categorical", reference = "I" }
pnodes = { type = "linear" }
progrec = { type = "linear" }
estrec = { type = "linear" }
[models]
full = ["horTh", "age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec"]
[table1]
by = "horTh"
variables = ["age", "tsize", "menostat", "tgrade"]
[membership]
by = "horTh"
variables = ["age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec"]
[bootstrap]
replicates = 5
seed = 3
[plots]
formats = ["png"]
"""


@pytest.fixture(scope="module")
def gbsg2(tmp_path_factory) -> dict:
    from lifelines.datasets import load_gbsg2

    return run(tmp_path_factory.mktemp("gbsg2"), load_gbsg2(), GBSG2_SETTINGS, "gbsg2")


def test_gbsg2_table1_equals_r(gbsg2, reference):
    table = gbsg2["table1"]
    assert [group["group"] for group in table["groups"]] == ["no", "yes"]
    for variable in ("age", "tsize", "menostat", "tgrade"):
        assert by_variable(table["rows"], variable)["p"] == pytest.approx(reference[f"gbsg2.table1.{variable}"],
                                                                          rel=1e-6), variable
    assert "no continuity correction" in by_variable(table["rows"], "menostat")["test"]
    assert by_variable(table["rows"], "menostat")["p"] != pytest.approx(reference["gbsg2.table1.menostat_yates"], abs=0,
                                                                        rel=0.1)


def test_gbsg2_membership_and_categorical_cox_equal_r(gbsg2, reference):
    assert gbsg2["membership"]["c_statistic"] == pytest.approx(reference["gbsg2.membership_auc"], abs=1e-6)
    assert gbsg2["membership"]["modelled_group"] == "yes"
    model = gbsg2["models"]["full"]
    assert model["log_likelihood"] == pytest.approx(reference["gbsg2_cox.loglik"], abs=1e-3)
    for term, r_term in (("horTh[yes]", "horThyes"), ("menostat[Pre]", "menostatPre"),
                         ("tgrade[II]", "tgradeII"), ("tgrade[III]", "tgradeIII"), ("estrec", "estrec")):
        assert coefficient(model, term)["coefficient"] == pytest.approx(reference[f"gbsg2_cox.coef.{r_term}"],
                                                                        abs=1e-4)
    assert model["concordance"] == pytest.approx(reference["gbsg2_cox.concordance"], abs=1e-4)


def test_table1_kruskal_wallis_and_fisher_equal_r(tmp_path, reference):
    from lifelines.datasets import load_gbsg2

    frame = load_gbsg2()
    by_grade = GBSG2_SETTINGS.replace('by = "horTh"\nvariables = ["age", "tsize", "menostat", "tgrade"]',
                                      'by = "tgrade"\nvariables = ["age", "menostat"]')
    document = run(tmp_path, frame, by_grade.replace("[membership]", "[unused]").split("[unused]")[0]
                   + "[bootstrap]\nreplicates = 0\n", "by_grade")
    rows = document["table1"]["rows"]
    assert by_variable(rows, "age")["test"] == "Kruskal-Wallis"
    assert by_variable(rows, "age")["p"] == pytest.approx(reference["gbsg2.table1_by_tgrade.age"], rel=1e-6)
    assert by_variable(rows, "menostat")["p"] == pytest.approx(reference["gbsg2.table1_by_tgrade.menostat"], rel=1e-6)
    small = frame.iloc[:40]
    settings = """
[outcome]
time = "time"
event = "cens"
[variables]
age = { type = "linear" }
menostat = { type = "categorical", reference = "Post" }
[models]
m = ["age"]
[table1]
by = "horTh"
variables = ["age", "menostat"]
[bootstrap]
replicates = 0
[plots]
formats = ["png"]
"""
    rows = run(tmp_path, small, settings, "small")["table1"]["rows"]
    assert by_variable(rows, "menostat")["test"].startswith("Fisher")
    assert by_variable(rows, "menostat")["p"] == pytest.approx(reference["gbsg2_small.table1.menostat"], rel=1e-6)
    assert by_variable(rows, "age")["p"] == pytest.approx(reference["gbsg2_small.table1.age"], rel=1e-6)
