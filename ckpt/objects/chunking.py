"""Content-defined chunking of large blobs, and the chunk list that names the pieces.

A blob of at least :data:`CHUNK_THRESHOLD` bytes is cut into chunks at
positions chosen by its content, so that a value which changes a little
(a message appended to a list, a field edited in the middle) keeps almost
all of its chunks: only the chunks around the change are new.

**Cut points.**  Each byte is mapped to one bit by a fixed table
(:data:`BIT_TABLE`, part of the format); a position is a *candidate* when
the bits of the :data:`WINDOW` bytes ending there spell :data:`PATTERN`
(a one followed by zeros, which cannot overlap itself), which happens with
probability ``2**-WINDOW`` on varied data.  Candidates depend only on the
window's bytes, so an insertion moves cut points only near it.  Going from
the start, the next cut is the first candidate at least :data:`MIN_CHUNK`
bytes after the previous cut, or the position :data:`MAX_CHUNK` bytes after
it if no candidate comes first (data without candidates, e.g. all zeros,
is cut in pieces of exactly ``MAX_CHUNK``).  The bytes after the last cut
are the *tail*.  Finding candidates uses ``bytes.translate`` and
``bytes.find`` (C speed), never a Python loop per byte.

**Chunk list** (the payload of a chunked blob, big-endian)::

    4 bytes   number of chunks N
    N times:  32 bytes chunk id (raw blake3), 4 bytes chunk length
    rest      the tail, stored inline

The chunks concatenated, then the tail, are the blob's canonical bytes.
Chunks are objects of kind ``chunk``; the tail is kept inline because it is
the part that changes when a value grows, and the chunk list is delta
encoded against the previous version (see :mod:`ckpt.objects.delta`).
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterator

import blake3

from ckpt.errors import CorruptObjectError
from ckpt.objects.ids import ObjectId

#: Blobs of at least this many bytes are chunked.
CHUNK_THRESHOLD = 64 * 1024
MIN_CHUNK = 16 * 1024
MAX_CHUNK = 128 * 1024
#: Width of the content window in bytes; a candidate every 2**WINDOW bytes.
WINDOW = 14
PATTERN = b"1" + b"0" * (WINDOW - 1)
#: Byte -> "0"/"1": 256 bits of blake3 of a fixed label.  Changing it changes
#: where values are cut (never an id), so it is fixed as part of the format.
_TABLE_BITS = blake3.blake3(b"ckpt chunking bit table v1").digest(length=32)
BIT_TABLE = bytes(
    ord("1") if (_TABLE_BITS[i >> 3] >> (i & 7)) & 1 else ord("0") for i in range(256)
)
_TRANSLATE = bytes.maketrans(bytes(range(256)), BIT_TABLE)
_SCAN_BLOCK = 8 << 20
#: A save that makes at most FEW_CHUNKS new chunks compresses them at this level.
FEW_CHUNKS = 2
FEW_CHUNKS_LEVEL = 9
#: A chunk stored as a delta against the chunk before it has a chain of bases at most
#: this deep (so reading a value decodes at most this many objects per chunk, however
#: long its history).
CHUNK_CHAIN = 16
#: Likewise for a chunk stored as a delta against the previous version of its value.
#: Lower bounds load latest tighter (4: about 25% faster for W1) but stores more
#: (4: W1 4.0x of zstd(final state) instead of 3.8x).
VERSION_BASE_CHAIN = 16

_COUNT = struct.Struct(">I")
_ENTRY = struct.Struct(">32sI")


def candidates(data: bytes | memoryview) -> Iterator[int]:
    """Positions just after each occurrence of the window pattern, in order."""
    view = memoryview(data)
    size = len(view)
    start = 0
    while start < size:
        # Overlap blocks by WINDOW - 1 bytes so a pattern across a seam is found once.
        lo = max(0, start - (WINDOW - 1))
        block = bytes(view[lo : min(size, start + _SCAN_BLOCK)]).translate(_TRANSLATE)
        at = block.find(PATTERN)
        while at != -1:
            end = lo + at + WINDOW
            if end > start:
                yield end
            at = block.find(PATTERN, at + 1)
        start += _SCAN_BLOCK


def cut_points(data: bytes | memoryview) -> list[int]:
    """Offsets where chunks end (ascending); bytes after the last one are the tail.

    The cuts are those the rule above picks from :func:`candidates`; the
    search skips the first ``MIN_CHUNK`` bytes after each cut, where no
    candidate can be picked, instead of visiting every candidate.
    """
    view = memoryview(data)
    size = len(view)
    cuts: list[int] = []
    last = 0
    start = 0
    while start < size:
        # Blocks overlap by WINDOW - 1 bytes so that a pattern across a seam is found.
        lo = max(0, start - (WINDOW - 1))
        block = bytes(view[lo : min(size, start + _SCAN_BLOCK)]).translate(_TRANSLATE)
        # Only candidates ending after ``start`` belong to this block.
        at = max(0, start - lo - WINDOW + 1, last + MIN_CHUNK - WINDOW - lo)
        while (at := block.find(PATTERN, at)) != -1:
            candidate = lo + at + WINDOW
            while candidate - last > MAX_CHUNK:
                last += MAX_CHUNK
                cuts.append(last)
            if candidate - last >= MIN_CHUNK:
                cuts.append(candidate)
                last = candidate
            at = max(at + 1, last + MIN_CHUNK - WINDOW - lo)
        start += _SCAN_BLOCK
    while size - last > MAX_CHUNK:
        last += MAX_CHUNK
        cuts.append(last)
    return cuts


def cut_points_from(data: bytes | memoryview, start: int) -> list[int]:
    """The cut points of ``data`` after ``start``, where ``start`` is known to be one.

    A cut depends only on the bytes since the previous cut (a candidate's
    window lies at least ``MIN_CHUNK - WINDOW`` bytes past it), so the cuts of
    a value that shares its first ``start`` bytes with one already cut at
    ``start`` are that value's cuts up to ``start`` followed by these.
    """
    view = memoryview(data)
    return [start + cut for cut in cut_points(view[start:])]


class CutMemo:
    """Cut points and chunk ids of the values this process chunked last.

    A value saved again with bytes appended (a growing state) starts with the
    bytes of its previous version up to that version's last cut: only the
    rest is cut and hashed again.  Keeps at most :data:`MEMO_VALUES` values
    and :data:`MEMO_BYTES` bytes (larger values are not kept).
    """

    def __init__(self) -> None:
        self._values: OrderedDict[str, tuple[bytes, list[int], list[ObjectId]]] = OrderedDict()
        self._size = 0

    def get(self, oid: str) -> tuple[bytes, list[int], list[ObjectId]] | None:
        found = self._values.get(oid)
        if found is not None:
            self._values.move_to_end(oid)
        return found

    def put(self, oid: str, data: bytes, cuts: list[int], ids: list[ObjectId]) -> None:
        if len(data) > MEMO_BYTES // 4 or oid in self._values:
            return
        self._values[oid] = (data, cuts, ids)
        self._size += len(data)
        while self._size > MEMO_BYTES or len(self._values) > MEMO_VALUES:
            _, (old, _, _) = self._values.popitem(last=False)
            self._size -= len(old)


#: At most this many values, and this many bytes of them, in a :class:`CutMemo`.
MEMO_VALUES = 8
MEMO_BYTES = 64 << 20


def encode_list(chunks: list[tuple[ObjectId, int]], tail: bytes | memoryview) -> bytes:
    """The chunk list payload naming ``chunks`` (id, length), then ``tail``."""
    parts = [_COUNT.pack(len(chunks))]
    parts.extend(_ENTRY.pack(bytes.fromhex(cid), length) for cid, length in chunks)
    parts.append(bytes(tail))
    return b"".join(parts)


def decode_list(
    payload: bytes | memoryview, length: int, oid: str
) -> tuple[list[tuple[ObjectId, int]], memoryview]:
    """Parse a chunk list; check it adds up to ``length`` canonical bytes.

    Raises CorruptObjectError naming ``oid`` for any inconsistency.
    """
    view = memoryview(payload)
    if len(view) < _COUNT.size:
        raise CorruptObjectError(oid, "chunk list is truncated")
    (count,) = _COUNT.unpack_from(view)
    end = _COUNT.size + count * _ENTRY.size
    if end > len(view):
        raise CorruptObjectError(
            oid, "chunk list is truncated", f"{count} entries", f"{len(view)} bytes"
        )
    chunks: list[tuple[ObjectId, int]] = []
    total = 0
    for index in range(count):
        raw, size = _ENTRY.unpack_from(view, _COUNT.size + index * _ENTRY.size)
        if not 0 < size <= MAX_CHUNK:
            raise CorruptObjectError(oid, f"chunk {index} has an invalid length", "", str(size))
        chunks.append((ObjectId(bytes(raw).hex()), size))
        total += size
    tail = view[end:]
    if total + len(tail) != length:
        raise CorruptObjectError(
            oid,
            "chunk list does not add up to the object's length",
            str(length),
            str(total + len(tail)),
        )
    return chunks, tail
