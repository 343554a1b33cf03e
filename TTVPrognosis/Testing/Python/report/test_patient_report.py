"""`ttvprognosis report`: a valid PDF and HTML with the numbers `compare` gives, one key image per target and per
new or disappeared lesion, the research-use notice, fixed bytes for a fixed date, and no identifiers unasked."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from TTVPrognosisLib.cli import main
from TTVPrognosisLib.formats.demo_data import write_demo_case
from TTVPrognosisLib.pipeline import compare_files
from TTVPrognosisLib.report.content import RESEARCH_NOTICE

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("matplotlib")

NOTICE_START = "RESEARCH USE ONLY"
pytestmark = pytest.mark.slow  # whole reports: a few seconds each


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_case(tmp_path_factory.mktemp("report-demo"))


def pdf_text_and_images(path) -> tuple[str, int, int]:
    """All text (whitespace collapsed), the number of distinct embedded images, and the page count.

    matplotlib's PDF backend puts every image of the document into one resource dictionary shared by the pages,
    so images are counted by name across pages.
    """
    reader = pypdf.PdfReader(path)
    text = " ".join(page.extract_text() for page in reader.pages)
    images = len({image.name for page in reader.pages for image in page.images})
    return re.sub(r"\s+", " ", text), images, len(reader.pages)


def expected_key_images(document: dict) -> int:
    """One per target, per new lesion, and per disappeared lesion that is not a target (shown once)."""
    recist = document["recist"]
    targets = {target["lesion_id"] for target in recist["target_lesions"]}
    disappeared = {item["baseline_lesion"] for item in document["lesion_matching"]["disappeared"]}
    return len(targets) + len(document["lesion_matching"]["new"]) + len(disappeared - targets)


def report_arguments(demo, output, *extra: str) -> list[str]:
    return ["report", str(demo["baseline_segmentation"]), str(demo["followup_segmentation"]), "--baseline-image",
            str(demo["baseline_image"]), "--followup-image", str(demo["followup_image"]), "--output", str(output),
            "--date", "2026-01-31", *extra]


@pytest.fixture(scope="module")
def demo_report(demo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report-out")
    assert main(report_arguments(demo, folder / "report.pdf", "--html", str(folder / "report.html"))) == 0
    return folder


def test_the_demo_report_holds_the_numbers_compare_gives(demo, demo_report, capsys):
    capsys.readouterr()
    assert main(["compare", str(demo["baseline_segmentation"]), str(demo["followup_segmentation"]),
                 "--baseline-image", str(demo["baseline_image"]), "--followup-image", str(demo["followup_image"]),
                 "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    text, images, pages = pdf_text_and_images(demo_report / "report.pdf")
    assert 1 <= pages <= 3
    baseline, followup = document["baseline"], document["followup"]
    recist = document["recist"]
    wanted = [f"{baseline['ttv_ml']:.2f}", f"{followup['ttv_ml']:.2f}", f"{document['absolute_change_ml']:+.2f}",
              f"({document['relative_change_percent']:+.1f} %)", f"{baseline['largest_axial_diameter_mm']:.1f}",
              f"{followup['largest_axial_diameter_mm']:.1f}", f"RECIST 1.1: {recist['response']}",
              f"{recist['baseline_sum_mm']:.1f}", f"{recist['followup_sum_mm']:.1f}",
              f"{document['tbs']['baseline']:.2f} (zone {document['tbs']['baseline_zone']})",
              document["prognosis"]["model_id"]]
    wanted += [f"{target['baseline_mm']:.1f}" for target in recist["target_lesions"]]
    wanted += [f"{point['probability'] * 100:.0f} %" for point in document["prognosis"]["overall_survival"]]
    missing = [value for value in wanted if value not in text]
    assert not missing, f"not in the PDF: {missing}"
    assert f"Lesions {baseline['lesion_count']} {followup['lesion_count']}" in text
    assert RESEARCH_NOTICE in text
    assert "liver-only colorectal liver metastases" in text and "randomisation" in text
    keys = expected_key_images(document)
    assert keys == 3  # the demo: two targets and one disappeared non-target
    assert images == keys + 2, "key images plus the overview and the survival chart"
    html = (demo_report / "report.html").read_text(encoding="utf-8")
    assert html.count("<figure class='keyimage'>") == keys
    assert html.count("data:image/png;base64,") == keys + 2
    assert RESEARCH_NOTICE in html and f"{baseline['ttv_ml']:.2f}" in html
    for item in ("baseline.seg.nrrd", "followup_ct.nrrd"):
        assert item in text, "provenance lists each input"
    assert _sha256(demo["baseline_segmentation"]) in text


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_inputs_and_date_give_the_same_bytes(demo, demo_report, tmp_path, monkeypatch):
    """The fixture's report had --date 2026-01-31; the same date from SOURCE_DATE_EPOCH gives the same bytes."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1769817600")  # 2026-01-31 00:00 UTC
    arguments = report_arguments(demo, tmp_path / "epoch.pdf")
    arguments.remove("--date")
    arguments.remove("2026-01-31")
    assert main(arguments) == 0
    assert (tmp_path / "epoch.pdf").read_bytes() == (demo_report / "report.pdf").read_bytes()


