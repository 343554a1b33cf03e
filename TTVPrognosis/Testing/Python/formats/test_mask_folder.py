"""Several files for one time point (3D-IRCADb and TotalSegmentator folders) and label names written by other
tools (TotalSegmentator's NIfTI header extension, nnU-Net's dataset.json)."""

from __future__ import annotations

import gzip
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from shared_data import IRCAD_CASES, shared_data_dir
from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.demo_data import demo_time_point
from TTVPrognosisLib.formats.io import read_segmentation, write_image
from TTVPrognosisLib.measure.volumetry import measure
from TTVPrognosisLib.pipeline import measure_file


def read_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def ircad_truth(masks: Path) -> tuple[float, float, int]:
    """TTV (union of the livertumor* series), liver volume and 26-connected lesion count, by SimpleITK + scipy."""
    tumours = sorted(path for path in masks.iterdir() if path.name.startswith("livertumor"))
    images = [read_series(path) for path in tumours]
    union = np.logical_or.reduce([sitk.GetArrayFromImage(image) != 0 for image in images])
    voxel_ml = float(np.prod(images[0].GetSpacing())) / 1000.0
    liver = sitk.GetArrayFromImage(read_series(masks / "liver")) != 0
    count = ndimage.label(union, structure=np.ones((3, 3, 3)))[1]
    return int(np.count_nonzero(union)) * voxel_ml, int(np.count_nonzero(liver)) * voxel_ml, count


def extract_masks(case: str, scratch: Path) -> Path:
    data = shared_data_dir()
    with zipfile.ZipFile(data / "3d-ircadb-01" / IRCAD_CASES[case] / "MASKS_DICOM.zip") as archive:
        archive.extractall(scratch)
    return scratch / "MASKS_DICOM"


# Inside values 255 (patient 17) and 1 (patient 2, 7 series of 172 slices: slow).
@pytest.mark.parametrize("case", ["ircad17", pytest.param("ircad02", marks=pytest.mark.slow)])
def test_ircad_mask_folder_as_shipped(shared_data, tmp_path, case):
    masks = extract_masks(case, tmp_path)
    ttv, liver_ml, count = ircad_truth(masks)
    result = measure_file(masks)
    assert result.ttv_ml == pytest.approx(ttv, rel=1e-9)
    assert result.liver_volume_ml == pytest.approx(liver_ml, rel=1e-9)
    assert result.lesion_count == count
    roles = {segment.name: segment.role for segment in result.segments}
    assert roles["liver"] == "liver"
    assert all(role == "other" for name, role in roles.items() if not name.startswith("liver"))
    assert {name for name, role in roles.items() if role == "lesion"} == \
        {path.name for path in masks.iterdir() if path.name.startswith("livertumor")}


def test_ircad17_with_masks_of_inside_value_1_and_mixed_values(shared_data, tmp_path):
    """The same folder with one tumour as a NIfTI of 0/1 and the other of 0/1/255 (as some IRCAD masks mix)."""
    masks = extract_masks("ircad17", tmp_path)
    ttv, liver_ml, count = ircad_truth(masks)
    for name, values in (("livertumor1", (1,)), ("livertumor2", (1, 255))):
        image = read_series(masks / name)
        voxels = sitk.GetArrayFromImage(image)
        inside = np.flatnonzero(voxels.ravel())
        relabelled = np.zeros_like(voxels)
        relabelled.ravel()[inside] = np.resize(np.array(values, dtype=voxels.dtype), inside.size)
        converted = sitk.GetImageFromArray(relabelled)
        converted.CopyInformation(image)
        sitk.WriteImage(converted, str(masks / f"{name}.nii.gz"))
        for file in (masks / name).iterdir():
            file.unlink()
        (masks / name).rmdir()
    result = measure_file(masks)
    assert result.ttv_ml == pytest.approx(ttv, rel=1e-6)  # NIfTI stores spacing as float32
    assert result.liver_volume_ml == pytest.approx(liver_ml, rel=1e-6)
    assert result.lesion_count == count


def demo_masks() -> tuple[dict[str, np.ndarray], object, float]:
    """The demo liver and lesions as TotalSegmentator-style masks, plus a portal vein and a spleen."""
    _, volume = demo_time_point(False)
    liver, lesions = volume.layers[0] > 0, volume.layers[1] > 0
    vein = np.zeros_like(liver)
    vein[20:40, 70:76, 80:86] = True  # runs through the liver
    spleen = np.zeros_like(liver)
    spleen[20:40, 20:50, 130:160] = True
    masks = {"liver": liver & ~lesions, "liver_tumor": lesions, "portal_vein_and_splenic_vein": vein,
             "spleen": spleen, "kidney_cyst_left": np.zeros_like(liver)}
    return masks, volume.geometry, np.count_nonzero(lesions) * volume.geometry.voxel_volume_ml


