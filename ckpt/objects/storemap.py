"""A map of where every stored object is, read from every pack index at once, and gc's sweep.

gc and ``verify --full`` look at (nearly) every object in the store.
Looking each one up on its own (find its pack, read its bytes, resolve its
delta base) costs far more than the bytes themselves, so a
:class:`StoreMap` reads every pack index once into one map of where each
object's stored bytes are.  On it, gc finds what live objects need (their
chunks and delta bases) and sweeps the rest pack by pack;
:class:`~ckpt.objects.scan.StoreScan` adds the bulk checks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import attrs
import blake3
import zstandard

from ckpt.errors import CkptError, CorruptObjectError, ObjectNotFoundError
from ckpt.objects import chunking, codec, delta, pack
from ckpt.objects.ids import Kind, ObjectId
from ckpt.objects.packset import OBJECTS_PREFIX, PACKS_PREFIX, id_from_key
from ckpt.objects.progress import Meter
from ckpt.objects.store import ObjectStore, blaming, check_base_chain
from ckpt.storage.base import KeyInfo, KeyNotFoundError

#: Delta-base payloads up to this size are kept for the whole scan (chunk
#: lists and small values, the bases writers make); larger ones are decoded
#: again when needed.
BASE_CACHE_ITEM = 1 << 20
#: Bytes of an object's stored form that always hold its whole header.
HEADER_READ = codec.HEADER_SIZE + 8 + 34
#: Tests only: a directory in which gc stops before each of its deletions (see
#: :class:`DeletionPauses`).  Read once per sweep, never on a save's path.
PAUSE_ENV = "CKPT_TEST_GC_PAUSE_DIR"

Verdict = Kind | CkptError
#: An object's stored bytes: read on their own, or a view into a pack read whole.
Stored = bytes | memoryview


@attrs.frozen
class SweepResult:
    """What :meth:`StoreScan.sweep` removed (or, in a dry run, would remove)."""

    deleted: int
    deleted_bytes: int
    kept_by_grace: int
    candidates: tuple[ObjectId, ...]


class Slot(NamedTuple):
    """Where the reader's copy of an object is: a pack range, or a loose value (length -1).

    A tuple rather than an attrs class: a scan makes one per stored object.
    """

    key: str
    offset: int
    length: int
    size: int
    mtime: float
    kind: int = 0
    flags: int = 0

    @property
    def packed(self) -> bool:
        return self.length >= 0


@attrs.frozen
class PackListing:
    """One pack as listed: its key, size, modification time and its index."""

    key: str
    size: int
    mtime: float
    ids: tuple[ObjectId, ...]
    #: Per entry (same order as ``ids``): offset, length, kind and flags.
    entries: tuple[tuple[int, int, int, int], ...]


class StoreMap:
    """A snapshot of where every object of ``store`` is, with bulk checks over it.

    Built from one listing of the packs and loose objects; objects written
    afterwards are not seen, and an object whose pack vanished meanwhile is
    looked up again through the store.
    """

    def __init__(self, store: ObjectStore, *, workers: int | None = None) -> None:
        self.store = store
        self.workers = workers or os.cpu_count() or 1
        self.slots: dict[ObjectId, Slot] = {}
        self.packs: list[PackListing] = []
        #: Packs whose index cannot be read: their objects are not in ``slots``.
        self.damaged: list[tuple[str, CorruptObjectError]] = []
        self._bases: dict[ObjectId, bytes] = {}
        self._verdicts: dict[ObjectId, Verdict] = {}
        self._lock = threading.Lock()
        self._uses: dict[ObjectId, int] = {}
        self._shared: dict[ObjectId, bytes] = {}
        self._shared_bytes = 0
        self._list()

    # -- listing ------------------------------------------------------------

    def _list(self) -> None:
        store = self.store
        for ref in store._pack_list(refresh=True):  # newest first: the copy a reader gets
            listing = self._listing(ref.key, ref.size, ref.mtime)
            if listing is None:
                continue
            self.packs.append(listing)
            for oid, (offset, length, kind, flags) in zip(
                listing.ids, listing.entries, strict=True
            ):
                if oid not in self.slots:
                    self.slots[oid] = Slot(ref.key, offset, length, length, ref.mtime, kind, flags)
        for info in store.storage.list(OBJECTS_PREFIX):
            loose = id_from_key(info)
            if loose is not None and loose not in self.slots:
                self.slots[loose] = Slot(info.key, 0, -1, info.size, info.mtime)

    def _listing(self, key: str, size: int, mtime: float) -> PackListing | None:
        """One pack's index as a listing; None if the pack is gone or its index damaged."""
        store = self.store
        read = store._reader(key)
        try:
            index = pack.PackIndex.load(key, size, read)
            records = index.records
            if records is None:
                both = read(index.index_offset, index.count * pack.RECORD.size + pack.FANOUT.size)
                index.check_digest(both)
                records = both[: index.count * pack.RECORD.size]
                index.check_records(records)
        except KeyNotFoundError:
            return None  # merged or collected since the listing
        except CorruptObjectError as exc:
            self.damaged.append((key, exc))
            return None
        ids = []
        entries = []
        for raw, offset, length, kind, flags in pack.RECORD.iter_unpack(records):
            ids.append(ObjectId(raw.hex()))
            entries.append((offset, length, kind, flags))
        return PackListing(key, size, mtime, tuple(ids), tuple(entries))

    def __iter__(self) -> Iterator[ObjectId]:
        return iter(self.slots)

    def __len__(self) -> int:
        return len(self.slots)

    # -- reading ------------------------------------------------------------

    def _read(self, oid: ObjectId, slot: Slot, length: int | None = None) -> bytes:
        """The stored bytes of ``oid`` (at most ``length`` of them), from its slot or afresh."""
        try:
            if not slot.packed:
                return self.store.storage.get(slot.key)
            size = slot.length if length is None else min(length, slot.length)
            return self.store._read(slot.key, slot.offset, size)
        except KeyNotFoundError:
            # Merged or rewritten since the listing: the store finds it again.
            stored = self.store.read_stored(oid)
            return stored if length is None else stored[:length]

    def _payload(
        self, oid: ObjectId, stored: Stored, header: codec.Header, chain: tuple[str, ...] = ()
    ) -> bytes:
        """The decompressed payload of a stored object, resolving its delta bases."""
        if header.base is None:
            return _decompress_plain(stored, header, oid)
        base_payload = self._base_payload(oid, header.base, (*chain, oid))
        frame = memoryview(stored)[header.size :]
        return delta.decompress(frame, header.payload_length, base_payload, oid)

    def _base_payload(self, oid: ObjectId, base: ObjectId, chain: tuple[str, ...]) -> bytes:
        cached = self._bases.get(base)
        if cached is not None:
            return cached
        with blaming(oid, "delta base", f"delta base {base}"):
            check_base_chain(base, chain)
            slot = self.slots.get(base)
            stored = self.store.read_stored(base) if slot is None else self._read(base, slot)
            header = codec.parse_header(stored, base)
            payload = self._payload(base, stored, header, chain)
        if len(payload) <= BASE_CACHE_ITEM:
            self._bases[base] = payload
        return payload

    def references(self, oid: ObjectId) -> list[ObjectId]:
        """The objects ``oid``'s stored form needs besides itself: delta base, chunks.

        Reads only the header unless the object is chunked.  Raises
        ObjectNotFoundError if ``oid`` is not stored, CorruptObjectError if
        its header or chunk list cannot be read.
        """
        slot = self.slots.get(oid)
        if slot is None:
            if not self.store.has(oid):
                raise ObjectNotFoundError(oid)
            return self.store.references(oid)
        if slot.packed and not slot.flags & (codec.FLAG_CHUNKED | codec.FLAG_DELTA):
            return []
        stored = self._read(oid, slot, None if slot.flags & codec.FLAG_CHUNKED else HEADER_READ)
        header = codec.parse_header(stored, oid)
        refs: list[ObjectId] = [] if header.base is None else [header.base]
        if header.chunked:
            if len(stored) < slot.length:
                stored = self._read(oid, slot)
            payload = self._payload(oid, stored, header)
            chunks, _ = chunking.decode_list(payload, header.length, oid)
            refs.extend(cid for cid, _ in chunks)
        return refs

    def closure(self, live: Iterable[ObjectId]) -> set[ObjectId]:
        """``live`` plus every chunk and delta base their stored forms need, transitively.

        An object that is not stored is kept in the set and not followed; one
        stored after the listing is looked up through the store.  Raises
        CorruptObjectError if a needed object's header or chunk list cannot
        be read (the caller must then not delete anything).
        """
        needed: set[ObjectId] = set(live)
        stack = [
            oid
            for oid in needed
            if (slot := self.slots.get(oid)) is None
            or not slot.packed
            or slot.flags & (codec.FLAG_CHUNKED | codec.FLAG_DELTA)
        ]
        while stack:
            # One thread: a header or a small chunk list per object is work that
            # holds the GIL, which threads would only hand to and fro.
            batch, stack = stack, []
            for refs in map(self._references_or_none, batch):
                for ref in refs:
                    if ref not in needed:
                        needed.add(ref)
                        stack.append(ref)
        return needed

    def _references_or_none(self, oid: ObjectId) -> list[ObjectId]:
        try:
            return self.references(oid)
        except ObjectNotFoundError:
            return []

    # -- collecting ---------------------------------------------------------

    def sweep(
        self,
        live: set[ObjectId],
        cutoff: float,
        *,
        dry_run: bool = False,
        progress: Meter | None = None,
    ) -> SweepResult:
        """Remove every object not in ``live`` (nor needed by one) stored before ``cutoff``.

        ``live`` is what refs reach; the chunks and delta bases their stored
        forms need are kept, and so are objects whose pack or loose file is
        younger than ``cutoff`` (with what they need).  Packs and their modification
        times are listed again first, so that a pack written or touched since
        this scan was made counts as young.  A pack with dead objects is
        rewritten with its live ones and the old pack removed only if no
        writer touched it since ``cutoff``.  Raises CkptError, deleting
        nothing, if a kept object's header or chunk list cannot be read.
        ``progress`` counts the objects (and stored bytes) of each pack and
        loose file looked at.
        """
        listed = {listing.key: listing for listing in self.packs}
        packs: list[PackListing] = []
        for info in self.store.packs():
            listing = listed.get(info.key)
            if listing is None or listing.size != info.size:
                listing = self._listing(info.key, info.size, info.mtime)
                if listing is None:
                    continue
            packs.append(attrs.evolve(listing, mtime=info.mtime))
        loose_infos = list(self.store.storage.list(OBJECTS_PREFIX))
        # Objects kept for their youth (a save in flight may be about to use
        # them) keep their chunks and delta bases too, however old those are.
        youthful: set[ObjectId] = set()
        for listing in packs:
            if listing.mtime >= cutoff:
                youthful.update(listing.ids)
        for info in loose_infos:
            loose = id_from_key(info)
            if loose is not None and info.mtime >= cutoff:
                youthful.add(loose)
        try:
            needed_live = self.closure(live)
            by_youth = self.closure(youthful - needed_live) - needed_live
        except CkptError as exc:
            raise CkptError(
                f"gc stopped before deleting anything: {exc}. Run `ckpt verify` and repair first"
            ) from exc
        needed = needed_live | by_youth
        if progress is not None:
            progress.set_total(
                sum(len(listing.ids) for listing in packs) + len(loose_infos),
                sum(listing.size for listing in packs) + sum(i.size for i in loose_infos),
            )
        deleted = deleted_bytes = 0
        candidates: list[ObjectId] = []
        pause = DeletionPauses()
        for listing in packs:
            if progress is not None:
                progress.advance(len(listing.ids), listing.size)
            dead = [
                (oid, entry[1])
                for oid, entry in zip(listing.ids, listing.entries, strict=True)
                if oid not in needed
            ]
            if not dead or listing.mtime >= cutoff:
                continue
            candidates.extend(oid for oid, _ in dead)
            if not dry_run:
                pause(listing.key)
            if dry_run or self.store._rewrite_without(
                listing.key, {oid for oid, _ in dead}, cutoff
            ):
                deleted += len(dead)
                deleted_bytes += sum(length for _, length in dead)
        for info in loose_infos:
            if progress is not None:
                progress.advance(1, info.size)
            loose = id_from_key(info)
            if loose is None or loose in needed:
                continue
            if info.mtime >= cutoff:
                continue
            candidates.append(loose)
            if not dry_run:
                pause(info.key)
            if dry_run or self.store.storage.delete_if_older(info.key, cutoff):
                deleted += 1
                deleted_bytes += info.size
        return SweepResult(deleted, deleted_bytes, len(by_youth), tuple(candidates))


