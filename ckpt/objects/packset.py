"""Where stored objects live: packs (and loose files of old stores), found, read and written.

A :class:`PackSet` keeps the listing of a store's packs and their indexes,
finds the pack (or loose file) holding an object, reads its stored bytes
(by range where the backend can), writes new packs and merges the packs of
a size tier once they pile up.  It does not decode what it reads: that is
:class:`~ckpt.objects.store.ObjectStore`'s job, built on top of it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

import attrs
import blake3

from ckpt.errors import CorruptObjectError, ObjectNotFoundError, StorageError
from ckpt.objects import pack
from ckpt.objects.ids import ObjectId, check_object_id
from ckpt.storage.base import KeyInfo, KeyNotFoundError, Storage

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
#: Whole storage values kept in memory for backends without range reads.
#: Whole packs kept in memory (hot packs, read again and again).
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


def id_from_key(info: KeyInfo) -> ObjectId | None:
    """The object id a loose object's key names, or None if the key is not one."""
    parts = info.key.split("/")
    if len(parts) != 3:
        return None
    candidate = parts[1] + parts[2]
    try:
        return check_object_id(candidate)
    except ValueError:
        return None


class LRU:
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


class PackRef:
    """A pack known to this store: its listing, and its index once read."""

    def __init__(self, info: KeyInfo) -> None:
        self.key = info.key
        self.size = info.size
        self.mtime = info.mtime
        self.index: pack.PackIndex | None = None


class PackSet:
    """The packs and loose objects of one store: listed, located, read and written."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._lock = threading.RLock()
        self._packs: list[PackRef] | None = None
        self._values = LRU(VALUE_CACHE_BYTES)
        self._ranged: Callable[[str, int, int], bytes] | None = getattr(storage, "get_range", None)
        self._all: dict[bytes, str] | None = None
        self._hot: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        self._last_hit: PackRef | None = None
        self._loose: bool | None = None
        #: Merged packs left for :meth:`settle` to remove (see ``_write_pack``).
        self._merged_away: list[str] = []

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

    def _pack_list(self, refresh: bool = False) -> list[PackRef]:
        with self._lock:
            if self._packs is None or refresh:
                old = {ref.key: ref for ref in self._packs or []}
                refs = []
                for info in self.storage.list(PACKS_PREFIX):
                    ref = old.get(info.key)
                    if ref is None or ref.size != info.size:
                        ref = PackRef(info)
                    ref.mtime = info.mtime
                    refs.append(ref)
                refs.sort(key=lambda ref: ref.mtime, reverse=True)
                self._packs = refs
                self._sizes = {ref.key: ref.size for ref in refs}
                self._all = None
            return self._packs

    def _index(self, ref: PackRef) -> pack.PackIndex:
        if ref.index is None:
            ref.index = pack.PackIndex.load(ref.key, ref.size, self._reader(ref.key))
        return ref.index

    def _find_in_packs(self, raw: bytes, refs: list[PackRef]) -> Location | None:
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
        self, raw: bytes, refs: list[PackRef], skip: PackRef | None = None
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

    def read_stored(self, oid: ObjectId) -> bytes:
        """The raw stored bytes of ``oid`` (header, delta base, frame), unchecked."""
        check_object_id(oid)
        return self._stored(oid)[0]

    def _forget_values(self) -> None:
        with self._values.lock:
            self._values.items.clear()
            self._values.size = 0
        self._hot.clear()

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
            loose = id_from_key(info)
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

    # -- packs --------------------------------------------------------------

    def _write_pack(
        self, entries: list[tuple[bytes, bytes]], *, merge: bool = True, durable: bool = True
    ) -> str:
        """Write ``entries`` as one pack; return its key.  Then merge packs if they piled up.

        ``durable=False``: the pack may be durable only once a later durable change
        of the storage returns (see ``put_unsealed`` of the local backend)."""
        raw_ids = [raw_id for raw_id, _ in entries]
        key, _ = self._store_pack(pack.build(entries), raw_ids, durable=durable)
        if merge:
            self._merge_tiers(durable=durable)
        return key

    def settle(self) -> None:
        """Remove the packs merged by a save whose pack was not durable by itself (its
        ref move, now done, made the merged pack durable with it): on a local store
        with a journal the merge then costs no fsync of its own."""
        with self._lock:
            removed, self._merged_away = self._merged_away, []
        for key in removed:
            # A failure is not the save's: a source left in place is a copy (see below).
            with contextlib.suppress(StorageError):
                self._remove_merged(key)
        if removed:
            self._pack_list(refresh=True)

    def _store_pack(
        self, data: bytes, ids: list[bytes], *, durable: bool = True
    ) -> tuple[str, bool]:
        """Store the built pack ``data`` holding ``ids`` (durably unless told, no merge);
        return its key and whether this call created it (False: a pack of the same bytes
        was stored)."""
        key = f"{PACKS_PREFIX}{blake3.blake3(data).hexdigest()}"
        put = self.storage.put_if_absent
        if not durable:
            put = getattr(self.storage, "put_unsealed", put)
        created = put(key, data)
        with self._lock:
            if self._packs is not None:
                ref = PackRef(KeyInfo(key, len(data), time.time()))
                ref.index = pack.PackIndex(key, len(data), data[-min(len(data), pack.TAIL_READ) :])
                self._packs = [r for r in self._packs if r.key != key]
                self._packs.insert(0, ref)
                self._sizes[key] = len(data)
                if self._all is not None:
                    for raw_id in ids:
                        self._all[raw_id] = key
        return key, created

    def _merge_tiers(self, *, durable: bool = True) -> None:
        """Merge the packs of any size tier that holds MERGE_COUNT of them.

        ``durable=False``: the merged pack is written as the save's own pack is (made
        durable by the ref move that follows), and its sources are removed only by
        :meth:`settle`, after that move."""
        refs = self._pack_list()
        for limit in TIERS:
            lower = 0 if limit == TIERS[0] else TIERS[TIERS.index(limit) - 1]
            away = set(self._merged_away)
            tier = [ref for ref in refs if lower <= ref.size < limit and ref.key not in away]
            if len(tier) >= MERGE_COUNT:
                self._merge(tier, durable=durable)
                refs = self._pack_list(refresh=True)

    def _merge(self, refs: list[PackRef], *, durable: bool = True) -> None:
        """Write the objects of ``refs`` as one pack, then remove them (or leave them for
        :meth:`settle`, if not ``durable``).

        The merged pack is durable before any source is removed, so every object
        stays readable throughout; a reader that raced with the removal finds the
        object again after relisting.
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
        written = self._write_pack(entries, merge=False, durable=durable)
        for key in merged:
            if key == written:
                # The sources added nothing to this one (another merge already
                # wrote it): it is the result, not a source to remove.
                continue
            if not durable:
                with self._lock:
                    self._merged_away.append(key)
                continue
            self._remove_merged(key)
        self._pack_list(refresh=True)

    def _remove_merged(self, key: str) -> None:
        """Remove pack ``key``, whose objects a merged pack now holds.

        Not synced: if a crash brings it back, its objects are merely stored twice
        (the next merge or gc drops the copy).
        """
        self.storage.delete(key, sync=False)
        self._values.discard(key)
