"""Packs: many stored objects in one storage value, with a sorted index at the end.

A save writes its new objects as one pack (one storage write, one fsync)
instead of one value per object, and small packs are merged as they pile up
(see :class:`~ckpt.objects.store.ObjectStore`), which keeps the number of
files, and the disk blocks they waste, small.

Layout of a pack (big-endian)::

    header   16 bytes: magic b"CKPK", version (1), 3 zero bytes, entry count (8 bytes)
             (a pack is smaller than 4 GiB: offsets and lengths are 4 bytes)
    entries  the stored objects, each exactly as a loose object would be stored
    index    one 42-byte record per entry, sorted by id:
             id (32 raw bytes), offset (4), length (4), kind (1), low byte of flags (1)
    fanout   256 x 4 bytes: number of records whose id's first byte is <= i
    trailer  32 bytes: index offset (8), entry count (4),
             first 16 bytes of blake3(index + fanout), magic b"CKPX"

The trailer and fanout let a reader find one object with two small range
reads.  Kind and flags repeat the entry's header so that gc can tell delta
and chunked objects apart without reading them.  Entries are verified like
any object (their ids are hashes of their content), so a damaged index can
only make an object unfindable or fail its check, never return wrong bytes.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Iterator, Sequence

import attrs
import blake3

from ckpt.errors import CorruptObjectError

PACK_MAGIC = b"CKPK"
INDEX_MAGIC = b"CKPX"
PACK_VERSION = 1
PACK_HEADER = struct.Struct(">4sB3xQ")
RECORD = struct.Struct(">32sIIBB")
FANOUT = struct.Struct(">256I")
TRAILER = struct.Struct(">QI16s4s")
#: Bytes read from a pack's end on first use: trailer, fanout and, for
#: small packs, the whole index.
TAIL_READ = 64 * 1024

RangeReader = Callable[[int, int], bytes]
#: Lookups in one pack after which its index (if in memory) becomes a dict.
_TABLE_AFTER = 32


@attrs.frozen
class PackEntry:
    """One object in a pack: where its stored bytes are, its kind and header flags."""

    raw_id: bytes
    offset: int
    length: int
    kind: int
    flags: int

    @property
    def id(self) -> str:
        return self.raw_id.hex()


def build(entries: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A pack holding ``entries`` (raw id, stored bytes); duplicates of an id are dropped."""
    seen: set[bytes] = set()
    parts: list[bytes] = [b""]
    records: list[tuple[bytes, int, int, int, int]] = []
    offset = PACK_HEADER.size
    for raw_id, stored in entries:
        if raw_id in seen:
            continue
        seen.add(raw_id)
        kind, flags = stored[5], stored[7]
        records.append((raw_id, offset, len(stored), kind, flags))
        parts.append(stored)
        offset += len(stored)
    parts[0] = PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, len(records))
    parts.append(_index_and_trailer(records, offset))
    return b"".join(parts)


def _index_and_trailer(records: list[tuple[bytes, int, int, int, int]], end: int) -> bytes:
    """Index, fanout and trailer of a pack whose entries (``records``) end at ``end``."""
    records = sorted(records)
    index = b"".join(RECORD.pack(*record) for record in records)
    counts = [0] * 256
    for record in records:
        counts[record[0][0]] += 1
    total = 0
    for i in range(256):
        total += counts[i]
        counts[i] = total
    fanout = FANOUT.pack(*counts)
    digest = blake3.blake3(index + fanout).digest(length=16)
    return b"".join((index, fanout, TRAILER.pack(end, len(records), digest, INDEX_MAGIC)))


