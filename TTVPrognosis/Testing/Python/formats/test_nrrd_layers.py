"""Slab-wise NRRD reading gives exactly what pynrrd reads, for every layout it takes, and fails clearly."""

from __future__ import annotations

import gzip
import threading

import nrrd
import numpy as np
import pytest

from TTVPrognosisLib.errors import InputError
from TTVPrognosisLib.formats import nrrd_layers
from TTVPrognosisLib.formats.io import read_segmentation
from TTVPrognosisLib.formats.nrrd_layers import TruncatedDataError, read_layers


def write_volume(path, voxels_kji_layer: np.ndarray, encoding: str = "gzip", endian: str = "little") -> None:
    """A 3-D (k, j, i) or 4-D (k, j, i, layer) array as NRRD with the layer axis first (fastest), as Slicer does."""
    header = {"encoding": encoding, "endian": endian}
    if voxels_kji_layer.ndim == 4:
        header["kinds"] = ["list", "domain", "domain", "domain"]
    nrrd.write(str(path), voxels_kji_layer, header, index_order="C")


def pynrrd_layers(path) -> list[np.ndarray]:
    voxels, _ = nrrd.read(str(path), index_order="C")
    return [voxels] if voxels.ndim == 3 else [voxels[..., index] for index in range(voxels.shape[-1])]


