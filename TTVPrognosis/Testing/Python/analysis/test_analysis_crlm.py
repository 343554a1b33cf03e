"""`analyze` on a real cohort: the TCIA Colorectal-Liver-Metastases clinical data (197 patients, resected CRLM).

The burden variable is the tumour / liver voxel fraction (in %) of the collection's expert segmentations:
voxel counts are not mL (the voxel spacing is not in these files), the fraction is spacing-free. The numbers
of analysis.json are checked against an independent computation in this file: statsmodels' Cox fit (Efron
ties) on a design built here with patsy's natural cubic splines (another basis of the same space as Harrell's,
so the same log-likelihood), C counted pair by pair, the reverse Kaplan-Meier with lifelines, Table 1 with scipy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from TTVPrognosisLib.analysis.run import analyze

pd = pytest.importorskip("pandas")
sm = pytest.importorskip("statsmodels.api")
patsy = pytest.importorskip("patsy")
lifelines = pytest.importorskip("lifelines")

SETTINGS = """
[table]
id = "Patient-ID"
missing = ["-999"]
[outcome]
time = "overall_survival_months"
event = "vital_status"
[variables]
age = { type = "linear" }
sex = { type = "categorical", reference = "1" }
node_positive_primary = { type = "categorical", reference = "0" }
synchronous_crlm = { type = "categorical", reference = "0" }
multiple_metastases = { type = "categorical", reference = "0" }
carcinoembryonic_antigen = { type = "log" }
max_tumor_size = { type = "linear" }
tumour_liver_percent = { type = "spline", knots = 3, transform = "log" }
chemo_before_liver_resection = { type = "categorical", reference = "0" }
[models]
conventional = ["age", "sex", "node_positive_primary", "synchronous_crlm", "multiple_metastases",
                "carcinoembryonic_antigen", "max_tumor_size"]
with_burden = ["age", "sex", "node_positive_primary", "synchronous_crlm", "multiple_metastases",
               "carcinoembryonic_antigen", "max_tumor_size", "tumour_liver_percent"]
[[comparisons]]
base = "conventional"
extended = "with_burden"
[[contrasts]]
model = "with_burden"
variable = "tumour_liver_percent"
value = 5
reference = 0.5
[table1]
by = "chemo_before_liver_resection"
variables = ["age", "sex", "carcinoembryonic_antigen", "tumour_liver_percent"]
[bootstrap]
replicates = 40
seed = 2024
[plots]
model = "with_burden"
burden_variable = "tumour_liver_percent"
partial_effect = "tumour_liver_percent"
adjusted_values = [0.3, 1, 5]
"""


def crlm_table(shared_data: Path, output: Path) -> Path:
    """Outcomes and covariates (April 2023 sheet) joined with the tumour / liver voxel fraction."""
    folder = shared_data / "tcia-crlm-clinical"
    if not folder.is_dir():
        pytest.skip(f"TCIA CRLM clinical data not found in {folder}")
    clinical = pd.read_csv(folder / "crlm_clinical_apr2023_n197.csv", dtype={"Patient-ID": str})
    voxels = pd.read_csv(folder / "clinical_data_with_img_features.csv", usecols=["Patient-ID", "Tumor", "Liver"])
    table = clinical.merge(voxels, on="Patient-ID", how="inner", validate="one_to_one")
    table["tumour_liver_percent"] = 100.0 * table["Tumor"] / table["Liver"]
    table.to_csv(output, index=False)
    return output


@pytest.fixture(scope="module")
def crlm(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("crlm")
    table = crlm_table(shared_data, folder / "crlm.csv")
    (folder / "analysis.toml").write_text(SETTINGS, encoding="utf-8")
    analyze(table, folder / "analysis.toml", folder / "out")
    document = json.loads((folder / "out" / "analysis.json").read_text(encoding="utf-8"))
    frame = pd.read_csv(table)
    frame = frame[(frame["carcinoembryonic_antigen"] != -999)].reset_index(drop=True)
    return document, frame, folder


def _design(frame, spline: str | None) -> pd.DataFrame:
    columns = {"age": frame["age"], "female": (frame["sex"] == 2).astype(float),
               "nodes": frame["node_positive_primary"].astype(float), "sync": frame["synchronous_crlm"].astype(float),
               "multiple": frame["multiple_metastases"].astype(float),
               "ln_cea": np.log(frame["carcinoembryonic_antigen"]), "size": frame["max_tumor_size"]}
    design = pd.DataFrame(columns)
    ln_burden = np.log(frame["tumour_liver_percent"].to_numpy())
    if spline == "spline":
        knots = np.quantile(ln_burden, [0.1, 0.5, 0.9])
        basis = patsy.dmatrix(f"cr(x, knots=({knots[1]!r},), lower_bound={knots[0]!r}, upper_bound={knots[2]!r},"
                              f" constraints='center') - 1", {"x": ln_burden}, return_type="dataframe")
        design[["b1", "b2"]] = basis.to_numpy()  # the natural cubic splines with the same knots, not Harrell's basis
    elif spline == "linear":
        design["ln_burden"] = ln_burden
    return design


def _phreg(frame, design):
    model = sm.PHReg(frame["overall_survival_months"].to_numpy(), design.to_numpy(),
                     status=frame["vital_status"].to_numpy(), ties="efron")
    return model.fit(disp=0)


def _pairwise_c(time, event, risk) -> float:
    """R's concordance: comparable when the shorter time is an event (a tied censored time counts as later)."""
    concordant = discordant = tied = 0.0
    for i in np.flatnonzero(event == 1):
        later = (time > time[i]) | ((time == time[i]) & (event == 0))
        concordant += np.sum(risk[i] > risk[later])
        discordant += np.sum(risk[i] < risk[later])
        tied += np.sum(risk[i] == risk[later])
    return (concordant + tied / 2) / (concordant + discordant + tied)


