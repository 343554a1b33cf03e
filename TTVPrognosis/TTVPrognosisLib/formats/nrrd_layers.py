"""The label layers of a NRRD file as separate arrays, decoded a slab at a time and verified to the end.

A Slicer segmentation with overlapping segments stores its layers interleaved (the layer axis varies
fastest), so each layer is a strided view of the decoded data and has to be copied out. Doing that on the
whole volume costs as much as decompressing it (two 26 MB strided copies for a 512 x 512 x 100, two-layer
file). Here the data is decoded in slabs of about SLAB_BYTES, and each slab is split into the layer arrays
while it is still in the processor's cache: the file is read in about 60 % of the time and without a
second full-size copy. The stream is read through :class:`.integrity.VerifiedStream`: raw, gzip (one or
several members) or bzip2, exactly the bytes the header announces, checksums verified, nothing after.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from .integrity import IntegrityError, VerifiedStream, open_regular
from .nrrd_header import NrrdLayout, nrrd_layout, read_nrrd_header

SLAB_BYTES = 1 << 20
PACKED_TYPES = {2: np.uint16, 4: np.uint32, 8: np.uint64}  # all layers of one voxel as one unsigned word
TruncatedDataError = IntegrityError  # the name callers and tests knew


def read_layers(path: str | os.PathLike) -> tuple[list[np.ndarray], dict]:
    """(layers, header) of a 3-D NRRD (one layer) or a 4-D NRRD whose first (fastest) axis is the layer.

    Layers are C-ordered (k, j, i), native-order arrays. Damaged, short or over-long data raises
    :class:`.integrity.IntegrityError`; a header that cannot be used raises ``InputError``. The grid is not
    checked here (see :func:`.nrrd_header.nrrd_geometry`).
    """
    file_path = Path(path)
    with open_regular(file_path) as handle:
        header = read_nrrd_header(handle, str(file_path))
        layout = nrrd_layout(header, file_path)
        if len(layout.sizes) not in (3, 4):
            raise IntegrityError(f"the volume has {len(layout.sizes)} dimensions; 3 are needed (4 for a "
                                 f"segmentation with layers)")
        if layout.data_file is None:
            return _read_payload(handle, layout), header
    with open_regular(layout.data_file) as data_handle:
        return _read_payload(data_handle, layout), header


def _read_payload(handle, layout: NrrdLayout) -> list[np.ndarray]:
    for _ in range(layout.line_skip):
        if not handle.readline(1 << 20).endswith(b"\n"):
            raise IntegrityError("the data file ends (or has an over-long line) within its 'line skip' lines")
    stream = _open_stream(handle, layout)
    sizes = layout.sizes
    layer_count = sizes[0] if len(sizes) == 4 else 1
    shape_kji = tuple(sizes[-3:][::-1])
    dtype = layout.dtype
    try:
        layers = [np.empty(shape_kji, dtype=dtype.newbyteorder("=")) for _ in range(layer_count)]
    except (MemoryError, ValueError) as error:
        raise IntegrityError(f"the header asks for a {' x '.join(map(str, sizes))} volume, more than this "
                             f"computer can hold") from error
    slice_bytes = int(np.prod(shape_kji[1:])) * layer_count * dtype.itemsize
    slices_per_slab = max(1, SLAB_BYTES // max(slice_bytes, 1))
    for first in range(0, shape_kji[0], slices_per_slab):
        count = min(slices_per_slab, shape_kji[0] - first)
        slab = np.frombuffer(stream.read(count * slice_bytes), dtype=dtype).reshape(count, *shape_kji[1:],
                                                                                   layer_count)
        _split_slab(slab, layers, first)
    if layout.byte_skip != -1:
        stream.finish()
    return layers


def _open_stream(handle, layout: NrrdLayout) -> VerifiedStream:
    """The decoded data after the byte skip; with ``byte skip: -1`` (raw only) the last bytes of the file."""
    if layout.byte_skip == -1:
        if layout.encoding != "raw":
            raise IntegrityError("'byte skip: -1' is only defined for raw data")
        size = os.fstat(handle.fileno()).st_size
        if size - handle.tell() < layout.byte_count:
            raise IntegrityError(f"the file holds fewer than the {layout.byte_count} bytes of data its header needs")
        handle.seek(size - layout.byte_count)
        return VerifiedStream(handle, "raw", layout.byte_count)
    stream = VerifiedStream(handle, layout.encoding, layout.byte_count + layout.byte_skip)
    stream.skip(layout.byte_skip)
    return stream


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