def restore_set_aside(store: ObjectStore) -> list[str]:
    """Put back packs and loose objects an older ckpt's gc hid when it was killed midway
    through deleting them (the local backend renamed a file aside, then decided).

    Restored only when whole: a pack whose bytes hash to its name, a loose
    object that decodes to its id.  Returns their keys.  A backend without
    such files restores nothing.
    """
    restore = getattr(store.storage, "restore_set_aside", None)
    if restore is None:
        return []

    def complete(key: str, data: bytes) -> bool:
        if key.startswith(PACKS_PREFIX):
            return blake3.blake3(data).hexdigest() == key[len(PACKS_PREFIX) :]
        loose = id_from_key(KeyInfo(key, len(data), 0.0))
        if loose is None:
            return False
        try:
            codec.decode_verified(data, loose)
        except CkptError:
            return False
        return True

    restored: list[str] = []
    for prefix in (PACKS_PREFIX, OBJECTS_PREFIX):
        restored.extend(restore(prefix, complete))
    if restored:
        store._pack_list(refresh=True)
    return restored


class DeletionPauses:
    """A test hook: stop gc before each deletion until the test lets it go on.

    With ``$CKPT_TEST_GC_PAUSE_DIR`` set to a directory, the N-th deletion of a
    sweep (a pack about to be rewritten and removed, or a loose object) first
    writes ``N.paused`` there, holding the key, then waits until ``N.go``
    exists.  The reliability tests use it to run a save at each of gc's
    deletion points.  Unset (always, outside tests), it costs one lookup of
    the environment per sweep.
    """

    def __init__(self) -> None:
        self.directory = os.environ.get(PAUSE_ENV) or None
        self.count = 0

    def __call__(self, key: str) -> None:
        if self.directory is None:
            return
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        with open(base + ".part", "w", encoding="utf-8") as handle:
            handle.write(key)
        os.rename(base + ".part", base + ".paused")
        while not os.path.exists(base + ".go"):
            time.sleep(0.005)


