"""The damaged and unusual cases of the corpus (see damaged_corpus.py for the writers and the oracle)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from damaged_corpus import (
    FLIPS_PER_REGION,
    SPACING,
    Case,
    _file_case,
    flip_positions,
    flipped,
    header_length,
    ijk_to_ras,
    metaimage_file,
    nifti_file,
    nrrd_file,
    raw_seg_nrrd,
    special_file,
    truth_labels,
)

# name: (file name, bytes maker, kind for header length, compressed payload)
BASES: dict[str, tuple[str, Callable[[], bytes], str, bool]] = {
    "nrrd gzip": ("a.nrrd", nrrd_file, "nrrd", True),
    "nrrd raw": ("a.nrrd", lambda: nrrd_file(encoding="raw"), "nrrd", False),
    "nrrd bzip2": ("a.nrrd", lambda: nrrd_file(encoding="bzip2"), "nrrd", True),
    "nifti gz": ("a.nii.gz", nifti_file, "gzip", True),
    "nifti raw": ("a.nii", lambda: nifti_file(compressed=False), "nifti", False),
    "metaimage zlib": ("a.mha", metaimage_file, "mha", True),
    "metaimage raw": ("a.mha", lambda: metaimage_file(compressed=False), "mha", False),
}


def damaged_cases() -> list[Case]:
    return (truncations() + bit_flips() + wrong_sizes() + trailing_bytes() + nrrd_geometry_cases()
            + nifti_geometry_cases() + metaimage_geometry_cases() + slicer_file_cases() + special_files()
            + intensity_images())


def truncations() -> list[Case]:
    cases = []
    for base, (file_name, make, kind, _compressed) in BASES.items():
        data = make()
        head = header_length(data, kind) if kind != "gzip" else 40
        cuts = sorted({0, 5, head // 2, head - 1, head, head + (len(data) - head) // 2, len(data) - 8,
                       len(data) - 4, len(data) - 1})
        cases += [_file_case(f"{base} cut at byte {cut} of {len(data)}", "refuse", file_name,
                             lambda make=make, cut=cut: make()[:cut]) for cut in cuts]
    cases += [Case(f"slicer seg.nrrd cut at {fraction:.0%}", "refuse",
                   lambda folder, fraction=fraction: _cut_seg(folder, fraction)) for fraction in (0.05, 0.5, 0.99)]
    return cases


def _cut_seg(folder: Path, fraction: float) -> Path:
    path = raw_seg_nrrd(folder)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


def bit_flips() -> list[Case]:
    """Flips spread over the header and the data of every base file, plus a Slicer file's header and voxels."""
    cases = []
    for number, (base, (file_name, make, kind, compressed)) in enumerate(BASES.items()):
        data = make()
        head = header_length(data, kind) if kind != "gzip" else 0
        regions = [("header", 0, head, "refuse_or_file"),
                   ("data", head, len(data), "refuse_or_truth" if compressed else "refuse_or_file")]
        for region, start, stop, expect in regions:
            if stop <= start:
                continue
            for position, bit in flip_positions(start, stop, FLIPS_PER_REGION, seed=number):
                cases.append(_file_case(f"{base} bit {bit} of byte {position} flipped ({region})", expect, file_name,
                                        lambda make=make, position=position, bit=bit: flipped(make(), position, bit)))
    for position, bit in flip_positions(0, 1600, 2 * FLIPS_PER_REGION, seed=99):
        cases.append(Case(f"slicer seg.nrrd (raw) bit {bit} of byte {position} flipped", "refuse_or_file",
                          lambda folder, position=position, bit=bit: _flip_seg(folder, position, bit)))
    return cases


def _flip_seg(folder: Path, position: int, bit: int) -> Path:
    path = raw_seg_nrrd(folder)
    data = path.read_bytes()
    path.write_bytes(flipped(data, position % len(data), bit))
    return path


def wrong_sizes() -> list[Case]:
    k = truth_labels().shape[0]
    cases = []
    for encoding in ("raw", "gzip", "bzip2"):
        for size in (k - 1, k + 1):
            cases.append(_file_case(f"nrrd {encoding} sizes k={size} instead of {k}", "refuse", "a.nrrd",
                                    lambda encoding=encoding, size=size: nrrd_file(
                                        encoding=encoding, fields={"sizes": f"16 14 {size}"})))
    for compressed in (True, False):
        for size in (k - 1, k + 1):
            cases.append(_file_case(f"nifti {'gz' if compressed else 'raw'} dim k={size}", "refuse",
                                    "a.nii.gz" if compressed else "a.nii",
                                    lambda compressed=compressed, size=size: nifti_file(
                                        compressed=compressed, dim=(3, 16, 14, size, 1, 1, 1, 1))))
            cases.append(_file_case(f"metaimage {'zlib' if compressed else 'raw'} DimSize k={size}", "refuse", "a.mha",
                                    lambda compressed=compressed, size=size: metaimage_file(
                                        compressed=compressed, fields={"DimSize": f"16 14 {size}"})))
    cases.append(_file_case("nrrd uint16 type over uint8 data", "refuse", "a.nrrd",
                            lambda: nrrd_file(encoding="raw", fields={"type": "unsigned short"})))
    return cases


