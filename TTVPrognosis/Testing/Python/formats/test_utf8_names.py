"""Segment names outside ASCII ("Hígado", "Métastase") survive reading and writing: Slicer writes them as UTF-8,
and a liver named in Spanish must still be recognised as the liver (pynrrd alone drops the letters)."""

from __future__ import annotations

import numpy as np
import pytest

from TTVPrognosisLib.formats.demo_data import demo_time_point
from TTVPrognosisLib.formats.io import read_segmentation, write_segmentation
from TTVPrognosisLib.formats.segments import ROLE_TAG
from TTVPrognosisLib.measure.volumetry import measure


def _untagged_demo():
    """The demo baseline without the module's role tags, so only the names say what each segment is."""
    _, volume = demo_time_point(followup=False)
    for segment in volume.segments:
        segment.tags.pop(ROLE_TAG, None)
    return volume


def test_a_slicer_file_with_a_spanish_liver_name_reads_the_name_and_the_role(tmp_path):
    slicer = pytest.importorskip("slicer")
    from TTVPrognosisLib.mrml import nodes as mrml

    volume = _untagged_demo()
    truth = measure(volume)
    scene = slicer.vtkMRMLScene()
    node = mrml.segmentation_node_from_label_volume(volume, scene)
    node.GetSegmentation().GetNthSegment(0).SetName("Hígado")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    path = tmp_path / "slicer.seg.nrrd"
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    assert "Hígado".encode() in path.read_bytes()[:4000]

    read = read_segmentation(path)
    assert read.segments[0].name == "Hígado"
    result = measure(read)
    assert result.ttv_ml == pytest.approx(truth.ttv_ml, rel=1e-12)
    assert result.liver_volume_ml == pytest.approx(truth.liver_volume_ml, rel=1e-12)


def test_our_writer_keeps_names_outside_ascii_and_slicer_reads_them(tmp_path):
    volume = _untagged_demo()
    volume.segments[0].name = "Hígado"
    volume.segments[1].name = "Métastase 1"
    path = tmp_path / "ours.seg.nrrd"
    write_segmentation(volume, path)
    read = read_segmentation(path)
    assert [segment.name for segment in read.segments][:2] == ["Hígado", "Métastase 1"]
    assert all(np.array_equal(a, b) for a, b in zip(read.layers, volume.layers))
    slicer = pytest.importorskip("slicer")
    node = slicer.vtkMRMLSegmentationNode()
    scene = slicer.vtkMRMLScene()
    scene.AddNode(node)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    names = [node.GetSegmentation().GetNthSegment(index).GetName()
             for index in range(node.GetSegmentation().GetNumberOfSegments())]
    assert names[:2] == ["Hígado", "Métastase 1"]
