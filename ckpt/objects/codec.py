"""The stored form of an object: a small versioned header plus a zstd frame.

Layout (all integers big-endian)::

    offset size  field
    0      4     magic  b"CKOB"
    4      1     format version (1 or 2)
    5      1     kind (1 blob, 2 tree, 3 commit, 4 chunk)
    6      2     flags (version 1: always 0)
    8      8     length of the uncompressed canonical bytes
    -- version 2 only, each field present only with its flag --
    +0     8     length of the payload (what the frame holds), with FLAG_CHUNKED
    +0     32    base object id (raw), with FLAG_DELTA
    +32    2     delta depth (1 + the base's depth), with FLAG_DELTA
    ...    ...   one zstd frame holding the payload

The *payload* is the canonical bytes themselves, or with ``FLAG_CHUNKED`` a
chunk list (see :mod:`ckpt.objects.chunking`) that names the chunks the
canonical bytes are made of.  With ``FLAG_DELTA`` the frame was compressed
with the base object's payload as a raw zstd dictionary (see
:mod:`ckpt.objects.delta`); reading it needs the base first.

The id is computed over the *uncompressed canonical* bytes, so neither the
compression level, the zstd version, chunking nor delta encoding changes it.
Decoding is bounded by the declared lengths: a frame whose header announces
another size, or that expands past it, is refused without inflating it.
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Sequence

import attrs
import zstandard

from ckpt.errors import CorruptObjectError
from ckpt.objects.ids import Kind, ObjectId, object_id

MAGIC = b"CKOB"
FORMAT_VERSION = 1
FORMAT_VERSION_FLAGS = 2
HEADER = struct.Struct(">4sBBHQ")
HEADER_SIZE = HEADER.size
_PAYLOAD_LENGTH = struct.Struct(">Q")
_DELTA = struct.Struct(">32sH")

FLAG_CHUNKED = 0x0001
FLAG_DELTA = 0x0002
FLAG_DICT = 0x0004
KNOWN_FLAGS = FLAG_CHUNKED | FLAG_DELTA | FLAG_DICT

_HEX = "0123456789abcdef" * 4
#: Raw zstd dictionary for FLAG_DICT frames (format constant: never edit).
BUILTIN_DICTIONARY = (
    '{"stages":[["output","' + _HEX + '","dict",1024,"json"],'
    '["state","' + _HEX + '","bytes",65536,"raw"],'
    '["result","' + _HEX + '","list",20480,"json"]],"v":1}'
    '{"branch":"main","cost":0.0,"job":"job","message":"","meta":{},"parents":[],'
    '"seq":1,"stage":null,"status":"completed","time":"2026-01-01T00:00:00.000000+00:00",'
    '"tokens":0,"total_cost":0.0,"total_tokens":0,"tree":"' + _HEX + '","v":1}'
    '{"branch":"main","cost":0.0125,"job":"run","message":"","meta":{},"parents":["' + _HEX + '"],'
    '"seq":12,"stage":"state","status":"active","time":"2026-06-30T12:34:56.789012+00:00",'
    '"tokens":1000,"total_cost":0.125,"total_tokens":10000,"tree":"' + _HEX + '","v":1}'
).encode("ascii")
#: Objects at most this large (trees, commits, small blobs) use the built-in dictionary.
DICT_MAX_SIZE = 4096

#: A single frame never expands to more than this (chunked values are split
#: into frames of at most a chunk each).
MAX_PAYLOAD_SIZE = 1 << 34
#: Objects larger than this (16 GiB), chunked or not, are refused on read and on
#: write: a hostile header cannot make ckpt allocate more.
MAX_OBJECT_SIZE = MAX_PAYLOAD_SIZE
#: Delta chains are cut before they get deeper than this.
MAX_DELTA_DEPTH = 1000
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
        comp = cache[level] = zstandard.ZstdCompressor(level=level, write_checksum=True)
    return comp


def _dict_compressor(level: int) -> zstandard.ZstdCompressor:
    comp: zstandard.ZstdCompressor | None = getattr(_local, "dict_compressor", None)
    if comp is None:
        comp = _local.dict_compressor = zstandard.ZstdCompressor(
            level=level, dict_data=builtin_dictionary(), write_checksum=False
        )
    return comp


_builtin: list[zstandard.ZstdCompressionDict] = []


def builtin_dictionary() -> zstandard.ZstdCompressionDict:
    if not _builtin:
        _builtin.append(
            zstandard.ZstdCompressionDict(
                BUILTIN_DICTIONARY, dict_type=zstandard.DICT_TYPE_RAWCONTENT
            )
        )
    return _builtin[0]


def _decompressor() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if dec is None:
        dec = _local.decompressor = zstandard.ZstdDecompressor()
    return dec


@attrs.frozen
class Header:
    """What an object's stored header says."""

    kind: Kind
    length: int
    flags: int
    payload_length: int
    base: ObjectId | None
    depth: int
    size: int

    @property
    def chunked(self) -> bool:
        return bool(self.flags & FLAG_CHUNKED)

    @property
    def delta(self) -> bool:
        return self.base is not None

    @property
    def builtin_dict(self) -> bool:
        return bool(self.flags & FLAG_DICT)