def trailing_bytes() -> list[Case]:
    def appended(make, extra: bytes):
        return lambda: make() + extra
    cases = []
    for base, (file_name, make, _kind, compressed) in BASES.items():
        cases.append(_file_case(f"{base} with one byte appended", "refuse", file_name, appended(make, b"\x01")))
        cases.append(_file_case(f"{base} with zeros appended", "refuse", file_name, appended(make, bytes(16))))
        if compressed:
            cases.append(_file_case(f"{base} with a gzip member appended", "refuse", file_name,
                                    appended(make, gzip.compress(b"\x01" * 10, mtime=0))))
    cases.append(_file_case("nrrd gzip members holding more than the volume", "refuse", "a.nrrd",
                            lambda: nrrd_file(payload=lambda raw: gzip.compress(raw, mtime=0) * 2)))
    return cases


def _directions(columns) -> str:
    return " ".join(f"({','.join(repr(float(v)) for v in column)})" for column in columns)


def nrrd_geometry_cases() -> list[Case]:
    good = [np.array([-0.8, 0, 0]), np.array([0, -0.7, 0]), np.array([0, 0, 2.5])]
    variants = {
        "no space directions (spacings only)": {"space directions": None, "space": None,
                                                "space origin": None, "spacings": "0.8 0.7 2.5"},
        "mistyped 'space direction'": {"space directions": None, "space direction": _directions(good)},
        "space directions with NaN": {"space directions": _directions([good[0], good[1], [0, 0, np.nan]])},
        "zero spacing": {"space directions": _directions([good[0], [0, 0, 0], good[2]])},
        "axes not at right angles": {"space directions": _directions([good[0], [0.3, -0.7, 0], good[2]])},
        "no space origin": {"space origin": None},
        "no space field": {"space": None},
        "space units in metres": {"space units": '"m" "m" "m"'},
        "scanner space": {"space": "scanner-xyz"},
        "space dimension without space": {"space": None, "space dimension": "3"},
    }
    return [_file_case(f"nrrd {name}", "refuse", "a.nrrd", lambda fields=fields: nrrd_file(fields=fields))
            for name, fields in variants.items()]


def nifti_geometry_cases() -> list[Case]:
    pixdim = (1.0, *SPACING, 1.0, 0.0, 0.0, 0.0)
    moved = ijk_to_ras().copy()
    moved[:3, 3] += 10.0
    sheared = ijk_to_ras().copy()
    sheared[:3, 1] += 0.2 * sheared[:3, 0]
    variants = {
        "pixdim NaN (qform only)": dict(sform_code=0, pixdim=(1.0, np.nan, *SPACING[1:], 1, 0, 0, 0)),
        "pixdim 0 (qform only)": dict(sform_code=0, pixdim=(1.0, 0.0, *SPACING[1:], 1, 0, 0, 0)),
        "pixdim 0 with an sform": dict(pixdim=(1.0, *SPACING[:2], 0.0, 1, 0, 0, 0)),
        "pixdim twice the sform's voxel size": dict(qform_code=0, pixdim=(1.0, *(2 * SPACING), 1, 0, 0, 0)),
        "qform and sform disagree": dict(sform=moved),
        "qform_code and sform_code 0": dict(qform_code=0, sform_code=0),
        "sform with sheared axes": dict(qform_code=0, sform=sheared),
        "qform_code 7": dict(qform_code=7, sform_code=0),
        "vox_offset past the data": dict(vox_offset=352.0 + truth_labels().size),
        "vox_offset 0": dict(vox_offset=0.0),
        "vox_offset not whole": dict(vox_offset=352.5),
        "header-only magic ni1": dict(magic=b"ni1\x00"),
        "4-D with two volumes": dict(dim=(4, 16, 14, 6, 2, 1, 1, 1)),
        "unknown length unit": dict(xyzt_units=5),
    }
    cases = [_file_case(f"nifti {name}", "refuse", "a.nii.gz", lambda options=options: nifti_file(**options))
             for name, options in variants.items()]
    cases.append(_file_case("nifti pixdim consistent, qfac 0", "truth", "a.nii.gz",
                            lambda: nifti_file(pixdim=(0.0, *pixdim[1:]))))
    cases.append(_file_case("nifti NaN scl_slope", "refuse", "a.nii", lambda: _nifti_with_slope(np.nan)))
    return cases


