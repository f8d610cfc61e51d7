"""The object database: put, get and verify immutable, content-addressed objects.

Objects are written in *packs* (see :mod:`ckpt.objects.pack`): the objects
of one save go into one storage value under ``packs/ID``, written with the
backend's atomic ``put_if_absent`` (one write, one fsync).  Packs that pile
up are merged, size tier by size tier (16 packs of one tier become one of
the next), so that the number of packs stays logarithmic in the store's
size.  Stores written before packs keep their *loose* objects at
``objects/XX/REST``; those are read, listed and collected like packed ones.

A put computes the id from the canonical bytes and skips the write if the
object is already stored (dedup), touching the pack or loose object that
holds it so that a concurrent gc spares it.  Large blobs are cut into
content-defined chunks (:mod:`ckpt.objects.chunking`), and a blob saved
with a ``base`` (the previous version of the same stage) is delta encoded
against it (:mod:`ckpt.objects.delta`).  Every get re-hashes the canonical
bytes and raises :class:`~ckpt.errors.CorruptObjectError` naming the id if
they do not match; damage in a chunk or a delta base is reported naming
that object too.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import attrs
import blake3

from ckpt.errors import CkptError, CorruptObjectError, ObjectNotFoundError
from ckpt.objects import chunking, codec, delta, pack
from ckpt.objects.ids import (
    PARALLEL_HASH_SIZE,
    CommitId,
    Kind,
    ObjectId,
    check_object_id,
    new_hasher,
    object_id,
)
from ckpt.objects.model import Commit, Tree, decode_commit, encode_commit
from ckpt.storage.base import KeyInfo, KeyNotFoundError, Storage

if TYPE_CHECKING:
    # Imported where used: concurrent.futures costs start-up time that `ckpt log` need not pay.
    from concurrent.futures import Future, ThreadPoolExecutor

OBJECTS_PREFIX = "objects/"
PACKS_PREFIX = "packs/"
QUARANTINE_PREFIX = "quarantine/"

#: A save's pack is cut when it reaches this size (so no pack, and no
#: buffer in memory, grows past it however large the value).
PACK_LIMIT = 16 << 20
#: A value of more chunks than this is chunked on every core, in groups of
#: BULK_GROUP chunks, at zstd level BULK_LEVEL (about 3x faster than the
#: default level for a few percent more bytes).
BULK_CHUNKS = 16
BULK_GROUP = 128
BULK_LEVEL = 1
#: Packs are merged when this many share a size tier.
MERGE_COUNT = 16
#: Size tiers: a pack below TIERS[i] bytes is in tier i; larger packs are never merged.
TIERS = (64 << 10, 1 << 20, 16 << 20)
#: After this many range reads of one pack, a pack of at most HOT_PACK_SIZE
#: bytes is read whole and kept in memory.
HOT_READS = 8
HOT_PACK_SIZE = 16 << 20
#: How often a read looks again for an object whose pack vanished under it.
_READ_RETRIES = 8
#: Decoded payloads kept in memory per store (delta bases of the next save).
PAYLOAD_CACHE_BYTES = 64 << 20
#: Whole storage values kept in memory for backends without range reads.
VALUE_CACHE_BYTES = 64 << 20


def object_key(oid: ObjectId) -> str:
    """The storage key of a loose object."""
    return f"{OBJECTS_PREFIX}{oid[:2]}/{oid[2:]}"


@attrs.frozen
class StoredObject:
    """An object as listed in the store: id, stored size and modification time."""

    id: ObjectId
    stored_size: int
    mtime: float


@attrs.frozen
class Location:
    """Where an object's stored bytes are: a pack (offset, length) or a loose value."""

    key: str
    offset: int = 0
    length: int = -1
    kind: int = 0
    flags: int = 0

    @property
    def packed(self) -> bool:
        return self.length >= 0


@attrs.frozen
class SweepResult:
    """What :meth:`ObjectStore.sweep` removed (or, in a dry run, would remove)."""

    deleted: int
    deleted_bytes: int
    kept_by_grace: int
    candidates: tuple[ObjectId, ...]