def encode(kind: Kind, data: bytes, *, level: int = COMPRESSION_LEVEL) -> bytes:
    """The stored bytes of an object of ``kind`` with canonical bytes ``data`` (self-contained)."""
    header = HEADER.pack(MAGIC, FORMAT_VERSION, int(kind), 0, len(data))
    return header + _compressor(level).compress(data)


def encode_many(
    kind: Kind, pieces: Sequence[bytes | memoryview], *, level: int = COMPRESSION_LEVEL
) -> list[bytes]:
    """``[encode(kind, piece, level=level) for piece in pieces]``, compressed on every core.

    zstd compresses the pieces in its own threads (no Python per piece, no GIL).
    """
    comp = _compressor(level)
    if not pieces or not hasattr(comp, "multi_compress_to_buffer"):  # the CFFI backend lacks it
        return [encode(kind, bytes(piece), level=level) for piece in pieces]
    frames = comp.multi_compress_to_buffer(list(pieces), threads=-1)
    return [
        HEADER.pack(MAGIC, FORMAT_VERSION, int(kind), 0, len(piece)) + frames[at].tobytes()
        for at, piece in enumerate(pieces)
    ]


def encode_entry(
    kind: Kind,
    length: int,
    payload: bytes,
    *,
    chunked: bool = False,
    base: ObjectId | None = None,
    depth: int = 0,
    frame: bytes | None = None,
    level: int = COMPRESSION_LEVEL,
) -> bytes:
    """The stored bytes of an object whose frame holds ``payload``.

    ``frame`` is the already compressed payload (a delta frame, see
    :mod:`ckpt.objects.delta`); without it ``payload`` is compressed here.
    Plain objects get the version 1 header, so stores stay readable by
    older readers where the new encodings are not used.
    """
    flags = (FLAG_CHUNKED if chunked else 0) | (FLAG_DELTA if base is not None else 0)
    if frame is None:
        if not flags and len(payload) <= DICT_MAX_SIZE and kind is not Kind.CHUNK:
            frame = _dict_compressor(level).compress(payload)
            flags = FLAG_DICT
        else:
            frame = _compressor(level).compress(payload)
    if not flags:
        return HEADER.pack(MAGIC, FORMAT_VERSION, int(kind), 0, length) + frame
    parts = [HEADER.pack(MAGIC, FORMAT_VERSION_FLAGS, int(kind), flags, length)]
    if chunked:
        parts.append(_PAYLOAD_LENGTH.pack(len(payload)))
    if base is not None:
        parts.append(_DELTA.pack(bytes.fromhex(base), depth))
    parts.append(frame)
    return b"".join(parts)


def chunk_header(stored: bytes | memoryview, cid: str, size: int) -> Header:
    """The header of chunk ``cid``, listed as ``size`` bytes long; CorruptObjectError if
    the stored object is not a plain chunk of that size."""
    header = parse_header(stored, cid)
    if header.kind is not Kind.CHUNK or header.chunked or header.length != size:
        raise CorruptObjectError(
            cid,
            "not a chunk of the listed size",
            f"chunk of {size} bytes",
            f"{header.kind.label} of {header.length} bytes",
        )
    return header