def test_rows_are_the_complete_cases(crlm):
    document, frame, _ = crlm
    assert document["rows"]["read"] == 197
    assert document["rows"]["analysed"] == len(frame) == 168
    assert {row["id"] for row in document["rows"]["excluded"]} == set(
        pd.read_csv(crlm[2] / "crlm.csv").query("carcinoembryonic_antigen == -999")["Patient-ID"])


def test_cox_models_match_an_independent_fit(crlm):
    document, frame, _ = crlm
    conventional = _phreg(frame, _design(frame, None))
    spline = _phreg(frame, _design(frame, "spline"))
    linear = _phreg(frame, _design(frame, "linear"))
    ours = document["models"]
    assert ours["conventional"]["log_likelihood"] == pytest.approx(conventional.llf, abs=1e-3)
    assert ours["with_burden"]["log_likelihood"] == pytest.approx(spline.llf, abs=1e-3)
    names = ["age", "sex[2]", "node_positive_primary[1]", "synchronous_crlm[1]", "multiple_metastases[1]",
             "ln(carcinoembryonic_antigen)", "max_tumor_size"]
    coefficients = {row["term"]: row["coefficient"] for row in ours["conventional"]["coefficients"]}
    assert [coefficients[name] for name in names] == pytest.approx(list(conventional.params), abs=1e-4)
    nonlinearity = ours["with_burden"]["nonlinearity"][0]
    assert nonlinearity["lr_chi2"] == pytest.approx(2 * (spline.llf - linear.llf), abs=1e-3)
    comparison = document["comparisons"][0]
    assert comparison["lr_chi2"] == pytest.approx(2 * (spline.llf - conventional.llf), abs=1e-3)
    assert comparison["df"] == 2
    time, event = frame["overall_survival_months"].to_numpy(), frame["vital_status"].to_numpy()
    risk = _design(frame, "spline").to_numpy() @ spline.params
    assert comparison["concordance_extended"] == pytest.approx(_pairwise_c(time, event, risk), abs=1e-4)
    risk = _design(frame, None).to_numpy() @ conventional.params
    assert comparison["concordance_base"] == pytest.approx(_pairwise_c(time, event, risk), abs=1e-4)


def test_follow_up_and_table1_match_independent_computations(crlm):
    from scipy import stats

    document, frame, _ = crlm
    reverse = lifelines.KaplanMeierFitter().fit(frame["overall_survival_months"], 1 - frame["vital_status"])
    assert document["follow_up_months"]["median"] == pytest.approx(reverse.median_survival_time_, abs=1e-9)
    groups = [frame[frame["chemo_before_liver_resection"] == g] for g in (0, 1)]
    rows = {row["variable"]: row for row in document["table1"]["rows"]}
    expected_age = stats.mannwhitneyu(groups[0]["age"], groups[1]["age"], alternative="two-sided",
                                      method="asymptotic", use_continuity=True).pvalue
    assert rows["age"]["p"] == pytest.approx(expected_age, rel=1e-6)
    sex = pd.crosstab(frame["sex"], frame["chemo_before_liver_resection"]).to_numpy()
    assert rows["sex"]["p"] == pytest.approx(stats.chi2_contingency(sex, correction=False).pvalue, rel=1e-6)
    assert rows["tumour_liver_percent"]["summary"]["1"]["median"] == pytest.approx(
        groups[1]["tumour_liver_percent"].median())


def test_outputs_are_written_and_reproducible(crlm):
    document, _, folder = crlm
    for name in document["files"]:
        assert (folder / "out" / name).stat().st_size > 0, name
    assert {"km_by_tertile.png", "partial_effect.png", "adjusted_curves.png", "table1.csv"} <= set(document["files"])
    analyze(folder / "crlm.csv", folder / "analysis.toml", folder / "again")
    assert (folder / "again" / "analysis.json").read_bytes() == (folder / "out" / "analysis.json").read_bytes()