class _LRU:
    """A byte-bounded least-recently-used cache."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.items: OrderedDict[str, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.limit:
            return
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.size -= len(old)
            self.items[key] = value
            self.size += len(value)
            while self.size > self.limit:
                _, dropped = self.items.popitem(last=False)
                self.size -= len(dropped)

    def discard(self, key: str) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.size -= len(old)


class _PackRef:
    """A pack known to this store: its listing, and its index once read."""

    def __init__(self, info: KeyInfo) -> None:
        self.key = info.key
        self.size = info.size
        self.mtime = info.mtime
        self.index: pack.PackIndex | None = None


class ObjectStore:
    """Immutable objects over a :class:`~ckpt.storage.base.Storage` backend."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._lock = threading.RLock()
        self._packs: list[_PackRef] | None = None
        self._payloads = _LRU(PAYLOAD_CACHE_BYTES)
        self._values = _LRU(VALUE_CACHE_BYTES)
        self._ranged: Callable[[str, int, int], bytes] | None = getattr(storage, "get_range", None)
        self._all: dict[bytes, str] | None = None
        self._hot: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        self._last_hit: _PackRef | None = None
        self._loose: bool | None = None

    # -- writing ------------------------------------------------------------

    def batch(self) -> ObjectBatch:
        """A batch of puts written as one pack when the ``with`` block ends.

        Nothing is written if the block raises (the objects written for a
        batch that grew past :data:`PACK_LIMIT` stay as garbage for gc).
        """
        return ObjectBatch(self)

    def put(self, kind: Kind, data: bytes, *, base: ObjectId | None = None) -> ObjectId:
        """Store an object; return its id.  Storing existing content writes nothing.

        ``base`` names a similar object (the previous version of the value):
        the new object may then be stored as a delta against it.
        """
        with self.batch() as batch:
            return batch.put(kind, data, base=base)

    def put_tree(self, tree: Tree) -> ObjectId:
        return self.put(Kind.TREE, tree.encode())

    def put_commit(self, commit: Commit) -> CommitId:
        return CommitId(self.put(Kind.COMMIT, encode_commit(commit)))

    # -- locating -----------------------------------------------------------

    def _read(self, key: str, offset: int, length: int) -> bytes:
        whole = self._values.get(key)
        if whole is not None:
            data = whole[offset : offset + length]
        elif self._ranged is not None:
            data = self._ranged(key, offset, length)
            # A pack read from again and again (a long history being walked)
            # is cheaper to read once, whole.
            reads = self._hot[key] = self._hot.get(key, 0) + 1
            if reads == HOT_READS and len(self._hot) < 4096:
                size = self._sizes.get(key, HOT_PACK_SIZE + 1)
                if size <= HOT_PACK_SIZE:
                    self._values.put(key, self.storage.get(key))
        else:
            whole = self._values.get(key)
            if whole is None:
                whole = self.storage.get(key)
                self._values.put(key, whole)
            data = whole[offset : offset + length]
        if len(data) != length:
            raise CorruptObjectError(key, "pack is shorter than its index says")
        return data

    def _reader(self, key: str) -> pack.RangeReader:
        def read(offset: int, length: int) -> bytes:
            return self._read(key, offset, length)

        return read

    def _pack_list(self, refresh: bool = False) -> list[_PackRef]:
        with self._lock:
            if self._packs is None or refresh:
                old = {ref.key: ref for ref in self._packs or []}
                refs = []
                for info in self.storage.list(PACKS_PREFIX):
                    ref = old.get(info.key)
                    if ref is None or ref.size != info.size:
                        ref = _PackRef(info)
                    ref.mtime = info.mtime
                    refs.append(ref)
                refs.sort(key=lambda ref: ref.mtime, reverse=True)
                self._packs = refs
                self._sizes = {ref.key: ref.size for ref in refs}
                self._all = None
            return self._packs

    def _index(self, ref: _PackRef) -> pack.PackIndex:
        if ref.index is None:
            ref.index = pack.PackIndex.load(ref.key, ref.size, self._reader(ref.key))
        return ref.index

    def _find_in_packs(self, raw: bytes, refs: list[_PackRef]) -> Location | None:
        # The pack of the previous hit first: walking history or a value's
        # chunks reads objects that were stored together.
        last = self._last_hit
        if last is not None and last.key not in self._sizes:
            last = self._last_hit = None  # merged or collected since
        if last is not None:
            found = self._find_in_packs_ordered(raw, [last])
            if found is not None:
                return found
        return self._find_in_packs_ordered(raw, refs, skip=last)

    def _find_in_packs_ordered(
        self, raw: bytes, refs: list[_PackRef], skip: _PackRef | None = None
    ) -> Location | None:
        for ref in refs:
            if ref is skip:
                continue
            try:
                index = self._index(ref)
                entry = index.find(raw, self._reader(ref.key))
            except KeyNotFoundError:
                continue
            except CorruptObjectError:
                # A pack with a damaged index cannot vouch for anything; the
                # object may still be found elsewhere (verify reports the pack).
                continue
            if entry is not None:
                self._last_hit = ref
                return Location(ref.key, entry.offset, entry.length, entry.kind, entry.flags)
        return None

    def locate(self, oid: ObjectId, *, relist: bool = True) -> Location | None:
        """Where ``oid`` is stored (newest pack first, then loose), or None.

        With ``relist`` (the default), a miss lists the packs again before
        giving up: another process may have written or merged packs since.
        """
        raw = bytes.fromhex(check_object_id(oid))
        found = self._find_in_packs(raw, self._pack_list())
        if found is not None:
            return found
        key = object_key(oid)
        if (relist or self._may_have_loose()) and self.storage.stat(key) is not None:
            return Location(key)
        if not relist:
            return None
        # Packs merged away after our listing hold nothing any more, and the
        # pack they became may be newer than the listing: list again until
        # two listings agree before calling the object missing.
        previous = {ref.key for ref in self._pack_list()}
        for _ in range(_READ_RETRIES):
            refs = self._pack_list(refresh=True)
            found = self._find_in_packs(raw, refs)
            if found is not None:
                return found
            if self.storage.stat(key) is not None:
                return Location(key)
            keys = {ref.key for ref in refs}
            if keys == previous:
                return None
            previous = keys
        return None

    def _may_have_loose(self) -> bool:
        """False if the store held no loose objects when first asked (writers create none
        any more; a store written by an old version may have some).  Lets a quick miss
        (``relist=False``, a dedup check) skip one ``stat`` per object."""
        if self._loose is None:
            self._loose = next(iter(self.storage.list_children(OBJECTS_PREFIX)), None) is not None
        return self._loose

    def _read_location(self, oid: ObjectId, where: Location) -> bytes:
        if where.packed:
            return self._read(where.key, where.offset, where.length)
        return self.storage.get(where.key)

    def _stored(self, oid: ObjectId) -> tuple[bytes, Location]:
        # A pack can be merged or rewritten between locating and reading an
        # object (the object then lives in the new pack): look again.  Each
        # retry follows real progress by another process, so a few suffice.
        for _ in range(_READ_RETRIES):
            where = self.locate(oid)
            if where is None:
                break
            try:
                return self._read_location(oid, where), where
            except KeyNotFoundError:
                self._pack_list(refresh=True)
        raise ObjectNotFoundError(oid)

    def freshen(self, oid: ObjectId) -> bool:
        """True if ``oid`` is stored, after refreshing its container's mtime.

        Whoever is about to make a stored object reachable (a save reusing a
        value, a transfer finding it already there) calls this first, so that
        a concurrent gc treats the object as new and spares it.
        """
        return self._reuse(check_object_id(oid))

    def _reuse(self, oid: ObjectId) -> bool:
        """True if ``oid`` is stored; its container is touched so that gc spares it.

        A miss does not list the packs again: at worst the object is written
        once more, which is harmless (and a save writes new objects mostly).
        """
        where = self.locate(oid, relist=False)
        if where is None:
            return False
        if self.storage.touch(where.key):
            return True
        where = self.locate(oid)
        return where is not None and self.storage.touch(where.key)

    def _known(self, raw: bytes) -> str | None:
        """The pack holding ``raw`` per a full in-memory id map (for bulk dedup checks)."""
        with self._lock:
            if self._all is None:
                table: dict[bytes, str] = {}
                for ref in reversed(self._pack_list()):
                    try:
                        entries = list(self._index(ref).entries(self._reader(ref.key)))
                    except (KeyNotFoundError, CorruptObjectError):
                        continue
                    for entry in entries:
                        table[entry.raw_id] = ref.key
                self._all = table
            return self._all.get(raw)

    # -- reading ------------------------------------------------------------

    def read_stored(self, oid: ObjectId) -> bytes:
        """The raw stored bytes of ``oid`` (header, delta base, frame), unchecked."""
        check_object_id(oid)
        return self._stored(oid)[0]

    def _payload(
        self, oid: ObjectId, stored: bytes, header: codec.Header, chain: tuple[str, ...] = ()
    ) -> bytes:
        """The decompressed payload of a stored object, resolving its delta base.

        Always decoded from ``stored``: only delta bases come from the cache
        (a wrong base cannot go unnoticed, the object's own hash check fails).
        ``chain`` holds the objects whose bases are being resolved, so that a
        loop of bases is reported instead of followed.
        """
        if header.base is None:
            payload = codec.decompress_plain(stored, header, oid)
        else:
            base_payload = self._base_payload(oid, header, (*chain, oid))
            frame = memoryview(stored)[header.size :]
            payload = delta.decompress(frame, header.payload_length, base_payload, oid)
        return payload

    def _base_payload(self, oid: ObjectId, header: codec.Header, chain: tuple[str, ...]) -> bytes:
        base = header.base
        assert base is not None
        cached = self._payloads.get(base)
        if cached is not None:
            return cached
        with blaming(oid, "delta base", f"delta base {base}"):
            check_base_chain(base, chain)
            stored, _ = self._stored(base)
            base_header = codec.parse_header(stored, base)
            payload = self._payload(base, stored, base_header, chain)
        self._payloads.put(base, payload)
        return payload

    def _decode(
        self, oid: ObjectId, stored: bytes, checked: set[str] | None = None
    ) -> tuple[Kind, bytes]:
        """Kind and verified canonical bytes of a stored object.

        With ``checked``, each chunk of a chunked blob is also checked against
        its own id, and the ids of the good ones are added to ``checked``.
        """
        header = codec.parse_header(stored, oid)
        payload = self._payload(oid, stored, header)
        if header.chunked:
            data = self._assemble(oid, header, payload, checked)
        else:
            data = payload
            actual = object_id(header.kind, data)
            if actual != oid:
                if header.base is not None:
                    self._blame_base(oid, header.base)
                raise CorruptObjectError(oid, "content does not match its id", oid, actual)
        if header.base is not None or header.chunked:
            self._payloads.put(oid, payload)
        return header.kind, data

    def _blame_base(self, oid: ObjectId, base: ObjectId) -> None:
        """Raise naming the delta base if it, rather than ``oid``, is what is damaged."""
        self._payloads.discard(base)
        try:
            self.verify(base)
        except CkptError as exc:
            raise CorruptObjectError(oid, f"its delta base is damaged: {exc}") from exc

    def _assemble(
        self, oid: ObjectId, header: codec.Header, payload: bytes, checked: set[str] | None = None
    ) -> bytes:
        chunks, tail = chunking.decode_list(payload, header.length, oid)
        hasher = new_hasher(header.kind, header.length)
        if header.length >= PARALLEL_HASH_SIZE:
            hasher = blake3.blake3(
                f"{header.kind.label} {header.length}\0".encode("ascii"),
                max_threads=blake3.blake3.AUTO,
            )
        out = io.BytesIO()
        for cid, size in chunks:
            piece = self._chunk(oid, cid, size)
            if checked is not None:
                actual_chunk = object_id(Kind.CHUNK, piece)
                if actual_chunk != cid:
                    raise CorruptObjectError(
                        oid, f"its chunk {cid} does not match its id", cid, actual_chunk
                    )
                checked.add(cid)
            hasher.update(piece)
            out.write(piece)
        hasher.update(tail)
        out.write(tail)
        actual = hasher.hexdigest()
        if actual != oid:
            for cid, size in chunks:
                data = self._chunk(oid, cid, size)
                if object_id(Kind.CHUNK, data) != cid:
                    raise CorruptObjectError(
                        oid, f"its chunk {cid} does not match its id", cid,
                        object_id(Kind.CHUNK, data),
                    )  # fmt: skip
            if header.base is not None:
                self._blame_base(oid, header.base)
            raise CorruptObjectError(oid, "content does not match its id", oid, actual)
        # BytesIO hands over its buffer without a copy (peak memory ~ one value).
        return out.getvalue()

    def _chunk(self, oid: ObjectId, cid: ObjectId, size: int) -> bytes:
        with blaming(oid, "chunk", f"chunk {cid}"):
            stored, _ = self._stored(cid)
            header = codec.parse_header(stored, cid)
            if header.kind is not Kind.CHUNK or header.chunked or header.length != size:
                raise CorruptObjectError(
                    cid,
                    "not a chunk of the listed size",
                    f"chunk of {size} bytes",
                    f"{header.kind.label} of {header.length} bytes",
                )
            return self._payload(cid, stored, header)

    def get(self, oid: ObjectId, kind: Kind | None = None) -> bytes:
        """The canonical bytes of ``oid``, hash-checked; optionally check its kind."""
        found, data = self._decode(oid, self.read_stored(oid))
        if kind is not None and found != kind:
            raise CorruptObjectError(oid, "object has the wrong kind", kind.label, found.label)
        return data

    def read_range(self, oid: ObjectId, offset: int, length: int) -> bytes:
        """Bytes ``offset`` to ``offset + length`` of ``oid``'s canonical bytes (fewer past its
        end), reading only the chunks of a chunked blob that overlap them.

        Every chunk read is checked against its own id.  The object's hash covers
        all of its bytes, so it is checked only when the range takes in the whole
        object or the object is not chunked (then the whole object is read).
        """
        if offset < 0 or length < 0:
            raise CkptError(f"invalid byte range {offset}+{length}")
        stored = self.read_stored(oid)
        header = codec.parse_header(stored, oid)
        if not header.chunked or (offset == 0 and length >= header.length):
            return self.get(oid)[offset : offset + length]
        chunks, tail = chunking.decode_list(self._payload(oid, stored, header), header.length, oid)
        end = min(offset + length, header.length)
        parts: list[bytes] = []
        position = 0
        for cid, size in chunks:
            if position >= end:
                break
            if position + size > offset:
                piece = self._chunk(oid, cid, size)
                actual = object_id(Kind.CHUNK, piece)
                if actual != cid:
                    raise CorruptObjectError(
                        oid, f"its chunk {cid} does not match its id", cid, actual
                    )
                parts.append(piece[max(0, offset - position) : end - position])
            position += size
        if end > position:
            parts.append(bytes(tail[max(0, offset - position) : end - position]))
        return b"".join(parts)

    def kind_of(self, oid: ObjectId) -> Kind:
        stored = self.read_stored(oid)
        return codec.parse_header(stored, oid).kind

    def get_tree(self, oid: ObjectId) -> Tree:
        return Tree.decode(self.get(oid, Kind.TREE), oid)

    def get_commit(self, oid: ObjectId) -> Commit:
        return decode_commit(self.get(oid, Kind.COMMIT), oid)

    def has(self, oid: ObjectId) -> bool:
        return self.locate(check_object_id(oid)) is not None

    def verify(self, oid: ObjectId) -> Kind:
        """Fully check one object; return its kind or raise Corrupt/NotFound errors.

        The stored bytes are read afresh.  For a chunked blob every chunk is
        read and checked; for a delta, its chain of bases.
        """
        self._forget_values()
        return self._decode(oid, self.read_stored(oid))[0]

    def _forget_values(self) -> None:
        with self._values.lock:
            self._values.items.clear()
            self._values.size = 0
        self._hot.clear()

    def verify_many(
        self,
        oids: Iterable[ObjectId],
        *,
        workers: int | None = None,
        keep: set[Kind] | None = None,
    ) -> tuple[dict[ObjectId, Kind | CkptError], dict[ObjectId, bytes]]:
        """Fully check many objects on every core.

        Returns each id's kind or the error found, and the checked canonical
        bytes of the objects whose kind is in ``keep`` (so that a caller
        walking commits and trees need not read them again).  Chunked blobs go
        first and check their chunks on the way, so that no chunk is read
        twice; then each pack is read once and its entries checked from
        memory.  zstd and blake3 release the GIL, so threads use every core on
        the bytes that matter.
        """
        kept: dict[ObjectId, bytes] = {}
        # Check what is on the storage now, not pack bytes read earlier.
        self._forget_values()
        wanted = set(oids)
        flags = self._flags()
        checked: set[str] = set()
        verdicts: dict[ObjectId, Kind | CkptError] = {}
        workers = workers or os.cpu_count() or 1

        def one(oid: ObjectId, stored: bytes | None = None) -> None:
            try:
                if stored is None:
                    stored = self.read_stored(oid)
                kind, data = self._decode(oid, stored, checked)
                verdicts[oid] = kind
                if keep is not None and kind in keep:
                    kept[oid] = data
            except CkptError as exc:
                verdicts[oid] = exc

        def objects(batch: list[ObjectId]) -> None:
            for oid in batch:
                one(oid)

        def whole_pack(ref: _PackRef) -> None:
            # One read per pack, then every entry checked from memory.
            try:
                data = self.storage.get(ref.key)
                index = pack.PackIndex(ref.key, len(data), data[-min(len(data), pack.TAIL_READ) :])
                entries = list(index.entries(pack.slicer(data)))
            except (KeyNotFoundError, CorruptObjectError):
                return
            for entry in entries:
                oid = ObjectId(entry.id)
                if oid in wanted and oid not in verdicts and oid not in checked:
                    one(oid, data[entry.offset : entry.offset + entry.length])

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            # Chunked blobs first: they check their chunks on the way.
            chunked = [oid for oid in wanted if flags.get(oid, 0) & codec.FLAG_CHUNKED]
            step = max(1, min(64, len(chunked) // (8 * workers)))
            list(pool.map(objects, [chunked[i : i + step] for i in range(0, len(chunked), step)]))
            for oid in checked:
                if oid in wanted:
                    verdicts.setdefault(ObjectId(oid), Kind.CHUNK)
            list(pool.map(whole_pack, self._pack_list()))
            rest = [oid for oid in wanted if oid not in verdicts]
            list(pool.map(objects, [rest[i : i + 64] for i in range(0, len(rest), 64)]))
        return verdicts, kept

    def _flags(self) -> dict[str, int]:
        """Header flags of every packed object, from the pack indexes."""
        found: dict[str, int] = {}
        for ref in self._pack_list(refresh=True):
            try:
                for entry in self._index(ref).entries(self._reader(ref.key)):
                    found[entry.id] = entry.flags
            except (KeyNotFoundError, CorruptObjectError):
                continue
        return found

    def references(self, oid: ObjectId) -> list[ObjectId]:
        """Objects ``oid``'s stored form needs besides itself: its delta base and chunks."""
        stored = self.read_stored(oid)
        header = codec.parse_header(stored, oid)
        refs: list[ObjectId] = []
        if header.base is not None:
            refs.append(header.base)
        if header.chunked:
            payload = self._payload(oid, stored, header)
            self._payloads.put(oid, payload)
            chunks, _ = chunking.decode_list(payload, header.length, oid)
            refs.extend(cid for cid, _ in chunks)
        return refs

    def __iter__(self) -> Iterator[StoredObject]:
        seen: set[str] = set()
        for ref in self._pack_list(refresh=True):
            try:
                entries = list(self._index(ref).entries(self._reader(ref.key)))
            except (KeyNotFoundError, CorruptObjectError):
                continue
            for entry in entries:
                oid = entry.id
                if oid not in seen:
                    seen.add(oid)
                    yield StoredObject(ObjectId(oid), entry.length, ref.mtime)
        for info in self.storage.list(OBJECTS_PREFIX):
            loose = _id_from_key(info)
            if loose is not None and loose not in seen:
                seen.add(loose)
                yield StoredObject(loose, info.size, info.mtime)

    def packs(self) -> list[KeyInfo]:
        """Every pack in the store (key, size, mtime), newest first."""
        return [KeyInfo(ref.key, ref.size, ref.mtime) for ref in self._pack_list(refresh=True)]

    def damaged_packs(self) -> list[tuple[str, CorruptObjectError]]:
        """Packs whose index cannot be read or does not match its checksum."""
        bad: list[tuple[str, CorruptObjectError]] = []
        for ref in self._pack_list(refresh=True):
            try:
                for _ in self._index(ref).entries(self._reader(ref.key)):
                    pass
            except KeyNotFoundError:
                continue
            except CorruptObjectError as exc:
                bad.append((ref.key, exc))
        return bad

    # -- removing -----------------------------------------------------------

    def _rewrite_without(self, key: str, drop: set[str], cutoff: float | None) -> bool:
        """Replace pack ``key`` by one without the ids in ``drop``.

        With ``cutoff``, the old pack is removed only if it was not touched
        since (a writer that reused one of its objects keeps it alive).
        Returns True if the old pack is gone.
        """
        try:
            data = self.storage.get(key)
        except KeyNotFoundError:
            return False
        ref = _PackRef(KeyInfo(key, len(data), 0.0))
        index = self._index(ref)
        keep = [
            (entry.raw_id, data[entry.offset : entry.offset + entry.length])
            for entry in index.entries(pack.slicer(data))
            if entry.id not in drop
        ]
        if keep:
            self._write_pack(keep, merge=False)
        if cutoff is None:
            gone = self.storage.delete(key)
        else:
            gone = self.storage.delete_if_older(key, cutoff)
        self._values.discard(key)
        self._pack_list(refresh=True)
        return gone

    def _containers(self, oid: ObjectId) -> list[Location]:
        raw = bytes.fromhex(oid)
        found = []
        for ref in self._pack_list(refresh=True):
            where = self._find_in_packs(raw, [ref])
            if where is not None:
                found.append(where)
        key = object_key(oid)
        if self.storage.stat(key) is not None:
            found.append(Location(key))
        return found

    def delete(self, oid: ObjectId) -> bool:
        """Remove every stored copy of ``oid``; True if there was one."""
        check_object_id(oid)
        removed = False
        for where in self._containers(oid):
            if where.packed:
                removed = self._rewrite_without(where.key, {oid}, None) or removed
            else:
                removed = self.storage.delete(where.key) or removed
        self._payloads.discard(oid)
        return removed

    def delete_if_older(self, oid: ObjectId, cutoff: float) -> bool:
        """Delete ``oid`` unless it was written or reused at or after ``cutoff``.

        Reuse touches the pack (or loose object) holding an object, and the
        pack is removed with the backend's ``delete_if_older``, so an object a
        concurrent writer has just reused is never lost.
        """
        check_object_id(oid)
        removed = False
        for where in self._containers(oid):
            if where.packed:
                info = self.storage.stat(where.key)
                if info is not None and info.mtime < cutoff:
                    removed = self._rewrite_without(where.key, {oid}, cutoff) or removed
            else:
                removed = self.storage.delete_if_older(where.key, cutoff) or removed
        return removed

    def quarantine(self, oid: ObjectId) -> bool:
        """Move a (corrupt) object aside to ``quarantine/ID`` so that a clean copy can be stored.

        Returns False if there was nothing to move.
        """
        try:
            stored = self.read_stored(oid)
        except ObjectNotFoundError:
            return False
        self.storage.put_if_absent(f"{QUARANTINE_PREFIX}{oid}", stored)
        return self.delete(oid)

    def sweep(
        self,
        live: set[ObjectId],
        cutoff: float,
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> SweepResult:
        """Remove every object not in ``live`` (nor needed by one) stored before ``cutoff``.

        ``live`` is what refs reach (commits, trees, blobs); the chunks and
        delta bases their stored forms need are kept too.  A pack with dead
        objects is rewritten with its live ones, and the old pack removed only
        if no writer touched it since ``cutoff``.  Raises CkptError, deleting
        nothing, if a live object's stored form cannot be read.
        """
        packs = self._pack_list(refresh=True)
        loose_infos = list(self.storage.list(OBJECTS_PREFIX))
        # Objects kept for their youth (a save in flight may be about to use
        # them) keep their chunks and delta bases too, however old those are.
        youthful: set[ObjectId] = set()
        for ref in packs:
            if ref.mtime >= cutoff:
                try:
                    youthful.update(
                        ObjectId(e.id) for e in self._index(ref).entries(self._reader(ref.key))
                    )
                except (KeyNotFoundError, CorruptObjectError):
                    continue
        for info in loose_infos:
            loose = _id_from_key(info)
            if loose is not None and info.mtime >= cutoff:
                youthful.add(loose)
        needed_live = self._closure(live)
        by_youth = self._closure(youthful - needed_live) - needed_live
        needed = needed_live | by_youth
        deleted = deleted_bytes = 0
        young = len(by_youth)
        candidates: list[ObjectId] = []
        for ref in packs:
            try:
                entries = list(self._index(ref).entries(self._reader(ref.key)))
            except (KeyNotFoundError, CorruptObjectError):
                # A pack whose index is damaged is left alone (verify reports it).
                continue
            if progress is not None:
                progress(len(entries))
            dead = [entry for entry in entries if entry.id not in needed]
            if not dead or ref.mtime >= cutoff:
                continue
            candidates.extend(ObjectId(entry.id) for entry in dead)
            if dry_run or self._rewrite_without(ref.key, {e.id for e in dead}, cutoff):
                deleted += len(dead)
                deleted_bytes += sum(entry.length for entry in dead)
        for info in loose_infos:
            loose = _id_from_key(info)
            if loose is None or loose in needed:
                continue
            if progress is not None:
                progress(1)
            if info.mtime >= cutoff:
                continue
            candidates.append(loose)
            if dry_run or self.storage.delete_if_older(info.key, cutoff):
                deleted += 1
                deleted_bytes += info.size
        return SweepResult(deleted, deleted_bytes, young, tuple(candidates))

    def _closure(self, live: set[ObjectId]) -> set[str]:
        """``live`` plus every chunk and delta base their stored forms need."""
        needed: set[str] = set(live)
        flags = self._flags()
        stack = [
            oid
            for oid in live
            if flags.get(oid, codec.FLAG_CHUNKED) & (codec.FLAG_CHUNKED | codec.FLAG_DELTA)
            and self.has(oid)
        ]
        while stack:
            oid = stack.pop()
            try:
                refs = self.references(oid)
            except ObjectNotFoundError:
                continue
            except CkptError as exc:
                raise CkptError(
                    f"gc stopped before deleting anything: {exc}. Run `ckpt verify` and repair "
                    "first"
                ) from exc
            for ref in refs:
                if ref not in needed:
                    needed.add(ref)
                    stack.append(ref)
        return needed

    # -- packs --------------------------------------------------------------

    def _write_pack(self, entries: list[tuple[bytes, bytes]], *, merge: bool = True) -> str:
        """Write ``entries`` as one pack; return its key.  Then merge packs if they piled up."""
        data = pack.build(entries)
        key = f"{PACKS_PREFIX}{blake3.blake3(data).hexdigest()}"
        self.storage.put_if_absent(key, data)
        with self._lock:
            if self._packs is not None:
                ref = _PackRef(KeyInfo(key, len(data), time.time()))
                ref.index = pack.PackIndex(key, len(data), data[-min(len(data), pack.TAIL_READ) :])
                self._packs = [r for r in self._packs if r.key != key]
                self._packs.insert(0, ref)
                self._sizes[key] = len(data)
                if self._all is not None:
                    for raw_id, _ in entries:
                        self._all[raw_id] = key
        if merge:
            self._merge_tiers()
        return key

    def _merge_tiers(self) -> None:
        """Merge the packs of any size tier that holds MERGE_COUNT of them."""
        refs = self._pack_list()
        for limit in TIERS:
            lower = 0 if limit == TIERS[0] else TIERS[TIERS.index(limit) - 1]
            tier = [ref for ref in refs if lower <= ref.size < limit]
            if len(tier) >= MERGE_COUNT:
                self._merge(tier)
                refs = self._pack_list(refresh=True)

    def _merge(self, refs: list[_PackRef]) -> None:
        """Write the objects of ``refs`` as one pack, then remove them.

        The merged pack is written (durably) before any source is removed, so
        every object stays readable throughout; a reader that raced with the
        removal finds the object again after relisting.
        """
        entries: list[tuple[bytes, bytes]] = []
        merged: list[str] = []
        for ref in refs:
            try:
                data = self.storage.get(ref.key)
                index = pack.PackIndex(ref.key, len(data), data[-min(len(data), pack.TAIL_READ) :])
                for entry in index.entries(pack.slicer(data)):
                    entries.append((entry.raw_id, data[entry.offset : entry.offset + entry.length]))
            except (KeyNotFoundError, CorruptObjectError):
                continue
            merged.append(ref.key)
        if len(merged) < 2:
            return
        # Sorted by id, so that two processes merging the same packs write the same pack.
        entries.sort(key=lambda item: item[0])
        written = self._write_pack(entries, merge=False)
        for key in merged:
            if key == written:
                # The sources added nothing to this one (another merge already
                # wrote it): it is the result, not a source to remove.
                continue
            # Not synced: if a crash brings a source back, its objects are merely stored
            # twice (the next merge or gc drops the copy).
            self.storage.delete(key, sync=False)
            self._values.discard(key)
        self._pack_list(refresh=True)


class ObjectBatch:
    """Puts collected and written as one pack (see :meth:`ObjectStore.batch`)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.entries: list[tuple[bytes, bytes]] = []
        self.ids: set[bytes] = set()
        self.size = 0
        self.chunk_checks = 0
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future[str]] = []

    def __enter__(self) -> ObjectBatch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.flush()
            else:
                self.entries.clear()
        finally:
            self._drain(raise_errors=exc_type is None)

    def _drain(self, *, raise_errors: bool) -> None:
        """Wait for the packs being written in the background."""
        pending, self._pending = self._pending, []
        try:
            for future in pending:
                if raise_errors:
                    future.result()
                else:
                    future.exception()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    def flush(self) -> None:
        """Write what has been put so far (durable when it returns).

        A large batch puts its chunks in one pack and its other objects
        (commit, tree, chunk lists) in a small one, so that reading history
        never has to fetch a large pack from a backend without range reads.
        """
        self._drain(raise_errors=True)
        if not self.entries:
            return
        entries, self.entries, self.size = self.entries, [], 0
        if sum(len(stored) for _, stored in entries) > TIERS[1]:
            chunks = [item for item in entries if item[1][5] == Kind.CHUNK]
            others = [item for item in entries if item[1][5] != Kind.CHUNK]
            if chunks and others:
                self.store._write_pack(chunks, merge=False)
                entries = others
        self.store._write_pack(entries)

    def _add(self, raw: bytes, stored: bytes) -> None:
        self.entries.append((raw, stored))
        self.ids.add(raw)
        self.size += len(stored)
        if self.size >= PACK_LIMIT:
            # A full pack is written in the background while the value's next
            # chunks are cut and compressed; one write in flight at a time.
            for future in self._pending:
                future.result()
            entries, self.entries, self.size = self.entries, [], 0
            if self._writer is None:
                from concurrent.futures import ThreadPoolExecutor

                self._writer = ThreadPoolExecutor(1)
            self._pending = [self._writer.submit(self.store._write_pack, entries, merge=False)]

    def _stored(self, oid: ObjectId, raw: bytes, bulk: bool) -> bool:
        """True if ``oid`` is in this batch or stored (and then touched, see ``_reuse``)."""
        if raw in self.ids:
            return True
        if bulk:
            self.chunk_checks += 1
            if self.chunk_checks > 32:
                # Many chunks: one in-memory map of every packed id beats a
                # probe of every pack per chunk.
                storage = self.store.storage
                key = self.store._known(raw)
                if key is not None and storage.touch(key):
                    return True
                if not self.store._may_have_loose():
                    return False
                loose = object_key(oid)
                return storage.stat(loose) is not None and storage.touch(loose)
        return self.store._reuse(oid)

    def put(self, kind: Kind, data: bytes, *, base: ObjectId | None = None) -> ObjectId:
        """Add an object (see :meth:`ObjectStore.put`); return its id."""
        oid = object_id(kind, data)
        raw = bytes.fromhex(oid)
        if self._stored(oid, raw, bulk=False):
            return oid
        chunked = kind is Kind.BLOB and len(data) >= chunking.CHUNK_THRESHOLD
        found: tuple[bytes, int] | None = None
        if base is not None and base != oid and (chunked or len(data) >= delta.DELTA_MIN):
            found = self._base(base, kind, oid)
            if found is not None and found[1] >= delta.MAX_CHAIN:
                found = None
        payload = self._chunk(data, base, found) if chunked else data
        base_id: ObjectId | None = None
        depth = 0
        frame: bytes | None = None
        if base is not None and found is not None and (chunked or len(payload) >= delta.DELTA_MIN):
            base_payload, base_depth = found
            frame = delta.compress(payload, base_payload)
            base_id, depth = base, base_depth + 1
        stored = codec.encode_entry(
            kind, len(data), payload, chunked=chunked, base=base_id, depth=depth, frame=frame
        )
        self._add(raw, stored)
        if chunked or base_id is not None or len(payload) >= delta.DELTA_MIN:
            self.store._payloads.put(oid, payload)
        return oid

    def put_tree(self, tree: Tree) -> ObjectId:
        return self.put(Kind.TREE, tree.encode())

    def put_commit(self, commit: Commit) -> CommitId:
        return CommitId(self.put(Kind.COMMIT, encode_commit(commit)))

    def _chunk(self, data: bytes, base: ObjectId | None, found: tuple[bytes, int] | None) -> bytes:
        """Store the new chunks of ``data``; return its chunk list payload."""
        view = memoryview(data)
        cuts = chunking.cut_points(view)
        pieces = [view[start:end] for start, end in zip([0, *cuts], cuts, strict=False)]
        tail = view[cuts[-1] if cuts else 0 :]
        # One thread: hashing a chunk takes microseconds, less than handing it to a pool.
        ids = [object_id(Kind.CHUNK, piece) for piece in pieces]
        new = [(cid, p) for cid, p in zip(ids, pieces, strict=True) if not self._have(cid)]
        # What matters is how many chunks are new: a value that grew a little
        # has one or two, however many it has in all.
        if len(new) <= BULK_CHUNKS:
            self._few_chunks(new, base, found)
        else:
            self._bulk_chunks(new)
        return chunking.encode_list(
            [(cid, len(piece)) for cid, piece in zip(ids, pieces, strict=True)], tail
        )

    def _have(self, cid: ObjectId) -> bool:
        return self._stored(cid, bytes.fromhex(cid), bulk=True)

    def _few_chunks(
        self,
        new: list[tuple[ObjectId, memoryview]],
        base: ObjectId | None,
        found: tuple[bytes, int] | None,
    ) -> None:
        # A value that grows a little per save makes a new chunk now and then,
        # cut from bytes its previous version already holds (the end of its
        # chunk list): such a chunk is stored as a delta against that version,
        # so those bytes are not stored twice.  Otherwise the few new chunks
        # get a tighter compression than bulk chunks (level 9: level 19 was 4% smaller
        # but took milliseconds per chunk, the most of a LangGraph put).
        few = len(new) <= chunking.FEW_CHUNKS
        for cid, piece in new:
            content = bytes(piece)
            stored: bytes | None = None
            if few and base is not None and found is not None:
                base_payload, base_depth = found
                frame = delta.compress(content, base_payload)
                # Only when the previous version really holds these bytes: a
                # chunk changed in the middle of a value is not in its chunk
                # list, and a delta would only make reading it slower.
                if len(frame) * 2 < len(codec.encode(Kind.CHUNK, content)):
                    stored = codec.encode_entry(
                        Kind.CHUNK, len(content), content, base=base, depth=base_depth + 1,
                        frame=frame,
                    )  # fmt: skip
            if stored is None:
                level = chunking.FEW_CHUNKS_LEVEL if few else codec.COMPRESSION_LEVEL
                stored = codec.encode(Kind.CHUNK, content, level=level)
            self._add(bytes.fromhex(cid), stored)

    def _bulk_chunks(self, new: list[tuple[ObjectId, memoryview]]) -> None:
        """Compress many new chunks on every core (in zstd's threads), a group at a time.

        A group bounds the compressed bytes held in memory before they go into a pack.
        """
        for start in range(0, len(new), BULK_GROUP):
            group = new[start : start + BULK_GROUP]
            encoded = codec.encode_many(Kind.CHUNK, [piece for _, piece in group], level=BULK_LEVEL)
            for (cid, _), stored in zip(group, encoded, strict=True):
                self._add(bytes.fromhex(cid), stored)

    def _base(self, base: ObjectId, kind: Kind, oid: ObjectId) -> tuple[bytes, int] | None:
        """The payload and chain depth of ``base``, or None if it cannot serve as a base.

        The base is not verified here: it only has to decode the same way
        again, and every read of the new object checks its hash anyway.  A
        base whose own chain of bases leads back to ``oid`` (possible when
        ``oid`` is stored a second time) is refused: that would be a cycle.
        """
        if bytes.fromhex(base) in self.ids:
            return None
        store = self.store
        try:
            stored = store.read_stored(base)
            header = codec.parse_header(stored, base)
            if header.kind is not kind:
                return None
            link = header.base
            for _ in range(delta.MAX_CHAIN + 1):
                if link is None:
                    break
                if link == oid:
                    return None
                link = codec.parse_header(store.read_stored(link), link).base
            payload = store._payloads.get(base)
            if payload is None:
                payload = store._payload(base, stored, header)
                store._payloads.put(base, payload)
        except CkptError:
            return None
        return payload, header.depth


#: How many delta bases a read follows at most.  Writes keep chains under
#: :data:`delta.MAX_CHAIN`; an object stored twice in different forms can
#: lengthen a chain a little, never loop it.
MAX_RESOLVE = 4 * delta.MAX_CHAIN


def check_base_chain(base: ObjectId, chain: tuple[str, ...]) -> None:
    """Raise CorruptObjectError if resolving ``base`` after the bases in ``chain`` would loop
    or go past :data:`MAX_RESOLVE`.

    The same object may be stored twice in different forms (two writers, or a
    dedup miss), so a base's depth need not be below its object's; what must
    not happen is a loop, or an endless chain.
    """
    if base in chain:
        raise CorruptObjectError(base, "delta bases form a loop")
    if len(chain) > MAX_RESOLVE:
        raise CorruptObjectError(
            base, "delta chain is too long", f"<= {MAX_RESOLVE}", str(len(chain))
        )


@contextlib.contextmanager
def blaming(oid: ObjectId, part: str, missing: str) -> Iterator[None]:
    """Report what goes wrong reading a part of ``oid`` (its delta base, a chunk) as damage
    to ``oid``: "its MISSING is missing", or "its PART is damaged: ..." naming the part's
    own error.  An error about ``oid`` itself passes unchanged."""
    try:
        yield
    except ObjectNotFoundError:
        raise CorruptObjectError(oid, f"its {missing} is missing") from None
    except CorruptObjectError as exc:
        if exc.object_id == oid:
            raise
        raise CorruptObjectError(oid, f"its {part} is damaged: {exc}") from exc


def _id_from_key(info: KeyInfo) -> ObjectId | None:
    parts = info.key.split("/")
    if len(parts) != 3:
        return None
    candidate = parts[1] + parts[2]
    try:
        return check_object_id(candidate)
    except ValueError:
        return None
