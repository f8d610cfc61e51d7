"""Large values of a local store checked in worker processes (``verify --full``).

Checking a large value is reading its chunks, inflating and hashing each,
then hashing the whole value again.  zstd and blake3 let the GIL go while
they work, but between their calls there is enough Python (a header, a
few lookups per chunk) that threads of one process mostly wait for each
other, and a thread checking small objects meanwhile starves them.  So on
a local store holding many large values, :class:`ValueWorkers` hands them
to worker processes, one per core, pack by pack, while the calling process
checks the small objects and walks the jobs.  A worker maps the pack files
into memory rather than reading them: no copy of the bytes, no fresh memory
to fault in.

A worker only ever *confirms*: it reports a value good when every chunk,
read from the pack file the store map names, is a plain chunk frame of the
listed size hashing to its id, and the value's bytes hash to the value's
id.  Anything else (a chunk stored as a delta, a file it cannot read, any
damage, a worker that fails) leaves the value unconfirmed, and the caller
checks it again in-process, which finds and names the damage exactly as a
scan without workers does (see :class:`~ckpt.objects.scan.StoreScan`).
"""

from __future__ import annotations

import json
import mmap
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable

import blake3
import zstandard

from ckpt.objects import codec
from ckpt.objects.ids import PARALLEL_HASH_SIZE, Kind, new_hasher, object_id

#: Where a chunk is: its id, size, and its pack's key, offset and stored length.
ChunkPlace = tuple[str, int, str, int, int]
#: A value to check: id, kind code, length, its chunks in order, the bytes after them.
ValueTask = tuple[str, int, int, list[ChunkPlace], bytes]
#: A pack and the values checked while it is in memory (most of their chunks are in it).
Group = tuple[str, list[ValueTask]]
#: What a worker reports per group: the values and chunks it confirmed, and how many
#: values it looked at.
Report = tuple[list[str], list[str], int]

#: Hashed in one call over their joined chunks up to this size.
JOINED_HASH_SIZE = 16 << 20
#: Memory per worker for chunks that several of its values share.
SHARED_CHUNK_BYTES = 128 << 20

_PREFIXES = {kind: f"{kind.label} ".encode("ascii") for kind in Kind}
_KINDS = {int(kind): kind for kind in Kind}
#: Largest length a plain header may declare (see :func:`codec.parse_header`).
_PLAIN_MAX = min(codec.MAX_OBJECT_SIZE, codec.MAX_PAYLOAD_SIZE)
_local = threading.local()
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from ckpt.objects.valuecheck import main; main()"
)


def plain(stored: bytes | memoryview) -> tuple[Kind, bytes] | None:
    """Kind and payload of a stored object that is neither chunked nor a delta, when its
    header is in order and its frame announces its size and inflates to exactly it.

    The common case of a scan, in fewer steps than :func:`codec.parse_header`
    and :func:`codec.decompress_plain`, passing the same checks.  For anything
    else (another form of object, or any damage) it returns None and the
    caller takes the path that names the problem.  The payload is not
    checked against the object's id here.
    """
    if len(stored) < codec.HEADER_SIZE:
        return None
    magic, version, code, flags, length = codec.HEADER.unpack_from(stored)
    if (
        magic != codec.MAGIC
        or length > _PLAIN_MAX
        or not (
            (flags == 0 and version in (codec.FORMAT_VERSION, codec.FORMAT_VERSION_FLAGS))
            or (flags == codec.FLAG_DICT and version == codec.FORMAT_VERSION_FLAGS)
        )
    ):
        return None
    kind = _KINDS.get(code)
    if kind is None:
        return None
    frame = memoryview(stored)[codec.HEADER_SIZE :]
    decoders = getattr(_local, "decoders", None)
    if decoders is None:
        decoders = _local.decoders = (
            zstandard.ZstdDecompressor(),
            zstandard.ZstdDecompressor(dict_data=codec.builtin_dictionary()),
        )
    try:
        if length == 0 or zstandard.frame_content_size(frame) != length:
            return None
        out: bytes = decoders[1 if flags else 0].decompress(frame, allow_extra_data=False)
    except zstandard.ZstdError:
        return None
    return (kind, out) if len(out) == length else None


def fast_id(kind: Kind, data: bytes | memoryview) -> str:
    """:func:`~ckpt.objects.ids.object_id`, with less work per call (a scan makes many)."""
    if len(data) >= PARALLEL_HASH_SIZE:
        return object_id(kind, data)
    hasher = blake3.blake3(b"%s%d\0" % (_PREFIXES[kind], len(data)))
    hasher.update(data)
    return hasher.hexdigest()


