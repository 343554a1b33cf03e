"""The panel's "Save report" on slicer-core nodes: the same report as the command line, or HTML with captured
pictures when matplotlib is missing (as in Slicer), and never numbers other than the panel shows."""

from __future__ import annotations

import sys

import pytest
import slicer

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import demo_time_point
from TTVPrognosisLib.mrml import nodes as mrml
from TTVPrognosisLib.mrml import workflow as mrml_workflow
from TTVPrognosisLib.mrml.report_nodes import save_report
from TTVPrognosisLib.report.content import RESEARCH_NOTICE
from TTVPrognosisLib.report.key_images import key_lesions

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def load(scene, followup: bool):
    image, segmentation = demo_time_point(followup=followup)
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    slicer.util.updateVolumeFromArray(volume_node, image.voxels)
    volume_node.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
    return volume_node, mrml.segmentation_node_from_label_volume(segmentation, scene)


@pytest.fixture(scope="module")
def panel():
    scene = slicer.vtkMRMLScene()
    baseline = load(scene, followup=False)
    followup = load(scene, followup=True)
    outcome = mrml_workflow.compute_outcome(baseline[1], baseline[0], followup[1], followup[0])
    return outcome, baseline, followup, scene


def test_save_report_draws_the_same_report_as_the_command_line(panel, tmp_path):
    pytest.importorskip("matplotlib")
    outcome, baseline, followup, _ = panel
    written = save_report(outcome, tmp_path / "r.html", tmp_path / "r.pdf", baseline[1], baseline[0], followup[1],
                          followup[0])
    assert [path.name for path in written] == ["r.pdf", "r.html"]
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    keys = len(key_lesions(outcome.result))
    assert html.count("<figure class='keyimage'>") == keys == 3
    assert html.count("data:image/png;base64,") == keys + 2
    assert f"{outcome.result.baseline.ttv_ml:.2f}" in html and RESEARCH_NOTICE in html
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")


def test_without_matplotlib_the_html_takes_the_captured_pictures(panel, tmp_path, monkeypatch):
    outcome, baseline, followup, _ = panel
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    pictures = [(key.title, PNG) for key in key_lesions(outcome.result)]
    save_report(outcome, tmp_path / "r.html", None, baseline[1], baseline[0], followup[1], followup[0],
                key_images=pictures)
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert html.count("<figure class='keyimage'>") == len(pictures)
    with pytest.raises(InputError, match="needs matplotlib"):
        save_report(outcome, None, tmp_path / "r.pdf", baseline[1], baseline[0])


def test_nodes_changed_since_compute_are_refused(panel, tmp_path):
    pytest.importorskip("matplotlib")
    outcome, baseline, _, scene = panel
    other = load(scene, followup=False)  # another follow-up than the one the panel computed with
    with pytest.raises(InputError, match="Compute TTV again"):
        save_report(outcome, tmp_path / "r.html", None, baseline[1], baseline[0], other[1], other[0])
    assert not (tmp_path / "r.html").exists()
