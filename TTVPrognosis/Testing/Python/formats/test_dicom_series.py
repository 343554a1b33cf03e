"""DICOM series as PACS exports them, made at test time: each damaged series is refused with a message
that names the problem (and where), each sound one is read with the exact voxel truth."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from synthetic_dicom import SeriesGrid, SeriesIdentity, ellipsoid_volume, write_series
from TTVPrognosisLib.cli import main
from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.io import read_image, read_image_geometry, read_segmentation
from TTVPrognosisLib.geometry import LPS_TO_RAS

GRID = SeriesGrid(shape_kji=(12, 20, 24), spacing_ijk=(0.8, 0.9, 2.5), origin_lps=(-10.0, -12.0, 5.0))
CENTRE, RADII = (0.0, -3.0, 18.0), (6.0, 5.0, 8.0)


def truth_and_paths(folder: Path, grid: SeriesGrid = GRID, identity: SeriesIdentity | None = None):
    truth = ellipsoid_volume(grid, CENTRE, RADII)
    paths = write_series(folder, truth.astype(float) * 255, grid, identity)
    return truth, paths


def ttv_ml(truth: np.ndarray, grid: SeriesGrid = GRID) -> float:
    return float(truth.sum() * abs(np.linalg.det(grid.ijk_to_lps()[:3, :3])) / 1000.0)


def test_label_series_reads_the_voxel_truth(tmp_path):
    truth, _ = truth_and_paths(tmp_path / "mask")
    (tmp_path / "mask" / "README.txt").write_text("exported from PACS")  # not DICOM: ignored
    volume = read_segmentation(tmp_path / "mask")
    assert np.array_equal(volume.layers[0] != 0, truth)
    np.testing.assert_allclose(volume.geometry.ijk_to_ras, LPS_TO_RAS @ GRID.ijk_to_lps(), atol=1e-5)


def test_ct_series_rescaled_and_on_its_grid(tmp_path):
    hounsfield = np.where(ellipsoid_volume(GRID, CENTRE, RADII), 55.0, -100.0)
    hounsfield[0, 0, 0] = -1024.0
    write_series(tmp_path / "ct", hounsfield, GRID, intercept=-1024.0)
    image = read_image(tmp_path / "ct")
    assert np.array_equal(image.voxels, hounsfield)
    np.testing.assert_allclose(read_image_geometry(tmp_path / "ct").ijk_to_ras, image.geometry.ijk_to_ras)


def test_compressed_slices_are_decoded(tmp_path):
    hounsfield = np.where(ellipsoid_volume(GRID, CENTRE, RADII), 55.0, -100.0)
    hounsfield += np.random.default_rng(1).integers(0, 40, GRID.shape_kji)
    for path in write_series(tmp_path / "ct", hounsfield, GRID):
        dataset = pydicom.dcmread(path)
        dataset.compress(pydicom.uid.RLELossless)
        dataset.save_as(path)
    assert np.array_equal(read_image(tmp_path / "ct").voxels, hounsfield)


def test_oblique_series_stored_from_head_to_feet(tmp_path):
    """Slices whose normal points to the feet and rows turned 30 degrees: order and axes from the headers."""
    angle = np.radians(30)
    grid = SeriesGrid(row_direction=(np.cos(angle), np.sin(angle), 0.0),
                      column_direction=(np.sin(angle), -np.cos(angle), 0.0))  # normal = (0, 0, -1)
    truth = ellipsoid_volume(grid, (0.0, -3.0, -8.0), RADII)
    write_series(tmp_path / "mask", truth.astype(float), grid)
    volume = read_segmentation(tmp_path / "mask")
    assert np.array_equal(volume.layers[0] != 0, truth)
    np.testing.assert_allclose(volume.geometry.ijk_to_lps, grid.ijk_to_lps(), atol=1e-5)


def test_a_gantry_tilt_gives_a_sheared_grid_with_exact_volume(tmp_path):
    grid = SeriesGrid()
    tilt = np.radians(10)
    steps = np.arange(grid.shape_kji[0]) * grid.spacing_ijk[2]
    truth = ellipsoid_volume(grid, CENTRE, RADII)
    write_series(tmp_path / "mask", truth.astype(float), grid)
    for path in (tmp_path / "mask").iterdir():  # shift each slice along y in proportion to its height
        dataset = pydicom.dcmread(path)
        k = int(dataset.InstanceNumber) - 1
        position = [float(value) for value in dataset.ImagePositionPatient]
        position[1] += steps[k] * np.tan(tilt)
        dataset.ImagePositionPatient = [f"{value:.6f}" for value in position]
        dataset.save_as(path)
    volume = read_segmentation(tmp_path / "mask")
    assert any("gantry tilt" in warning for warning in volume.warnings)
    assert volume.geometry.voxel_volume_mm3 == pytest.approx(0.8 * 0.9 * 2.5, rel=1e-6)


def _remove(paths, index):
    paths[index].unlink()


def _duplicate(paths, index):
    shutil.copy(paths[index], paths[index].with_name("copy_of_a_slice.dcm"))


def _second_acquisition(paths, index):
    dataset = pydicom.dcmread(paths[index])
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.save_as(paths[index].with_name("another_acquisition.dcm"))


def _empty(paths, index):
    dataset = pydicom.dcmread(paths[index])
    del dataset.PixelData
    dataset.save_as(paths[index])


def _truncate(fraction):
    def damage(paths, index):
        data = paths[index].read_bytes()
        paths[index].write_bytes(data[:int(len(data) * fraction)])
    return damage


def _compress_and_truncate(paths, index):
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.compress(pydicom.uid.RLELossless)
        dataset.save_as(path)
    _truncate(0.8)(paths, index)


def _shift(millimetres):
    def damage(paths, index):
        for path in paths[index:]:
            dataset = pydicom.dcmread(path)
            position = [float(value) for value in dataset.ImagePositionPatient]
            dataset.ImagePositionPatient = [f"{value:.6f}" for value in (*position[:2], position[2] + millimetres)]
            dataset.save_as(path)
    return damage


def _resize(paths, index):
    dataset = pydicom.dcmread(paths[index])
    pixels = dataset.pixel_array[:-2]
    dataset.Rows = pixels.shape[0]
    dataset.PixelData = pixels.tobytes()
    dataset.save_as(paths[index])


def _turn(paths, index):
    dataset = pydicom.dcmread(paths[index])
    dataset.ImageOrientationPatient = ["0", "1", "0", "1", "0", "0"]
    dataset.save_as(paths[index])


def _no_position(paths, index):
    dataset = pydicom.dcmread(paths[index])
    del dataset.ImagePositionPatient
    dataset.save_as(paths[index])


def _bit_flip_in_header(paths, index):
    """A flipped bit in an element length: the header no longer parses (or says something impossible)."""
    data = bytearray(paths[index].read_bytes())
    at = data.find(b"\x20\x00\x32\x00")  # ImagePositionPatient tag; its length follows VR
    data[at + 6] ^= 0x40
    paths[index].write_bytes(bytes(data))


DAMAGES = {
    "lost slice": (lambda paths, index: _remove(paths, index),
                   "1 lost slice between the slice at z = 12.5 mm .* and the slice at z = 17.5 mm"),
    "two lost slices": (lambda paths, index: [_remove(paths, index), _remove(paths, index + 1)], "2 lost slices"),
    "duplicated slice": (_duplicate, "same position"),
    "second acquisition": (_second_acquisition, "same position"),
    "empty slice": (_empty, "no pixel data"),
    "truncated pixel data": (_truncate(0.9), "cut short"),
    "truncated compressed slice": (_compress_and_truncate, "cut short"),
    "file cut in its header": (_truncate(0.15), "damaged or incomplete|cut short"),
    "file cut in its positions": (_truncate(0.45), "no valid|no pixel data|damaged"),
    "uneven spacing": (_shift(1.25),
                       "uneven slice spacing between the slice at z = 12.5 mm .* and the slice at z = 16.25 mm"),
    "uneven by a little": (_shift(0.2), "uneven slice spacing"),
    "other size": (_resize, "differ in size"),
    "other orientation": (_turn, "differ in orientation"),
    "no position": (_no_position, "no valid ImagePositionPatient"),
    "bit flip in header": (_bit_flip_in_header, "damaged|no valid|differ|lost|uneven|not a straight|same position"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_series_are_refused_with_what_and_where(tmp_path, damage):
    _, paths = truth_and_paths(tmp_path / "mask")
    apply, message = DAMAGES[damage]
    apply(paths, 4)
    with pytest.raises(InputError, match=message):
        read_segmentation(tmp_path / "mask")
    with pytest.raises(InputError, match=message):
        read_image(tmp_path / "mask")


@pytest.mark.parametrize("damage", DAMAGES)
def test_no_damaged_series_gives_a_number_with_exit_0(tmp_path, damage, capsys):
    """The command line: exit 1 with a message, or (never here) exit 0 with the truth."""
    truth, paths = truth_and_paths(tmp_path / "mask")
    DAMAGES[damage][0](paths, 4)
    code = main(["measure", str(tmp_path / "mask"), "--json"])
    captured = capsys.readouterr()
    if code == 0:
        assert json.loads(captured.out)["ttv_ml"] == pytest.approx(ttv_ml(truth), rel=1e-6)
    else:
        assert code == 1 and captured.err.startswith("Error: ") and "Internal error" not in captured.err


def test_two_series_in_one_folder_are_listed_and_chosen(tmp_path, capsys):
    folder = tmp_path / "export"
    truth, _ = truth_and_paths(folder, identity=SeriesIdentity(description="Tumour mask", series_number=7))
    other_grid = SeriesGrid(shape_kji=(5, 20, 24))
    other = SeriesIdentity(description="Scout", series_number=1)
    write_series(folder, np.ones(other_grid.shape_kji), other_grid, other, prefix="scout")
    with pytest.raises(InputError) as refused:
        read_segmentation(folder)
    message = str(refused.value)
    assert "holds 2 DICOM image series" in message and "--series" in message
    assert "'Tumour mask', CT, 12 slices" in message and "'Scout', CT, 5 slices" in message
    wanted = next(line.split()[0] for line in message.split("\n")[1:] if "Tumour mask" in line)
    volume = read_segmentation(folder, series=[wanted])
    assert np.array_equal(volume.layers[0] != 0, truth)
    assert main(["measure", str(folder), "--series", wanted, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ttv_ml"] == pytest.approx(ttv_ml(truth), rel=1e-6)
    assert main(["measure", str(folder), "--json"]) == 1
    assert "--series UID" in capsys.readouterr().err


def test_one_file_of_a_series_stands_for_its_series(tmp_path):
    truth, paths = truth_and_paths(tmp_path / "mask")
    other_grid = SeriesGrid(shape_kji=(5, 20, 24))
    write_series(tmp_path / "mask", np.ones(other_grid.shape_kji), other_grid, prefix="other")
    volume = read_segmentation(paths[3])
    assert np.array_equal(volume.layers[0] != 0, truth)


def test_a_folder_of_folders_is_read_as_a_folder_of_masks_with_the_series_truth(tmp_path):
    """A study folder holding a mask series in a sub-folder is a folder of masks (formats/mask_folder.py): the
    sub-folder is one segment, named after it, with the series' own voxels."""
    truth, _ = truth_and_paths(tmp_path / "study" / "series1")
    volume = read_segmentation(tmp_path / "study")
    assert [segment.name for segment in volume.segments] == ["series1"]
    assert int(volume.mask(volume.segments).sum()) == int(truth.sum())


