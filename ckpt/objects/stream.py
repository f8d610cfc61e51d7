"""Blobs written, read and copied as streams, in constant memory (file contents).

A file of any size is stored as one blob whose canonical bytes are the
file's bytes, so its id is a content id like any blob's.  It is never held
in memory whole:

**Writing** (:class:`ContentWriter`, :class:`BlobStream`).  The bytes are
fed in blocks.  A blob of at least :data:`~ckpt.objects.chunking.CHUNK_THRESHOLD`
bytes is cut with the same content-defined chunking as any large blob:
:func:`~ckpt.objects.chunking.cut_points` applied to the bytes since the last
cut gives exactly the cuts it gives on the whole value (every cut it returns
depends only on bytes before it), so a file and a ``bytes`` value with the
same content share their chunks, and a file changed in a few places shares
all but the chunks around the changes.  Each new chunk is compressed, or,
when a sample of its block does not compress (video, images, archives),
stored in a zstd frame of raw blocks (:func:`raw_frame`: any zstd decoder
reads it, and it costs a copy instead of a compression).  New objects are
collected in a pack that is written durably, in the background, once it
reaches :data:`~ckpt.objects.packset.PACK_LIMIT`, one pack in flight at a
time.  When the stream ends, the blob (its chunk list and tail) is added.
Memory: one block being cut, one pack being filled and one being written.

A writer that is left with an exception (the source changed while it was
read, the process is interrupted) removes the packs it created, unless
another writer has reused one of their objects since (it checks the
pack's modification time with the backend's ``delete_if_older``).  A crash
leaves them behind, unreferenced: gc collects them after its grace period.

**Reading** (:class:`BlobReader`).  A chunked blob is read chunk by chunk;
each chunk is checked against its id as it is read, and the whole blob
against its own id when the last byte has been read (a mismatch raises
:class:`~ckpt.errors.CorruptObjectError` then, from ``read``).

**Copying** (:meth:`ContentWriter.copy_blob`).  Chunk by chunk from
another store, each one checked, only the missing ones written, and the
whole id checked before the blob itself is written.
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import blake3

from ckpt.errors import CkptError, CorruptObjectError
from ckpt.objects import chunking, codec, pack
from ckpt.objects.ids import PARALLEL_HASH_SIZE, Kind, ObjectId, object_id
from ckpt.objects.packset import BULK_GROUP, BULK_LEVEL, PACK_LIMIT, object_key
from ckpt.objects.reliance import Reliance

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from ckpt.objects.store import ObjectStore

#: Bytes a caller should feed at a time (one read of a file).
BLOCK_SIZE = 2 << 20
#: Bytes of each block compressed to decide whether its chunks are compressed.
SAMPLE_SIZE = 64 << 10
#: A sample that compresses to more than this fraction of its size is
#: incompressible: the block's chunks are stored in raw frames.
INCOMPRESSIBLE = 0.95

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Frame header descriptor: single segment, 4-byte content size, no checksum, no dictionary.
_RAW_DESCRIPTOR = b"\xa0"
_RAW_BLOCK = 128 << 10
#: The chunk list's count and entries (the format of :mod:`ckpt.objects.chunking`).
_LIST_COUNT = struct.Struct(">I")
_LIST_ENTRY = struct.Struct(">32sI")


class StreamLengthError(CkptError):
    """A stream gave more or fewer bytes than the length announced when it was opened."""


def raw_frame_parts(data: bytes | memoryview) -> list[bytes | memoryview]:
    """The pieces of a zstd frame holding ``data`` (1 byte to 4 GiB - 1) in raw blocks.

    The frame announces its content size and carries no checksum (the
    object id checks the content).  Any zstd decoder reads it; writing it
    costs a copy instead of a compression.  The pieces are views of ``data``
    between small headers, so that they can be copied once, into a pack.
    """
    view = memoryview(data)
    size = len(view)
    parts: list[bytes | memoryview] = []
    header = _ZSTD_MAGIC + _RAW_DESCRIPTOR + struct.pack("<I", size)
    offset = 0
    while offset < size:
        piece = view[offset : offset + _RAW_BLOCK]
        offset += len(piece)
        # Block header: bit 0 last block, bits 1-2 type (0: raw), bits 3-23 size.
        block = (len(piece) << 3) | (1 if offset >= size else 0)
        parts.append(header + block.to_bytes(3, "little"))
        parts.append(piece)
        header = b""
    return parts


def raw_frame(data: bytes | memoryview) -> bytes:
    """:func:`raw_frame_parts` joined."""
    return b"".join(raw_frame_parts(data))


def encode_raw_parts(kind: Kind, data: bytes | memoryview) -> list[bytes | memoryview]:
    """The stored bytes (in pieces) of an object whose frame is raw (format version 1)."""
    parts = raw_frame_parts(data)
    header = codec.HEADER.pack(codec.MAGIC, codec.FORMAT_VERSION, int(kind), 0, len(data))
    parts[0] = header + parts[0]
    return parts


def encode_raw(kind: Kind, data: bytes | memoryview) -> bytes:
    """The stored bytes of an object whose frame is raw (format version 1, no flags)."""
    return b"".join(encode_raw_parts(kind, data))


def compressible(sample: bytes | memoryview) -> bool:
    """True if ``sample`` shrinks under zstd's fastest setting by more than a few percent."""
    if not sample:
        return True
    compressed = codec.encode(Kind.CHUNK, bytes(sample), level=BULK_LEVEL)
    return len(compressed) - codec.HEADER_SIZE < INCOMPRESSIBLE * len(sample)


