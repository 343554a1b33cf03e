"""Byte streams read to the last checksum: what keeps a damaged file from becoming a wrong number.

SimpleITK does not check the gzip CRC of ``.nii.gz``/``.nrrd`` files or the zlib Adler-32 of compressed
MetaImages, and reads a file longer or shorter than its header says: a cut or a flipped bit became a
plausible TTV. Here every payload is decoded with Python's zlib/bz2, which check the checksums when a
stream is read to its end, and it must hold exactly the bytes its header announces:

- gzip streams may hold several members (valid: made by concatenation) and each is read in turn;
- anything after the last member, a stream without its end mark, or more data than announced is refused;
- every step consumes input or yields output, so no byte sequence makes a loop spin;
- output is never larger than the header announced, and a header announcing more than its compressed
  data can hold (deflate expands at most 1032-fold) is refused before anything is allocated.

Special files (FIFOs, devices, sockets) are refused before they are opened: reading a FIFO waits forever.

Inflating uses zlib-ng when installed (the same format and checks, up to 30x faster on the long runs of one
label value that ITK-written files hold; Slicer does not bundle it, so Python's zlib is the fallback).
"""

from __future__ import annotations

import bz2
import os
import stat
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputError

INPUT_CHUNK = 1 << 20
OUTPUT_CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
AUTO_GZIP_OR_ZLIB = zlib.MAX_WBITS | 32
DEFLATE_MAX_RATIO = 1032  # deflate's largest expansion: 258 bytes from one 2-bit code, plus slack
ENCODINGS = ("raw", "gzip", "zlib", "bzip2")