def test_one_time_point_report_shows_the_would_be_targets(demo, tmp_path):
    assert main(["report", str(demo["baseline_segmentation"]), "--image", str(demo["baseline_image"]), "--output",
                 str(tmp_path / "one.pdf"), "--date", "2026-01-31"]) == 0
    text, images, pages = pdf_text_and_images(tmp_path / "one.pdf")
    comparison = compare_files(demo["baseline_segmentation"], demo["followup_segmentation"])
    assert f"{comparison.baseline.ttv_ml:.2f}" in text and NOTICE_START in text
    assert "Follow-up" not in text.split("Key numbers")[1].split("Prognosis")[0]
    assert images == len(comparison.recist.target_lesions) + 2
    assert pages <= 3


def test_bad_report_requests_are_refused_and_nothing_is_overwritten(demo, tmp_path, capsys):
    existing = tmp_path / "existing.pdf"
    existing.write_bytes(b"keep")
    assert main(report_arguments(demo, existing)) == 1
    assert existing.read_bytes() == b"keep"
    assert "--overwrite" in capsys.readouterr().err
    assert main(report_arguments(demo, tmp_path / "report.txt")) == 1
    assert "ending in .pdf" in capsys.readouterr().err
    assert main(report_arguments(demo, tmp_path / "w.pdf", "--window", "0,40")) == 1
    assert "width must be a positive" in capsys.readouterr().err
    assert main(["report", str(demo["baseline_segmentation"])]) == 1
    assert "--output REPORT.pdf" in capsys.readouterr().err
    assert main(report_arguments(demo, demo["baseline_segmentation"], "--overwrite")) == 1
    assert "is one of the inputs" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.partial")) and not (tmp_path / "w.pdf").exists()