def parse_header(stored: bytes | memoryview, oid: str) -> Header:
    """Parse and check the header of a stored object; raise CorruptObjectError naming ``oid``."""
    if len(stored) < HEADER_SIZE:
        raise CorruptObjectError(
            oid,
            "stored object is shorter than its header",
            f">= {HEADER_SIZE} bytes",
            f"{len(stored)} bytes",
        )
    magic, version, kind_code, flags, length = HEADER.unpack_from(stored)
    if magic != MAGIC:
        raise CorruptObjectError(oid, "bad magic", MAGIC.hex(), bytes(magic).hex())
    if version not in (FORMAT_VERSION, FORMAT_VERSION_FLAGS):
        raise CorruptObjectError(
            oid,
            "unknown object format version (written by a newer ckpt?)",
            f"{FORMAT_VERSION} or {FORMAT_VERSION_FLAGS}",
            str(version),
        )
    try:
        kind = Kind(kind_code)
    except ValueError:
        raise CorruptObjectError(oid, "unknown object kind", "1-4", str(kind_code)) from None
    if version == FORMAT_VERSION and flags:
        raise CorruptObjectError(oid, "unknown header flags", "0", hex(flags))
    if flags & ~KNOWN_FLAGS:
        raise CorruptObjectError(
            oid, "unknown header flags (written by a newer ckpt?)", hex(KNOWN_FLAGS), hex(flags)
        )
    if length > MAX_OBJECT_SIZE:
        raise CorruptObjectError(
            oid, "declared size is implausibly large", f"<= {MAX_OBJECT_SIZE}", str(length)
        )
    offset = HEADER_SIZE
    payload_length = length
    base: ObjectId | None = None
    depth = 0
    if flags & FLAG_DELTA and flags & FLAG_DICT:
        raise CorruptObjectError(oid, "header flags contradict each other", "", hex(flags))
    if version == FORMAT_VERSION_FLAGS:
        need = (
            offset
            + (_PAYLOAD_LENGTH.size if flags & FLAG_CHUNKED else 0)
            + (_DELTA.size if flags & FLAG_DELTA else 0)
        )
        if len(stored) < need:
            raise CorruptObjectError(
                oid, "stored object is shorter than its header", f">= {need} bytes",
                f"{len(stored)} bytes",
            )  # fmt: skip
        if flags & FLAG_CHUNKED:
            (payload_length,) = _PAYLOAD_LENGTH.unpack_from(stored, offset)
            offset += _PAYLOAD_LENGTH.size
        if flags & FLAG_DELTA:
            raw_base, depth = _DELTA.unpack_from(stored, offset)
            offset += _DELTA.size
            base = ObjectId(bytes(raw_base).hex())
            if not 1 <= depth <= MAX_DELTA_DEPTH:
                raise CorruptObjectError(
                    oid, "delta depth out of range", f"1-{MAX_DELTA_DEPTH}", str(depth)
                )
            if base == oid:
                raise CorruptObjectError(oid, "object is a delta against itself")
        if payload_length > MAX_PAYLOAD_SIZE:
            raise CorruptObjectError(
                oid, "declared payload size is implausibly large", f"<= {MAX_PAYLOAD_SIZE}",
                str(payload_length),
            )  # fmt: skip
    elif length > MAX_PAYLOAD_SIZE:
        raise CorruptObjectError(
            oid, "declared size is implausibly large", f"<= {MAX_PAYLOAD_SIZE}", str(length)
        )
    return Header(kind, length, flags, payload_length, base, depth, offset)


def read_header(stored: bytes | memoryview, oid: str) -> tuple[Kind, int]:
    """Parse and check the header; return (kind, uncompressed canonical length)."""
    header = parse_header(stored, oid)
    return header.kind, header.length