class _Checker:
    """One worker's checks over the pack files under ``root``."""

    def __init__(self, root: str, groups: list[Group]) -> None:
        self.root = root
        #: Pack files mapped into memory (read from the page cache without a copy);
        #: None for one that cannot be.  Packs are never changed in place.
        self.maps: dict[str, memoryview | None] = {}
        self.good_chunks: set[str] = set()
        self.uses: dict[str, int] = {}
        for _, values in groups:
            for *_, chunks, _ in values:
                for cid, *_ in chunks:
                    self.uses[cid] = self.uses.get(cid, 0) + 1
        self.shared: dict[str, bytes] = {}
        self.shared_bytes = 0

    def _map(self, key: str) -> memoryview | None:
        if key in self.maps:
            return self.maps[key]
        view: memoryview | None = None
        try:
            with open(os.path.join(self.root, *key.split("/")), "rb") as handle:
                view = memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
        except (OSError, ValueError):  # gone, unreadable, or empty
            pass
        self.maps[key] = view
        return view

    def group(self, values: list[ValueTask]) -> Report:
        good: list[str] = []
        before = set(self.good_chunks)
        for task in values:
            if self._value(task):
                good.append(task[0])
        return good, sorted(self.good_chunks - before), len(values)

    def _value(self, task: ValueTask) -> bool:
        oid, code, length, chunks, tail = task
        kind = _KINDS.get(code)
        if kind is None:
            return False
        pieces: list[bytes] = []
        ok = True
        for cid, size, key, offset, stored_length in chunks:
            piece = self._chunk(cid, size, key, offset, stored_length)
            if piece is None:
                ok = False  # still go through the others: their shared uses count down
                continue
            pieces.append(piece)
        if not ok:
            return False
        hasher = new_hasher(kind, length)
        if length <= JOINED_HASH_SIZE:
            pieces.append(tail)
            hasher.update(b"".join(pieces))
        else:
            for piece in pieces:
                hasher.update(piece)
            hasher.update(tail)
        return bool(hasher.hexdigest() == oid)

    def _chunk(
        self,
        cid: str,
        size: int,
        key: str,
        offset: int,
        stored_length: int,
    ) -> bytes | None:
        left = self.uses[cid] = self.uses[cid] - 1
        piece = self.shared.get(cid)
        if piece is not None:
            if left <= 0:
                del self.shared[cid]
                self.shared_bytes -= len(piece)
            return piece
        view = self._map(key)
        if view is None:
            return None
        found = plain(view[offset : offset + stored_length])
        if found is None or found[0] is not Kind.CHUNK or len(found[1]) != size:
            return None
        piece = found[1]
        if cid not in self.good_chunks:
            if fast_id(Kind.CHUNK, piece) != cid:
                return None
            self.good_chunks.add(cid)
        if left > 0 and self.shared_bytes + len(piece) <= SHARED_CHUNK_BYTES:
            self.shared[cid] = piece
            self.shared_bytes += len(piece)
        return piece


def main() -> None:
    """A worker: read ``(root, groups)`` pickled on stdin, write one JSON line per group."""
    root, groups = pickle.load(sys.stdin.buffer)
    checker = _Checker(root, groups)
    out = sys.stdout
    for _, values in groups:  # in the order of their packs, each mapped once
        good, chunks, looked = checker.group(values)
        out.write(json.dumps([good, chunks, looked]) + "\n")
        out.flush()


def split(groups: list[Group], workers: int) -> list[list[Group]]:
    """``groups`` in ``workers`` shares of about the same number of value bytes."""
    shares: list[list[Group]] = [[] for _ in range(workers)]
    loads = [0] * workers
    weighed = sorted(groups, key=lambda group: -sum(task[2] for task in group[1]))
    for group in weighed:
        lightest = loads.index(min(loads))
        shares[lightest].append(group)
        loads[lightest] += sum(task[2] for task in group[1])
    return [share for share in shares if share]


class ValueWorkers:
    """Worker processes checking ``groups`` of values of the local store at ``root``.

    Started at once; :meth:`finish` waits for them and returns the values
    and chunks they confirmed.  ``on_report(good, looked)`` is called (from
    another thread) as each group is done.
    """

    def __init__(
        self,
        root: str,
        groups: list[Group],
        workers: int,
        on_report: Callable[[list[str], int], None] | None = None,
    ) -> None:
        self.values: set[str] = set()
        self.chunks: set[str] = set()
        self._lock = threading.Lock()
        self._on_report = on_report
        self._procs: list[subprocess.Popen[bytes]] = []
        self._threads: list[threading.Thread] = []
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        try:
            for share in split(groups, workers):
                proc = subprocess.Popen(
                    [sys.executable, "-c", _BOOT, package_parent],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                self._procs.append(proc)
                thread = threading.Thread(
                    target=self._talk, args=(proc, pickle.dumps((root, share))), daemon=True
                )
                thread.start()
                self._threads.append(thread)
        except OSError:
            pass  # what no worker confirms is checked by the caller

    def _talk(self, proc: subprocess.Popen[bytes], task: bytes) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            with proc.stdin:
                proc.stdin.write(task)
            for line in proc.stdout:
                good, chunks, looked = json.loads(line)
                with self._lock:
                    self.values.update(good)
                    self.chunks.update(chunks)
                if self._on_report is not None:
                    self._on_report(good, looked)
        except (OSError, ValueError):
            pass  # a worker that failed: the caller checks what it did not confirm
        finally:
            proc.stdout.close()

    def abort(self) -> None:
        """Stop the workers (the caller is giving up)."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        self.finish()

    def finish(self) -> tuple[set[str], set[str]]:
        """Wait for the workers; the ids of the values and chunks they confirmed."""
        try:
            for thread in self._threads:
                thread.join()
        finally:
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        return self.values, self.chunks


__all__ = ["ValueWorkers", "fast_id", "main", "plain", "split"]
