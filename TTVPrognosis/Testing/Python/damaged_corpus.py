"""A corpus of damaged and unusual segmentation files, made by code at test time (no copied data).

Every case starts from one known label volume (three lesions on an oblique, anisotropic grid), written
byte by byte here (NRRD, NIfTI-1, MetaImage) or by Slicer's and this package's writers (.seg.nrrd), and is
then changed: cut at several offsets, single bits flipped in header and data, sizes changed, geometry fields
removed or made contradictory, gzip members joined, bytes appended, special files, intensity images,
duplicated segment IDs. Each case states what a correct reader must do with it (``expect``):

- ``truth``: read, with the TTV of the known volume;
- ``refuse``: refused (exit 1 with a message);
- ``refuse_or_truth``: a flip inside compressed data or its checksum: refused, or (a bit that carries no
  information, e.g. the gzip time stamp or deflate padding) read with the TTV of the known volume;
- ``refuse_or_file``: a flip in an uncompressed header or voxel: the file now says something else and may
  be valid, so it is refused, or read with the TTV of the known volume, or with the TTV of what the file
  says when decoded by an independent reader (SimpleITK for label images, pynrrd + slicerio for Slicer
  files: neither shares code with the package's readers).
"""

from __future__ import annotations

import bz2
import gzip
import os
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPE_KJI = (12, 14, 16)
SPACING = np.array([0.8, 0.7, 2.5])
ANGLE = 0.3
ORIGIN_RAS = np.array([12.5, -40.0, 7.0])
FLIPS_PER_REGION = 10


def truth_labels() -> np.ndarray:
    labels = np.zeros(SHAPE_KJI, dtype=np.uint8)
    labels[2:6, 3:9, 4:12] = 1
    labels[8:11, 9:13, 10:15] = 2
    labels[6, 1, 1] = 3
    return labels


