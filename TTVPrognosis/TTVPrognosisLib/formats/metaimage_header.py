"""A MetaImage header (``.mha``/``.mhd``) read strictly: voxel layout and a fully stated grid.

MetaImage headers are ``Key = Value`` lines ending with ``ElementDataFile`` (``LOCAL``: the data follows).
ITK's reader takes 1 mm for a missing ``ElementSpacing``, identity for a missing ``TransformMatrix``, and
reads a non-orthonormal matrix as it is; it prints "Uncompress failed" for damaged zlib data and still
returns an image. Here every geometric field must be present and sound, and the data is read through
:class:`.integrity.VerifiedStream` (zlib with its Adler-32 checksum when ``CompressedData = True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError
from ..geometry import Geometry
from .integrity import require_regular_file
from .nrrd_header import check_axes

MAX_HEADER_BYTES = 1 << 20
ELEMENT_TYPES = {"MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_INT": "i4",
                 "MET_UINT": "u4", "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4",
                 "MET_DOUBLE": "f8"}
ALIASES = {"Position": "Offset", "Origin": "Offset", "Rotation": "TransformMatrix", "Orientation": "TransformMatrix",
           "ElementByteOrderMSB": "BinaryDataByteOrderMSB"}


@dataclass(frozen=True)
class MetaImageHeader:
    dtype: np.dtype
    shape_kji: tuple[int, int, int]
    compressed: bool
    data_file: Path | None  # None: the data follows the header (LOCAL)
    header_size: int  # bytes to skip in a separate data file; -1: the data is the end of that file
    geometry: Geometry

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape_kji, dtype=np.int64)) * self.dtype.itemsize


def read_metaimage_fields(handle: BinaryIO, name: str) -> dict[str, str]:
    """The header's fields up to ``ElementDataFile``; ``handle`` is left at the first data byte."""
    fields: dict[str, str] = {}
    consumed = 0
    while consumed < MAX_HEADER_BYTES:
        line = handle.readline(MAX_HEADER_BYTES)
        consumed += len(line)
        if not line:
            break
        text = line.decode("latin-1").strip()
        if not text:
            continue
        key, equals, value = text.partition("=")
        key = ALIASES.get(key.strip(), key.strip())
        if not equals or not key or " " in key:
            raise InputError(f"'{name}' is not a MetaImage header: the line {text[:60]!r} is not 'Key = Value'. The "
                             f"file is damaged or has another format.")
        if key in fields:
            raise InputError(f"'{name}' gives the MetaImage field {key} twice; the header is damaged.")
        fields[key] = value.strip()
        if key == "ElementDataFile":
            return fields
    raise InputError(f"'{name}' has no ElementDataFile line where a MetaImage header ends; the file is damaged or "
                     f"is not a MetaImage.")


def metaimage_header(fields: dict[str, str], path: Path) -> MetaImageHeader:
    name = path.name
    if fields.get("ObjectType", "Image").lower() != "image":
        raise InputError(f"'{name}' is a MetaImage '{fields.get('ObjectType')}', not an image.")
    dimensions = _integers(fields, "NDims", name, 1)[0]
    sizes = _integers(fields, "DimSize", name, dimensions)
    if dimensions != 3 or min(sizes) < 1:
        raise InputError(f"'{name}' is a {dimensions}-D image of size {' x '.join(map(str, sizes))}; a 3-D volume is "
                         f"needed.")
    if fields.get("ElementNumberOfChannels", "1").strip() != "1":
        raise InputError(f"'{name}' has {fields['ElementNumberOfChannels']} values per voxel (a vector or colour "
                         f"image); one value per voxel is needed.")
    element_type = fields.get("ElementType", "")
    if element_type not in ELEMENT_TYPES:
        raise InputError(f"'{name}': its ElementType '{element_type}' is not a number type this tool reads.")
    if not _flag(fields, "BinaryData", name, default=True):
        raise InputError(f"'{name}' stores its voxels as text (BinaryData = False); re-save it as binary.")
    big_endian = _flag(fields, "BinaryDataByteOrderMSB", name, default=False)
    dtype = np.dtype(ELEMENT_TYPES[element_type]).newbyteorder(">" if big_endian else "<")
    compressed = _flag(fields, "CompressedData", name, default=False)
    data_file, header_size = _data_location(fields, path, compressed)
    geometry = _geometry(fields, name, sizes)
    return MetaImageHeader(dtype, (sizes[2], sizes[1], sizes[0]), compressed, data_file, header_size, geometry)