def _blob_hasher(length: int) -> blake3.blake3:
    prefix = f"{Kind.BLOB.label} {length}\0".encode("ascii")
    if length >= PARALLEL_HASH_SIZE:
        return blake3.blake3(prefix, max_threads=blake3.blake3.AUTO)
    return blake3.blake3(prefix)


class ContentWriter:
    """Streamed blobs (and their chunks) written as packs; see the module docstring.

    Use it as a context manager: leaving the block normally writes what is
    left (durable when it returns); leaving it with an exception removes
    the packs this writer created (see :meth:`abort`).
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        # Made on the first object (a save whose value holds no file allocates nothing).
        self._pack: pack.PackBuilder | None = None
        #: Ids of the objects in the pack being filled, and in the pack being written:
        #: those a lookup in the store cannot find yet.
        self._ids: set[bytes] = set()
        self._flight: set[bytes] = set()
        #: What this writer reuses of the store, secured against a concurrent gc.
        self._reliance = Reliance(store)
        self._created: list[tuple[str, float]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None
        #: Stored bytes and count of the objects this writer added (what the save costs).
        self.new_bytes = 0
        self.new_objects = 0

    def __enter__(self) -> ContentWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.flush()
        else:
            self.abort()

    # -- adding objects -------------------------------------------------------

    def stream(self, length: int) -> BlobStream:
        """A blob of exactly ``length`` bytes, fed with :meth:`BlobStream.write`."""
        return BlobStream(self, length)

    def has(self, oid: ObjectId) -> bool:
        """True if ``oid`` was added by this writer, or is stored and secured against a
        concurrent gc with everything its stored form needs."""
        raw = bytes.fromhex(oid)
        if raw in self._ids or raw in self._flight:
            return True
        return self._reliance.secure(oid)

    def _have_chunk(self, raw: bytes) -> bool:
        """Like :meth:`has` for one of many chunks: one in-memory map of packed ids."""
        if raw in self._ids or raw in self._flight:
            return True
        store = self.store
        key = store._known(raw)
        if key is None and store._may_have_loose():
            loose = object_key(ObjectId(raw.hex()))
            if store.storage.stat(loose) is not None:
                key = loose
        if key is None:
            return False
        return self._reliance.secure(ObjectId(raw.hex()), key)

    def _add(self, raw: bytes, parts: list[bytes | memoryview]) -> None:
        """Add one object, its stored bytes given in ``parts``."""
        if self._pack is None:
            self._pack = pack.PackBuilder(PACK_LIMIT + (256 << 10))
        before = self._pack.size
        if not self._pack.add(raw, parts):
            return
        self._ids.add(raw)
        self.new_bytes += self._pack.size - before
        self.new_objects += 1
        if self._pack.size >= PACK_LIMIT:
            self._submit(self._pack)

    def _submit(self, full: pack.PackBuilder) -> None:
        """Hand the full pack to the background writer (one pack in flight at a time)."""
        self._wait()
        data, ids = full.finish(), full.ids
        full.reset()
        self._flight, self._ids = self._ids, set()
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="ckpt-packs")
        self._in_flight = self._pool.submit(self._put, data, ids)

    def _put(self, data: bytes, ids: list[bytes]) -> None:
        key, created = self.store._store_pack(data, ids)
        if created:
            info = self.store.storage.stat(key)
            self._created.append((key, info.mtime if info is not None else 0.0))

    def _wait(self) -> None:
        future, self._in_flight = self._in_flight, None
        if future is not None:
            future.result()
            # Written: the store finds those objects now.
            self._flight = set()

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- ending ---------------------------------------------------------------

    def flush(self) -> None:
        """Write everything added so far; durable when it returns."""
        try:
            self._wait()
            if self._pack is not None and len(self._pack):
                data, ids = self._pack.finish(), self._pack.ids
                self._pack = None
                self._put(data, ids)
        finally:
            self._close_pool()

    def abort(self) -> None:
        """Drop what is not written yet and remove the packs this writer created.

        A pack whose modification time moved since it was written (another
        writer reused one of its objects and touched it) is left alone: gc
        takes what nobody uses.  Never raises for a pack it cannot remove.
        """
        self._pack = None
        try:
            # A pack whose write failed left nothing to remove.
            with contextlib.suppress(Exception):
                self._wait()
        finally:
            self._close_pool()
        created, self._created = self._created, []
        for key, mtime in created:
            try:
                self.store.storage.delete_if_older(key, mtime + 1e-6)
            except CkptError:
                continue
        if created:
            self.store._pack_list(refresh=True)

    # -- copying --------------------------------------------------------------

    def copy_blob(self, source: ObjectStore, oid: ObjectId) -> bool:
        """Copy blob ``oid`` from ``source``, chunk by chunk, checking every id on the way.

        Only what this store lacks is written; returns False if it had the
        blob already.  Raises CorruptObjectError (naming ``oid`` or its
        chunk) if ``source`` holds damaged bytes; nothing that names them is
        written then.
        """
        if self.has(oid):
            return False
        stored = source.read_stored(oid)
        header = codec.parse_header(stored, oid)
        if header.kind is not Kind.BLOB:
            raise CorruptObjectError(oid, "object has the wrong kind", "blob", header.kind.label)
        if not header.chunked:
            data = source.get(oid, Kind.BLOB)
            self._add(bytes.fromhex(oid), [codec.encode_entry(Kind.BLOB, len(data), data)])
            return True
        payload = source._payload(oid, stored, header)
        chunks, tail = chunking.decode_list(payload, header.length, oid)
        hasher = _blob_hasher(header.length)
        for cid, size in chunks:
            piece = _checked_chunk(source, oid, cid, size)
            hasher.update(piece)
            raw = bytes.fromhex(cid)
            if not self._have_chunk(raw):
                self._add(raw, [codec.encode(Kind.CHUNK, piece, level=BULK_LEVEL)])
        hasher.update(tail)
        actual = hasher.hexdigest()
        if actual != oid:
            raise CorruptObjectError(oid, "content does not match its id", oid, actual)
        self._add(
            bytes.fromhex(oid),
            [codec.encode_entry(Kind.BLOB, header.length, bytes(payload), chunked=True)],
        )
        return True


class BlobStream:
    """One blob being written from a stream of bytes; see :meth:`ContentWriter.stream`.

    The caller's thread finds the cut points of each block; hashing and
    storing the block's chunks happen on a worker thread meanwhile (blake3
    and the pack writes let the GIL go), one block at a time.
    """

    def __init__(self, writer: ContentWriter, length: int) -> None:
        if length < 0:
            raise StreamLengthError(f"a blob cannot have {length} bytes")
        self.writer = writer
        self.length = length
        self.received = 0
        self._hasher = blake3.blake3(f"{Kind.BLOB.label} {length}\0".encode("ascii"))
        self._chunked = length >= chunking.CHUNK_THRESHOLD
        self._pending = b""
        # The chunk list's entries (see ckpt.objects.chunking), 36 bytes a chunk.
        self._entries = bytearray()
        self._count = 0
        self._worker: ThreadPoolExecutor | None = None
        self._job: Future[None] | None = None

    def write(self, data: bytes | memoryview) -> None:
        """Add the next bytes.  Raises StreamLengthError past the announced length."""
        size = len(data)
        if self.received + size > self.length:
            raise StreamLengthError(f"stream gave more than the {self.length} bytes it announced")
        if not size:
            return
        self.received += size
        if not self._chunked:
            self._hasher.update(data)
            self._pending += data
            return
        carried = len(self._pending)
        buffer = self._pending + data if carried else bytes(data)
        cuts = chunking.cut_points(buffer)
        self._pending = buffer[cuts[-1] :] if cuts else buffer
        self._wait()
        if self._worker is None:
            from concurrent.futures import ThreadPoolExecutor

            self._worker = ThreadPoolExecutor(1, thread_name_prefix="ckpt-chunks")
        self._job = self._worker.submit(self._store_block, buffer, carried, cuts)

    def _wait(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            job.result()

    def _close(self) -> None:
        try:
            self._wait()
        finally:
            if self._worker is not None:
                self._worker.shutdown(wait=True)
                self._worker = None

    def _store_block(self, buffer: bytes, carried: int, cuts: list[int]) -> None:
        """Hash a block's new bytes and store its chunks (on the worker thread)."""
        view = memoryview(buffer)
        self._hasher.update(view[carried:])
        writer = self.writer
        new: list[tuple[bytes, memoryview]] = []
        start = 0
        for end in cuts:
            piece = view[start:end]
            start = end
            cid = object_id(Kind.CHUNK, piece)
            raw = bytes.fromhex(cid)
            self._entries += _LIST_ENTRY.pack(raw, len(piece))
            self._count += 1
            if not writer._have_chunk(raw):
                writer._ids.add(raw)  # a piece repeated in this blob is stored once
                new.append((raw, piece))
        if not new:
            return
        if compressible(new[0][1][:SAMPLE_SIZE]):
            for at in range(0, len(new), BULK_GROUP):
                group = new[at : at + BULK_GROUP]
                encoded = codec.encode_many(
                    Kind.CHUNK, [piece for _, piece in group], level=BULK_LEVEL
                )
                for (raw, _), stored in zip(group, encoded, strict=True):
                    writer._add(raw, [stored])
        else:
            for raw, piece in new:
                writer._add(raw, encode_raw_parts(Kind.CHUNK, piece))

    def finish(self) -> ObjectId:
        """Add the blob itself; return its id.  Raises StreamLengthError if bytes are missing."""
        self._close()
        if self.received != self.length:
            raise StreamLengthError(
                f"stream gave {self.received} of the {self.length} bytes it announced"
            )
        oid = ObjectId(self._hasher.hexdigest())
        writer = self.writer
        if writer.has(oid):
            return oid
        if self._chunked:
            payload = b"".join((_LIST_COUNT.pack(self._count), self._entries, self._pending))
            stored = codec.encode_entry(Kind.BLOB, self.length, payload, chunked=True)
        else:
            stored = codec.encode_entry(Kind.BLOB, self.length, self._pending)
        writer._add(bytes.fromhex(oid), [stored])
        return oid

    def abandon(self) -> None:
        """Stop without adding the blob (the writer's :meth:`~ContentWriter.abort` cleans up)."""
        # The failure that made the caller abandon the blob is the one to report.
        with contextlib.suppress(Exception):
            self._close()