def ijk_to_ras() -> np.ndarray:
    rotation = np.array([[np.cos(ANGLE), -np.sin(ANGLE), 0], [np.sin(ANGLE), np.cos(ANGLE), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag(SPACING)
    matrix[:3, 3] = ORIGIN_RAS
    return matrix


def truth_ttv_ml() -> float:
    return np.count_nonzero(truth_labels()) * abs(np.linalg.det(ijk_to_ras()[:3, :3])) / 1000.0


THIRD_LESION_BLOCK = (slice(4, 8), slice(0, 5), slice(1, 6))  # Slicer's file: a lesion in a second layer


def slicer_seg_truth_ml() -> float:
    """The union of the truth and the block of the Slicer file's third lesion (its overlap counted once)."""
    union = truth_labels() > 0
    union[THIRD_LESION_BLOCK] = True
    return np.count_nonzero(union) * abs(np.linalg.det(ijk_to_ras()[:3, :3])) / 1000.0


# --- writers (byte by byte, so that every field can be changed) --------------------------------------------

def _numbers(values) -> str:
    return " ".join(repr(float(value)) for value in values)


def nrrd_file(labels: np.ndarray | None = None, encoding: str = "gzip", dtype=np.uint8, endian: str = "little",
              fields: dict | None = None, payload: Callable[[bytes], bytes] | None = None) -> bytes:
    """A 3-D NRRD; ``fields`` replaces (value) or removes (None) header fields, or adds new ones."""
    labels = truth_labels() if labels is None else labels
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_ras()
    directions = " ".join(f"({','.join(repr(float(v)) for v in lps[:3, axis])})" for axis in range(3))
    header = {"type": {np.uint8: "unsigned char", np.int16: "short", np.uint16: "unsigned short",
                       np.float32: "float"}[dtype],
              "dimension": "3", "space": "left-posterior-superior", "sizes": " ".join(map(str, labels.shape[::-1])),
              "space directions": directions, "kinds": "domain domain domain", "endian": endian,
              "encoding": encoding, "space origin": f"({','.join(repr(float(v)) for v in lps[:3, 3])})"}
    for key, value in (fields or {}).items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    raw = labels.astype(np.dtype(dtype).newbyteorder("<" if endian == "little" else ">")).tobytes()
    data = payload(raw) if payload else encode(raw, encoding)
    text = "NRRD0004\n" + "".join(f"{key}: {value}\n" for key, value in header.items()) + "\n"
    return text.encode() + data


def encode(raw: bytes, encoding: str) -> bytes:
    return {"raw": lambda: raw, "gzip": lambda: gzip.compress(raw, mtime=0),
            "bzip2": lambda: bz2.compress(raw), "zlib": lambda: zlib.compress(raw)}[encoding]()


def _quaternion(rotation: np.ndarray) -> tuple[float, float, float]:
    a = 0.5 * np.sqrt(1.0 + np.trace(rotation))
    return ((rotation[2, 1] - rotation[1, 2]) / (4 * a), (rotation[0, 2] - rotation[2, 0]) / (4 * a),
            (rotation[1, 0] - rotation[0, 1]) / (4 * a))


def nifti_file(labels: np.ndarray | None = None, compressed: bool = True, endian: str = "<", qform_code: int = 1,
               sform_code: int = 1, pixdim: tuple | None = None, sform: np.ndarray | None = None,
               xyzt_units: int = 2, unit_scale: float = 1.0, vox_offset: float = 352.0, magic: bytes = b"n+1\x00",
               dim: tuple | None = None, extra: bytes = b"") -> bytes:
    """A single-file NIfTI-1 (uint8) with a qform and an sform describing the same grid unless told otherwise."""
    labels = truth_labels() if labels is None else labels
    affine = ijk_to_ras()
    rotation = affine[:3, :3] / SPACING
    b, c, d = _quaternion(rotation)
    spacing = SPACING * unit_scale
    pixdim = (1.0, *spacing, 1.0, 0.0, 0.0, 0.0) if pixdim is None else pixdim
    sform = affine * np.array([[unit_scale] * 4] * 3 + [[0, 0, 0, 1]]) if sform is None else sform
    dim = (3, *labels.shape[::-1], 1, 1, 1, 1) if dim is None else dim
    header = struct.pack(endian + "i10s18sihbb8h3f4h8f3fhbB4f2i80s24s2h6f12f16s4s", 348, b"", b"", 0, 0, 0, 0,
                         *dim, 0.0, 0.0, 0.0, 0, 2, 8, 0, *pixdim, vox_offset, 1.0, 0.0, 0, 0, xyzt_units,
                         0.0, 0.0, 0.0, 0.0, 0, 0, b"damaged corpus", b"", qform_code, sform_code, b, c, d,
                         *(affine[:3, 3] * unit_scale), *np.asarray(sform[:3]).ravel(), b"", magic)
    body = header + b"\x00\x00\x00\x00" + extra + labels.tobytes()
    return gzip.compress(body, mtime=0) if compressed else body


def metaimage_file(labels: np.ndarray | None = None, compressed: bool = True, fields: dict | None = None,
                   payload: Callable[[bytes], bytes] | None = None) -> bytes:
    labels = truth_labels() if labels is None else labels
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_ras()
    direction = lps[:3, :3] / SPACING
    raw = labels.tobytes()
    data = payload(raw) if payload else (zlib.compress(raw) if compressed else raw)
    header = {"ObjectType": "Image", "NDims": "3", "BinaryData": "True", "BinaryDataByteOrderMSB": "False",
              "CompressedData": str(compressed), "TransformMatrix": _numbers(direction.T.ravel()),
              "Offset": _numbers(lps[:3, 3]), "ElementSpacing": _numbers(SPACING),
              "DimSize": " ".join(map(str, labels.shape[::-1])), "ElementType": "MET_UCHAR"}
    if compressed:
        header["CompressedDataSize"] = str(len(data))
    for key, value in (fields or {}).items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    text = "".join(f"{key} = {value}\n" for key, value in header.items()) + "ElementDataFile = LOCAL\n"
    return text.encode() + data


def header_length(data: bytes, kind: str) -> int:
    """Bytes of the (uncompressed) header, for placing damage in header or data."""
    if kind == "nrrd":
        return data.index(b"\n\n") + 2
    if kind == "mha":
        return data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    return 352


def two_members(raw: bytes) -> bytes:
    middle = len(raw) // 3
    return gzip.compress(raw[:middle], mtime=0) + gzip.compress(raw[middle:], mtime=0)


def flipped(data: bytes, position: int, bit: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 1 << bit
    return bytes(changed)


def flip_positions(start: int, stop: int, count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` (position, bit) pairs spread over [start, stop), reproducible."""
    rng = np.random.default_rng(seed)
    positions = np.unique(np.linspace(start, stop - 1, count).astype(int))
    return [(int(position), int(rng.integers(0, 8))) for position in positions]


# --- cases ----------------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    expect: str  # truth, refuse, refuse_or_truth, refuse_or_file
    build: Callable[[Path], Path]  # writes the case into a folder and returns the path to measure
    truth_ml: float | None = None  # None: the known volume's TTV


def _file_case(name: str, expect: str, file_name: str, make: Callable[[], bytes]) -> Case:
    def build(folder: Path) -> Path:
        path = folder / file_name
        path.write_bytes(make())
        return path
    return Case(name, expect, build)


def conventional_cases() -> list[Case]:
    """Valid files in the forms users have: each must be read with the known TTV."""
    cases = [
        _file_case("nrrd gzip", "truth", "a.nrrd", nrrd_file),
        _file_case("nrrd raw", "truth", "a.nrrd", lambda: nrrd_file(encoding="raw")),
        _file_case("nrrd bzip2", "truth", "a.nrrd", lambda: nrrd_file(encoding="bzip2")),
        _file_case("nrrd gzip two members", "truth", "a.nrrd", lambda: nrrd_file(payload=two_members)),
        _file_case("nrrd gzip empty last member", "truth", "a.nrrd",
                   lambda: nrrd_file(payload=lambda raw: gzip.compress(raw, mtime=0) + gzip.compress(b"", mtime=0))),
        _file_case("nrrd bzip2 two streams", "truth", "a.nrrd",
                   lambda: nrrd_file(encoding="bzip2", payload=lambda raw: bz2.compress(raw[:500]) +
                                     bz2.compress(raw[500:]))),
        _file_case("nrrd zlib stream", "truth", "a.nrrd", lambda: nrrd_file(payload=zlib.compress)),
        _file_case("nrrd big-endian int16", "truth", "a.nrrd", lambda: nrrd_file(dtype=np.int16, endian="big")),
        _file_case("nrrd float labels", "truth", "a.nrrd", lambda: nrrd_file(dtype=np.float32)),
        _file_case("nrrd right-anterior-superior space", "truth", "a.nrrd", lambda: nrrd_file(fields=_ras_fields())),
        _file_case("nifti gz qform and sform", "truth", "a.nii.gz", nifti_file),
        _file_case("nifti uncompressed", "truth", "a.nii", lambda: nifti_file(compressed=False)),
        _file_case("nifti big-endian", "truth", "a.nii.gz", lambda: nifti_file(endian=">")),
        _file_case("nifti sform only", "truth", "a.nii.gz", lambda: nifti_file(qform_code=0)),
        _file_case("nifti qform only", "truth", "a.nii.gz", lambda: nifti_file(sform_code=0)),
        _file_case("nifti in metres", "truth", "a.nii.gz", lambda: nifti_file(xyzt_units=1, unit_scale=0.001)),
        _file_case("nifti with an extension", "truth", "a.nii.gz",
                   lambda: nifti_file(vox_offset=368.0, extra=struct.pack("<2i", 16, 0) + bytes(8))),
        _file_case("nifti gzip two members", "truth", "a.nii.gz",
                   lambda: two_members(nifti_file(compressed=False))),
        _file_case("metaimage compressed", "truth", "a.mha", metaimage_file),
        _file_case("metaimage raw", "truth", "a.mha", lambda: metaimage_file(compressed=False)),
        _file_case("metaimage gzip-wrapped data", "truth", "a.mha",
                   lambda: metaimage_file(payload=lambda raw: gzip.compress(raw, mtime=0),
                                          fields={"CompressedDataSize": None})),
        Case("metaimage header and data file", "truth", _detached_metaimage),
        Case("nrrd header and gzip data file", "truth", _detached_nrrd),
        Case("300-lesion label map", "truth", _many_lesions, MANY_LESIONS_VOXELS * 0.8 * 0.8 * 1.5 / 1000.0),
    ]
    for suffix in (".nrrd", ".nii.gz", ".nii", ".mha", ".mhd"):
        cases.append(Case(f"written by SimpleITK {suffix}", "truth", _sitk_writer(suffix)))
    cases += [Case("slicer seg.nrrd shared layer, overlap, empty segment", "truth", lambda folder: _slicer_seg(folder),
                   slicer_seg_truth_ml()),
              Case("slicer seg.nrrd cropped to the segments", "truth",
                   lambda folder: _slicer_seg(folder, crop=True), slicer_seg_truth_ml()),
              Case("our seg.nrrd with a liver", "truth", _our_seg_with_liver)]
    return cases


def _ras_fields() -> dict:
    ras = ijk_to_ras()
    return {"space": "right-anterior-superior",
            "space directions": " ".join(f"({','.join(repr(float(v)) for v in ras[:3, axis])})" for axis in range(3)),
            "space origin": f"({','.join(repr(float(v)) for v in ras[:3, 3])})"}


def _detached_metaimage(folder: Path) -> Path:
    whole = metaimage_file(compressed=False)
    cut = header_length(whole, "mha")
    (folder / "a.raw").write_bytes(whole[cut:])
    path = folder / "a.mhd"
    path.write_bytes(whole[:cut].replace(b"ElementDataFile = LOCAL", b"ElementDataFile = a.raw"))
    return path


def _detached_nrrd(folder: Path) -> Path:
    whole = nrrd_file()
    cut = header_length(whole, "nrrd")
    (folder / "a.raw.gz").write_bytes(whole[cut:])
    path = folder / "a.nhdr"
    path.write_bytes(whole[:cut - 1] + b"data file: a.raw.gz\n\n")
    return path


MANY_LESIONS_VOXELS = 150 * 27 + 150 * 8


def _many_lesions(folder: Path) -> Path:
    """300 lesions of 2 x 2 x 2 to 3 x 3 x 3 voxels on a larger grid (label values 1..300)."""
    import SimpleITK as sitk

    labels = np.zeros((60, 80, 80), dtype=np.uint16)
    value = 0
    for k in range(2, 58, 6):
        for j in range(2, 78, 6):
            for i in range(2, 78, 6):
                value += 1
                if value <= 300:
                    size = 2 + value % 2
                    labels[k:k + size, j:j + size, i:i + size] = value
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((0.8, 0.8, 1.5))
    assert np.count_nonzero(labels) == MANY_LESIONS_VOXELS and value >= 300
    path = folder / "many.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def _sitk_writer(suffix: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        import SimpleITK as sitk

        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_ras()
        image = sitk.GetImageFromArray(truth_labels())
        image.SetSpacing([float(value) for value in SPACING])
        image.SetDirection([float(value) for value in (lps[:3, :3] / SPACING).ravel()])
        image.SetOrigin([float(value) for value in lps[:3, 3]])
        path = folder / f"itk{suffix}"
        sitk.WriteImage(image, str(path), useCompression=suffix != ".nii")
        return path
    return build


def _label_volume(layers, names_values, liver: bool = False):
    from TTVPrognosisLib.formats.segments import LabelVolume, Segment
    from TTVPrognosisLib.geometry import Geometry

    segments = [Segment(f"Lesion_{index}", f"Lesion {index}", layer, value)
                for index, (layer, value) in enumerate(names_values, start=1)]
    if liver:
        segments.append(Segment("Liver", "Liver", len(layers) - 1, 1))
    return LabelVolume(list(layers), Geometry(ijk_to_ras(), SHAPE_KJI), segments)


def _slicer_seg(folder: Path, crop: bool = False) -> Path:
    """Written by Slicer's storage node: lesions 1 and 2 plus an empty segment share a layer; a third lesion
    overlapping lesion 1 lies in a second layer. TTV: the union (:func:`slicer_seg_truth_ml`)."""
    import slicer

    from TTVPrognosisLib.mrml import nodes as mrml

    labels = truth_labels()
    first = np.where(labels == 3, 0, labels)
    second = np.zeros_like(labels)
    second[labels == 3] = 1
    second[THIRD_LESION_BLOCK] = 1  # the third lesion, grown into a block whose corner overlaps lesion 1
    volume = _label_volume([first, second], [(0, 1), (0, 2), (1, 1), (0, 3)])
    scene = slicer.vtkMRMLScene()
    node = mrml.segmentation_node_from_label_volume(volume, scene)
    node.GetSegmentation().CollapseBinaryLabelmaps(False)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetCropToMinimumExtent(crop)
    path = folder / "slicer.seg.nrrd"
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    return path


def _our_seg_with_liver(folder: Path) -> Path:
    from TTVPrognosisLib.formats.io import write_segmentation

    labels = truth_labels()
    liver = np.zeros_like(labels)
    liver[1:11, 1:13, 1:15] = 1
    path = folder / "ours.seg.nrrd"
    write_segmentation(_label_volume([labels, liver], [(0, 1), (0, 2), (0, 3)], liver=True), path)
    return path


def raw_seg_nrrd(folder: Path, edit: Callable[[bytes], bytes] = lambda header: header) -> Path:
    """Our .seg.nrrd (three lesions in one layer) re-encoded raw, with ``edit`` applied to its header text."""
    from TTVPrognosisLib.formats.io import write_segmentation

    source = folder / "source.seg.nrrd"
    write_segmentation(_label_volume([truth_labels()], [(0, 1), (0, 2), (0, 3)]), source)
    data = source.read_bytes()
    cut = header_length(data, "nrrd")
    header = data[:cut].replace(b"encoding: gzip", b"encoding: raw")
    path = folder / "raw.seg.nrrd"
    path.write_bytes(edit(header) + gzip.decompress(data[cut:]))
    source.unlink()
    return path


def special_file(kind: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / f"special-{kind}.nii.gz"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            path.symlink_to("/dev/zero")
        else:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(path))
            server.close()
        return path
    return build
