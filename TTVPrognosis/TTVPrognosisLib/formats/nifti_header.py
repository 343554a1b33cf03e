"""A NIfTI-1 header (348 bytes) read by the standard's rules, refusing what they cannot settle.

NIfTI states the grid up to three ways: ``pixdim`` (voxel size), the qform (quaternion, used when
``qform_code`` > 0) and the sform (affine rows, used when ``sform_code`` > 0). ITK picks one and replaces
a NaN or zero ``pixdim`` by 1 mm, so a file whose ``pixdim`` disagreed with its sform was measured 8 times
too large. Here (NIfTI-1 standard, https://nifti.nimh.nih.gov/nifti-1/documentation/nifti1fields):

- sform_code > 0: the sform is the grid; a qform with qform_code > 0 must describe the same grid, and
  ``pixdim`` must equal the sform's voxel size (else the file contradicts itself: refused);
- only qform_code > 0: the qform and ``pixdim`` (finite, > 0; ``pixdim[0]`` is the handedness qfac);
- both codes 0 (the old Analyze method): no orientation is stated: refused;
- axes must be at right angles; units are millimetres, metres or micrometres (``xyzt_units``; unknown
  is taken as millimetres, as the standard's writers intend and every reader assumes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..geometry import Geometry
from .nrrd_header import check_axes

HEADER_BYTES = 348
HEADER_FORMAT = "i10s18sihbb8h3f4h8f3fhbB4f2i80s24s2h6f12f16s4s"
DATATYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8",
             1280: "u8"}
XFORM_CODES = range(0, 5)  # unknown, scanner, aligned, Talairach, MNI
SPACE_UNITS_TO_MM = {0: 1.0, 1: 1000.0, 2: 1.0, 3: 0.001}
SAME_GRID_MM = 0.01  # qform and sform of one grid agree to float32 precision, far closer than this
SAME_SPACING_RELATIVE = 1e-3  # 0.1 %: writers round far less; a real disagreement is far more


@dataclass(frozen=True)
class NiftiHeader:
    dtype: np.dtype  # byte order of the file
    shape_kji: tuple[int, int, int]
    vox_offset: int
    scale: tuple[float, float] | None  # (slope, intercept) when the stored values are to be scaled
    geometry: Geometry

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape_kji, dtype=np.int64)) * self.dtype.itemsize


def parse_nifti_header(raw: bytes, name: str) -> NiftiHeader:
    """Decode and check the first 348 bytes of a single-file NIfTI-1 image (``.nii``/``.nii.gz``)."""
    if len(raw) < HEADER_BYTES:
        raise InputError(f"'{name}' is too short to be a NIfTI image ({len(raw)} bytes; the header alone is 348). "
                         f"The file is cut short or not a NIfTI file.")
    endian = _byte_order(raw, name)
    fields = struct.unpack(endian + HEADER_FORMAT, raw[:HEADER_BYTES])
    dim, datatype, bitpix = fields[7:15], fields[19], fields[20]
    pixdim, vox_offset, slope, intercept = fields[22:30], fields[30], fields[31], fields[32]
    xyzt_units, qform_code, sform_code = fields[35], fields[44], fields[45]
    quaternion, srows, magic = fields[46:52], fields[52:64], fields[65]
    if magic != b"n+1\x00":
        hint = " (a header whose voxels are in a separate .img file)" if magic == b"ni1\x00" else ""
        raise InputError(f"'{name}' is not a single-file NIfTI-1 image: its magic field is {magic!r}{hint}. Save "
                         f"the volume as one .nii or .nii.gz file.")
    dtype = _voxel_type(datatype, bitpix, name).newbyteorder(endian)
    shape_kji = _shape(dim, name)
    offset = _voxel_offset(vox_offset, name)
    scale = _scaling(slope, intercept, name)
    units = xyzt_units & 0x07
    if units not in SPACE_UNITS_TO_MM:
        raise InputError(f"'{name}': its xyzt_units field ({xyzt_units}) gives no known length unit. The header is "
                         f"damaged.")
    matrix = _grid(qform_code, sform_code, pixdim, quaternion, srows, name) * SPACE_UNITS_TO_MM[units]
    matrix[3] = [0.0, 0.0, 0.0, 1.0]
    return NiftiHeader(dtype, shape_kji, offset, scale, Geometry(matrix, shape_kji))


def _byte_order(raw: bytes, name: str) -> str:
    for endian in "<>":
        size = struct.unpack(endian + "i", raw[:4])[0]
        if size == HEADER_BYTES:
            return endian
        if size == 540:
            raise InputError(f"'{name}' is a NIfTI-2 image; this tool reads NIfTI-1. Save it as NIfTI-1 (most tools "
                             f"do by default).")
    raise InputError(f"'{name}' is not a NIfTI image (its first four bytes are not the header size 348). The file "
                     f"is damaged or has another format.")


def _voxel_type(datatype: int, bitpix: int, name: str) -> np.dtype:
    if datatype not in DATATYPES:
        raise InputError(f"'{name}': NIfTI datatype {datatype} is not a one-value-per-voxel number type this tool "
                         f"reads (colour, complex or a damaged header).")
    dtype = np.dtype(DATATYPES[datatype])
    if bitpix != 8 * dtype.itemsize:
        raise InputError(f"'{name}': its bitpix ({bitpix}) does not fit its datatype ({datatype}); the header is "
                         f"damaged.")
    return dtype


def _shape(dim: tuple[int, ...], name: str) -> tuple[int, int, int]:
    rank = dim[0]
    if not 1 <= rank <= 7 or any(size < 1 for size in dim[1:rank + 1]):
        raise InputError(f"'{name}': its dim field {list(dim)} is not a valid NIfTI image size; the header is "
                         f"damaged.")
    sizes = list(dim[1:rank + 1]) + [1] * (7 - rank)
    if rank < 3 or any(size != 1 for size in sizes[3:]):
        raise InputError(f"'{name}' is a {rank}-D image of size {' x '.join(map(str, dim[1:rank + 1]))}; a 3-D "
                         f"volume is needed.")
    return int(sizes[2]), int(sizes[1]), int(sizes[0])


def _voxel_offset(vox_offset: float, name: str) -> int:
    if not np.isfinite(vox_offset) or vox_offset != int(vox_offset) or vox_offset < HEADER_BYTES + 4:
        raise InputError(f"'{name}': its vox_offset ({vox_offset}) is not where NIfTI voxel data can start (a whole "
                         f"number from 352 on); the header is damaged.")
    return int(vox_offset)


def _scaling(slope: float, intercept: float, name: str) -> tuple[float, float] | None:
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise InputError(f"'{name}': its scl_slope/scl_inter ({slope}, {intercept}) are not finite, so the voxel "
                         f"values cannot be known. The header is damaged.")
    if slope == 0 or (slope == 1 and intercept == 0):
        return None  # NIfTI-1: a zero slope means the values are stored as they are
    return float(slope), float(intercept)


def _grid(qform_code: int, sform_code: int, pixdim: tuple[float, ...], quaternion: tuple[float, ...],
          srows: tuple[float, ...], name: str) -> np.ndarray:
    """The IJK-to-RAS matrix (4 x 4) by the NIfTI-1 rules in the module docstring."""
    for field_name, code in (("qform_code", qform_code), ("sform_code", sform_code)):
        if code not in XFORM_CODES:
            raise InputError(f"'{name}': its {field_name} is {code}; NIfTI-1 defines 0 to 4. The header is damaged.")
    if qform_code == 0 and sform_code == 0:
        raise InputError(f"'{name}' states no orientation (qform_code and sform_code are both 0), so where its "
                         f"voxels lie is not known. Re-save it with the program that made it (it should set a "
                         f"qform or sform).")
    qform = _qform(pixdim, quaternion, name) if qform_code > 0 else None
    if sform_code == 0:
        return qform
    sform = np.eye(4)
    sform[:3] = np.asarray(srows, dtype=float).reshape(3, 4)
    check_axes(sform[:3, :3], name, "srow_x/srow_y/srow_z (sform)")
    spacing = np.linalg.norm(sform[:3, :3], axis=0)
    stated = np.asarray(pixdim[1:4], dtype=float)
    if not np.allclose(stated, spacing, rtol=SAME_SPACING_RELATIVE, atol=0):
        raise InputError(f"'{name}' contradicts itself: pixdim gives voxels of {_mm(stated)} mm but the sform "
                         f"(srow_x/y/z) gives {_mm(spacing)} mm, and readers differ in which they use. Re-save it "
                         f"with the program that made it, or set pixdim to the sform's voxel size.")
    if qform is not None and not _same_grid(qform, sform):
        raise InputError(f"'{name}' contradicts itself: its qform and its sform (both marked valid by qform_code "
                         f"and sform_code) place the voxels differently, and readers differ in which they use. "
                         f"Re-save it with one of them, or with both set alike.")
    return sform


def _qform(pixdim: tuple[float, ...], quaternion: tuple[float, ...], name: str) -> np.ndarray:
    spacing = np.asarray(pixdim[1:4], dtype=float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"'{name}': its pixdim (voxel size {_mm(spacing)} mm) is not three finite numbers above 0; "
                         f"no voxel size is assumed. The header is damaged.")
    b, c, d, *offset = (float(value) for value in quaternion)
    if not np.all(np.isfinite([b, c, d, *offset])):
        raise InputError(f"'{name}': its quatern_b/c/d or qoffset_x/y/z are not finite. The header is damaged.")
    squares = b * b + c * c + d * d
    if squares > 1.0 + 1e-4:
        raise InputError(f"'{name}': its quatern_b/c/d do not form a rotation (b\u00b2+c\u00b2+d\u00b2 = "
                         f"{squares:.4g} > 1). The header is damaged.")
    a = np.sqrt(max(0.0, 1.0 - squares))
    rotation = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                         [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                         [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag(spacing * [1.0, 1.0, qfac])
    matrix[:3, 3] = offset
    return matrix


def _same_grid(first: np.ndarray, second: np.ndarray) -> bool:
    linear_ok = np.allclose(first[:3, :3], second[:3, :3], rtol=0,
                            atol=SAME_SPACING_RELATIVE * float(np.abs(second[:3, :3]).max()))
    return bool(linear_ok and np.allclose(first[:3, 3], second[:3, 3], rtol=0, atol=SAME_GRID_MM))


def _mm(values: np.ndarray) -> str:
    return " x ".join(f"{value:.6g}" for value in values)
