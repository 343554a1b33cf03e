"""The label layers of a NRRD file as separate arrays, decompressed a slab at a time.

A Slicer segmentation with overlapping segments stores its layers interleaved (the layer axis varies
fastest), so each layer is a strided view of the decompressed data and has to be copied out. Doing that
on the whole volume costs as much as decompressing it (two 26 MB strided copies for a 512 x 512 x 100,
two-layer file). Here the gzip stream is decompressed in slabs of about SLAB_BYTES, and each slab is split
into the layer arrays while it is still in the processor's cache: the file is read in about 60 % of the
time and without a second full-size copy. Files this path does not cover (raw, bzip2 or text encodings,
detached data, skips, non-integer types) are read by pynrrd, with the same result.
"""

from __future__ import annotations

import os
import sys
import zlib

import numpy as np

SLAB_BYTES = 1 << 20
# NRRD type names of the integer types (the label types) and their numpy codes (pynrrd knows the rest).
INTEGER_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
}
PACKED_TYPES = {2: np.uint16, 4: np.uint32, 8: np.uint64}  # all layers of one voxel as one unsigned word


class TruncatedDataError(ValueError):
    """The compressed data does not hold exactly the volume (it ends early, lacks its end, or holds more)."""


def read_layers(path: str | os.PathLike) -> tuple[list[np.ndarray], dict]:
    """(layers, header) of a 3-D NRRD (one layer) or a 4-D NRRD whose first (fastest) axis is the layer.

    Layers are C-ordered (k, j, i) arrays. pynrrd's errors and ``zlib.error`` pass through for the caller
    to explain; a stream that ends early raises :class:`TruncatedDataError`.
    """
    import nrrd

    with open(path, "rb") as handle:
        header = nrrd.read_header(handle)
        dtype = _streamable_dtype(header)
        if dtype is None:
            return _split_whole(nrrd.read_data(header, handle, str(path), index_order="C")), header
        compressed = handle.read()
    sizes = [int(size) for size in header["sizes"]]
    layer_count = sizes[0] if len(sizes) == 4 else 1
    shape_kji = tuple(sizes[-3:][::-1])
    layers = [np.empty(shape_kji, dtype=dtype.newbyteorder("=")) for _ in range(layer_count)]
    slice_bytes = int(np.prod(shape_kji[1:])) * layer_count * dtype.itemsize
    slices_per_slab = max(1, SLAB_BYTES // max(slice_bytes, 1))
    stream = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, as pynrrd accepts
    pending = compressed
    for first in range(0, shape_kji[0], slices_per_slab):
        count = min(slices_per_slab, shape_kji[0] - first)
        wanted = count * slice_bytes
        data = stream.decompress(pending, wanted)
        pending = stream.unconsumed_tail
        while len(data) < wanted and pending:  # rarely: the output stopped short of the slab
            data += stream.decompress(pending, wanted - len(data))
            pending = stream.unconsumed_tail
        if len(data) < wanted:
            raise TruncatedDataError(f"the compressed data ends after {first * slice_bytes + len(data)} of "
                                     f"{shape_kji[0] * slice_bytes} bytes")
        slab = np.frombuffer(data, dtype=dtype).reshape(count, *shape_kji[1:], layer_count)
        _split_slab(slab, layers, first)
    _finish_stream(stream, pending)
    return layers, header


def _finish_stream(stream, pending: bytes) -> None:
    """Read the stream to its end, so that gzip's checksum and length are checked: damaged data can still
    inflate to the right number of bytes (wrong ones), and only the checksum tells. ``zlib.error`` passes
    through ("incorrect data check"); data beyond the volume is damage too."""
    if stream.decompress(pending, 1):  # one byte tells; a stream far longer than its header says is not inflated
        raise TruncatedDataError("the compressed data holds more bytes than the volume's size")
    if not stream.eof:
        raise TruncatedDataError("the compressed data ends before its end mark and checksum")


def _streamable_dtype(header: dict) -> np.dtype | None:
    """The voxel type when this module can decompress the file in slabs; None when pynrrd should read it."""
    code = INTEGER_TYPES.get(str(header.get("type", "")))
    sizes = header.get("sizes")
    if (code is None or header.get("encoding") not in ("gzip", "gz") or sizes is None or len(sizes) not in (3, 4)
            or header.get("data file", header.get("datafile")) is not None
            or int(header.get("line skip", header.get("lineskip", 0))) != 0
            or int(header.get("byte skip", header.get("byteskip", 0))) != 0):
        return None
    dtype = np.dtype(code)
    if dtype.itemsize > 1:
        endian = header.get("endian")
        if endian not in ("little", "big"):
            return None  # pynrrd reports the missing or invalid field
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    return dtype


def _split_slab(slab: np.ndarray, layers: list[np.ndarray], first: int) -> None:
    """Copy a (slices, j, i, layer) slab into the layer arrays from slice ``first`` on.

    Unsigned layers whose voxel fits one machine word (e.g. two 8-bit layers: 16 bits) are split with
    shifts and masks on that word, which numpy vectorises; other types take a strided copy.
    """
    count, layer_count = slab.shape[0], slab.shape[-1]
    targets = [layer[first:first + count] for layer in layers]
    packed_type = PACKED_TYPES.get(slab.dtype.itemsize * layer_count)
    if layer_count == 1:
        targets[0][...] = slab[..., 0]
    elif packed_type is not None and slab.dtype.kind == "u" and slab.dtype.isnative and sys.byteorder == "little":
        packed = slab.view(packed_type)[..., 0]  # layer 0 in the lowest bits (little-endian)
        bits = 8 * slab.dtype.itemsize
        mask = packed_type((1 << bits) - 1)
        for index, target in enumerate(targets):
            shifted = packed if index == 0 else packed >> packed_type(bits * index)
            if index == layer_count - 1:
                np.copyto(target, shifted, casting="unsafe")
            else:
                np.bitwise_and(shifted, mask, out=target, casting="unsafe")
    else:
        for index, target in enumerate(targets):
            target[...] = slab[..., index]


def _split_whole(voxels: np.ndarray) -> list[np.ndarray]:
    if voxels.ndim == 4:
        return [np.ascontiguousarray(voxels[..., index]) for index in range(voxels.shape[-1])]
    return [voxels]