def _numbers(fields: dict[str, str], key: str, name: str, count: int) -> list[float]:
    if key not in fields:
        raise InputError(f"'{name}' has no {key} field, so the voxel grid is not fully stated (nothing is assumed). "
                         f"Re-save it from the program that made it (ITK and Slicer write {key}).")
    try:
        values = [float(value) for value in fields[key].split()]
    except ValueError:
        values = []
    if len(values) != count:
        raise InputError(f"'{name}': its {key} field ({fields[key][:60]!r}) is not {count} numbers. The header is "
                         f"damaged.")
    if not np.all(np.isfinite(values)):
        raise InputError(f"'{name}': its {key} field holds numbers that are not finite (NaN or infinite). The header "
                         f"is damaged.")
    return values


def _integers(fields: dict[str, str], key: str, name: str, count: int) -> list[int]:
    values = _numbers(fields, key, name, count)
    if any(value != int(value) for value in values):
        raise InputError(f"'{name}': its {key} field is not whole numbers. The header is damaged.")
    return [int(value) for value in values]


def _flag(fields: dict[str, str], key: str, name: str, default: bool) -> bool:
    value = fields.get(key)
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise InputError(f"'{name}': its {key} field is {value!r}, neither True nor False. The header is damaged.")


def _data_location(fields: dict[str, str], path: Path, compressed: bool) -> tuple[Path | None, int]:
    target = fields["ElementDataFile"]
    header_size = int(_numbers(fields, "HeaderSize", path.name, 1)[0]) if "HeaderSize" in fields else 0
    if target.upper() == "LOCAL":
        if header_size != 0:
            raise InputError(f"'{path.name}': a HeaderSize with data in the same file is not supported; re-save it.")
        return None, 0
    if target.upper().startswith("LIST") or len(target.split()) > 1:
        raise InputError(f"'{path.name}' keeps its voxels in several files (ElementDataFile = {target}); this tool "
                         f"reads one data file. Re-save it as a single .mha file.")
    if header_size < -1 or (header_size == -1 and compressed):
        raise InputError(f"'{path.name}': its HeaderSize ({header_size}) is not valid for this data.")
    data_path = Path(target) if Path(target).is_absolute() else path.parent / target
    return require_regular_file(data_path), header_size


def _geometry(fields: dict[str, str], name: str, sizes: list[int]) -> Geometry:
    spacing = _numbers(fields, "ElementSpacing", name, 3)
    if min(spacing) <= 0:
        raise InputError(f"'{name}': its ElementSpacing ({' '.join(map(str, spacing))}) is not above 0 on every "
                         f"axis; the voxel size is unknown. The header is damaged.")
    # MetaIO stores the matrix column by column: the first three numbers are the i axis' direction.
    directions = np.asarray(_numbers(fields, "TransformMatrix", name, 9), dtype=float).reshape(3, 3).T
    lengths = np.linalg.norm(directions, axis=0)
    if np.any(np.abs(lengths - 1.0) > 1e-3):
        raise InputError(f"'{name}': its TransformMatrix columns are not unit vectors (lengths "
                         f"{' '.join(f'{value:.4g}' for value in lengths)}), so it is not a rotation; the voxel size "
                         f"and orientation cannot be told. The header is damaged.")
    check_axes(directions, name, "TransformMatrix")
    origin = _numbers(fields, "Offset", name, 3)
    return Geometry.from_spacing_origin_direction(spacing, origin, directions.ravel(), sizes[::-1])
