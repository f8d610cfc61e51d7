"""Whole-store checks: every object checked, or every commit and tree read, in bulk.

``verify --full`` and ``gc`` look at (nearly) every object in the store.
Looking each one up on its own (find its pack, read its bytes, resolve its
delta base) costs far more than the bytes themselves, so a :class:`StoreScan`
reads every pack index once into one map of where each object's stored
bytes are, then works pack by pack and blob by blob.  Large values are
checked on every core (zstd and blake3 release the GIL while they work);
small objects, whose work is mostly Python holding the GIL, on one thread.

The checks are those of a single read (:meth:`ObjectStore.get`): header,
frame, delta base, chunks, and the id recomputed from the canonical bytes.
Each object id gets one verdict, for the copy a reader would get (the newest
pack holding it, else its loose file).  A delta base's payload is used as a
dictionary without checking the base first, as a read does: a wrong base
makes the object's own hash check fail, and the damage is then blamed on the
base if the base itself fails its check.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ckpt.errors import CkptError, CorruptObjectError, ObjectNotFoundError
from ckpt.objects import chunking, codec
from ckpt.objects.ids import Kind, ObjectId, new_hasher
from ckpt.objects.progress import Meter
from ckpt.objects.storemap import (
    PackListing,
    Slot,
    Stored,
    StoreMap,
    SweepResult,
    Verdict,
)
from ckpt.objects.valuecheck import ChunkPlace, Group, ValueTask, ValueWorkers, fast_id, plain
from ckpt.storage.base import KeyNotFoundError
from ckpt.storage.local import LocalStorage

#: Entries of one pack checked per task, so that one large pack of small
#: objects still spreads over every core.
ENTRIES_PER_TASK = 2048
#: Chunked blobs up to this size are hashed in one call over their joined chunks.
JOINED_HASH_SIZE = 16 << 20
#: Memory for chunks that several blobs share, kept decoded between them.
SHARED_CHUNK_BYTES = 256 << 20
#: Objects stored in fewer bytes than this are checked on one thread: their
#: zstd and blake3 calls are too short for other threads to gain from the GIL
#: being released, and handing the GIL to and fro costs more than it gives.
SMALL_OBJECT = 16 << 10
#: A local store whose chunked values hold at least this many bytes has them
#: checked in worker processes (see :mod:`ckpt.objects.valuecheck`).
PROCESS_VALUE_BYTES = 256 << 20


class StoreScan(StoreMap):
    """A :class:`~ckpt.objects.storemap.StoreMap` with bulk checks over it."""

    _workers: ValueWorkers | None = None

    # -- checking -----------------------------------------------------------

    def read_verified(
        self, kinds: set[Kind], *, progress: Meter | None = None
    ) -> tuple[dict[ObjectId, tuple[Kind, bytes]], dict[ObjectId, CkptError]]:
        """Kind and canonical bytes of every stored object whose index says it is of ``kinds``.

        Each is checked like a read (a commit or tree must hash to its id);
        an object that fails is in the second map with its error.  Loose
        objects, whose kind the listing does not tell, are all read.
        """
        codes = {int(kind) for kind in kinds}
        wanted = [
            oid
            for oid, slot in self.slots.items()
            if (slot.kind in codes and not slot.flags & codec.FLAG_CHUNKED) or not slot.packed
        ]
        good: dict[ObjectId, tuple[Kind, bytes]] = {}
        bad: dict[ObjectId, CkptError] = {}
        if progress is not None:
            progress.set_total(len(wanted), sum(self.slots[oid].size for oid in wanted))

        def one(oid: ObjectId, stored: Stored | None) -> None:
            try:
                if stored is None:
                    stored = self._read(oid, self.slots[oid])
                if codec.parse_header(stored, oid).kind not in kinds:
                    return  # a loose object of another kind
                found = self._decode_plain(oid, stored)
            except CkptError as exc:
                bad[oid] = exc
                return
            good[oid] = found

        self._in_packs(wanted, one, progress, workers=1)
        return good, bad

    def check_all(
        self,
        *,
        keep: set[Kind] | None = None,
        progress: Meter | None = None,
    ) -> tuple[dict[ObjectId, Verdict], dict[ObjectId, bytes]]:
        """Fully check every listed object (large values on every core).

        Returns each id's kind or the error found, and the checked canonical
        bytes of the objects whose kind is in ``keep``.  A chunked blob's
        chunks are checked on the way (a chunk several blobs share is decoded
        once while :data:`SHARED_CHUNK_BYTES` allows); a chunk's damage is
        reported for the chunk and, naming it, for every blob that needs it.
        """
        kept, finish = self.start_checks(keep=keep, progress=progress)
        return finish(), kept

    def start_checks(
        self,
        *,
        keep: set[Kind] | None = None,
        progress: Meter | None = None,
    ) -> tuple[dict[ObjectId, bytes], Callable[[], dict[ObjectId, Verdict]]]:
        """:meth:`check_all` in two steps, for a caller with other work meanwhile.

        Returns the checked canonical bytes of the objects of ``keep`` (more
        are added to the dict by the second step) and the second step, which
        returns the verdicts.  When worker processes check the large values
        (see :mod:`ckpt.objects.valuecheck`), this returns once the small
        objects are checked and the workers go on until the second step
        waits for them; otherwise everything is done here.  The caller must
        call the second step (it stops the workers if it raises).
        """
        keep = keep or set()
        kept: dict[ObjectId, bytes] = {}
        if progress is not None:
            progress.set_total(len(self.slots), sum(slot.size for slot in self.slots.values()))
        # Check what is on the storage now, not bytes read earlier.
        self.store._forget_values()
        verdicts = self._verdicts
        chunked = [
            oid
            for oid, slot in self.slots.items()
            if slot.packed and slot.flags & codec.FLAG_CHUNKED
        ]
        # First every chunk list (small), then each blob checked with the pack
        # holding most of its chunks in memory: chunks are read pack by pack,
        # not one by one.
        lists: dict[ObjectId, tuple[codec.Header, list[tuple[ObjectId, int]], bytes]] = {}

        def chunk_list(oid: ObjectId, stored: Stored | None) -> None:
            try:
                if stored is None:
                    stored = self._read(oid, self.slots[oid])
                header = codec.parse_header(stored, oid)
                if not header.chunked:
                    return  # the index was wrong; checked with the rest
                payload = self._payload(oid, stored, header)
                chunks, tail = chunking.decode_list(payload, header.length, oid)
            except CkptError as exc:
                verdicts[oid] = exc
                return
            lists[oid] = (header, chunks, bytes(tail))

        self._in_packs(chunked, chunk_list, None, workers=1)

        def one(oid: ObjectId, stored: Stored | None) -> None:
            if oid not in verdicts:
                self._verdict(
                    oid, self._read_or_error(oid) if stored is None else stored, kept, keep
                )

        workers = self._value_workers(lists, progress)
        if workers is None:
            verdicts_now = self._finish_checks(lists, one, progress)
            return kept, lambda: verdicts_now
        # The small objects (Python work) here while the workers check the
        # large values; the chunks those name are left to them.
        self._workers = workers
        try:
            named = {cid for _, chunks, _ in lists.values() for cid, _ in chunks}
            early = [
                oid
                for oid, slot in self.slots.items()
                if slot.size < SMALL_OBJECT
                and oid not in verdicts
                and oid not in named
                and oid not in lists
            ]
            self._in_packs(early, one, progress, workers=1)
        except BaseException:
            workers.abort()
            raise

        def finish() -> dict[ObjectId, Verdict]:
            self._workers = None
            good_values, good_chunks = workers.finish()
            for cid in good_chunks:
                verdicts.setdefault(ObjectId(cid), Kind.CHUNK)
            for oid in good_values:
                verdicts[ObjectId(oid)] = lists.pop(ObjectId(oid))[0].kind
            return self._finish_checks(lists, one, progress)

        return kept, finish

    @property
    def checking(self) -> bool:
        """True between :meth:`start_checks` and its second step while workers run."""
        return self._workers is not None

    def verdicts(self) -> dict[ObjectId, Verdict]:
        """The verdicts given so far."""
        return dict(self._verdicts)

    def stop_checks(self) -> None:
        """Stop the worker processes of :meth:`start_checks` (the caller is giving up)."""
        workers, self._workers = self._workers, None
        if workers is not None:
            workers.abort()

    def _finish_checks(
        self,
        lists: dict[ObjectId, tuple[codec.Header, list[tuple[ObjectId, int]], bytes]],
        one: Callable[[ObjectId, Stored | None], None],
        progress: Meter | None,
    ) -> dict[ObjectId, Verdict]:
        """Check the chunked values of ``lists`` here, then every object still unchecked."""
        verdicts = self._verdicts
        # Chunks named by several blobs (deduplicated content) are decoded once
        # and kept until the last of those blobs is checked.
        for _, chunks, _ in lists.values():
            for cid, _ in chunks:
                self._uses[cid] = self._uses.get(cid, 0) + 1
        homes: dict[str, list[ObjectId]] = {}
        for oid, (_, chunks, _) in lists.items():
            votes: dict[str, int] = {}
            for cid, size in chunks:
                slot = self.slots.get(cid)
                if slot is not None and slot.packed:
                    votes[slot.key] = votes.get(slot.key, 0) + size
            home = max(votes, key=votes.__getitem__) if votes else ""
            homes.setdefault(home, []).append(oid)

        def blobs(batch: list[ObjectId], home: tuple[str, bytes] | None) -> None:
            for oid in batch:
                header, chunks, tail = lists[oid]
                try:
                    self._check_chunked(oid, header, chunks, tail, home)
                    verdicts[oid] = header.kind
                except CkptError as exc:
                    verdicts[oid] = exc
            if progress is not None:
                progress.advance(len(batch), sum(self.slots[oid].size for oid in batch))

        self._per_pack(homes, blobs, 16, lambda key: key != "", self.workers)
        rest = [oid for oid in self.slots if oid not in verdicts]
        large = [oid for oid in rest if self.slots[oid].size >= SMALL_OBJECT]
        self._in_packs(large, one, progress, workers=self.workers)
        small = [oid for oid in rest if self.slots[oid].size < SMALL_OBJECT]
        self._in_packs(small, one, progress, workers=1)
        return dict(verdicts)

    def _value_workers(
        self,
        lists: dict[ObjectId, tuple[codec.Header, list[tuple[ObjectId, int]], bytes]],
        progress: Meter | None,
    ) -> ValueWorkers | None:
        """Worker processes checking the chunked values of ``lists``, if worth it.

        Only for a local store (the workers read its pack files) with at least
        :data:`PROCESS_VALUE_BYTES` of such values and more than one core; a
        value with a chunk that is not in a pack is left to this process.
        """
        storage = self.store.storage
        if (
            self.workers < 2
            or type(storage) is not LocalStorage
            or not sys.executable
            or sum(header.length for header, _, _ in lists.values()) < PROCESS_VALUE_BYTES
        ):
            return None
        groups: dict[str, list[ValueTask]] = {}
        for oid, (header, chunks, tail) in lists.items():
            places: list[ChunkPlace] = []
            votes: dict[str, int] = {}
            for cid, size in chunks:
                slot = self.slots.get(cid)
                if slot is None or not slot.packed:
                    break
                places.append((cid, size, slot.key, slot.offset, slot.length))
                votes[slot.key] = votes.get(slot.key, 0) + size
            else:
                home = max(votes, key=votes.__getitem__) if votes else ""
                task = (oid, int(header.kind), header.length, places, tail)
                groups.setdefault(home, []).append(task)
        tasks: list[Group] = list(groups.items())

        def report(good: list[str], looked: int) -> None:
            if progress is not None:
                progress.advance(len(good), sum(self.slots[ObjectId(oid)].size for oid in good))

        return ValueWorkers(storage.root, tasks, self.workers, report)

    def _read_or_error(self, oid: ObjectId) -> Stored | CkptError:
        try:
            return self._read(oid, self.slots[oid])
        except CkptError as exc:
            return exc

    def _in_packs(
        self,
        oids: list[ObjectId],
        one: Callable[[ObjectId, Stored | None], None],
        progress: Meter | None,
        *,
        workers: int,
    ) -> None:
        """Call ``one(oid, stored)`` for each of ``oids`` on ``workers`` threads, reading each
        pack once.

        ``stored`` is None where the object is loose or its pack is not read
        whole (``one`` then reads it itself).
        """
        by_pack: dict[str, list[ObjectId]] = {}
        for oid in oids:
            slot = self.slots[oid]
            by_pack.setdefault(slot.key if slot.packed else "", []).append(oid)
        sizes = {listing.key: listing.size for listing in self.packs}

        def whole(key: str) -> bool:
            if key not in sizes:
                return False  # loose objects
            # A pack mostly of objects not asked for (large chunks) is read
            # object by object; others in one read.
            needed = sum(self.slots[oid].length for oid in by_pack[key])
            return needed * 4 >= sizes[key] or self.store._ranged is None

        def run(batch: list[ObjectId], pack_data: tuple[str, bytes] | None) -> None:
            for oid in batch:
                slot = self.slots[oid]
                if pack_data is None:
                    one(oid, None)
                else:
                    one(oid, memoryview(pack_data[1])[slot.offset : slot.offset + slot.length])
            if progress is not None:
                progress.advance(len(batch), sum(self.slots[oid].size for oid in batch))

        self._per_pack(by_pack, run, ENTRIES_PER_TASK, whole, workers)

    def _per_pack(
        self,
        groups: dict[str, list[ObjectId]],
        run: Callable[[list[ObjectId], tuple[str, bytes] | None], None],
        batch: int,
        whole: Callable[[str], bool],
        workers: int,
    ) -> None:
        """``run(part, (key, pack bytes))`` for parts of each pack's group, on every core.

        A pack for which ``whole(key)`` is false, or that vanished, is passed
        as None.  A few packs are held in memory at a time, not the store.
        """

        def load(key: str) -> tuple[str, bytes] | None:
            if not whole(key):
                return None
            try:
                return key, self.store.storage.get(key)
            except KeyNotFoundError:
                return None

        keys = list(groups)
        window = 2 * workers
        with ThreadPoolExecutor(workers) as pool:
            for first in range(0, len(keys), window):
                some = keys[first : first + window]
                futures = []
                for key, data in zip(some, pool.map(load, some), strict=True):
                    oids = groups[key]
                    for start in range(0, len(oids), batch):
                        futures.append(pool.submit(run, oids[start : start + batch], data))
                for future in futures:
                    future.result()

    def _decode_plain(self, oid: ObjectId, stored: Stored) -> tuple[Kind, bytes]:
        """Kind and checked canonical bytes of an object that is not chunked."""
        found = plain(stored)
        if found is not None:
            actual = _object_id(found[0], found[1])
            if actual != oid:
                raise CorruptObjectError(oid, "content does not match its id", oid, actual)
            return found
        header = codec.parse_header(stored, oid)
        if header.chunked:
            return header.kind, self._assemble(oid, stored, header)
        data = self._payload(oid, stored, header)
        actual = _object_id(header.kind, data)
        if actual != oid:
            if header.base is not None:
                self._blame_base(oid, header.base)
            raise CorruptObjectError(oid, "content does not match its id", oid, actual)
        return header.kind, data

    def _verdict(
        self,
        oid: ObjectId,
        stored: Stored | CkptError,
        kept: dict[ObjectId, bytes] | None = None,
        keep: set[Kind] | None = None,
    ) -> Verdict:
        """Check ``oid`` from its stored bytes; record and return its kind or error."""
        verdict: Verdict
        try:
            if isinstance(stored, CkptError):
                raise stored
            kind, data = self._decode_plain(oid, stored)
            verdict = kind
            if kept is not None and keep is not None and kind in keep:
                kept[oid] = data
        except CkptError as exc:
            verdict = exc
        self._verdicts[oid] = verdict
        return verdict

    def _check(self, oid: ObjectId) -> Verdict:
        """The verdict on ``oid``, checking it now if it has none yet."""
        verdict = self._verdicts.get(oid)
        if verdict is None:
            slot = self.slots.get(oid)
            if slot is None:
                verdict = ObjectNotFoundError(oid)
                self._verdicts[oid] = verdict
            else:
                verdict = self._verdict(oid, self._read_or_error(oid))
        return verdict

    def _blame_base(self, oid: ObjectId, base: ObjectId) -> None:
        """Raise naming the delta base if it, rather than ``oid``, is what is damaged."""
        verdict = self._check(base)
        if isinstance(verdict, CkptError):
            raise CorruptObjectError(oid, f"its delta base is damaged: {verdict}") from verdict

    def _assemble(self, oid: ObjectId, stored: Stored, header: codec.Header) -> bytes:
        """Check a chunked blob and each of its chunks; return an empty placeholder.

        The blob's bytes are hashed as they are assembled but not kept (a
        scan does not need a large value whole).
        """
        payload = self._payload(oid, stored, header)
        chunks, tail = chunking.decode_list(payload, header.length, oid)
        self._check_chunked(oid, header, chunks, tail, None)
        return b""

    def _check_chunked(
        self,
        oid: ObjectId,
        header: codec.Header,
        chunks: list[tuple[ObjectId, int]],
        tail: bytes | memoryview,
        home: tuple[str, bytes] | None,
    ) -> None:
        """Check that a blob's chunks and tail hash to its id (``home``: a pack in memory)."""
        hasher = new_hasher(header.kind, header.length)
        if header.length <= JOINED_HASH_SIZE:
            # One long hash call instead of one per chunk: the GIL is let go
            # once, for longer, which lets the other threads run.
            pieces = [self._chunk(oid, cid, size, home) for cid, size in chunks]
            pieces.append(bytes(tail))
            hasher.update(b"".join(pieces))
        else:
            for cid, size in chunks:
                hasher.update(self._chunk(oid, cid, size, home))
            hasher.update(tail)
        actual = hasher.hexdigest()
        if actual != oid:
            if header.base is not None:
                self._blame_base(oid, header.base)
            raise CorruptObjectError(oid, "content does not match its id", oid, actual)

    def _chunk(
        self, oid: ObjectId, cid: ObjectId, size: int, home: tuple[str, bytes] | None = None
    ) -> bytes:
        """The checked content of chunk ``cid`` of blob ``oid``; its verdict is recorded."""
        verdict = self._verdicts.get(cid)
        if isinstance(verdict, CkptError):
            raise self._chunk_error(oid, cid, verdict)
        shared = self._take_shared(cid)
        if shared is not None and len(shared) == size:
            return shared
        slot = self.slots.get(cid)
        try:
            if slot is None:
                raise ObjectNotFoundError(cid)
            stored: Stored
            if home is not None and slot.key == home[0]:
                stored = memoryview(home[1])[slot.offset : slot.offset + slot.length]
            else:
                stored = self._read(cid, slot)
            found = plain(stored)
            base: ObjectId | None = None
            if found is not None and found[0] is Kind.CHUNK and len(found[1]) == size:
                piece = found[1]
            else:
                header = codec.chunk_header(stored, cid, size)
                piece, base = self._payload(cid, stored, header), header.base
            if verdict is None:
                actual = _object_id(Kind.CHUNK, piece)
                if actual != cid:
                    if base is not None:
                        self._blame_base(cid, base)
                    raise CorruptObjectError(cid, "content does not match its id", cid, actual)
                self._verdicts[cid] = Kind.CHUNK
        except CkptError as exc:
            if slot is not None:
                # A missing chunk is the blob's problem; a damaged one is the chunk's too.
                self._verdicts[cid] = exc
            raise self._chunk_error(oid, cid, exc) from exc
        self._keep_shared(cid, piece)
        return piece

    def _take_shared(self, cid: ObjectId) -> bytes | None:
        """The checked content of a chunk other blobs still need, if kept."""
        with self._lock:
            piece = self._shared.get(cid)
            if piece is not None:
                left = self._uses[cid] = self._uses[cid] - 1
                if left <= 0:
                    del self._shared[cid]
                    self._shared_bytes -= len(piece)
            return piece

    def _keep_shared(self, cid: ObjectId, piece: bytes) -> None:
        """Keep a checked chunk that more blobs need (deduplicated values), within a budget."""
        with self._lock:
            uses = self._uses.get(cid)
            if uses is None:
                return
            left = self._uses[cid] = uses - 1
            if left <= 0 or cid in self._shared:
                return
            if self._shared_bytes + len(piece) > SHARED_CHUNK_BYTES:
                return
            self._shared[cid] = piece
            self._shared_bytes += len(piece)

    @staticmethod
    def _chunk_error(oid: ObjectId, cid: ObjectId, exc: CkptError) -> CorruptObjectError:
        if isinstance(exc, ObjectNotFoundError):
            return CorruptObjectError(oid, f"its chunk {cid} is missing")
        return CorruptObjectError(oid, f"its chunk is damaged: {exc}")


_object_id = fast_id


__all__ = ["PackListing", "Slot", "StoreScan", "SweepResult", "Verdict"]