CASES = {  # name: (dtype, layers); shapes chosen so that slabs do not divide the slices evenly
    "one layer, 3-D": (np.uint8, 0),
    "two 8-bit layers (packed)": (np.uint8, 2),
    "three 8-bit layers (strided)": (np.uint8, 3),
    "four 8-bit layers (packed)": (np.uint8, 4),
    "two 16-bit layers (packed)": (np.uint16, 2),
    "signed 16-bit layers (strided)": (np.int16, 2),
    "32-bit labels": (np.int32, 1),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("endian", ["little", "big"])
def test_same_layers_as_pynrrd(tmp_path, name, endian, monkeypatch):
    monkeypatch.setattr(nrrd_layers, "SLAB_BYTES", 3000)  # many slabs, the last one partial
    dtype, layer_count = CASES[name]
    rng = np.random.default_rng(layer_count)
    shape = (23, 17, 11) if layer_count == 0 else (23, 17, 11, layer_count)
    info = np.iinfo(dtype)
    voxels = rng.integers(max(info.min, -300), min(info.max, 70000), size=shape, endpoint=True).astype(dtype)
    path = tmp_path / "volume.nrrd"
    write_volume(path, voxels, endian=endian)
    ours, header = read_layers(path)
    expected = pynrrd_layers(path)
    assert len(ours) == len(expected) == max(layer_count, 1)
    for layer, reference in zip(ours, expected):
        assert layer.flags.c_contiguous and layer.flags.writeable and layer.dtype.isnative
        np.testing.assert_array_equal(layer, reference)
    assert header["sizes"].tolist() == list(shape[::-1])


@pytest.mark.parametrize("encoding", ["raw", "bzip2"])
def test_other_encodings_are_read_by_pynrrd(tmp_path, encoding):
    voxels = np.arange(2 * 5 * 6 * 7, dtype=np.uint8).reshape(5, 6, 7, 2)
    path = tmp_path / "volume.nrrd"
    write_volume(path, voxels, encoding=encoding)
    layers, _ = read_layers(path)
    np.testing.assert_array_equal(layers[1], voxels[..., 1])


def test_truncated_and_corrupt_streams_are_errors(tmp_path):
    voxels = np.random.default_rng(0).integers(0, 3, size=(30, 40, 50, 2), dtype=np.uint8)
    path = tmp_path / "volume.nrrd"
    write_volume(path, voxels)
    data = path.read_bytes()
    header_end = data.index(b"\n\n") + 2
    (tmp_path / "cut.nrrd").write_bytes(data[:header_end + (len(data) - header_end) // 2])
    with pytest.raises(TruncatedDataError, match="ends after"):
        read_layers(tmp_path / "cut.nrrd")
    garbled = bytearray(data)
    garbled[header_end + 20:header_end + 60] = bytes(40)
    (tmp_path / "garbled.nrrd").write_bytes(bytes(garbled))
    with pytest.raises(Exception):  # noqa: B017 (zlib.error or a short stream, both reported by io)
        read_layers(tmp_path / "garbled.nrrd")


def test_short_stream_in_a_slicer_file_is_a_clear_input_error(tmp_path):
    """A .seg.nrrd whose gzip stream was cut (an interrupted copy): the user is told, nothing is guessed."""
    voxels = np.zeros((10, 12, 14, 2), dtype=np.uint8)
    voxels[2:5, 3:6, 4:7, 1] = 1
    header = {"encoding": "raw", "kinds": ["list", "domain", "domain", "domain"], "space": "left-posterior-superior",
              "space directions": [[np.nan] * 3, [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], "space origin": [0.0] * 3,
              "Segment0_ID": "Lesion_1", "Segment0_Name": "Lesion 1", "Segment0_Layer": "1",
              "Segment0_LabelValue": "1"}
    path = tmp_path / "case.seg.nrrd"
    nrrd.write(str(path), voxels, header, index_order="C")
    data = path.read_bytes()
    header_end = data.index(b"\n\n") + 2
    text = data[:header_end].replace(b"encoding: raw", b"encoding: gzip")
    path.write_bytes(text + gzip.compress(data[header_end:])[:-200])
    with pytest.raises(InputError, match="damaged or incomplete"):
        read_segmentation(path)


def gzip_variant(tmp_path, name: str, payload_of) -> object:
    """A two-layer NRRD whose gzip payload is ``payload_of(raw voxel bytes)``; returns its path."""
    voxels = np.random.default_rng(1).integers(0, 3, size=(9, 10, 11, 2), dtype=np.uint8)
    raw_path = tmp_path / "raw.nrrd"
    write_volume(raw_path, voxels, encoding="raw")
    data = raw_path.read_bytes()
    header_end = data.index(b"\n\n") + 2
    path = tmp_path / name
    path.write_bytes(data[:header_end].replace(b"encoding: raw", b"encoding: gzip") + payload_of(data[header_end:]))
    return path


def test_damage_that_still_inflates_to_the_right_size_is_caught_by_the_checksum(tmp_path):
    """Stored (uncompressed) deflate blocks with a changed byte inflate to the right length but wrong
    values: only gzip's checksum at the end of the stream shows it."""
    def changed_byte(raw: bytes) -> bytes:
        packed = bytearray(gzip.compress(raw, compresslevel=0))
        packed[len(packed) // 2] ^= 0xFF
        return bytes(packed)

    assert read_layers(gzip_variant(tmp_path, "good.nrrd", lambda raw: gzip.compress(raw, compresslevel=0)))[0]
    with pytest.raises(TruncatedDataError, match="checksum"):
        read_layers(gzip_variant(tmp_path, "changed.nrrd", changed_byte))
    with pytest.raises(TruncatedDataError, match="end mark"):
        read_layers(gzip_variant(tmp_path, "no-trailer.nrrd", lambda raw: gzip.compress(raw)[:-8]))
    with pytest.raises(TruncatedDataError, match="more data"):
        read_layers(gzip_variant(tmp_path, "longer.nrrd", lambda raw: gzip.compress(raw + bytes(50))))


def finishes(function, seconds: float = 30.0):
    """Run ``function`` in a thread; fail (instead of hanging the suite) when it does not end in time."""
    outcome = {}

    def run() -> None:
        try:
            outcome["value"] = function()
        except Exception as error:  # handed to the test
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the reader did not finish (a loop without progress)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_two_gzip_members_are_read_and_trailing_bytes_refused_without_hanging(tmp_path):
    """Before, the first member's end was taken for the end of the data (a valid file refused; issue 13 saw
    hangs); the stream now goes on to the next member, and a loop that makes no progress stops."""
    def two_members(raw: bytes) -> bytes:
        return gzip.compress(raw[:333]) + gzip.compress(raw[333:])

    layers, _ = finishes(lambda: read_layers(gzip_variant(tmp_path, "two.nrrd", two_members)))
    expected, _ = read_layers(gzip_variant(tmp_path, "one.nrrd", gzip.compress))
    for ours, reference in zip(layers, expected):
        np.testing.assert_array_equal(ours, reference)
    for name, payload_of in (("trailing.nrrd", lambda raw: gzip.compress(raw) + b"\x00garbage"),
                             ("cut-member.nrrd", lambda raw: gzip.compress(raw[:333]) + gzip.compress(raw[333:])[:-9])):
        with pytest.raises(TruncatedDataError):
            finishes(lambda name=name, payload_of=payload_of: read_layers(gzip_variant(tmp_path, name, payload_of)))