def test_identifiers_only_when_asked(tmp_path):
    from test_dicom_seg_export import segmentation_on, write_ct_series

    from TTVPrognosisLib.formats.io import read_image, write_segmentation

    write_ct_series(tmp_path / "Doe_John_CT")
    write_segmentation(segmentation_on(read_image(tmp_path / "Doe_John_CT").geometry), tmp_path / "seg.seg.nrrd")
    base = ["report", str(tmp_path / "seg.seg.nrrd"), "--image", str(tmp_path / "Doe_John_CT"), "--date", "2026-01-31"]
    assert main([*base, "--html", str(tmp_path / "plain.html")]) == 0
    plain = (tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "Test^Synthetic" not in plain and "SYN001" not in plain and str(tmp_path) not in plain
    assert "Doe_John_CT" in plain, "the input's own name is what the user gave"
    assert main([*base, "--html", str(tmp_path / "named.html"), "--include-identifiers"]) == 0
    named = (tmp_path / "named.html").read_text(encoding="utf-8")
    assert "Test^Synthetic" in named and "SYN001" in named and str(tmp_path) in named


# --------------------------------------------------------------------------------------------------------
# One key image against a stored reference (made by this code; see regenerate_reference)
# --------------------------------------------------------------------------------------------------------

REFERENCE = __import__("pathlib").Path(__file__).with_name("reference_key_image.png")
MAX_DIFFERING_FRACTION = 0.03  # text rendering differs slightly between FreeType builds; pictures must not
PIXEL_DIFFERENCE = 0.25


def demo_key_image(demo, window=(150.0, 75.0)) -> bytes:
    from TTVPrognosisLib.pipeline import report_inputs
    from TTVPrognosisLib.report.figures import KeyImagePanels, key_image_png
    from TTVPrognosisLib.report.key_images import axial_slice, key_lesions

    comparison, time_points = report_inputs(demo["baseline_segmentation"], demo["followup_segmentation"],
                                            demo["baseline_image"], demo["followup_image"])
    key = key_lesions(comparison)[0]
    panels = [axial_slice(comparison.baseline.lesion_labels, key.baseline_point_ras, key.field_mm, (key.baseline_id,),
                          time_points[0][1], caption=f"lesion {key.baseline_id}"),
              axial_slice(comparison.followup.lesion_labels, key.followup_point_ras, key.field_mm, key.followup_ids,
                          time_points[1][1], caption="lesion " + " + ".join(map(str, key.followup_ids)))]
    return key_image_png(KeyImagePanels(key.title, *panels), window)


def differing_fraction(first: bytes, second: bytes) -> float:
    from matplotlib.image import imread

    a, b = imread(io.BytesIO(first), format="png"), imread(io.BytesIO(second), format="png")
    if a.shape != b.shape:
        return 1.0
    return float(np.mean(np.abs(a[..., :3] - b[..., :3]).max(axis=-1) > PIXEL_DIFFERENCE))


def test_key_image_matches_the_stored_reference(demo):
    produced = demo_key_image(demo)
    assert REFERENCE.is_file(), "run regenerate_reference() once to store the reference picture"
    assert differing_fraction(produced, REFERENCE.read_bytes()) < MAX_DIFFERING_FRACTION
    other_window = demo_key_image(demo, window=(400.0, 40.0))
    assert differing_fraction(other_window, REFERENCE.read_bytes()) > MAX_DIFFERING_FRACTION, \
        "the comparison must notice a visibly different picture"


def regenerate_reference(folder) -> None:  # pragma: no cover - run by hand after a deliberate change
    """Store the reference key image: ``python -c 'from test_patient_report import *; regenerate_reference(tmp)'``."""
    REFERENCE.write_bytes(demo_key_image(write_demo_case(folder)))


def test_complete_response_shows_every_baseline_lesion_gone(demo, tmp_path, capsys):
    from TTVPrognosisLib.formats.io import read_segmentation, write_segmentation
    from TTVPrognosisLib.formats.segments import LabelVolume

    followup = read_segmentation(demo["followup_segmentation"])
    livers = [segment for segment in followup.segments if segment.name == "Liver"]
    write_segmentation(LabelVolume(followup.layers[:1], followup.geometry, livers, "complete response"),
                       tmp_path / "cr.seg.nrrd")
    files = [str(demo["baseline_segmentation"]), str(tmp_path / "cr.seg.nrrd")]
    assert main(["compare", *files, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["followup"]["ttv_ml"] == 0 and document["recist"]["response"] == "CR"
    assert main(["report", *files, "--output", str(tmp_path / "cr.pdf"), "--date", "2026-01-31"]) == 0
    text, images, _ = pdf_text_and_images(tmp_path / "cr.pdf")
    assert "RECIST 1.1: CR" in text and "-100.0 %" in text
    assert images == expected_key_images(document) + 2 == 5 + 2


CLINICAL = ["--node-positive-primary", "yes", "--disease-free-interval-months", "6", "--cea-ng-ml", "250",
            "--ras-mutated", "yes", "--extrahepatic-disease", "no"]


def test_report_takes_compare_options_and_shows_the_scores_compare_gives(demo, tmp_path, capsys):
    """The same clinical options, --lesion-segment and --series as compare; the same Fong and GAME (computed on
    the follow-up), in the report's JSON and on its page."""
    segments = ["--lesion-segment", "Lesion 1", "--lesion-segment", "Lesion 3*"]
    inputs = [str(demo["baseline_segmentation"]), str(demo["followup_segmentation"]), "--baseline-image",
              str(demo["baseline_image"]), "--followup-image", str(demo["followup_image"])]
    capsys.readouterr()
    assert main(["compare", *inputs, *CLINICAL, *segments, "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert main(["report", *inputs, *CLINICAL, *segments, "--series", "unused", "--output",
                 str(tmp_path / "r.pdf"), "--html", str(tmp_path / "r.html"), "--date", "2026-01-31", "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported["ttv_ml"] == pytest.approx(compared["baseline"]["ttv_ml"], rel=1e-12)
    assert reported["followup_ttv_ml"] == pytest.approx(compared["followup"]["ttv_ml"], rel=1e-12)
    full = compare_files(demo["baseline_segmentation"], demo["followup_segmentation"])
    assert compared["baseline"]["ttv_ml"] < full.baseline.ttv_ml, "--lesion-segment chose fewer lesions"
    scores = compared["clinical_scores"]
    assert reported["clinical_scores"] == scores
    assert scores["time_point"] == "followup" and scores["fong"]["computable"] and scores["game"]["computable"]
    text, _, _ = pdf_text_and_images(tmp_path / "r.pdf")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    for name in ("fong", "game"):
        line = f"{scores[name]['score']}: {scores[name]['status']}"
        assert line in text and line in html
    assert "Computed on the follow-up scan (followup.seg.nrrd)" in text
    assert "Lesion segments named: Lesion 1, Lesion 3*" in text


def test_report_refuses_the_old_clinical_option_names(demo, tmp_path, capsys):
    for old in (["--kras", "mutated"], ["--ras-mutated", "mutated"], ["--node-positive-primary", "maybe"]):
        with pytest.raises(SystemExit) as stop:
            main(["report", str(demo["baseline_segmentation"]), "--output", str(tmp_path / "x.pdf"), *old])
        assert stop.value.code == 2
    assert not (tmp_path / "x.pdf").exists()


def test_report_chooses_the_dicom_series_named_by_series(tmp_path, capsys):
    """A CT folder holding two series: refused without --series (as compare refuses), read with it."""
    from synthetic_dicom import SeriesGrid, SeriesIdentity, ellipsoid_volume, write_series
    from TTVPrognosisLib.formats.io import read_image, write_segmentation
    from TTVPrognosisLib.formats.segments import ROLE_LESION, ROLE_LIVER, ROLE_TAG, LabelVolume, Segment

    grid = SeriesGrid(shape_kji=(10, 36, 36), spacing_ijk=(1.0, 1.0, 3.0), origin_lps=(-18.0, -18.0, 0.0))
    centre = (0.0, 0.0, 13.5)
    liver = ellipsoid_volume(grid, centre, (15.0, 15.0, 12.0))
    lesion = ellipsoid_volume(grid, (3.0, 2.0, 13.5), (5.0, 5.0, 6.0))
    chosen = SeriesIdentity(description="portal venous")
    write_series(tmp_path / "ct", np.where(liver, 60, -80).astype(np.int16), grid, chosen)
    write_series(tmp_path / "ct", np.zeros(grid.shape_kji, np.int16), grid, SeriesIdentity(description="scout"),
                 prefix="other")
    geometry = read_image(tmp_path / "ct", [chosen.series_uid]).geometry
    volume = LabelVolume([liver.astype(np.uint8), lesion.astype(np.uint8)], geometry,
                         [Segment("Liver", "Liver", 0, 1, {ROLE_TAG: ROLE_LIVER}),
                          Segment("Lesion_1", "Lesion 1", 1, 1, {ROLE_TAG: ROLE_LESION})], "synthetic")
    write_segmentation(volume, tmp_path / "seg.seg.nrrd")
    arguments = ["report", str(tmp_path / "seg.seg.nrrd"), "--image", str(tmp_path / "ct"), "--html",
                 str(tmp_path / "r.html"), "--date", "2026-01-31", "--json"]
    capsys.readouterr()
    assert main(arguments) == 1
    assert "series" in capsys.readouterr().err.lower()
    assert not (tmp_path / "r.html").exists()
    assert main([*arguments, "--series", chosen.series_uid]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert main(["measure", str(tmp_path / "seg.seg.nrrd"), "--image", str(tmp_path / "ct"), "--series",
                 chosen.series_uid, "--json"]) == 0
    assert reported["ttv_ml"] == pytest.approx(json.loads(capsys.readouterr().out)["ttv_ml"], rel=1e-12)
    assert reported["ttv_ml"] > 0
    assert f"DICOM series chosen: {chosen.series_uid}" in (tmp_path / "r.html").read_text(encoding="utf-8")