def _checked_chunk(store: ObjectStore, oid: ObjectId, cid: ObjectId, size: int) -> bytes:
    """Chunk ``cid`` of blob ``oid``, checked against its id (damage is blamed on ``oid``)."""
    piece = store._chunk(oid, cid, size)
    actual = object_id(Kind.CHUNK, piece)
    if actual != cid:
        raise CorruptObjectError(oid, f"its chunk {cid} does not match its id", cid, actual)
    return piece


class BlobReader(io.RawIOBase):
    """A blob's bytes as a read-only binary stream, checked as they are read.

    A chunked blob is read one chunk at a time (each checked against its
    id); the blob's own id is checked once its last byte has been read, and
    a mismatch raises CorruptObjectError from that ``read``.  A blob stored
    whole is read (and checked) at once.
    """

    def __init__(self, store: ObjectStore, oid: ObjectId) -> None:
        super().__init__()
        self.store = store
        self.oid = oid
        stored = store.read_stored(oid)
        header = codec.parse_header(stored, oid)
        if header.kind is not Kind.BLOB:
            raise CorruptObjectError(oid, "object has the wrong kind", "blob", header.kind.label)
        self.length = header.length
        self._buffer = memoryview(b"")
        self._pieces: Iterator[bytes]
        if header.chunked:
            payload = store._payload(oid, stored, header)
            chunks, tail = chunking.decode_list(payload, header.length, oid)
            self._pieces = self._chunked(chunks, bytes(tail))
        else:
            self._pieces = iter([store.get(oid, Kind.BLOB)])

    def _chunked(self, chunks: list[tuple[ObjectId, int]], tail: bytes) -> Iterator[bytes]:
        hasher = _blob_hasher(self.length)
        for cid, size in chunks:
            piece = _checked_chunk(self.store, self.oid, cid, size)
            hasher.update(piece)
            yield piece
        hasher.update(tail)
        actual = hasher.hexdigest()
        if actual != self.oid:
            raise CorruptObjectError(self.oid, "content does not match its id", self.oid, actual)
        if tail:
            yield tail

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(target).cast("B")
        while not self._buffer:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._buffer = memoryview(piece)
        size = min(len(out), len(self._buffer))
        out[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def pieces(self) -> Iterator[bytes]:
        """The rest of the blob in the pieces it is stored in (no copy into a caller's buffer)."""
        if self._buffer:
            rest, self._buffer = bytes(self._buffer), memoryview(b"")
            yield rest
        yield from self._pieces


def blob_length(store: ObjectStore, oid: ObjectId) -> int:
    """The length of blob ``oid``'s bytes, from its stored header."""
    return codec.parse_header(store.read_stored(oid), oid).length


def verify_blob(store: ObjectStore, oid: ObjectId) -> None:
    """Check blob ``oid`` fully (every chunk and the whole id) in constant memory."""
    with BlobReader(store, oid) as reader:
        for _ in reader.pieces():
            pass


class BlobSink(Protocol):
    """Where streamed blobs go: a :class:`ContentWriter`, or a :class:`ContentDigest`."""

    def stream(self, length: int) -> BlobWriting: ...


class BlobWriting(Protocol):
    """One streamed blob: feed it, then finish it (its id) or abandon it."""

    def write(self, data: bytes | memoryview) -> None: ...

    def finish(self) -> ObjectId: ...

    def abandon(self) -> None: ...


class ContentDigest:
    """The ids streamed blobs would get, computed without storing anything."""

    def stream(self, length: int) -> BlobDigest:
        return BlobDigest(length)


class BlobDigest:
    """A blob's id computed from a stream of its bytes (see :class:`ContentDigest`)."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.received = 0
        self._hasher = _blob_hasher(length)

    def write(self, data: bytes | memoryview) -> None:
        if self.received + len(data) > self.length:
            raise StreamLengthError(f"stream gave more than the {self.length} bytes it announced")
        self._hasher.update(data)
        self.received += len(data)

    def finish(self) -> ObjectId:
        if self.received != self.length:
            raise StreamLengthError(
                f"stream gave {self.received} of the {self.length} bytes it announced"
            )
        return ObjectId(self._hasher.hexdigest())

    def abandon(self) -> None:
        """Nothing to undo: nothing was stored."""
