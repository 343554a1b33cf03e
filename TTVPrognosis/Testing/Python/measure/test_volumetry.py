"""TTV, lesions and diameters on synthetic shapes whose voxel counts are known exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.distance import pdist

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import demo_time_point, ellipsoid_mask
from TTVPrognosisLib.formats.io import image_to_itk
from TTVPrognosisLib.formats.segments import ROLE_TAG, LabelVolume, Segment
from TTVPrognosisLib.geometry import Geometry
from TTVPrognosisLib.measure.volumetry import measure, nonzero_box, total_tumor_volume_ml


def oblique_geometry(shape_kji=(40, 60, 70), spacing=(0.7, 0.9, 2.5), angle=0.4) -> Geometry:
    """Rotated about two axes, anisotropic, with an offset origin: nothing is axis-aligned."""
    about_z = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    half = angle / 2
    about_x = np.array([[1, 0, 0], [0, np.cos(half), -np.sin(half)], [0, np.sin(half), np.cos(half)]])
    matrix = np.eye(4)
    matrix[:3, :3] = about_z @ about_x @ np.diag(spacing)
    matrix[:3, 3] = [-31.5, 12.25, 80.0]
    return Geometry(matrix, shape_kji)


def single_layer(labels: np.ndarray, geometry: Geometry, names: dict[int, str] | None = None) -> LabelVolume:
    values = sorted(int(v) for v in np.unique(labels) if v)
    names = names or {}
    return LabelVolume([labels], geometry, [Segment(str(v), names.get(v, f"Lesion {v}"), 0, v) for v in values])


def test_boxes_exact_ttv_on_oblique_anisotropic_grid():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[2:7, 3:13, 4:24] = 1  # 5 * 10 * 20 = 1000 voxels
    labels[20:23, 40:47, 50:55] = 2  # 3 * 7 * 5 = 105 voxels
    result = measure(single_layer(labels, geometry))
    voxel_mm3 = abs(np.linalg.det(geometry.ijk_to_ras[:3, :3]))
    assert voxel_mm3 == pytest.approx(0.7 * 0.9 * 2.5)
    assert result.ttv_ml == pytest.approx(1105 * voxel_mm3 / 1000, rel=1e-12)
    assert [lesion.voxel_count for lesion in result.lesions] == [1000, 105]
    assert total_tumor_volume_ml(single_layer(labels, geometry)) == pytest.approx(result.ttv_ml, rel=1e-12)


def test_box_diameters_are_exact_corner_to_corner_distances():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[2:7, 3:13, 4:24] = 1
    lesion = measure(single_layer(labels, geometry)).lesions[0]
    spacing_ijk = np.array([0.7, 0.9, 2.5])
    extent_ijk = np.array([19, 9, 4]) * spacing_ijk  # centre-to-centre extents along i, j, k
    assert lesion.max_diameter_mm == pytest.approx(np.linalg.norm(extent_ijk), abs=1e-9)
    # Axial slices: the index axis closest to S. After the rotation about x it is still k.
    assert geometry.axial_axis_ijk == 2
    assert lesion.longest_axial_diameter_mm == pytest.approx(np.linalg.norm(extent_ijk[:2]), abs=1e-9)


def test_centroid_is_mean_voxel_position_in_ras():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[2:7, 3:13, 4:24] = 1
    lesion = measure(single_layer(labels, geometry)).lesions[0]
    expected = geometry.ras_from_kji(np.array([[4.0, 7.5, 13.5]]))[0]
    np.testing.assert_allclose(lesion.centroid_ras, expected, atol=1e-9)


def test_overlapping_segments_in_two_layers_count_once():
    geometry = oblique_geometry()
    first = np.zeros(geometry.shape_kji, dtype=np.uint8)
    second = np.zeros(geometry.shape_kji, dtype=np.uint8)
    first[5:15, 5:15, 5:15] = 1  # 1000 voxels
    second[10:20, 10:20, 10:20] = 1  # 1000 voxels, 125 shared with the first
    volume = LabelVolume([first, second], geometry, [Segment("a", "Lesion A", 0, 1), Segment("b", "Lesion B", 1, 1)])
    result = measure(volume)
    assert sum(lesion.voxel_count for lesion in result.lesions) == 1875
    assert result.ttv_ml == pytest.approx(1875 * geometry.voxel_volume_ml)
    assert result.lesion_count == 1
    assert sorted(result.lesions[0].segments) == ["Lesion A", "Lesion B"]
    assert [segment.voxel_count for segment in result.segments] == [1000, 1000]
    assert total_tumor_volume_ml(volume) == pytest.approx(result.ttv_ml)


@pytest.mark.parametrize("offset, expected_lesions", [
    ((0, 0, 5), 1),  # sharing a face
    ((5, 5, 0), 1),  # sharing an edge
    ((5, 5, 5), 1),  # touching only at a corner: still one 26-connected lesion
    ((6, 5, 5), 2),  # one empty voxel between them
])
def test_touching_lesions_are_one_26_connected_component(offset, expected_lesions):
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[5:10, 5:10, 5:10] = 1
    k, j, i = offset
    labels[5 + k:10 + k, 5 + j:10 + j, 5 + i:10 + i] = 2
    result = measure(single_layer(labels, geometry))
    assert result.lesion_count == expected_lesions
    assert result.ttv_ml == pytest.approx(250 * geometry.voxel_volume_ml)


def test_lesions_of_a_few_voxels():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[1, 1, 1] = 1
    labels[10, 10, 10:12] = 2  # two voxels side by side along i
    labels[30, 30, 30] = 3
    labels[31, 31, 31] = 3  # diagonal neighbour: one lesion of 2 voxels
    result = measure(single_layer(labels, geometry))
    assert result.lesion_count == 3
    counts = sorted(lesion.voxel_count for lesion in result.lesions)
    assert counts == [1, 2, 2]
    single = next(lesion for lesion in result.lesions if lesion.voxel_count == 1)
    assert single.max_diameter_mm == 0.0
    assert single.longest_axial_diameter_mm == 0.0
    pair = next(lesion for lesion in result.lesions if lesion.voxel_count == 2 and lesion.segments == ["Lesion 2"])
    assert pair.max_diameter_mm == pytest.approx(0.7)
    assert pair.longest_axial_diameter_mm == pytest.approx(0.7)
    diagonal = next(lesion for lesion in result.lesions if lesion.segments == ["Lesion 3"])
    assert diagonal.max_diameter_mm == pytest.approx(np.linalg.norm([0.7, 0.9, 2.5]))
    assert diagonal.longest_axial_diameter_mm == 0.0  # the two voxels lie in different axial slices


def sitk_feret_diameters(labels: np.ndarray, geometry: Geometry) -> list[float]:
    components = sitk.RelabelComponent(sitk.ConnectedComponent(image_to_itk(labels, geometry), True))
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.SetComputeFeretDiameter(True)
    shape.Execute(components)
    return sorted((shape.GetFeretDiameter(label) for label in shape.GetLabels()), reverse=True)


def brute_force_axial_diameter(mask: np.ndarray, geometry: Geometry) -> float:
    axis = geometry.axial_axis_kji
    best = 0.0
    for index in range(mask.shape[axis]):
        voxels = np.argwhere(np.take(mask, index, axis=axis))
        if len(voxels) > 1:
            voxels = np.insert(voxels, axis, index, axis=1)
            best = max(best, float(pdist(geometry.ras_from_kji(voxels)).max()))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diameters_agree_with_simpleitk_feret_on_random_ellipsoids(seed):
    rng = np.random.default_rng(seed)
    matrix = np.eye(4)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    matrix[:3, :3] = rotation @ np.diag(rng.uniform(0.5, 2.0, 3))
    geometry = Geometry(matrix, (50, 55, 60))
    low, high = geometry.bounds_ras()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    for value in (1, 2, 3):
        centre = low + (high - low) * (0.25 + 0.5 * rng.random(3))
        radii = rng.uniform(3.0, 12.0, 3)
        labels[ellipsoid_mask(geometry, centre, radii) & (labels == 0)] = value
    result = measure(single_layer(labels, geometry))
    ours = sorted((lesion.max_diameter_mm for lesion in result.lesions), reverse=True)
    np.testing.assert_allclose(ours, sitk_feret_diameters((labels > 0).astype(np.uint8), geometry), atol=0.5)
    for lesion in result.lesions:
        mask = np.isin(labels, [int(name.split()[-1]) for name in lesion.segments])
        assert lesion.longest_axial_diameter_mm == pytest.approx(brute_force_axial_diameter(mask, geometry), abs=1e-6)


def test_axial_axis_follows_superior_inferior_for_other_axis_orders():
    """Like KiTS: the i axis runs inferior, so axial slices are i-planes."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.array([[0, 0, -1], [0, 1, 0], [-1, 0, 0]]) @ np.diag([2.5, 0.7, 0.7])
    geometry = Geometry(matrix, (30, 30, 20))
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[5:25, 10:12, 3:8] = 1  # long along k (patient R-L), 5 slices along i (S-I)
    lesion = measure(single_layer(labels, geometry)).lesions[0]
    assert geometry.axial_axis_ijk == 0
    assert lesion.longest_axial_diameter_mm == pytest.approx(np.hypot(19 * 0.7, 1 * 0.7))
    assert lesion.max_diameter_mm == pytest.approx(np.linalg.norm([19 * 0.7, 0.7, 4 * 2.5]))


