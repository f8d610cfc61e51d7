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
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import blake3

from ckpt.errors import CkptError, CorruptObjectError, ObjectNotFoundError
from ckpt.objects import codec, delta, pack
from ckpt.objects.ids import (
    PARALLEL_HASH_SIZE,
    CommitId,
    Kind,
    ObjectId,
    check_object_id,
    new_hasher,
    object_id,
)
from ckpt.objects.memory import allocating
from ckpt.objects.model import Commit, Tree, decode_commit, encode_commit
from ckpt.objects.packset import (
    LRU,
    OBJECTS_PREFIX,
    PACKS_PREFIX,
    QUARANTINE_PREFIX,
    Location,
    PackRef,
    PackSet,
    StoredObject,
    object_key,
)
from ckpt.storage.base import KeyInfo, KeyNotFoundError, Storage

if TYPE_CHECKING:
    # The writing side (writer, chunker, reliance) is imported on first use: commands that
    # only read (`ckpt log`) do not pay for it at start-up.
    from ckpt.objects.chunking import CutMemo
    from ckpt.objects.writer import ObjectBatch

__all__ = [
    "OBJECTS_PREFIX",
    "PACKS_PREFIX",
    "QUARANTINE_PREFIX",
    "Location",
    "ObjectBatch",
    "ObjectStore",
    "StoredObject",
    "blaming",
    "check_base_chain",
    "object_key",
]


def __getattr__(name: str) -> Any:
    # ObjectBatch is still importable from here, as before, without importing the writer
    # with this module.
    if name == "ObjectBatch":
        from ckpt.objects.writer import ObjectBatch

        return ObjectBatch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Decoded payloads (delta bases, chunk lists) kept in memory.
PAYLOAD_CACHE_BYTES = 64 << 20


class ObjectStore(PackSet):
    """Immutable objects over a :class:`~ckpt.storage.base.Storage` backend."""

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)
        self._payloads = LRU(PAYLOAD_CACHE_BYTES)
        #: Kind, delta base and depth of objects whose headers this store read or wrote.
        self.links: dict[ObjectId, tuple[Kind, ObjectId | None, int]] = {}
        self._cut_memo: CutMemo | None = None
        #: Object -> the packs its closure is in (in the order to touch them) and the
        #: objects of the closure (kept by ckpt.objects.reliance).
        self.closures: dict[ObjectId, tuple[tuple[str, ...], frozenset[ObjectId]]] = {}

    # -- writing ------------------------------------------------------------

    @property
    def cut_memo(self) -> CutMemo:
        """Cut points and chunk ids of the values this store chunked last (made on first
        use: a store that only reads never imports the chunker)."""
        memo = self._cut_memo
        if memo is None:
            from ckpt.objects.chunking import CutMemo

            memo = self._cut_memo = CutMemo()
        return memo

    def batch(self, *, sealed_by_ref: bool = False) -> ObjectBatch:
        """A batch of puts written as one pack when the ``with`` block ends.

        Nothing is written if the block raises (the objects written for a
        batch that grew past :data:`PACK_LIMIT` stay as garbage for gc).
        ``sealed_by_ref``: the caller moves a ref once the block ends, and that
        durable change makes the batch's pack durable too (on a local store,
        one fdatasync of its journal for both; see :mod:`ckpt.storage.journal`).
        """
        from ckpt.objects.writer import ObjectBatch

        return ObjectBatch(self, sealed_by_ref=sealed_by_ref)

    def freshen(self, oid: ObjectId, *, doomed: frozenset[ObjectId] | None = None) -> bool:
        """True if ``oid`` is stored and can be relied on by whoever is about to make it
        reachable (a transfer finding it already there): the containers of it and of
        everything its stored form needs are touched, so that a concurrent gc spares
        them (see :mod:`ckpt.objects.reliance`).  False: store it anew.  ``doomed``: what
        :func:`~ckpt.objects.reliance.doomed_objects` gave, for a caller asking many times."""
        from ckpt.objects.reliance import Reliance

        return Reliance(self, doomed).secure(check_object_id(oid))

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

    # -- reading ------------------------------------------------------------

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
        # Refused before anything is allocated when it cannot fit (a short chunk list may
        # declare gigabytes: one chunk named many times).
        with allocating(oid, max(header.length, header.payload_length)):
            payload = self._payload(oid, stored, header)
            data = self._assemble(oid, header, payload, checked) if header.chunked else payload
        if not header.chunked:
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
        from ckpt.objects.chunking import decode_list

        chunks, tail = decode_list(payload, header.length, oid)
        hasher = new_hasher(header.kind, header.length)
        if header.length >= PARALLEL_HASH_SIZE:
            hasher = blake3.blake3(
                f"{header.kind.label} {header.length}\0".encode("ascii"),
                max_threads=blake3.blake3.AUTO,
            )
        out = io.BytesIO()
        previous: tuple[ObjectId, bytes] | None = None
        for cid, size in chunks:
            piece = self._chunk(oid, cid, size, previous)
            previous = (cid, piece)
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

    def _chunk(
        self,
        oid: ObjectId,
        cid: ObjectId,
        size: int,
        previous: tuple[ObjectId, bytes] | None = None,
    ) -> bytes:
        """The bytes of chunk ``cid`` of ``oid``; ``previous`` is the chunk before it in the
        value (id, bytes), the base a chunk is often stored against (already decoded)."""
        with blaming(oid, "chunk", f"chunk {cid}"):
            stored, _ = self._stored(cid)
            header = codec.chunk_header(stored, cid, size)
            if previous is not None and header.base == previous[0]:
                frame = memoryview(stored)[header.size :]
                return delta.decompress(frame, header.payload_length, previous[1], cid)
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
        from ckpt.objects.chunking import decode_list

        chunks, tail = decode_list(self._payload(oid, stored, header), header.length, oid)
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

        def whole_pack(ref: PackRef) -> None:
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
            from ckpt.objects.chunking import decode_list

            chunks, _ = decode_list(payload, header.length, oid)
            refs.extend(cid for cid, _ in chunks)
        return refs

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
        ref = PackRef(KeyInfo(key, len(data), 0.0))
        index = self._index(ref)
        keep = [
            (entry.raw_id, data[entry.offset : entry.offset + entry.length])
            for entry in index.entries(pack.slicer(data))
            if entry.id not in drop
        ]
        if keep:
            built = pack.build(keep)
            if f"{PACKS_PREFIX}{blake3.blake3(built).hexdigest()}" == key:
                # The same entries make the very pack this was before its header was
                # damaged (its name is the hash of those bytes): put them in its place.
                self.storage.compare_and_swap(key, data, built)
                self._values.discard(key)
                self._pack_list(refresh=True)
                return False
            self._store_pack(built, [raw_id for raw_id, _ in keep])
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
        self.links.pop(oid, None)
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
        if removed:
            self.links.pop(oid, None)
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