class PackBuilder:
    """A pack assembled entry by entry, each entry's parts copied once into the pack
    (:func:`build` gives the same bytes for the same entries).

    The buffer doubles as it fills, up to ``limit`` (more only for an entry
    that needs it), and :meth:`reset` keeps it for the next pack, so that a
    stream of packs reuses one buffer.
    """

    def __init__(self, limit: int = 0) -> None:
        self._limit = limit
        self._body = bytearray(PACK_HEADER.size)
        self._end = PACK_HEADER.size
        self._records: list[tuple[bytes, int, int, int, int]] = []
        self._seen: set[bytes] = set()

    @property
    def size(self) -> int:
        """Bytes of the header and the entries so far."""
        return self._end

    @property
    def ids(self) -> list[bytes]:
        return [record[0] for record in self._records]

    def __len__(self) -> int:
        return len(self._records)

    def add(self, raw_id: bytes, parts: Sequence[bytes | memoryview]) -> bool:
        """Append the stored object whose bytes are ``parts`` joined; False for a duplicate id."""
        if raw_id in self._seen:
            return False
        self._seen.add(raw_id)
        offset = self._end
        for part in parts:
            end = self._end + len(part)
            if end > len(self._body):
                grown = max(end, min(2 * len(self._body), self._limit))
                self._body.extend(bytes(grown - len(self._body)))
            self._body[self._end : end] = part
            self._end = end
        # Kind and the low byte of the flags, from the object's header.
        kind, flags = self._body[offset + 5], self._body[offset + 7]
        self._records.append((raw_id, offset, end - offset, kind, flags))
        return True

    def finish(self) -> bytes:
        """The pack's bytes: header, entries, sorted index, fanout and trailer."""
        PACK_HEADER.pack_into(self._body, 0, PACK_MAGIC, PACK_VERSION, len(self._records))
        with memoryview(self._body) as body:
            return b"".join((body[: self._end], _index_and_trailer(self._records, self._end)))

    def reset(self) -> None:
        """Start the next pack in the same buffer."""
        self._end = PACK_HEADER.size
        self._records.clear()
        self._seen.clear()