def test_large_lesion_diameter_agrees_with_simpleitk_feret():
    """A 15 cm lesion (1.6 million voxels): the bounded search still finds SimpleITK's Feret diameter. It is
    organ-sized (1.6 L), so it is counted only when named as a lesion (role_checks)."""
    matrix = np.diag([0.75, 0.75, 1.5, 1.0])
    geometry = Geometry(matrix, (110, 220, 220))
    mask = ellipsoid_mask(geometry, (82.0, 82.0, 82.0), (75.0, 70.0, 72.0))
    labels = mask.astype(np.uint8)
    lesion = measure(single_layer(labels, geometry), lesion=["Lesion 1"]).lesions[0]
    assert lesion.max_diameter_mm == pytest.approx(sitk_feret_diameters(labels, geometry)[0], abs=0.5)


def test_liver_segment_is_not_a_lesion_and_gives_liver_volume():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[0:30, 0:40, 0:40] = 1
    labels[5:10, 5:10, 5:10] = 2
    result = measure(single_layer(labels, geometry, {1: "Liver", 2: "Metastasis"}))
    assert result.liver_volume_ml == pytest.approx((30 * 40 * 40 - 125) * geometry.voxel_volume_ml)
    assert result.ttv_ml == pytest.approx(125 * geometry.voxel_volume_ml)
    assert [segment.role for segment in result.segments] == ["liver", "lesion"]


