"""The stored form of an object: a small versioned header plus a zstd frame.

Layout (all integers big-endian)::

    offset size  field
    0      4     magic  b"CKOB"
    4      1     format version (1)
    5      1     kind (1 blob, 2 tree, 3 commit)
    6      2     flags (0; any unknown bit is refused)
    8      8     length of the uncompressed canonical bytes
    16     ...   one zstd frame holding the canonical bytes

The id is computed over the *uncompressed* bytes, so the compression level
or the zstd version never changes it.  Decoding is bounded by the declared
length: a frame that expands past it is refused without inflating it.
"""

from __future__ import annotations

import io
import struct
import threading

import zstandard

from ckpt.errors import CorruptObjectError
from ckpt.objects.ids import Kind, ObjectId, object_id

MAGIC = b"CKOB"
FORMAT_VERSION = 1
HEADER = struct.Struct(">4sBBHQ")
HEADER_SIZE = HEADER.size
#: Objects larger than this are refused on read (a hostile header cannot make
#: ckpt allocate more).  Values this large are chunked before they are stored.
MAX_OBJECT_SIZE = 1 << 34
_READ_STEP = 1 << 20
COMPRESSION_LEVEL = 3

# zstd contexts are not thread-safe: each thread keeps its own.
_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def encode(kind: Kind, data: bytes, *, level: int = COMPRESSION_LEVEL) -> bytes:
    """The stored bytes of an object of ``kind`` with canonical bytes ``data``."""
    header = HEADER.pack(MAGIC, FORMAT_VERSION, int(kind), 0, len(data))
    return header + _compressor(level).compress(data)


def read_header(stored: bytes, oid: str) -> tuple[Kind, int]:
    """Parse and check the header; return (kind, uncompressed length)."""
    if len(stored) < HEADER_SIZE:
        raise CorruptObjectError(
            oid,
            "stored object is shorter than its header",
            f">= {HEADER_SIZE} bytes",
            f"{len(stored)} bytes",
        )
    magic, version, kind_code, flags, length = HEADER.unpack_from(stored)
    if magic != MAGIC:
        raise CorruptObjectError(oid, "bad magic", MAGIC.hex(), magic.hex())
    if version != FORMAT_VERSION:
        raise CorruptObjectError(
            oid,
            "unknown object format version (written by a newer ckpt?)",
            str(FORMAT_VERSION),
            str(version),
        )
    try:
        kind = Kind(kind_code)
    except ValueError:
        raise CorruptObjectError(oid, "unknown object kind", "1-3", str(kind_code)) from None
    if flags:
        raise CorruptObjectError(oid, "unknown header flags", "0", hex(flags))
    if length > MAX_OBJECT_SIZE:
        raise CorruptObjectError(
            oid, "declared size is implausibly large", f"<= {MAX_OBJECT_SIZE}", str(length)
        )
    return kind, length


def decode(stored: bytes, oid: str) -> tuple[Kind, bytes]:
    """Return (kind, canonical bytes) of a stored object.

    Raises CorruptObjectError naming ``oid`` if the header is wrong, the
    frame is damaged, or it does not expand to exactly the declared length.
    The hash is not checked here; see :func:`decode_verified`.
    """
    kind, length = read_header(stored, oid)
    frame = memoryview(stored)[HEADER_SIZE:]
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(frame), read_across_frames=False
        )
        out = bytearray()
        while len(out) <= length:
            piece = reader.read(min(_READ_STEP, length + 1 - len(out)))
            if not piece:
                break
            out += piece
    except zstandard.ZstdError as exc:
        raise CorruptObjectError(oid, f"damaged zstd frame: {exc}") from exc
    if len(out) != length:
        got = f"more than {length}" if len(out) > length else str(len(out))
        raise CorruptObjectError(
            oid, "uncompressed size differs from the header", f"{length} bytes", f"{got} bytes"
        )
    if not length:
        _check_empty_frame(frame, oid)
    return kind, bytes(out)


def _check_empty_frame(frame: memoryview, oid: str) -> None:
    """Refuse an empty object's frame that is damaged or followed by other bytes.

    The reader above stops at the end of an empty frame without looking past
    it.  Decoding the frame again is cheap: it is known to expand to nothing.
    """
    dobj = zstandard.ZstdDecompressor().decompressobj()
    try:
        dobj.decompress(frame)
    except zstandard.ZstdError as exc:
        raise CorruptObjectError(oid, f"damaged zstd frame: {exc}") from exc
    if not dobj.eof or dobj.unused_data:
        raise CorruptObjectError(oid, "damaged zstd frame: bytes after the end of the frame")


def decode_verified(stored: bytes, oid: ObjectId) -> tuple[Kind, bytes]:
    """Like :func:`decode`, and check that the bytes hash to ``oid``."""
    kind, data = decode(stored, oid)
    actual = object_id(kind, data)
    if actual != oid:
        raise CorruptObjectError(oid, "content does not match its id", oid, actual)
    return kind, data
