"""NRRD, NIfTI-1 and MetaImage volumes read by this package itself, verified from header to last byte.

These are the formats users hand in as label images and CTs. Each is read here rather than by SimpleITK,
which assumes missing geometry and does not check checksums or sizes (see :mod:`.integrity`): the header
is checked field by field (:mod:`.nrrd_header`, :mod:`.nifti_header`, :mod:`.metaimage_header`) and the
voxels are decoded once, straight into the array returned. Other formats (and DICOM) stay with ITK.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import Geometry
from .integrity import IntegrityError, VerifiedStream, decode_array, open_regular
from .metaimage_header import MetaImageHeader, metaimage_header, read_metaimage_fields
from .nifti_header import HEADER_BYTES, NiftiHeader, parse_nifti_header
from .nrrd_header import nrrd_geometry, read_nrrd_header_file

NRRD_SUFFIXES = (".nrrd", ".nhdr")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
METAIMAGE_SUFFIXES = (".mha", ".mhd")
OWN_SUFFIXES = NRRD_SUFFIXES + NIFTI_SUFFIXES + METAIMAGE_SUFFIXES


def reads_itself(path: Path) -> bool:
    """True for the file formats read (and verified) here."""
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in OWN_SUFFIXES)


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Voxels (k, j, i; native byte order) and grid of a 3-D scalar volume; damage is an ``InputError``."""
    file_path = Path(path)
    try:
        return _reader(file_path, header_only=False)
    except IntegrityError as error:
        raise _damaged(file_path, error) from error


def read_volume_geometry(path: str | os.PathLike) -> Geometry:
    """The grid from the header alone (no voxels decoded beyond a NIfTI's header)."""
    file_path = Path(path)
    try:
        return _reader(file_path, header_only=True)[1]
    except IntegrityError as error:
        raise _damaged(file_path, error) from error


def _damaged(file_path: Path, error: IntegrityError) -> InputError:
    return InputError(f"Could not read '{file_path}': {error}. Nothing was measured from it; use an intact copy "
                      f"of the file (re-export or copy it again).")


def _reader(file_path: Path, header_only: bool):
    name = file_path.name.lower()
    if name.endswith(NRRD_SUFFIXES):
        return _read_nrrd(file_path, header_only)
    if name.endswith(NIFTI_SUFFIXES):
        return _read_nifti(file_path, header_only)
    return _read_metaimage(file_path, header_only)


def _read_nrrd(file_path: Path, header_only: bool) -> tuple[np.ndarray | None, Geometry]:
    from .nrrd_layers import read_layers

    header = read_nrrd_header_file(file_path)
    sizes = list(header.get("sizes", ()))
    if len(sizes) == 4:
        raise InputError(f"'{file_path.name}' has {sizes[0]} values per voxel (a vector or colour image, or a "
                         f"series of volumes); a 3-D volume with one value per voxel is needed.")
    if len(sizes) != 3:
        raise InputError(f"'{file_path.name}' is a {len(sizes)}-D image; a 3-D volume is needed.")
    geometry = nrrd_geometry(header, str(file_path))
    if header_only:
        return None, geometry
    layers, _ = read_layers(file_path)
    return layers[0], geometry


def _read_nifti(file_path: Path, header_only: bool) -> tuple[np.ndarray | None, Geometry]:
    compressed = file_path.name.lower().endswith(".gz")
    with open_regular(file_path) as handle:
        stream = VerifiedStream(handle, "gzip" if compressed else "raw", None)
        try:
            raw_header = stream.read(HEADER_BYTES)
        except IntegrityError:
            if not compressed:
                raise InputError(f"'{file_path.name}' is too short to be a NIfTI image; the file is cut short or is "
                                 f"not a NIfTI file.") from None
            raise
        header = parse_nifti_header(raw_header, file_path.name)
        if header_only:
            return None, header.geometry
        stream.announce(header.vox_offset + header.data_bytes)
        stream.skip(header.vox_offset - HEADER_BYTES)
        voxels = decode_array(stream, header.dtype, header.shape_kji)
        stream.finish()
    return _scaled(voxels, header), header.geometry


def _scaled(voxels: np.ndarray, header: NiftiHeader) -> np.ndarray:
    """Stored values turned into what they mean (scl_slope, scl_inter), exactly where the type allows."""
    if header.scale is None:
        return voxels
    slope, intercept = header.scale
    exact = np.float32 if voxels.dtype.itemsize <= 2 and voxels.dtype.kind in "iu" else np.float64
    return voxels.astype(exact) * exact(slope) + exact(intercept)


def _read_metaimage(file_path: Path, header_only: bool) -> tuple[np.ndarray | None, Geometry]:
    with open_regular(file_path) as handle:
        header = metaimage_header(read_metaimage_fields(handle, file_path.name), file_path)
        if header_only:
            return None, header.geometry
        if header.data_file is None:
            return _read_metaimage_data(handle, header), header.geometry
    with open_regular(header.data_file) as data_handle:
        if header.header_size == -1:
            data_handle.seek(max(0, os.fstat(data_handle.fileno()).st_size - header.data_bytes))
        else:
            data_handle.seek(header.header_size)
        return _read_metaimage_data(data_handle, header), header.geometry


def _read_metaimage_data(handle, header: MetaImageHeader) -> np.ndarray:
    stream = VerifiedStream(handle, "zlib" if header.compressed else "raw", header.data_bytes)
    voxels = decode_array(stream, header.dtype, header.shape_kji)
    stream.finish()
    return voxels