def decompress(
    frame: bytes | memoryview,
    expected: int,
    oid: str,
    dictionary: zstandard.ZstdCompressionDict | None = None,
    *,
    decoder: zstandard.ZstdDecompressor | None = None,
) -> bytes:
    """The content of one zstd frame that MUST expand to exactly ``expected`` bytes.

    A frame announcing another size is refused before anything is inflated;
    one without a size is first read in steps and refused once it passes
    ``expected``.  Bytes after the end of the frame, or a frame cut short,
    are refused too.  Raises CorruptObjectError naming ``oid``.
    """
    if decoder is not None:
        dec = decoder
    elif dictionary is not None:
        dec = zstandard.ZstdDecompressor(dict_data=dictionary)
    else:
        dec = _decompressor()
    try:
        announced = zstandard.frame_content_size(frame)
        if announced < 0:
            # No size in the frame header: bound the output before inflating it whole.
            probe = _bounded_stream(frame, expected, dec)
            if len(probe) != expected:
                _wrong_size(oid, expected, len(probe))
        elif announced != expected:
            _wrong_size(oid, expected, announced)
        elif expected > 0:
            # The size is announced and right: one call, which refuses a frame cut
            # short and bytes after the end of the frame (not for an empty frame,
            # which it returns at once).
            try:
                whole: bytes = dec.decompress(frame, allow_extra_data=False)
            except zstandard.ZstdError as exc:
                text = str(exc)
                if "unused data" in text:
                    raise CorruptObjectError(
                        oid, "damaged zstd frame: bytes after the end of the frame"
                    ) from exc
                if "full frame" in text:
                    raise CorruptObjectError(oid, "damaged zstd frame: it is cut short") from exc
                raise
            if len(whole) != expected:
                _wrong_size(oid, expected, len(whole))
            return whole
        stream = dec.decompressobj()
        out: bytes = stream.decompress(frame)
        if not stream.eof:
            raise CorruptObjectError(oid, "damaged zstd frame: it is cut short")
        if stream.unused_data:
            raise CorruptObjectError(oid, "damaged zstd frame: bytes after the end of the frame")
    except zstandard.ZstdError as exc:
        raise CorruptObjectError(oid, f"damaged zstd frame: {exc}") from exc
    if len(out) != expected:
        _wrong_size(oid, expected, len(out))
    return out


def _wrong_size(oid: str, expected: int, got: int) -> None:
    shown = f"more than {expected}" if got > expected else str(got)
    raise CorruptObjectError(
        oid, "uncompressed size differs from the header", f"{expected} bytes", f"{shown} bytes"
    )


def _bounded_stream(
    frame: bytes | memoryview, expected: int, dec: zstandard.ZstdDecompressor
) -> bytes:
    reader = dec.stream_reader(io.BytesIO(frame), read_across_frames=False)
    out = bytearray()
    while len(out) <= expected:
        piece = reader.read(min(_READ_STEP, expected + 1 - len(out)))
        if not piece:
            break
        out += piece
    return bytes(out)


def decode(stored: bytes | memoryview, oid: str) -> tuple[Kind, bytes]:
    """Return (kind, canonical bytes) of a self-contained stored object.

    Raises CorruptObjectError naming ``oid`` if the header is wrong, the frame
    is damaged or does not expand to exactly the declared length, or if the
    object is chunked or a delta (those are read through the
    :class:`~ckpt.objects.store.ObjectStore`, which has their parts).  The
    hash is not checked here; see :func:`decode_verified`.
    """
    header = parse_header(stored, oid)
    if header.flags & ~FLAG_DICT:
        raise CorruptObjectError(oid, "object is chunked or a delta; read it through its store")
    return header.kind, decompress_plain(stored, header, oid)


def decompress_plain(stored: bytes | memoryview, header: Header, oid: str) -> bytes:
    """The payload of a stored object that is not a delta."""
    frame = memoryview(stored)[header.size :]
    if header.builtin_dict:
        return decompress(frame, header.payload_length, oid, decoder=_dict_decompressor())
    return decompress(frame, header.payload_length, oid)


def _dict_decompressor() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "dict_decompressor", None)
    if dec is None:
        dec = _local.dict_decompressor = zstandard.ZstdDecompressor(dict_data=builtin_dictionary())
    return dec


def decode_verified(stored: bytes | memoryview, oid: ObjectId) -> tuple[Kind, bytes]:
    """Like :func:`decode`, and check that the bytes hash to ``oid``."""
    kind, data = decode(stored, oid)
    actual = object_id(kind, data)
    if actual != oid:
        raise CorruptObjectError(oid, "content does not match its id", oid, actual)
    return kind, data