_local = threading.local()


def _decompress_plain(stored: bytes | memoryview, header: codec.Header, oid: str) -> bytes:
    """:func:`codec.decompress_plain`, in one call for a frame that announces its size.

    The frame is inflated only if it announces exactly the expected size, and
    zstd then refuses a frame that is cut short, that expands to another size
    or is followed by other bytes.  Anything unusual goes through
    :func:`codec.decompress_plain`, which raises the error that names it.
    """
    frame = memoryview(stored)[header.size :]
    try:
        if zstandard.frame_content_size(frame) == header.payload_length:
            decoders = getattr(_local, "decoders", None)
            if decoders is None:
                decoders = _local.decoders = (
                    zstandard.ZstdDecompressor(),
                    zstandard.ZstdDecompressor(dict_data=codec.builtin_dictionary()),
                )
            out: bytes = decoders[1 if header.builtin_dict else 0].decompress(
                frame, allow_extra_data=False
            )
            if len(out) == header.payload_length:
                return out
    except zstandard.ZstdError:
        pass
    return codec.decompress_plain(stored, header, oid)


__all__ = [
    "BASE_CACHE_ITEM",
    "HEADER_READ",
    "PAUSE_ENV",
    "DeletionPauses",
    "PackListing",
    "Slot",
    "StoreMap",
    "Stored",
    "SweepResult",
    "Verdict",
    "restore_set_aside",
]
