"""Writing objects: a batch of puts that becomes one pack.

A save puts its objects (blob, or chunks and chunk list; tree; commit)
through one :class:`ObjectBatch`, which dedups each against the store
(touching the packs of an object it reuses and of everything that object
needs, so that a concurrent gc spares them: see :mod:`ckpt.objects.reliance`),
cuts large blobs into content-defined chunks, delta encodes a value
against its previous version where that pays, and writes what is new as one
pack when the batch ends (durable when it returns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckpt.errors import CkptError, SerializationError
from ckpt.objects import chunking, codec, delta
from ckpt.objects.ids import CommitId, Kind, ObjectId, object_id
from ckpt.objects.model import Commit, Tree, encode_commit
from ckpt.objects.packset import (
    BULK_CHUNKS,
    BULK_GROUP,
    BULK_LEVEL,
    PACK_LIMIT,
    TIERS,
    object_key,
)
from ckpt.objects.reliance import Reliance

if TYPE_CHECKING:
    # Imported where used: concurrent.futures costs start-up time that `ckpt log` need not pay.
    from concurrent.futures import Future, ThreadPoolExecutor

    from ckpt.objects.store import ObjectStore


class ObjectBatch:
    """Puts collected and written as one pack (see :meth:`ObjectStore.batch`)."""

    def __init__(self, store: ObjectStore, *, sealed_by_ref: bool = False) -> None:
        self.store = store
        #: The pack is made durable by the ref move that follows (see ObjectStore.batch).
        self.sealed_by_ref = sealed_by_ref
        self.entries: list[tuple[bytes, bytes]] = []
        self.ids: set[bytes] = set()
        self.size = 0
        self.chunk_checks = 0
        #: What this batch reuses of the store, secured against a concurrent gc.
        self.reliance = Reliance(store)
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
        """Write what has been put so far (durable when it returns, unless the batch is
        sealed by the ref move that follows it).

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
                self.store._write_pack(chunks, merge=False, durable=not self.sealed_by_ref)
                entries = others
        self.store._write_pack(entries, durable=not self.sealed_by_ref)

    def _add(self, raw: bytes, stored: bytes) -> None:
        oid = ObjectId(raw.hex())
        header = codec.parse_header(stored, oid)
        _remember(self.store.links, oid, (header.kind, header.base, header.depth))
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
        """True if ``oid`` is in this batch, or stored and secured (see ``Reliance.secure``)."""
        if raw in self.ids:
            return True
        if bulk:
            self.chunk_checks += 1
            if self.chunk_checks > 32:
                # Many chunks: one in-memory map of every packed id beats a
                # probe of every pack per chunk.
                key = self.store._known(raw)
                if key is not None:
                    return self.reliance.secure(oid, key)
                if not self.store._may_have_loose():
                    return False
                if self.store.storage.stat(object_key(oid)) is None:
                    return False
        return self.reliance.secure(oid)

    def put(self, kind: Kind, data: bytes, *, base: ObjectId | None = None) -> ObjectId:
        """Add an object (see :meth:`ObjectStore.put`); return its id."""
        if len(data) > codec.MAX_OBJECT_SIZE:
            raise SerializationError(
                f"a value of {len(data):,} bytes is larger than a checkpoint may hold (16 GiB)"
            )
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
        payload = self._chunk(oid, data, base, found) if chunked else data
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

    def _chunk(
        self, oid: ObjectId, data: bytes, base: ObjectId | None, found: tuple[bytes, int] | None
    ) -> bytes:
        """Store the new chunks of ``data`` (blob ``oid``); return its chunk list payload."""
        view = memoryview(data)
        memo = self.store.cut_memo
        cuts: list[int] = []
        ids: list[ObjectId] = []
        start = 0
        previous = None if base is None else memo.get(base)
        if previous is not None and previous[1]:
            # A growing value: its previous version's chunks, up to that version's
            # last cut, are cut and hashed already if the bytes are the same.
            old, old_cuts, old_ids = previous
            last = old_cuts[-1]
            # (bytes.startswith compares with memcmp; memoryview == goes byte by byte.)
            if len(data) >= last and data.startswith(memoryview(old)[:last]):
                cuts, ids, start = list(old_cuts), list(old_ids), last
        cuts += chunking.cut_points_from(view, start)
        pieces = [view[begin:end] for begin, end in zip([0, *cuts], cuts, strict=False)]
        tail = view[cuts[-1] if cuts else 0 :]
        # One thread: hashing a chunk takes microseconds, less than handing it to a pool.
        ids += [object_id(Kind.CHUNK, piece) for piece in pieces[len(ids) :]]
        memo.put(oid, data, cuts, ids)
        new = [at for at, cid in enumerate(ids) if not self._have(cid)]
        # What matters is how many chunks are new: a value that grew a little
        # has one or two, however many it has in all.
        if len(new) <= BULK_CHUNKS:
            self._few_chunks(ids, pieces, new, base, found)
        else:
            self._bulk_chunks([(ids[at], pieces[at]) for at in new])
        return chunking.encode_list(
            [(cid, len(piece)) for cid, piece in zip(ids, pieces, strict=True)], tail
        )

    def _have(self, cid: ObjectId) -> bool:
        return self._stored(cid, bytes.fromhex(cid), bulk=True)

    def _few_chunks(
        self,
        ids: list[ObjectId],
        pieces: list[memoryview],
        new: list[int],
        base: ObjectId | None,
        found: tuple[bytes, int] | None,
    ) -> None:
        """Store the new chunks ``ids[at]`` for ``at`` in ``new``, each in its smallest form.

        A value that grows a little per save makes a new chunk now and then,
        cut from bytes its previous version already holds (the end of its
        chunk list); a chunk edited in the middle of a value resembles the
        chunk before it.  So when a save makes only a few new chunks, each
        may be stored as a delta against the previous version of the value,
        or against the chunk before it, whichever is smaller, but only while
        decoding it stays cheap: its chain of bases at most
        ``chunking.CHUNK_CHAIN`` deep.  Reading the
        newest value then decodes a bounded number of objects per chunk,
        however long its history.  Otherwise a chunk is compressed on its own,
        tighter than bulk chunks (level 9: level 19 was 4% smaller but took
        milliseconds per chunk, the most of a LangGraph put).
        """
        few = len(new) <= chunking.FEW_CHUNKS
        for at in new:
            cid, content = ids[at], bytes(pieces[at])
            alone = codec.encode(
                Kind.CHUNK,
                content,
                level=chunking.FEW_CHUNKS_LEVEL if few else codec.COMPRESSION_LEVEL,
            )
            best = alone
            # (base, its payload, its chain depth, the deepest chain allowed against it)
            options: list[tuple[ObjectId, bytes, int, int]] = []
            if few and base is not None and found is not None:
                options.append((base, found[0], found[1], chunking.VERSION_BASE_CHAIN))
            if few and at > 0:
                previous = self._chunk_base(ids[at - 1], pieces[at - 1])
                if previous is not None:
                    options.append((*previous, chunking.CHUNK_CHAIN))
            for base_id, base_payload, base_depth, limit in options:
                if base_depth >= limit:
                    continue
                frame = delta.compress(content, base_payload)
                stored = codec.encode_entry(
                    Kind.CHUNK, len(content), content, base=base_id, depth=base_depth + 1,
                    frame=frame,
                )  # fmt: skip
                if len(stored) < len(best):
                    best = stored
            self._add(bytes.fromhex(cid), best)

    def _chunk_base(self, cid: ObjectId, piece: memoryview) -> tuple[ObjectId, bytes, int] | None:
        """``(cid, its bytes, its chain depth)`` if the stored chunk ``cid`` can serve as a base."""
        try:
            return cid, bytes(piece), self._link(cid)[2]
        except CkptError:
            return None

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
            found_kind, link, depth = self._link(base)
            if found_kind is not kind:
                return None
            for _ in range(delta.MAX_CHAIN + 1):
                if link is None:
                    break
                if link == oid:
                    return None
                link = self._link(link)[1]
            payload = store._payloads.get(base)
            if payload is None:
                stored = store.read_stored(base)
                payload = store._payload(base, stored, codec.parse_header(stored, base))
                store._payloads.put(base, payload)
        except CkptError:
            return None
        return payload, depth

    def _link(self, oid: ObjectId) -> tuple[Kind, ObjectId | None, int]:
        """Kind, delta base and chain depth of the stored ``oid``, from its header.

        Headers read or written by this store are remembered
        (``ObjectStore.links``): a stored form never changes while its
        object exists, so a save following a chain of bases does not read
        each header again.
        """
        links = self.store.links
        found = links.get(oid)
        if found is None:
            header = codec.parse_header(self.store.read_stored(oid), oid)
            found = (header.kind, header.base, header.depth)
            _remember(links, oid, found)
        return found


#: Most headers ``ObjectStore.links`` keeps (a few hundred bytes each).
LINKS_LIMIT = 100_000


def _remember(
    links: dict[ObjectId, tuple[Kind, ObjectId | None, int]],
    oid: ObjectId,
    link: tuple[Kind, ObjectId | None, int],
) -> None:
    if len(links) >= LINKS_LIMIT:
        links.clear()
    links[oid] = link