def test_measuring_a_nifti_never_imports_pydicom(tmp_path):
    script = ("import sys, numpy as np\n"
              "from TTVPrognosisLib.formats.io import write_image\n"
              "from TTVPrognosisLib.geometry import Geometry\n"
              "from TTVPrognosisLib.pipeline import measure_file\n"
              "labels = np.zeros((4, 5, 6), np.uint8); labels[1:3, 1:3, 1:3] = 1\n"
              f"write_image(labels, Geometry(np.eye(4), labels.shape), r'{tmp_path / 'l.nii.gz'}')\n"
              f"assert measure_file(r'{tmp_path / 'l.nii.gz'}').ttv_ml > 0\n"
              "print('pydicom' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_real_ircad_series_read_as_itk_reads_them(shared_data, tmp_path):
    """3D-IRCADb patient 1: its CT series and liver mask series read right (voxels and grid as GDCM gives)."""
    import SimpleITK as sitk

    from shared_data import extract_ircad_ct, extract_ircad_masks
    from TTVPrognosisLib.formats.io import geometry_from_itk

    ct_folder = extract_ircad_ct("ircad01", tmp_path)
    image = read_image(ct_folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(ct_folder)))
    reference = reader.Execute()
    assert np.array_equal(image.voxels, sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(image.geometry.ijk_to_ras, geometry_from_itk(reference).ijk_to_ras, atol=1e-4)
    liver = read_segmentation(extract_ircad_masks("ircad01", tmp_path / "masks", ["liver"])["liver"])
    assert liver.geometry.shape_kji == image.geometry.shape_kji and (liver.layers[0] != 0).sum() > 100000


def test_batch_chooses_series_from_the_manifest(tmp_path):
    from TTVPrognosisLib.cohort.runner import run_cohort

    folder = tmp_path / "P1"
    truth, _ = truth_and_paths(folder, identity=SeriesIdentity(description="Tumour mask"))
    other = SeriesIdentity(description="Scout")
    write_series(folder, np.ones((5, 20, 24)), SeriesGrid(shape_kji=(5, 20, 24)), other, prefix="scout")
    wanted = pydicom.dcmread(next(folder.glob("slice_*.dcm"))).SeriesInstanceUID
    (tmp_path / "cohort.csv").write_text(f"patient_id,baseline_segmentation,dicom_series\nP1,P1,{wanted}\n"
                                         f"P2,P1,\n")
    result = run_cohort(tmp_path / "cohort.csv", tmp_path / "results.csv", workers=1)
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = {row["patient_id"]: row for row in csv.DictReader(handle)}
    assert result.succeeded == 1 and result.failed == 1
    assert "--series" in rows["P2"]["error"] and rows["P2"]["status"] == "failed"
    assert float(rows["P1"]["baseline_ttv_ml"]) == pytest.approx(ttv_ml(truth), rel=1e-6)


def test_a_report_beside_the_slices_is_not_a_segmentation(tmp_path):
    """A structured report (no pixels) in the series folder is neither a slice nor a SEG/RTSTRUCT."""
    truth, paths = truth_and_paths(tmp_path / "mask")
    report = pydicom.dcmread(paths[0])
    del report.PixelData, report.Rows, report.Columns
    report.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
    report.SeriesInstanceUID = pydicom.uid.generate_uid()
    report.save_as(tmp_path / "mask" / "report.dcm")
    assert np.array_equal(read_segmentation(tmp_path / "mask", series=[]).layers[0] != 0, truth)