def test_totalsegmentator_per_structure_folder(tmp_path):
    masks, geometry, truth = demo_masks()
    folder = tmp_path / "segmentations"
    folder.mkdir()
    for name, mask in masks.items():
        write_image(mask.astype(np.uint8), geometry, folder / f"{name}.nii.gz")
    result = measure_file(folder)
    assert result.ttv_ml == pytest.approx(truth, rel=1e-6)
    roles = {segment.name: segment.role for segment in result.segments}
    assert roles == {"liver": "liver", "liver_tumor": "lesion", "portal_vein_and_splenic_vein": "other",
                     "spleen": "other"}  # the empty mask is left out
    assert any("empty mask" in warning and "kidney_cyst_left" in warning for warning in result.warnings)


def test_mask_folder_refuses_other_grids_and_multi_label_files(tmp_path):
    masks, geometry, _ = demo_masks()
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_image(masks["liver"].astype(np.uint8), geometry, folder / "liver.nrrd")
    shifted = type(geometry)(geometry.ijk_to_ras @ np.diag([1.0, 1.0, 2.0, 1.0]), geometry.shape_kji)
    write_image(masks["liver_tumor"].astype(np.uint8), shifted, folder / "tumour.nrrd")
    with pytest.raises(InputError, match=r"different voxel grids.*'liver.nrrd'.*'tumour.nrrd'"):
        read_segmentation(folder)
    (folder / "tumour.nrrd").unlink()
    write_image(masks["liver_tumor"].astype(np.uint8) * 2 + masks["spleen"].astype(np.uint8), geometry,
                folder / "two.nrrd")
    with pytest.raises(InputError, match=r"'.*two.nrrd'.*label values 1, 2.*several structures"):
        read_segmentation(folder)


def with_label_table(path: Path, names: dict[int, str]) -> None:
    """Add a NIfTI-1 header extension holding a CARET label table, as TotalSegmentator's --ml output has it
    (code 0, XML with <Label Key="n">name</Label>), to the uncompressed NIfTI ``path`` (rewritten gzipped)."""
    data = path.read_bytes()
    offset = int(struct.unpack("<f", data[108:112])[0])
    labels = "".join(f'<Label Key="{key}" Red="1" Green="0" Blue="0" Alpha="1"><![CDATA[{name}]]></Label>\n'
                     for key, name in names.items())
    xml = ('<?xml version="1.0" encoding="UTF-8"?> <CaretExtension> <VolumeInformation Index="0"> <LabelTable>'
           f"\n{labels}</LabelTable> <VolumeType><![CDATA[Label]]></VolumeType> </VolumeInformation>"
           "</CaretExtension>\n").encode()
    content = xml + b" " * (-(len(xml) + 8) % 16)
    extension = struct.pack("<ii", len(content) + 8, 0) + content
    header = bytearray(data[:348])
    header[108:112] = struct.pack("<f", float(352 + len(extension)))
    path.with_suffix(".nii.gz").write_bytes(gzip.compress(bytes(header) + b"\x01\x00\x00\x00" + extension +
                                                          data[offset:]))
    path.unlink()


def multilabel(tmp_path: Path) -> tuple[Path, float, float]:
    masks, geometry, truth = demo_masks()
    labels = np.zeros(geometry.shape_kji, dtype=np.uint8)
    for value, name in ((1, "spleen"), (5, "liver"), (64, "portal_vein_and_splenic_vein")):
        labels[masks[name]] = value
    labels[masks["liver_tumor"]] = 2  # as if from a liver task sharing the file: value 2 is the tumour
    path = tmp_path / "seg.nii"
    write_image(labels, geometry, path)
    liver_ml = np.count_nonzero(labels == 5) * geometry.voxel_volume_ml
    return path, truth, liver_ml


def test_totalsegmentator_multilabel_names_from_the_header_extension(tmp_path):
    path, truth, liver_ml = multilabel(tmp_path)
    with_label_table(path, {1: "spleen", 2: "liver_tumor", 5: "liver", 64: "portal_vein_and_splenic_vein"})
    result = measure_file(path.with_suffix(".nii.gz"))
    assert result.ttv_ml == pytest.approx(truth, rel=1e-6)
    assert result.liver_volume_ml == pytest.approx(liver_ml, rel=1e-6)
    assert {segment.name: segment.role for segment in result.segments} == {
        "spleen": "other", "liver_tumor": "lesion", "liver": "liver", "portal_vein_and_splenic_vein": "other"}


def test_totalsegmentator_label_table_without_names_is_not_guessed(tmp_path):
    path, _, _ = multilabel(tmp_path)
    with_label_table(path, {1: "L1", 2: "L2", 5: "L5", 64: "L64"})
    try:
        import totalsegmentator  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match=r"without names.*not installed"):
            read_segmentation(path.with_suffix(".nii.gz"))
    else:
        pytest.skip("totalsegmentator is installed here: its class map would be used")