@pytest.mark.parametrize("name, role", [
    ("liver", "liver"), ("Liver parenchyma", "liver"), ("whole_liver", "liver"), ("Parenchyma", "liver"),
    ("livertumor01", "lesion"), ("Liver lesion 3", "lesion"), ("Segment_1", "lesion")])
def test_liver_names(name, role):
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    assert measure(single_layer(labels, geometry, {1: name})).segments[0].role == role


def test_role_tag_and_user_choices_take_precedence():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    labels[10:12, 10:12, 10:12] = 2
    labels[20:22, 20:22, 20:22] = 3
    volume = LabelVolume([labels], geometry, [Segment("1", "Liver", 0, 1, {ROLE_TAG: "lesion"}),
                                              Segment("2", "Cyst", 0, 2), Segment("3", "Tumour", 0, 3)])
    result = measure(volume, exclude=["cyst"])
    assert [segment.role for segment in result.segments] == ["lesion", "excluded", "lesion"]
    assert result.lesion_count == 2
    assert volume.segments[1].role == "lesion", "measuring must not change the caller's segments"
    assert measure(volume, liver=["3"]).segments[2].role == "liver"


def test_unknown_segment_name_is_an_error_not_a_silent_change():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    with pytest.raises(InputError, match=r"matches no segment.*Lesion 1"):
        measure(single_layer(labels, geometry), exclude=["Lesion 9"])


def test_no_lesion_segments_gives_zero_and_a_warning():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[0:10, 0:10, 0:10] = 1
    result = measure(single_layer(labels, geometry, {1: "Liver"}))
    assert result.ttv_ml == 0.0
    assert result.lesion_count == 0
    assert result.largest_diameter_mm is None
    assert any("No lesion segments" in warning for warning in result.warnings)


def test_empty_segmentation_gives_zero_and_warnings():
    geometry = oblique_geometry()
    volume = LabelVolume([np.zeros(geometry.shape_kji, dtype=np.uint8)], geometry, [Segment("1", "Lesion 1", 0, 1)])
    result = measure(volume)
    assert result.ttv_ml == 0.0
    assert any("empty" in warning for warning in result.warnings)
    assert total_tumor_volume_ml(volume) == 0.0


def test_voxels_of_no_segment_are_ignored_with_a_warning():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[0:2, 0:2, 0:2] = 1
    labels[10:12, 10:12, 10:12] = 7  # no segment has label 7
    volume = LabelVolume([labels], geometry, [Segment("1", "Lesion 1", 0, 1)])
    result = measure(volume)
    assert result.ttv_ml == pytest.approx(8 * geometry.voxel_volume_ml)
    assert total_tumor_volume_ml(volume) == pytest.approx(result.ttv_ml)
    assert any("belong to no segment" in warning for warning in result.warnings)


