"""A NRRD header read strictly: where its voxels are, what type, and the grid it states (nothing assumed).

The header is parsed by pynrrd; this module decides what it means. ITK fills in what a header leaves out
(1 mm spacing without ``space directions``, identity directions, a zero origin), so a NRRD with a mistyped
``space direction`` key was measured on a guessed grid. Here the grid must be stated in full: ``space``
(an anatomical frame), ``space directions`` (finite, non-zero, orthogonal) and ``space origin``.
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError
from ..geometry import Geometry
from .integrity import open_regular, require_regular_file

NRRD_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int",
                     "int64", "int64_t"), "i8"),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    "float": "f4",
    "double": "f8",
}
ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}
# The patient frames ITK and Slicer know, as the sign of each axis relative to LPS.
SPACES_TO_LPS = {
    "left-posterior-superior": (1, 1, 1), "lps": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1), "ras": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1), "las": (1, -1, 1),
}
ORTHOGONALITY_TOLERANCE = 1e-3  # |cosine| between axes (0.06 degrees); rounded DICOM directions stay far below
GEOMETRY_KEYS = ("space directions", "space origin", "space", "space dimension", "spacings", "space units")


@dataclass(frozen=True)
class NrrdLayout:
    """Where and how the voxels are stored."""

    dtype: np.dtype
    sizes: tuple[int, ...]  # fastest axis first, as in the header
    encoding: str  # raw, gzip or bzip2
    data_file: Path | None  # None: the data follows the header
    line_skip: int
    byte_skip: int

    @property
    def value_count(self) -> int:
        return int(np.prod(self.sizes, dtype=np.int64))

    @property
    def byte_count(self) -> int:
        return self.value_count * self.dtype.itemsize


def _damaged(source: str, reason: str) -> InputError:
    return InputError(f"Could not read '{source}' as NRRD: {reason}. The file may be damaged or incomplete; "
                      f"re-save it from the program that made it.")


def read_nrrd_header(handle: BinaryIO, source: str) -> dict:
    """pynrrd's header, with its many error types turned into one clear message."""
    import nrrd

    start = handle.tell()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pynrrd warns about unknown fields; they are checked below
            header = nrrd.read_header(handle)
    except Exception as error:  # pynrrd raises several types for damaged headers
        reason = str(error).strip().rstrip(".") or type(error).__name__
        raise _damaged(source, reason) from error
    _restore_utf8_fields(handle, start, header)
    return header


def _restore_utf8_fields(handle: BinaryIO, start: int, header: dict) -> None:
    """Key/value fields as their UTF-8 text: pynrrd decodes header lines as ASCII and drops other bytes, so a
    segment Slicer saved as "Hígado" would read as "Hgado" (and no longer be recognised as the liver)."""
    end = handle.tell()
    handle.seek(start)
    raw = handle.read(end - start)
    handle.seek(end)
    for line in raw.split(b"\n"):
        if b":=" not in line or line.isascii():
            continue
        key, _, value = line.decode("utf-8", errors="replace").rstrip("\r").partition(":=")
        if key in header:
            header[key] = value


def read_nrrd_header_file(path: str | os.PathLike) -> dict:
    with open_regular(path) as handle:
        return read_nrrd_header(handle, str(path))


def nrrd_layout(header: dict, path: Path) -> NrrdLayout:
    """The storage fields, checked: a known type, sizes, encoding, byte order and one data file."""
    source = str(path)
    type_name = str(header.get("type", "")).strip().lower()
    if type_name not in NRRD_TYPES:
        raise _damaged(source, f"its voxel type '{type_name}' is not a number type this tool reads")
    dtype = np.dtype(NRRD_TYPES[type_name])
    try:
        sizes = tuple(int(size) for size in header["sizes"])
        dimension = int(header.get("dimension", len(sizes)))
    except (KeyError, TypeError, ValueError):
        raise _damaged(source, "its 'sizes' field is missing or not whole numbers") from None
    if dimension != len(sizes) or not sizes or min(sizes) < 1:
        raise _damaged(source, f"its 'sizes' ({' '.join(map(str, sizes))}) do not fit 'dimension: {dimension}'")
    encoding = ENCODINGS.get(str(header.get("encoding", "")).strip().lower())
    if encoding is None:
        raise InputError(f"'{path.name}' stores its voxels with the NRRD encoding '{header.get('encoding')}'; "
                         f"this tool reads raw, gzip and bzip2. Re-save it (e.g. from Slicer) with compression.")
    if dtype.itemsize > 1:
        endian = str(header.get("endian", "")).strip().lower()
        if endian not in ("little", "big"):
            raise _damaged(source, "its 'endian' field is missing or is neither little nor big")
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    return NrrdLayout(dtype, sizes, encoding, _data_file(header, path), _skip(header, "line skip", source),
                      _skip(header, "byte skip", source))


def _skip(header: dict, key: str, source: str) -> int:
    value = header.get(key, header.get(key.replace(" ", ""), 0))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _damaged(source, f"its '{key}' field is not a whole number") from None
    if number < (-1 if key == "byte skip" else 0):
        raise _damaged(source, f"its '{key}' field is {number}")
    return number


