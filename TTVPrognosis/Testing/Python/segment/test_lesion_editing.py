"""Adding clicked lesions to segmentations (files and MRML nodes) without losing anything already there."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import DEMO_LESIONS, demo_time_point
from TTVPrognosisLib.formats.segments import ROLE_TAG, VERIFIED_TAG, LabelVolume, Segment
from TTVPrognosisLib.geometry import Geometry
from TTVPrognosisLib.mrml import nodes as mrml
from TTVPrognosisLib.mrml import review as mrml_review
from TTVPrognosisLib.segment.editing import add_lesion_at_points, add_segment, next_lesion_name, on_grid


@pytest.fixture(scope="module")
def demo():
    return demo_time_point(followup=False)


def dice(first: np.ndarray, second: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(first & second) / (np.count_nonzero(first) + np.count_nonzero(second))


def liver_only(segmentation: LabelVolume) -> LabelVolume:
    return LabelVolume([segmentation.layers[0]], segmentation.geometry, [segmentation.segments[0]], "liver")


@pytest.mark.parametrize("names, expected", [([], "Lesion 1"), (["Liver", "Lesion 1", "Lesion 3"], "Lesion 4"),
                                             (["Lesion 2 (old)", "lesion 7"], "Lesion 1")])
def test_next_lesion_name(names, expected):
    assert next_lesion_name(names) == expected


def test_clicks_add_tagged_unverified_lesions_and_keep_earlier_ones(demo):
    image, truth = demo
    current = liver_only(truth)
    for number, lesion in enumerate(DEMO_LESIONS[:3], start=1):
        before = [current.layers[s.layer] == s.label_value for s in current.segments]
        added = add_lesion_at_points(image, current, [lesion.centre_ras])
        current = added.segmentation
        assert added.name == f"Lesion {number}"
        new = current.segments[-1]
        assert new.tags[ROLE_TAG] == "lesion" and new.tags[VERIFIED_TAG] == "0"
        assert dice(current.layers[new.layer] == new.label_value, truth.layers[1] == number) > 0.9
        for segment, mask in zip(current.segments[:-1], before):
            np.testing.assert_array_equal(current.layers[segment.layer] == segment.label_value, mask)


def test_click_inside_an_existing_lesion_adds_nothing(demo):
    image, truth = demo
    first = add_lesion_at_points(image, liver_only(truth), [DEMO_LESIONS[0].centre_ras]).segmentation
    with pytest.raises(InputError, match="already segmented"):
        add_lesion_at_points(image, first, [DEMO_LESIONS[0].centre_ras])


@pytest.mark.parametrize("point, message", [((900.0, 0.0, 0.0), "outside"), ((-80.0, 0.0, 0.0), "outside the liver")])
def test_bad_clicks_are_explained(demo, point, message):
    image, truth = demo
    with pytest.raises(InputError, match=message):
        add_lesion_at_points(image, liver_only(truth), [point])


def test_click_on_air_without_liver_mask(demo):
    image, _ = demo
    corner = image.geometry.ras_from_kji(np.array([[2, 2, 2]]))[0]
    with pytest.raises(InputError, match="air"):
        add_lesion_at_points(image, None, [corner])


def test_overlapping_new_segment_goes_to_a_new_layer(demo):
    _, truth = demo
    mask = truth.layers[1] == 1  # overlaps the liver (layer 0) and lesion 1 itself (layer 1)
    updated, segment_id = add_segment(truth, mask, "Copy of lesion 1", {})
    new = next(segment for segment in updated.segments if segment.segment_id == segment_id)
    assert new.layer == 2, "it overlaps both existing layers, so it needs its own"
    assert len(truth.layers) == 2, "the input is not modified"
    outside = np.zeros_like(mask)
    outside[0, 0, 0] = True
    updated, segment_id = add_segment(truth, outside, "Corner", {})
    assert next(s for s in updated.segments if s.segment_id == segment_id).layer == 0


def test_on_grid_pastes_a_cropped_segmentation_and_refuses_other_lattices(demo):
    image, truth = demo
    start, shape = (10, 20, 30), (20, 40, 50)
    crop = tuple(slice(a, a + n) for a, n in zip(start, shape))
    cropped = LabelVolume([layer[crop].copy() for layer in truth.layers], truth.geometry.cropped(start, shape),
                          truth.segments, "cropped")
    placed = on_grid(cropped, image.geometry)
    for layer, original in zip(placed.layers, truth.layers):
        expected = np.zeros_like(original)
        expected[crop] = original[crop]
        np.testing.assert_array_equal(layer, expected)
    shifted = Geometry(truth.geometry.ijk_to_ras + np.array([[0, 0, 0, 0.4], [0] * 4, [0] * 4, [0] * 4]),
                       truth.geometry.shape_kji)
    with pytest.raises(InputError, match="another voxel grid"):
        on_grid(LabelVolume(truth.layers, shifted, truth.segments, "shifted"), image.geometry)


def ct_node(scene, image):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    slicer.util.updateVolumeFromArray(node, image.voxels)
    node.SetIJKToRASMatrix(mrml.numpy_to_matrix(image.geometry.ijk_to_ras))
    return node


def test_mrml_click_becomes_a_tagged_segment_and_nothing_else_changes(demo):
    image, truth = demo
    scene = slicer.vtkMRMLScene()
    volume_node = ct_node(scene, image)
    segmentation_node = mrml_review.new_segmentation_for(volume_node, "Lesions")
    mrml.add_segment_from_mask(segmentation_node, truth.layers[0] > 0, image.geometry, "Liver", {ROLE_TAG: "liver"})
    first_id, _ = mrml_review.add_lesion_at_points_to_node(segmentation_node, volume_node, [DEMO_LESIONS[0].centre_ras])
    before = mrml.label_volume_from_segmentation_node(segmentation_node, volume_node)
    before_masks = {s.segment_id: on_grid(before, image.geometry) for s in before.segments}
    second_id, result = mrml_review.add_lesion_at_points_to_node(segmentation_node, volume_node,
                                                                 [DEMO_LESIONS[1].centre_ras])
    segment = segmentation_node.GetSegmentation().GetSegment(second_id)
    assert segment.GetName() == "Lesion 2"
    assert mrml._segment_tags(segment) == {ROLE_TAG: "lesion", VERIFIED_TAG: "0"}
    after = on_grid(mrml.label_volume_from_segmentation_node(segmentation_node, volume_node), image.geometry)
    for segment_id, old in before_masks.items():
        old_segment = next(s for s in old.segments if s.segment_id == segment_id)
        new_segment = next(s for s in after.segments if s.segment_id == segment_id)
        np.testing.assert_array_equal(after.layers[new_segment.layer] == new_segment.label_value,
                                      old.layers[old_segment.layer] == old_segment.label_value)
    new_segment = next(s for s in after.segments if s.segment_id == second_id)
    assert dice(after.layers[new_segment.layer] == new_segment.label_value, truth.layers[1] == 2) > 0.9
    assert result.volume_ml == pytest.approx(np.count_nonzero(
        after.layers[new_segment.layer] == new_segment.label_value) * image.geometry.voxel_volume_ml)
    rows = mrml_review.lesion_rows(segmentation_node, volume_node)
    assert [row.name for row in rows] == ["Lesion 1", "Lesion 2"]
    assert not any(row.verified for row in rows)
    mrml_review.set_segment_verified(segmentation_node, first_id, True)
    assert [row.verified for row in mrml_review.lesion_rows(segmentation_node, volume_node)] == [True, False]
    # the panel's exclude list, re-read at each keystroke: a half-typed name or one of the other time point
    # is not applied (and is no error); a full name is
    for typing in (["L"], ["Lesion"], ["Cyst 3"]):
        assert len(mrml_review.lesion_rows(segmentation_node, volume_node, exclude=typing)) == 2
    assert [row.name for row in mrml_review.lesion_rows(segmentation_node, volume_node, exclude=["Lesion 2"])] \
        == ["Lesion 1"]
    count = segmentation_node.GetSegmentation().GetNumberOfSegments()
    with pytest.raises(InputError):
        mrml_review.add_lesion_at_points_to_node(segmentation_node, volume_node, [(900.0, 0.0, 0.0)])
    assert segmentation_node.GetSegmentation().GetNumberOfSegments() == count, "no empty segment left behind"


def test_split_into_islands(demo):
    image, _ = demo
    scene = slicer.vtkMRMLScene()
    volume_node = ct_node(scene, image)
    segmentation_node = mrml_review.new_segmentation_for(volume_node, "Lesions")
    mask = np.zeros(image.geometry.shape_kji, dtype=bool)
    mask[5:8, 5:8, 5:8] = True  # 27 voxels
    mask[20:30, 20:30, 20:30] = True  # 1000 voxels
    segment_id = mrml.add_segment_from_mask(segmentation_node, mask, image.geometry, "Lesion 1", {ROLE_TAG: "lesion"})
    created = mrml_review.split_segment_into_islands(segmentation_node, segment_id, volume_node)
    assert created[0] == segment_id and len(created) == 2
    rows = {row.name: row for row in mrml_review.lesion_rows(segmentation_node, volume_node)}
    voxel_ml = image.geometry.voxel_volume_ml
    assert rows["Lesion 1"].volume_ml == pytest.approx(1000 * voxel_ml)
    assert rows["Lesion 2"].volume_ml == pytest.approx(27 * voxel_ml)
    assert mrml_review.split_segment_into_islands(segmentation_node, segment_id, volume_node) == [segment_id]


def run_cli(*arguments: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "TTVPrognosisLib", *arguments], capture_output=True, text=True,
                          timeout=300)


def test_cli_segment_lesion_adds_to_an_existing_file_and_keeps_it_on_failure(tmp_path):
    import json

    from TTVPrognosisLib.formats.demo_data import write_demo_case
    from TTVPrognosisLib.formats.io import read_segmentation

    paths = write_demo_case(tmp_path / "demo")
    output = tmp_path / "lesions.seg.nrrd"
    ct, liver = str(paths["baseline_image"]), str(paths["baseline_segmentation"])
    first = DEMO_LESIONS[0].centre_ras
    completed = run_cli("segment-lesion", ct, "--point", ",".join(map(str, first)), "--liver", liver,
                        "--output", str(output), "--json")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert [item["name"] for item in document["added"]] == ["Lesion 1"]
    before = read_segmentation(output)
    first_mask = before.layers[before.segments[0].layer] == before.segments[0].label_value

    # A point with a negative coordinate, typed as users type it, plus one that cannot be a lesion.
    second = DEMO_LESIONS[1].centre_ras
    completed = run_cli("segment-lesion", ct, "--point", ",".join(map(str, second)), "--point", "-80,0,0",
                        "--liver", liver, "--output", str(output), "--json")
    assert completed.returncode == 1
    document = json.loads(completed.stdout)
    assert [item["name"] for item in document["added"]] == ["Lesion 2"]
    assert "outside the liver" in document["failed"][0]["error"]
    after = read_segmentation(output)
    assert [segment.name for segment in after.segments] == ["Lesion 1", "Lesion 2"]
    kept = after.segments[0]
    np.testing.assert_array_equal(after.layers[kept.layer] == kept.label_value, first_mask)
    assert all(segment.tags[VERIFIED_TAG] == "0" for segment in after.segments)

    unchanged = output.read_bytes()
    completed = run_cli("segment-lesion", ct, "--point", "900,0,0", "--output", str(output))
    assert completed.returncode == 1 and "outside" in completed.stderr
    assert output.read_bytes() == unchanged, "a failed click must not touch the file"


def test_cli_segment_lesion_bad_point_syntax(tmp_path):
    completed = run_cli("segment-lesion", "ct.nrrd", "--point", "1,2", "--output", str(tmp_path / "x.seg.nrrd"))
    assert completed.returncode == 2
    assert "R,A,S" in completed.stderr


def write_many_layer_segmentation(path, image, truth) -> dict:
    """A Slicer segmentation on the CT's grid with label values above 65535 and three layers (as Slicer writes
    overlapping segments, and label maps converted from other tools do), with the fields Slicer writes."""
    import slicerio

    liver = truth.layers[0] == 1
    lesion_1 = truth.layers[1] == 1
    lesion_2 = truth.layers[1] == 2
    layers = np.zeros((3, *image.geometry.shape_kji), dtype=np.uint32)
    layers[0][liver] = 70000
    layers[1][lesion_1] = 3
    layers[1][lesion_2] = 65537
    layers[2][lesion_1 & (np.indices(lesion_1.shape)[0] % 2 == 0)] = 2  # overlaps lesion 1: its own layer
    specs = [("Liver", 0, 70000, "Liver", {"TTVPrognosis.Role": "liver"}),
             ("Lesion_A", 1, 3, "Lesion A", {"TTVPrognosis.Role": "lesion", "TTVPrognosis.Verified": "1"}),
             ("Lesion_B", 1, 65537, "Lesion B", {}),
             ("Core", 2, 2, "Core of A", {"Custom": "kept"})]
    segments = []
    for index, (segment_id, layer, value, name, tags) in enumerate(specs):
        where = np.argwhere(layers[layer] == value)
        low, high = where.min(axis=0), where.max(axis=0)
        segments.append({"id": segment_id, "name": name, "layer": layer, "labelValue": value,
                         "color": [0.1 * index, 0.5, 0.9], "colorAutoGenerated": False, "nameAutoGenerated": False,
                         "extent": [int(low[2]), int(high[2]), int(low[1]), int(high[1]), int(low[0]), int(high[0])],
                         "terminology": {"contextName": "Segmentation category and type - 3D Slicer General "
                                                        "Anatomy list",
                                         "category": ["SCT", "49755003", "Morphologically Altered Structure"],
                                         "type": ["SCT", "4147007", "Mass"]},
                         "tags": tags, "status": "completed"})
    document = {"voxels": np.stack([layer.T for layer in layers]), "ijkToLPS": image.geometry.ijk_to_lps,
                "segments": segments, "encoding": "gzip"}
    slicerio.write_segmentation(str(path), document)
    return document


def test_cli_segment_lesion_keeps_every_segment_of_a_many_layer_file_with_label_values_above_65535(tmp_path):
    import slicerio

    from TTVPrognosisLib.formats.demo_data import write_demo_case

    paths = write_demo_case(tmp_path / "demo")
    image, truth = demo_time_point(followup=False)
    output = tmp_path / "review.seg.nrrd"
    write_many_layer_segmentation(output, image, truth)
    before = slicerio.read_segmentation(str(output))
    completed = run_cli("segment-lesion", str(paths["baseline_image"]), "--point",
                        ",".join(map(str, DEMO_LESIONS[2].centre_ras)), "--output", str(output), "--json")
    assert completed.returncode == 0, completed.stderr
    after = slicerio.read_segmentation(str(output))
    old_voxels = before["voxels"]
    new_voxels = after["voxels"]
    assert new_voxels.shape[1:] == old_voxels.shape[1:]
    for segment in before["segments"]:
        kept = next(item for item in after["segments"] if item["id"] == segment["id"])
        assert kept == segment, f"fields of {segment['id']} changed"
        np.testing.assert_array_equal(new_voxels[kept["layer"]] == kept["labelValue"],
                                      old_voxels[segment["layer"]] == segment["labelValue"])
    new = after["segments"][-1]
    assert new["name"] == "Lesion 1" and len(after["segments"]) == len(before["segments"]) + 1
    added = new_voxels[new["layer"]] == new["labelValue"]
    lesion_3 = (truth.layers[1] == 3).T
    assert dice(added, lesion_3) > 0.85


def test_a_new_label_value_beyond_the_layer_type_widens_it_instead_of_wrapping(demo):
    _, truth = demo
    for dtype, highest in ((np.uint8, 255), (np.uint16, 65535), (np.int8, 127)):
        layer = np.zeros(truth.geometry.shape_kji, dtype=dtype)
        layer[truth.layers[0] == 1] = highest
        volume = LabelVolume([layer], truth.geometry, [Segment("Liver", "Liver", 0, highest)], "test")
        mask = np.zeros_like(layer, dtype=bool)
        mask[0, 0, :3] = True  # outside the liver: same layer, next label value
        updated, _ = add_segment(volume, mask, "Lesion 1", {})
        new = updated.segments[-1]
        assert new.layer == 0 and new.label_value == highest + 1
        assert np.count_nonzero(updated.layers[0] == highest + 1) == 3
        np.testing.assert_array_equal(updated.layers[0] == highest, truth.layers[0] == 1)


@pytest.mark.parametrize("typed", ["(-40, -60, 61)", "[-40 -60 61]", "-40;-60;61", "-40,-60,61", " ( -40 ,-60, 61 ) ",
                                   "\u221240, \u221260, 61", "-4e1 -6e1 61"])
def test_pasted_points_are_read(typed):
    from TTVPrognosisLib import cli

    arguments = ["segment-lesion", "ct.nrrd", "--point", typed, "--output", "x.seg.nrrd"]
    assert cli.build_parser().parse_args(cli._attach_negative_values(arguments)).point == [(-40.0, -60.0, 61.0)]


def test_three_separate_numbers_after_point_are_one_point():
    from TTVPrognosisLib import cli

    arguments = ["segment-lesion", "ct.nrrd", "--point", "-40", "-60", "61", "--point", "1,2,3",
                 "--output", "x.seg.nrrd"]
    assert cli.build_parser().parse_args(cli._attach_negative_values(arguments)).point == [(-40.0, -60.0, 61.0),
                                                                                           (1.0, 2.0, 3.0)]


@pytest.mark.parametrize("typed", ["1,2", "1,2,3,4", "(a, b, c)", "1,,x", "1.2.3,4,5", "1,2,3)x"])
def test_malformed_points_are_refused(typed, capsys):
    from TTVPrognosisLib import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["segment-lesion", "ct.nrrd", f"--point={typed}", "--output", "x.seg.nrrd"])
    assert stop.value.code == 2 and "R,A,S" in capsys.readouterr().err


def test_segment_lesion_does_not_create_a_missing_output_folder(tmp_path, capsys):
    from TTVPrognosisLib import cli

    output = tmp_path / "not-yet" / "review.seg.nrrd"
    assert cli.main(["segment-lesion", "ct.nrrd", "--point", "1,2,3", "--output", str(output)]) == 1
    assert "does not exist" in capsys.readouterr().err and not output.parent.exists()