def test_lesion_labels_rank_lesions_by_volume():
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    labels[10:15, 10:15, 10:15] = 2
    result = measure(single_layer(labels, geometry), keep_labels=True)
    full = result.lesion_labels.full()
    assert np.count_nonzero(full == 1) == 125
    assert np.count_nonzero(full == 2) == 8
    assert result.to_dict().keys() >= {"ttv_ml", "lesion_count", "lesions", "segments"}
    assert "lesion_labels" not in result.to_dict()


def test_nonzero_box_is_tight():
    array = np.zeros((9, 8, 7), dtype=np.uint8)
    for point in itertools.product((2, 6), (1, 5), (3, 4)):
        array[point] = 1
    box = nonzero_box(array)
    assert box == (slice(2, 7), slice(1, 6), slice(3, 5))
    assert nonzero_box(np.zeros((3, 3, 3), dtype=np.uint8)) is None


@pytest.mark.parametrize("seed", range(5))
def test_nonzero_box_matches_the_voxels_on_views_and_label_values(seed):
    rng = np.random.default_rng(seed)
    labels = np.zeros((12, 30, 25), dtype=np.uint16)
    points = rng.integers(0, labels.shape, size=(rng.integers(1, 6), 3))
    labels[tuple(points.T)] = rng.integers(1, 3000, size=len(points))
    for array in (labels, labels.transpose(2, 0, 1), labels[::2, 1:, ::-1]):  # views in other memory orders
        occupied = np.argwhere(array)
        expected = None if occupied.size == 0 else tuple(
            slice(int(low), int(high) + 1) for low, high in zip(occupied.min(axis=0), occupied.max(axis=0)))
        assert nonzero_box(array) == expected


def test_liver_volume_from_label_counts_equals_the_liver_mask():
    """Liver segments of one layer are counted without building their mask, unless registration needs it."""
    geometry = oblique_geometry()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    labels[0:30, 0:40, 0:40] = 1
    labels[0:30, 40:50, 0:40] = 3
    labels[5:10, 5:10, 5:10] = 2
    volume = single_layer(labels, geometry, {1: "Liver 1", 2: "Metastasis", 3: "Liver 2"})
    counted, masked = measure(volume), measure(volume, keep_liver_mask=True)
    assert counted.liver_volume_ml == masked.liver_volume_ml == pytest.approx(
        (30 * 50 * 40 - 125) * geometry.voxel_volume_ml)
    assert counted.liver_mask is None
    assert masked.liver_mask.start_kji == (0, 0, 0) and masked.liver_mask.mask.sum() == 30 * 50 * 40 - 125


def test_a_label_value_names_a_segment_only_when_no_other_segment_has_it():
    """In a Slicer file every layer may use value 1 (Liver in layer 0, Lesion 1 in layer 1): "1" must not
    quietly exclude both."""
    volume = demo_time_point(followup=False)[1]
    values = {segment.name: (segment.layer, segment.label_value) for segment in volume.segments}
    assert values["Liver"][1] == values["Lesion 1"][1] == 1 and values["Liver"][0] != values["Lesion 1"][0]
    whole = measure(volume)
    with pytest.raises(InputError, match=r"label value 1 belongs to several segments.*Liver, Lesion 1"):
        measure(volume, exclude=["1"])
    by_value = measure(volume, exclude=[str(values["Lesion 2"][1])])  # a value only Lesion 2 has
    by_name = measure(volume, exclude=["Lesion 2"])
    assert by_value.ttv_ml == by_name.ttv_ml < whole.ttv_ml


def test_a_segment_with_label_value_zero_is_refused():
    """Value 0 is the background: such a segment (a damaged header) would count every empty voxel."""
    geometry = Geometry(np.eye(4), (4, 4, 4))
    with pytest.raises(InputError, match="label value 0"):
        LabelVolume([np.zeros((4, 4, 4), np.uint8)], geometry, [Segment("Lesion_1", "Lesion 1", 0, 0)])


def test_a_spacing_no_ct_has_is_warned_about():
    """A file saved in metres measures a thousand-millionth of the volume: say so."""
    volume = demo_time_point(followup=False)[1]
    assert not any("units" in warning for warning in measure(volume).warnings)
    matrix = volume.geometry.ijk_to_ras.copy()
    matrix[:3, :4] *= 1e-3
    in_metres = LabelVolume(volume.layers, Geometry(matrix, volume.geometry.shape_kji), volume.segments)
    assert any("0.0015 x 0.0015 x 0.0025 mm" in warning and "millimetres" in warning
               for warning in measure(in_metres).warnings)