class IntegrityError(ValueError):
    """The data of a file is damaged, incomplete or longer than its header says (a plain-English reason)."""


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def require_regular_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it is a regular file (symbolic links followed); checked without opening it."""
    file_path = Path(path)
    try:
        mode = os.stat(file_path).st_mode
    except FileNotFoundError:
        raise InputError(f"File not found: '{file_path}'. Check the path (relative paths start from "
                         f"'{Path.cwd()}').") from None
    except OSError as error:
        raise InputError(f"Cannot read '{file_path}': {error.strerror}.") from error
    except ValueError:  # a NUL byte: a data file name taken from a damaged header
        raise InputError(f"'{str(file_path)[:200]!r}' is not a valid file name; if it comes from a header "
                         f"(a data file named there), the header is damaged.") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "not a regular file")
        if stat.S_ISDIR(mode):
            kind = "a folder"
        raise InputError(f"'{file_path}' is {kind}, not a regular file. Give the path of an image or "
                         f"segmentation file saved on disk.")
    return file_path


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading; a file swapped for a FIFO after the check still cannot block."""
    file_path = require_regular_file(path)
    try:
        # O_BINARY: on Windows a descriptor is opened in text mode (line ends translated) unless told otherwise
        descriptor = os.open(file_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as error:
        raise InputError(f"Cannot read '{file_path}': {error.strerror}.") from error
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise InputError(f"'{file_path}' is not a regular file. Give the path of a file saved on disk.")
    if hasattr(os, "set_blocking"):
        os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


class VerifiedStream:
    """The decoded bytes of a payload, read in order; :meth:`finish` proves the stream ended exactly there.

    ``encoding``: ``raw``, ``gzip`` (gzip members or one zlib stream, as NRRD readers accept), ``zlib``
    (MetaImage; a gzip stream is accepted too, as ITK does) or ``bzip2``. ``handle`` is positioned at the
    payload; it is read in chunks, so memory holds at most one chunk of compressed input.
    """

    def __init__(self, handle: BinaryIO, encoding: str, announced_bytes: int | None) -> None:
        if encoding not in ENCODINGS:
            raise IntegrityError(f"the data encoding '{encoding}' is not supported")
        self._handle = handle
        self._encoding = encoding
        self._pending = b""
        self._decoder = None
        self._gzip = False
        self._input_exhausted = False
        self._announced = 0
        self._decoded = 0
        self._zlib = _zlib()
        if encoding != "raw":
            while len(self._pending) < 2 and not self._input_exhausted:
                self._pending += self._next_input()
            self._gzip = self._pending[:2] == GZIP_MAGIC
            self._decoder = self._new_decoder()
        if announced_bytes is not None:
            self.announce(announced_bytes)

    def announce(self, total_bytes: int) -> None:
        """The decoded size the header states (counted from the stream's start): refused at once when the
        file cannot hold it, so nothing is allocated for a header that lies."""
        self._announced = total_bytes
        try:
            remaining = os.fstat(self._handle.fileno()).st_size - self._handle.tell() + len(self._pending)
        except (OSError, AttributeError, ValueError):
            return  # not a plain file handle: the stream checks as it goes
        announced_bytes = total_bytes - self._decoded
        if self._encoding == "raw" and announced_bytes > remaining:
            raise IntegrityError(f"the file holds {max(remaining, 0)} bytes of data where its header needs "
                                 f"{announced_bytes}: it is cut short or its header is wrong")
        if self._encoding in ("gzip", "zlib") and announced_bytes > max(remaining, 0) * DEFLATE_MAX_RATIO + (1 << 16):
            raise IntegrityError(f"the header announces {announced_bytes} bytes of data, more than its "
                                 f"{max(remaining, 0)} compressed bytes can hold: the file is cut short or its "
                                 f"header is wrong")

    def _next_input(self) -> bytes:
        if self._input_exhausted:
            return b""
        chunk = self._handle.read(INPUT_CHUNK)
        if not chunk:
            self._input_exhausted = True
        return chunk

    def _new_decoder(self):
        if self._encoding == "bzip2":
            return bz2.BZ2Decompressor()
        return self._zlib.decompressobj(AUTO_GZIP_OR_ZLIB)

    def _decode_some(self, limit: int) -> bytes:
        """Up to ``limit`` (> 0) decoded bytes; b"" only at the end of the data (complete or not)."""
        output = self._decode_more(limit)
        self._decoded += len(output)
        return output

    def _decode_more(self, limit: int) -> bytes:
        if self._encoding == "raw":
            return self._handle.read(limit)
        while True:
            decoder = self._decoder
            if decoder.eof:
                rest = decoder.unused_data
                if not rest:
                    rest = self._next_input()
                magic = BZIP2_MAGIC if self._encoding == "bzip2" else GZIP_MAGIC
                if rest and (self._gzip or self._encoding == "bzip2") and rest[:len(magic)] == magic[:len(rest)]:
                    self._decoder, self._pending = self._new_decoder(), rest  # the next member
                    continue
                self._pending = rest  # trailing bytes, if any: finish() refuses them
                return b""
            if not self._pending and self._needs_input(decoder):
                self._pending = self._next_input()  # b"" at the end: the decoder may still hold output
            before = len(self._pending)
            try:
                output = self._run_decoder(decoder, limit)
            except (self._zlib.error, zlib.error, OSError, EOFError) as error:
                raise IntegrityError(_decoder_message(self._encoding, error)) from error
            if output:
                return output
            if decoder.eof:
                continue
            if not self._pending and self._input_exhausted:
                return b""  # input ended inside a member: finish() says so
            if len(self._pending) >= before:  # neither output nor input used: stop rather than spin
                raise IntegrityError("the compressed data could not be decoded (no progress)")

    def _needs_input(self, decoder) -> bool:
        return decoder.needs_input if self._encoding == "bzip2" else True

    def _run_decoder(self, decoder, limit: int) -> bytes:
        if self._encoding == "bzip2":
            data, self._pending = self._pending, b""
            return decoder.decompress(data, limit)
        output = decoder.decompress(self._pending, limit)
        self._pending = decoder.unconsumed_tail if not decoder.eof else b""
        return output

    def read(self, size: int) -> bytes:
        """Exactly ``size`` decoded bytes, or :class:`IntegrityError` when the data ends first."""
        parts, count = [], 0
        while count < size:
            chunk = self._decode_some(size - count)
            if not chunk:
                raise IntegrityError(self._short_message())
            parts.append(chunk)
            count += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def skip(self, size: int) -> None:
        while size > 0:
            size -= len(self.read(min(size, OUTPUT_CHUNK)))

    def read_into(self, target: np.ndarray) -> None:
        """Fill a contiguous array with the next ``target.nbytes`` decoded bytes."""
        flat = target.reshape(-1).view(np.uint8)
        if self._encoding == "raw":
            done = 0
            while done < flat.size:
                count = self._handle.readinto(memoryview(flat[done:]))
                if not count:
                    raise IntegrityError(self._short_message())
                done += count
                self._decoded += count
            return
        done = 0
        while done < flat.size:
            chunk = self._decode_some(min(OUTPUT_CHUNK, flat.size - done))
            if not chunk:
                raise IntegrityError(self._short_message())
            flat[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            done += len(chunk)

    def _short_message(self) -> str:
        kind = "data" if self._encoding == "raw" else "compressed data"
        if self._announced > self._decoded:
            return f"the {kind} ends after {self._decoded} of {self._announced} bytes: the file is cut short"
        return f"the {kind} ends after {self._decoded} bytes, inside its header: the file is cut short"

    def finish(self) -> None:
        """The data must end here: no more decoded bytes, the stream's end mark and checksum read, nothing after."""
        if self._decode_some(1):
            raise IntegrityError("the file holds more data than its header says (wrong size fields, or two "
                                 "files joined)")
        if self._encoding == "raw":
            return
        if not self._decoder.eof:
            raise IntegrityError("the compressed data ends before its end mark and checksum: the file is cut short")
        if self._pending or self._next_input():
            raise IntegrityError("there are stray bytes after the end of the compressed data (the file was "
                                 "damaged or something was appended to it)")


def _zlib():
    """zlib-ng's drop-in zlib module when installed, else Python's."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return zlib
    return zlib_ng


def _decoder_message(encoding: str, error: Exception) -> str:
    text = str(error)
    if "incorrect data check" in text or "incorrect length check" in text or "Invalid data stream" in text:
        return f"the {encoding} data fails its checksum: the file is damaged"
    return f"the {encoding} data is damaged ({text})"


def decode_array(stream: VerifiedStream, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The next ``prod(shape)`` values of ``dtype`` from ``stream``, as a native-order, writeable array."""
    try:
        values = np.empty(shape, dtype=dtype)
    except (MemoryError, ValueError) as error:
        raise IntegrityError(f"the header asks for {shape} values, more than this computer can hold") from error
    stream.read_into(values)
    if not values.dtype.isnative:
        values = values.byteswap().view(values.dtype.newbyteorder("="))
    return values