def _nifti_with_slope(slope: float) -> bytes:
    data = bytearray(nifti_file(compressed=False))
    struct.pack_into("<f", data, 112, slope)
    return bytes(data)


def metaimage_geometry_cases() -> list[Case]:
    variants = {
        "no ElementSpacing": {"ElementSpacing": None},
        "ElementSpacing 0": {"ElementSpacing": "0.8 0 2.5"},
        "ElementSpacing NaN": {"ElementSpacing": "0.8 nan 2.5"},
        "TransformMatrix scaled (not orthonormal)": {"TransformMatrix": "2 0 0 0 2 0 0 0 2"},
        "TransformMatrix sheared": {"TransformMatrix": "1 0 0 0.3 1 0 0 0 1"},
        "no TransformMatrix": {"TransformMatrix": None},
        "no Offset": {"Offset": None},
        "two channels": {"ElementNumberOfChannels": "2"},
    }
    cases = [_file_case(f"metaimage {name}", "refuse", "a.mha", lambda fields=fields: metaimage_file(fields=fields))
             for name, fields in variants.items()]
    cases.append(_file_case("metaimage zlib checksum damaged", "refuse", "a.mha",
                            lambda: flipped(metaimage_file(), -2, 3)))
    return cases


def slicer_file_cases() -> list[Case]:
    def edit(old: bytes, new: bytes) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            def change(header: bytes) -> bytes:
                assert old in header, (old, header)
                return header.replace(old, new)
            return raw_seg_nrrd(folder, change)
        return build
    return [
        Case("slicer seg.nrrd two segments share an ID", "refuse",
             edit(b"Segment1_ID:=Lesion_2", b"Segment1_ID:=Lesion_1")),
        Case("slicer seg.nrrd IDs differ only in case", "refuse",
             edit(b"Segment1_ID:=Lesion_2", b"Segment1_ID:=lesion_1")),
        Case("slicer seg.nrrd sizes swapped", "refuse", edit(b"sizes: 16 14 12", b"sizes: 14 16 12")),
        Case("slicer seg.nrrd label value changed", "refuse",
             edit(b"Segment0_LabelValue:=1", b"Segment0_LabelValue:=5")),
        Case("slicer seg.nrrd extent outside the volume", "refuse",
             edit(b"Segment0_Extent:=4 11", b"Segment0_Extent:=4 19")),
        Case("slicer seg.nrrd without space directions", "refuse",
             edit(b"space directions:", b"space direction:")),
    ]


def special_files() -> list[Case]:
    return [Case(f"a {kind} as input", "refuse", special_file(kind)) for kind in ("fifo", "device", "socket")]


def intensity_images() -> list[Case]:
    return [Case(f"intensity image: {kind}", "refuse", _intensity_image(kind))
            for kind in ("MR uint16", "MR masked to the body", "CT in HU", "MR float", "MR 8-bit",
                         "few values, no background")]


def _intensity_image(kind: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        import SimpleITK as sitk

        rng = np.random.default_rng(5)
        k, j, i = np.mgrid[0:40, 0:48, 0:48]
        smooth = 600 + 300 * np.sin(i / 7.0) * np.cos(j / 9.0) + 5 * k
        image = smooth + rng.normal(0, 25, smooth.shape)
        if kind == "MR masked to the body":
            image[((i - 24) ** 2 + (j - 24) ** 2) > 15 ** 2] = 0
        voxels = {"MR uint16": lambda: image.astype(np.uint16),
                  "MR masked to the body": lambda: image.astype(np.uint16),
                  "CT in HU": lambda: (image - 1000).astype(np.int16), "MR float": lambda: image.astype(np.float32),
                  "MR 8-bit": lambda: np.clip(image / 6, 0, 255).astype(np.uint8),
                  "few values, no background": lambda: np.clip(image / 200, 1, 6).astype(np.uint8)}[kind]()
        path = folder / "image.nii.gz"
        picture = sitk.GetImageFromArray(voxels)
        picture.SetSpacing((0.9, 0.9, 3.0))
        sitk.WriteImage(picture, str(path))
        return path
    return build
