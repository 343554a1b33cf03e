"""A report and a DICOM SEG export on a real CT: 3D-IRCADb-01 patient 1 (CT and tumour masks, read in place)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from TTVPrognosisLib.cli import main
from TTVPrognosisLib.formats.io import write_segmentation
from TTVPrognosisLib.formats.segments import LabelVolume
from TTVPrognosisLib.report.content import RESEARCH_NOTICE

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("matplotlib")
pytest.importorskip("highdicom")


@pytest.fixture(scope="module")
def ircad01(shared_data, tmp_path_factory):
    from shared_data import extract_ircad_ct, ircad_segmentation

    folder = tmp_path_factory.mktemp("ircad01-report")
    volume = ircad_segmentation("ircad01", folder)
    ct = extract_ircad_ct("ircad01", folder)
    write_segmentation(volume, folder / "baseline.seg.nrrd")
    # A follow-up on the same scan where the smallest tumour is gone (its layer emptied): one disappeared lesion.
    sizes = {segment.name: int(np.count_nonzero(volume.layers[segment.layer])) for segment in volume.segments
             if segment.name.startswith("livertumor")}
    gone = min(sizes, key=sizes.get)
    layers = [np.zeros_like(layer) if segment.name == gone else layer
              for segment, layer in zip(volume.segments, volume.layers)]
    write_segmentation(LabelVolume(layers, volume.geometry, volume.segments, "follow-up"), folder / "followup.seg.nrrd")
    return folder, ct


@pytest.mark.slow
def test_real_case_report_numbers_and_key_images(ircad01, capsys):
    folder, ct = ircad01
    files = [str(folder / "baseline.seg.nrrd"), str(folder / "followup.seg.nrrd")]
    assert main(["compare", *files, "--no-registration", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert main(["report", *files, "--baseline-image", str(ct), "--followup-image", str(ct), "--no-registration",
                 "--output", str(folder / "report.pdf"), "--html", str(folder / "report.html"), "--overwrite"]) == 0
    reader = pypdf.PdfReader(folder / "report.pdf")
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    assert 1 <= len(reader.pages) <= 3
    for value in (f"{document['baseline']['ttv_ml']:.2f}", f"{document['followup']['ttv_ml']:.2f}",
                  f"{document['absolute_change_ml']:+.2f}", f"RECIST 1.1: {document['recist']['response']}",
                  f"{document['recist']['baseline_sum_mm']:.1f}", RESEARCH_NOTICE):
        assert value in text, value
    targets = {target["lesion_id"] for target in document["recist"]["target_lesions"]}
    disappeared = {item["baseline_lesion"] for item in document["lesion_matching"]["disappeared"]}
    assert len(disappeared) == 1 and not document["lesion_matching"]["new"]
    expected = len(targets) + len(disappeared - targets)
    images = len({image.name for page in reader.pages for image in page.images})
    assert images == expected + 2
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert html.count("<figure class='keyimage'>") == expected
    assert "liver_01^patient" not in html and "liver_01^patient" not in text


@pytest.mark.slow
def test_real_ct_without_frame_of_reference_is_refused_for_dicom_seg(ircad01, capsys):
    folder, ct = ircad01
    assert main(["export-seg", str(folder / "baseline.seg.nrrd"), "--image", str(ct), "--output",
                 str(folder / "seg.dcm")]) == 1
    assert "no Frame of Reference UID" in capsys.readouterr().err
    assert not (folder / "seg.dcm").exists()
