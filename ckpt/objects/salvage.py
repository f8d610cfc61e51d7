"""What a damaged pack still holds: its entries read from the front, without its index.

A pack whose index is lost (a truncated file, a damaged trailer) cannot be
searched, so every object in it reads as missing.  :func:`salvage` walks
the entries from the pack's header on, as they were written (each one a
stored object: its header, then one zstd frame whose blocks give its
length), until the data ends or stops making sense.  An entry that is
whole and self-contained (neither chunked nor a delta) is decoded and its
id computed, so that ``verify`` can name the objects the pack held; the
others are counted.

Nothing here trusts the damaged bytes: lengths are bounded by the data, a
frame that does not parse ends the walk, and an id is only ever computed
from content that decoded to exactly its declared length.
"""

from __future__ import annotations

import attrs

from ckpt.errors import CorruptObjectError
from ckpt.objects import codec, pack
from ckpt.objects.ids import ObjectId, object_id

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@attrs.frozen
class Salvaged:
    """A damaged pack's contents as far as they can be read from the front."""

    declared: int | None  # the entry count in the pack's header (None: no readable header)
    ids: tuple[ObjectId, ...]  # whole, self-contained entries, decoded and hashed
    unidentified: int  # whole entries whose id needs other objects (chunked, deltas)

    @property
    def lost(self) -> int | None:
        """Entries the header counts that could not be read at all (None: unknown)."""
        if self.declared is None:
            return None
        return max(0, self.declared - len(self.ids) - self.unidentified)


def frame_length(data: bytes | memoryview, start: int) -> int | None:
    """The length of the zstd frame at ``start`` (RFC 8878), or None if there is none whole."""
    view = memoryview(data)
    end = len(view)
    if bytes(view[start : start + 4]) != ZSTD_MAGIC or start + 5 > end:
        return None
    descriptor = view[start + 4]
    single_segment = (descriptor >> 5) & 1
    position = start + 5 + (0 if single_segment else 1)
    position += (0, 1, 2, 4)[descriptor & 3]  # dictionary id
    position += (single_segment, 2, 4, 8)[descriptor >> 6]  # frame content size
    while True:
        if position + 3 > end:
            return None
        block = view[position] | view[position + 1] << 8 | view[position + 2] << 16
        position += 3
        kind = (block >> 1) & 3
        if kind == 3:  # reserved: not a frame
            return None
        position += 1 if kind == 1 else block >> 3
        if block & 1:  # the last block
            break
    if (descriptor >> 2) & 1:
        position += 4  # content checksum
    return position - start if position <= end else None


def salvage(data: bytes) -> Salvaged:
    """Read what can be read of a pack's entries, front to back (see the module docstring)."""
    if len(data) < pack.PACK_HEADER.size:
        return Salvaged(None, (), 0)
    magic, _version, declared = pack.PACK_HEADER.unpack_from(data)
    if magic != pack.PACK_MAGIC:
        return Salvaged(None, (), 0)
    ids: list[ObjectId] = []
    unidentified = 0
    offset = pack.PACK_HEADER.size
    while len(ids) + unidentified < declared:
        try:
            header = codec.parse_header(memoryview(data)[offset:], "?")
        except CorruptObjectError:
            break
        length = frame_length(data, offset + header.size)
        if length is None:
            break
        entry = data[offset : offset + header.size + length]
        offset += len(entry)
        if header.chunked or header.delta:
            unidentified += 1
            continue
        try:
            content = codec.decompress_plain(entry, header, "?")
        except CorruptObjectError:
            unidentified += 1
            continue
        ids.append(object_id(header.kind, content))
    return Salvaged(declared, tuple(ids), unidentified)