@pytest.mark.parametrize("labels, where", [
    ({"background": 0, "liver": 1, "tumor": 2}, "beside"),  # nnU-Net v2
    ({"0": "background", "1": "liver", "2": "cancer"}, "beside"),  # v1 / Medical Segmentation Decathlon Task03
    ({"background": 0, "liver": 1, "tumor": 2}, "above labelsTr"),
])
def test_nnunet_dataset_json_names_the_labels(tmp_path, labels, where):
    _, volume = demo_time_point(False)
    liver, lesions = volume.layers[0] > 0, volume.layers[1] > 0
    folder = tmp_path / "Dataset003_Liver"
    file_folder = folder / "labelsTr" if where == "above labelsTr" else folder
    file_folder.mkdir(parents=True)
    path = file_folder / "liver_001.nii.gz"
    write_image(np.where(lesions, 2, np.where(liver, 1, 0)).astype(np.uint8), volume.geometry, path)
    (folder / "dataset.json").write_text(json.dumps({"name": "Liver", "labels": labels}))
    result = measure_file(path)
    assert result.ttv_ml == pytest.approx(np.count_nonzero(lesions) * volume.geometry.voxel_volume_ml, rel=1e-6)
    assert [segment.role for segment in result.segments] == ["liver", "lesion"]
    assert not any("LiTS" in warning for warning in result.warnings)
    assert any("dataset.json" in warning for warning in result.warnings)


def test_region_based_dataset_json_is_not_used(tmp_path):
    _, volume = demo_time_point(False)
    path = tmp_path / "case.nii.gz"
    write_image(volume.layers[1], volume.geometry, path)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "whole": [1, 2], "core": 2}}))
    result = measure(read_segmentation(path))
    assert all(segment.name.startswith("Label ") for segment in result.segments)
    assert any("region-based" in warning for warning in result.warnings)


@pytest.mark.parametrize("damage", ["bad size", "not xml", "cut header"])
def test_damaged_label_tables_are_not_used_and_never_hang(tmp_path, damage):
    """A header extension that is cut, sized wrongly or not a label table gives no names (the reader then
    treats the file as an unnamed label map); it never loops or crashes."""
    path, _, _ = multilabel(tmp_path)
    with_label_table(path, {1: "spleen", 2: "liver_tumor", 5: "liver", 64: "portal_vein_and_splenic_vein"})
    gz = path.with_suffix(".nii.gz")
    data = bytearray(gzip.decompress(gz.read_bytes()))
    if damage == "bad size":
        data[352:356] = struct.pack("<i", 7)  # smaller than its own 8-byte head
    elif damage == "not xml":
        data[360:380] = b"<LabelTable <<<<<<<<"
    else:
        data[108:112] = struct.pack("<f", 1e12)  # data offset far beyond the file
    gz.write_bytes(gzip.compress(bytes(data)))
    from TTVPrognosisLib.formats.conventions import label_names

    names, _ = label_names(gz, {1, 2, 5, 64})
    assert names == {}


def test_a_ct_in_a_mask_folder_is_refused_without_listing_every_value(tmp_path):
    masks, geometry, _ = demo_masks()
    folder = tmp_path / "with_ct"
    folder.mkdir()
    write_image(masks["liver"].astype(np.uint8), geometry, folder / "liver.nii.gz")
    ct = np.random.default_rng(1).integers(0, 2000, size=geometry.shape_kji).astype(np.int16)
    write_image(ct, geometry, folder / "ct.nii.gz")
    with pytest.raises(InputError) as refused:
        read_segmentation(folder)
    assert "ct.nii.gz" in str(refused.value) and len(str(refused.value)) < 600


def test_label_table_without_names_uses_the_installed_class_map_only_when_it_settles_every_value(
        tmp_path, monkeypatch):
    """With TotalSegmentator importable, its class maps name the values when every task that fits agrees;
    otherwise the file is refused. (A stand-in module holds two class maps as the package lays them out.)"""
    import sys
    import types

    package = types.ModuleType("totalsegmentator")
    class_maps = types.ModuleType("totalsegmentator.map_to_binary")
    class_maps.class_map = {"total": {1: "spleen", 2: "kidney_right", 5: "liver", 64: "portal_vein_and_splenic_vein"},
                            "liver_vessels": {1: "liver_vessels", 2: "liver_tumor"}}
    monkeypatch.setitem(sys.modules, "totalsegmentator", package)
    monkeypatch.setitem(sys.modules, "totalsegmentator.map_to_binary", class_maps)
    path, _, _ = multilabel(tmp_path)  # values 1, 2, 5, 64: only "total" fits
    with_label_table(path, {1: "L1", 2: "L2", 5: "L5", 64: "L64"})
    volume = read_segmentation(path.with_suffix(".nii.gz"))
    assert [segment.name for segment in volume.segments] == ["spleen", "kidney_right", "liver",
                                                             "portal_vein_and_splenic_vein"]
    assert any("installed TotalSegmentator (total)" in warning for warning in volume.warnings)
    _, volume = demo_time_point(False)
    two = tmp_path / "two.nii"
    write_image(np.where(volume.layers[1] > 0, 2, np.where(volume.layers[0] > 0, 1, 0)).astype(np.uint8),
                volume.geometry, two)
    with_label_table(two, {1: "L1", 2: "L2"})  # values 1 and 2 fit both tasks, which disagree
    with pytest.raises(InputError, match=r"do not settle them.*liver_vessels, total"):
        read_segmentation(two.with_suffix(".nii.gz"))