def _data_file(header: dict, path: Path) -> Path | None:
    name = header.get("data file", header.get("datafile"))
    if name is None:
        return None
    text = str(name).strip()
    if text.upper().startswith("LIST") or len(text.split()) > 1:
        raise InputError(f"'{path.name}' keeps its voxels in several data files ('data file: {text}'); this tool "
                         f"reads one data file. Re-save the volume as a single .nrrd file.")
    data_path = Path(text) if Path(text).is_absolute() else path.parent / text
    return require_regular_file(data_path)


def nrrd_geometry(header: dict, source: str, spatial_axes_last: bool = True) -> Geometry:
    """The grid the header states (LPS kept as IJK-to-RAS); every missing or doubtful field is an error.

    The three spatial axes must be the last three (a 4-D Slicer segmentation has its layer axis first).
    """
    name = Path(source).name
    sizes = [int(size) for size in header["sizes"]]
    directions = header.get("space directions")
    if directions is None:
        raise InputError(_missing_directions_message(header, name))
    directions = np.asarray(directions, dtype=float)
    spatial = [index for index in range(len(directions)) if np.all(np.isfinite(directions[index]))]
    if len(directions) != len(sizes) or len(spatial) != 3 or (spatial_axes_last and spatial != [len(sizes) - 3,
                                                                                                    len(sizes) - 2,
                                                                                                    len(sizes) - 1]):
        raise InputError(f"'{name}': its 'space directions' field gives {len(spatial)} spatial axes for "
                         f"{len(sizes)} axes; a volume needs three spatial axes (the last three). The header is "
                         f"damaged or describes another kind of data.")
    signs = _space_signs(header, name)
    columns = directions[spatial].T * np.asarray(signs, dtype=float)[:, None]  # 3x3 in LPS, one column per axis
    check_axes(columns, name, "space directions")
    origin = header.get("space origin")
    if origin is None:
        raise InputError(f"'{name}' has no 'space origin' field, so where the volume lies is unknown (no "
                         f"position is assumed). Re-save it from the program that made it.")
    origin = np.asarray(origin, dtype=float).ravel()
    if origin.shape != (3,) or not np.all(np.isfinite(origin)):
        raise InputError(f"'{name}': its 'space origin' field is not three finite numbers.")
    _require_millimetres(header, name)
    matrix = np.eye(4)
    matrix[:3, :3] = columns
    matrix[:3, 3] = origin * np.asarray(signs, dtype=float)
    return Geometry.from_lps(matrix, [sizes[axis] for axis in spatial][::-1])


def _missing_directions_message(header: dict, name: str) -> str:
    near = difflib.get_close_matches("space directions", [str(key) for key in header], n=1, cutoff=0.75)
    if near:
        return (f"'{name}' has a field '{near[0]}' but no 'space directions' field: the voxel size and orientation "
                f"are not stated in a form readers know (a typing mistake?). Correct the field name to "
                f"'space directions' or re-save the file from Slicer or ITK.")
    stated = "only 'spacings' (no orientation)" if "spacings" in header else "nothing"
    return (f"'{name}' has no 'space directions' field; of the voxel grid it states {stated}. No voxel size or "
            f"orientation is assumed: re-save the file from Slicer or ITK, which write 'space directions'.")


def _space_signs(header: dict, name: str) -> tuple[int, int, int]:
    space = header.get("space")
    if space is None:
        raise InputError(f"'{name}' has no 'space' field, so its axes are not tied to the patient (left/right, "
                         f"anterior/posterior). Re-save it from Slicer or ITK, which write "
                         f"'space: left-posterior-superior'.")
    signs = SPACES_TO_LPS.get(str(space).strip().lower())
    if signs is None:
        raise InputError(f"'{name}' is in the NRRD space '{space}'; this tool reads volumes in patient space "
                         f"(left-posterior-superior, right-anterior-superior or left-anterior-superior).")
    return signs


def check_axes(columns: np.ndarray, name: str, field_name: str) -> None:
    """Three finite, non-zero, mutually orthogonal axis vectors (columns), as every reader here needs."""
    if not np.all(np.isfinite(columns)):
        raise InputError(f"'{name}': its '{field_name}' holds numbers that are not finite (NaN or infinite); the "
                         f"voxel size is unknown. The header is damaged.")
    lengths = np.linalg.norm(columns, axis=0)
    if np.any(lengths <= 0) or not np.all(np.isfinite(1.0 / lengths)):
        axis = int(np.argmin(lengths))
        raise InputError(f"'{name}': its '{field_name}' gives axis {'ijk'[axis]} a zero length (zero spacing); "
                         f"the voxel size is unknown. The header is damaged.")
    unit = columns / lengths
    cosines = np.abs(unit.T @ unit - np.eye(3))
    if cosines.max() > ORTHOGONALITY_TOLERANCE:
        raise InputError(f"'{name}': its '{field_name}' are not at right angles to each other (largest cosine "
                         f"{cosines.max():.3g}); a sheared grid is not read, so as not to guess voxel positions. The "
                         f"header is damaged, or resample the volume to a rectangular grid.")


def _require_millimetres(header: dict, name: str) -> None:
    units = header.get("space units")
    if units is None:
        return
    values = [str(unit).strip().strip('"').lower() for unit in (units if isinstance(units, list) else [units])]
    if any(value not in ("mm", "millimeter", "millimeters", "millimetre", "millimetres") for value in values):
        raise InputError(f"'{name}' gives its 'space units' as {' '.join(values)}; this tool reads millimetres. "
                         f"Re-save the volume in millimetres.")