class PackIndex:
    """The index of one pack, read lazily through a range reader."""

    def __init__(self, key: str, size: int, tail: bytes) -> None:
        """Parse the trailer and fanout from ``tail``, the last bytes of the pack."""
        self.key = key
        self.size = size
        minimum = FANOUT.size + TRAILER.size
        if size < PACK_HEADER.size + minimum or not minimum <= len(tail) <= size:
            raise CorruptObjectError(key, "pack is too short for its index")
        index_offset, count, digest, magic = TRAILER.unpack_from(tail, len(tail) - TRAILER.size)
        if magic != INDEX_MAGIC:
            raise CorruptObjectError(
                key, "pack index has a bad magic", INDEX_MAGIC.hex(), magic.hex()
            )
        index_end = size - minimum
        if index_offset + count * RECORD.size != index_end or index_offset < PACK_HEADER.size:
            raise CorruptObjectError(key, "pack index does not fit the pack")
        self.count = count
        self.index_offset = index_offset
        self.digest = digest
        fanout_at = len(tail) - minimum
        self.fanout = FANOUT.unpack_from(tail, fanout_at)
        # Non-decreasing counts; sorted() runs in C, a Python loop over 255 pairs does not.
        if self.fanout[255] != count or sorted(self.fanout) != list(self.fanout):
            raise CorruptObjectError(key, "pack fanout table is inconsistent")
        self.records: bytes | None = None
        self._table: dict[bytes, PackEntry] | None = None
        self._finds = 0
        tail_start = size - len(tail)
        if index_offset >= tail_start:
            records = tail[index_offset - tail_start : fanout_at]
            self.check_digest(records + tail[fanout_at : fanout_at + FANOUT.size])
            self.check_records(records)
            self.records = records

    @classmethod
    def load(cls, key: str, size: int, read: RangeReader) -> PackIndex:
        length = min(size, TAIL_READ)
        return cls(key, size, read(size - length, length))

    def check_digest(self, index_and_fanout: bytes) -> None:
        actual = blake3.blake3(index_and_fanout).digest(length=16)
        if actual != self.digest:
            raise CorruptObjectError(
                self.key, "pack index does not match its checksum", self.digest.hex(), actual.hex()
            )

    def check_records(self, records: bytes) -> None:
        """Refuse an index whose records point outside the pack's entries (a checksum
        recomputed over a forged index must not make a reader read gigabytes)."""
        end = self.index_offset
        for at in range(self.count):
            _, offset, length, _, _ = RECORD.unpack_from(records, at * RECORD.size)
            if offset < PACK_HEADER.size or offset + length > end:
                raise CorruptObjectError(
                    self.key,
                    "pack index points outside the pack's entries",
                    f"entries within bytes {PACK_HEADER.size}-{end}",
                    f"{length} bytes at {offset}",
                )

    def _entry(self, record: bytes | memoryview, at: int) -> PackEntry:
        entry = PackEntry(*RECORD.unpack_from(record, at))
        if entry.offset < PACK_HEADER.size or entry.offset + entry.length > self.index_offset:
            raise CorruptObjectError(
                self.key,
                "pack index points outside the pack's entries",
                f"entries within bytes {PACK_HEADER.size}-{self.index_offset}",
                f"{entry.length} bytes at {entry.offset}",
            )
        return entry

    def _bucket(self, first: int, read: RangeReader) -> bytes:
        lo = self.fanout[first - 1] if first else 0
        hi = self.fanout[first]
        if lo == hi:
            return b""
        if self.records is not None:
            return self.records[lo * RECORD.size : hi * RECORD.size]
        return read(self.index_offset + lo * RECORD.size, (hi - lo) * RECORD.size)

    def find(self, raw_id: bytes, read: RangeReader) -> PackEntry | None:
        """The entry of ``raw_id`` in this pack, or None."""
        if self._table is not None:
            return self._table.get(raw_id)
        self._finds += 1
        if self.records is not None and self._finds > _TABLE_AFTER:
            # A pack looked into again and again: one dict beats a search each time.
            table = {}
            for at in range(self.count):
                entry = PackEntry(*RECORD.unpack_from(self.records, at * RECORD.size))
                table[entry.raw_id] = entry  # records in memory were checked when read
            self._table = table
            return table.get(raw_id)
        bucket = self._bucket(raw_id[0], read)
        if not bucket:
            return None
        n = len(bucket) // RECORD.size
        keys = _RecordKeys(bucket, n)
        at = bisect.bisect_left(keys, raw_id)
        if at < n and keys[at] == raw_id:
            return self._entry(bucket, at * RECORD.size)
        return None

    def entries(self, read: RangeReader) -> Iterator[PackEntry]:
        """Every entry, in id order; checks the index checksum."""
        records = self.records
        if records is None:
            both = read(self.index_offset, self.count * RECORD.size + FANOUT.size)
            self.check_digest(both)
            records = both[: self.count * RECORD.size]
            self.check_records(records)
        for at in range(self.count):
            yield PackEntry(*RECORD.unpack_from(records, at * RECORD.size))


def slicer(data: bytes) -> RangeReader:
    """A range reader over a whole pack held in memory."""

    def read(offset: int, length: int) -> bytes:
        return data[offset : offset + length]

    return read


class _RecordKeys(Sequence[bytes]):
    """The ids of a run of index records, as a sequence ``bisect`` can search."""

    def __init__(self, records: bytes, length: int) -> None:
        self.records = records
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        start = index * RECORD.size
        return self.records[start : start + 32]


def check_header(data: bytes, key: str) -> int:
    """Check a whole pack's header; return its entry count."""
    if len(data) < PACK_HEADER.size:
        raise CorruptObjectError(key, "pack is shorter than its header")
    magic, version, count = PACK_HEADER.unpack_from(data)
    if magic != PACK_MAGIC:
        raise CorruptObjectError(key, "pack has a bad magic", PACK_MAGIC.hex(), magic.hex())
    if version != PACK_VERSION:
        raise CorruptObjectError(
            key, "unknown pack version (written by a newer ckpt?)", str(PACK_VERSION), str(version)
        )
    return int(count)
