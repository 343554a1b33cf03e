"""The package's own NRRD, NIfTI-1 and MetaImage readers: the grid SimpleITK reads from valid files, clear
refusals for what ITK would guess, verified streams, and an end on any byte sequence."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import zlib

import numpy as np
import pytest
import SimpleITK as sitk
from damaged_corpus import ijk_to_ras, metaimage_file, nifti_file, nrrd_file, truth_labels, two_members

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats.integrity import IntegrityError, VerifiedStream, open_regular
from TTVPrognosisLib.formats.io import read_image, read_image_geometry, read_segmentation
from TTVPrognosisLib.formats.volume_files import read_volume, read_volume_geometry
from TTVPrognosisLib.geometry import Geometry


def itk_geometry(path) -> Geometry:
    image = sitk.ReadImage(str(path))
    return Geometry.from_spacing_origin_direction(image.GetSpacing(), image.GetOrigin(), image.GetDirection(),
                                                  image.GetSize()[::-1])


def oblique_itk_image(voxels: np.ndarray, flip_k: bool = False) -> sitk.Image:
    """A rotated (about two axes), anisotropic grid; ``flip_k`` makes it left-handed (NIfTI qfac -1)."""
    first, second = 0.4, -0.25
    turn = np.array([[np.cos(first), -np.sin(first), 0], [np.sin(first), np.cos(first), 0], [0, 0, 1]]) @ \
        np.array([[1, 0, 0], [0, np.cos(second), -np.sin(second)], [0, np.sin(second), np.cos(second)]])
    if flip_k:
        turn[:, 2] *= -1
    image = sitk.GetImageFromArray(voxels)
    image.SetDirection([float(value) for value in turn.ravel()])
    image.SetSpacing((0.77, 0.91, 2.5))
    image.SetOrigin((-101.5, 33.25, 12.0))
    return image


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha", ".mhd", ".nhdr"])
@pytest.mark.parametrize("flip_k", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_same_voxels_and_grid_as_simpleitk_on_files_it_writes(tmp_path, suffix, flip_k, dtype):
    voxels = (truth_labels() * 3).astype(dtype)
    path = tmp_path / f"image{suffix}"
    sitk.WriteImage(oblique_itk_image(voxels, flip_k), str(path), useCompression=suffix != ".nii")
    ours, geometry = read_volume(path)
    np.testing.assert_array_equal(ours, voxels)
    assert ours.dtype == dtype and ours.dtype.isnative and ours.flags.writeable
    reference = itk_geometry(path)
    np.testing.assert_allclose(geometry.ijk_to_ras, reference.ijk_to_ras, atol=2e-5)
    assert geometry.shape_kji == reference.shape_kji
    np.testing.assert_allclose(read_volume_geometry(path).ijk_to_ras, geometry.ijk_to_ras)


@pytest.mark.parametrize("options", [dict(), dict(qform_code=0), dict(sform_code=0), dict(endian=">"),
                                     dict(qform_code=2, sform_code=4)])
def test_nifti_forms_that_agree_give_simpleitks_grid(tmp_path, options):
    path = tmp_path / "a.nii.gz"
    path.write_bytes(nifti_file(**options))
    _, geometry = read_volume(path)
    np.testing.assert_allclose(geometry.ijk_to_ras, ijk_to_ras(), atol=1e-5)
    np.testing.assert_allclose(geometry.ijk_to_ras, itk_geometry(path).ijk_to_ras, atol=1e-5)


def test_nifti_scaling_is_applied_as_nifti_says(tmp_path):
    image = sitk.GetImageFromArray(truth_labels().astype(np.int16))
    path = tmp_path / "scaled.nii"
    sitk.WriteImage(image, str(path))
    data = bytearray(path.read_bytes())
    data[112:120] = np.array([2.0, -1.0], dtype="<f4").tobytes()  # scl_slope, scl_inter
    path.write_bytes(bytes(data))
    ours, _ = read_volume(path)
    np.testing.assert_array_equal(ours, truth_labels() * 2.0 - 1.0)
    np.testing.assert_array_equal(ours, sitk.GetArrayFromImage(sitk.ReadImage(str(path))))


def test_refusals_name_the_field_and_say_what_to_do(tmp_path):
    cases = {
        "a.nrrd": (nrrd_file(fields={"space directions": None, "space direction": "(1,0,0) (0,1,0) (0,0,1)"}),
                   "'space direction'.*Correct the field name"),
        "b.nrrd": (nrrd_file(fields={"space directions": None, "space": None, "space origin": None,
                                     "spacings": "1 1 1"}), "no 'space directions'.*only 'spacings'"),
        "c.nii.gz": (nifti_file(qform_code=0, pixdim=(1.0, 1.6, 1.4, 5.0, 1, 0, 0, 0)), "pixdim.*sform"),
        "d.nii.gz": (nifti_file(sform_code=0, pixdim=(1.0, float("nan"), 1, 1, 1, 0, 0, 0)), "pixdim"),
        "e.mha": (metaimage_file(fields={"TransformMatrix": "2 0 0 0 2 0 0 0 2"}), "TransformMatrix"),
        "f.mha": (metaimage_file(fields={"ElementSpacing": None}), "no ElementSpacing field"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=message):
            read_segmentation(tmp_path / name)


def test_a_damaged_ct_is_refused_and_its_header_alone_still_gives_the_grid(tmp_path):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(oblique_itk_image(truth_labels().astype(np.int16) * 100 - 1000), str(path))
    assert read_image(path).voxels.min() == -1000
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    with pytest.raises(InputError, match="cut short"):
        read_image(path)
    np.testing.assert_allclose(read_image_geometry(path).ijk_to_ras, itk_geometry(tmp_path / "ct.nii.gz").ijk_to_ras,
                               atol=2e-5)


def stream_of(data: bytes, encoding: str, size: int) -> VerifiedStream:
    return VerifiedStream(io.BytesIO(data), encoding, size)


def test_verified_stream_reads_members_in_turn_and_refuses_what_follows():
    raw = bytes(range(256)) * 40
    stream = stream_of(two_members(raw), "gzip", len(raw))
    assert stream.read(len(raw)) == raw
    stream.finish()
    for tail, message in ((b"junk", "stray bytes"), (bytes(8), "stray bytes"), (gzip.compress(b"x"), "more data")):
        stream = stream_of(gzip.compress(raw) + tail, "gzip", len(raw))
        stream.read(len(raw))
        with pytest.raises(IntegrityError, match=message):
            stream.finish()
    with pytest.raises(IntegrityError, match="checksum"):
        damaged = bytearray(zlib.compress(raw))
        damaged[-1] ^= 1
        stream = stream_of(bytes(damaged), "zlib", len(raw))
        stream.read(len(raw))
        stream.finish()


def test_any_byte_sequence_ends_with_a_result_or_an_input_error(tmp_path):
    """Random bytes behind each format's opening (and random damage to valid files): never a hang or a crash."""
    rng = np.random.default_rng(13)
    openings = {"a.nrrd": b"NRRD0004\n", "a.nii": nifti_file(compressed=False)[:200], "a.mha": b"ObjectType = Image\n",
                "a.nii.gz": b"\x1f\x8b\x08\x00"}
    valid = {"b.nrrd": nrrd_file(), "b.nii.gz": nifti_file(), "b.mha": metaimage_file()}
    for _trial in range(120):
        for name, opening in openings.items():
            (tmp_path / name).write_bytes(opening + rng.integers(0, 256, int(rng.integers(0, 600)), np.uint8).tobytes())
        for name, data in valid.items():
            changed = np.frombuffer(data, np.uint8).copy()
            changed[rng.integers(0, len(changed), 3)] = rng.integers(0, 256, 3)
            (tmp_path / name).write_bytes(changed.tobytes()[:int(rng.integers(len(data) // 2, len(data) + 1))])
        for path in tmp_path.iterdir():
            with contextlib.suppress(InputError):
                read_volume(path)


def test_special_files_are_refused_before_opening(tmp_path):
    fifo = tmp_path / "pipe.nrrd"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="named pipe"):
        open_regular(fifo)
    with pytest.raises(InputError, match="named pipe"):
        read_image(fifo)
    device = tmp_path / "zero.mha"
    device.symlink_to("/dev/zero")
    with pytest.raises(InputError, match="character device"):
        read_segmentation(device)


@pytest.mark.parametrize("input_chunk", [1, 3, 64, 1 << 20])
def test_every_chunk_boundary_reads_the_same(monkeypatch, input_chunk):
    """Input arriving a byte at a time, output asked for in odd sizes: members, runs and ends still line up."""
    import bz2

    from TTVPrognosisLib.formats import integrity

    monkeypatch.setattr(integrity, "INPUT_CHUNK", input_chunk)
    raw = (bytes(5000) + bytes(range(256)) + b"\x07" * 70000) * 2
    payloads = {"gzip": gzip.compress(raw), "zlib": zlib.compress(raw, 9), "bzip2": bz2.compress(raw),
                "two gzip members": gzip.compress(raw[:100]) + gzip.compress(raw[100:])}
    for name, data in payloads.items():
        for step in (997, 65536, len(raw)):
            stream = stream_of(data, name.replace("two gzip members", "gzip"), len(raw))
            parts, count = [], 0
            while count < len(raw):
                parts.append(stream.read(min(step, len(raw) - count)))
                count += len(parts[-1])
            stream.finish()
            assert b"".join(parts) == raw, (name, step)
