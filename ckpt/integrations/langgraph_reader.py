"""Reading LangGraph threads from a ckpt repository: branches, checkpoints, values, writes.

:class:`ThreadReader` finds a thread's branches and checkpoints and reads
what they hold, in the layout of :mod:`ckpt.integrations.langgraph_layout`
(today's records, and the whole-value stages of earlier versions);
:class:`~ckpt.integrations.langgraph_store.ThreadStore` adds writing.

Everything read is cached by object id (commits, trees, blobs, decoded
records), which is always safe: an id names immutable content.  Refs are
read afresh on every call, so that another process's writes, ``ckpt
checkout`` and ``ckpt branch`` are seen at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar

import attrs

from ckpt.errors import CkptError, ConflictError
from ckpt.history.jobrecord import read_record
from ckpt.history.refs import HEADS
from ckpt.integrations.langgraph_layout import (
    HEADER_STAGE,
    KIND_CHECKPOINT,
    KIND_WRITES,
    NS_BRANCH_PREFIX,
    THREAD_LABEL,
    Payload,
    StoredCheckpoint,
    StoredWrite,
    carried,
    channel_stage,
    commit_info,
    job_name_for,
    ns_branch_prefix,
    primary_branch,
    stored_checkpoint,
    thread_id_from_job_name,
    write_items,
    writes_target,
)
from ckpt.integrations.langgraph_record import (
    RECORD_TYPE,
    Array,
    Entry,
    InBlob,
    Inline,
    Record,
    RecordError,
    Slice,
    decode_record,
)
from ckpt.objects import codec
from ckpt.objects.ids import CommitId, Kind, ObjectId
from ckpt.objects.model import ENCODING_RAW, Commit, Tree, TreeEntry

if TYPE_CHECKING:
    from ckpt.history.job import Job
    from ckpt.objects.store import ObjectStore
    from ckpt.repository import Repository

T = TypeVar("T")

_CACHE_LIMIT = 50_000
#: Bytes of blobs and decoded records a reader keeps (a long message list's sealed
#: prefixes, the newest records of the threads in use).
VALUE_CACHE_BYTES = 256 << 20


class ObjectBatch(Protocol):
    """Puts written together when the batch ends (``ObjectStore.batch``)."""

    def put(self, kind: Kind, data: bytes, *, base: ObjectId | None = None) -> ObjectId: ...


class _OneByOne:
    """A batch for an object store that writes each object as it is put."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def put(self, kind: Kind, data: bytes, *, base: ObjectId | None = None) -> ObjectId:
        return self.objects.put(kind, data)


@contextlib.contextmanager
def object_batch(objects: ObjectStore, *, sealed_by_ref: bool = False) -> Iterator[ObjectBatch]:
    """Collect the objects of one save into one write where the object store can (one pack,
    delta encoded against ``base``); every object is stored when the block ends.
    ``sealed_by_ref``: the caller moves a ref next, which makes the pack durable with it
    (see ``ObjectStore.batch``), and then calls ``objects.settle()``."""
    batch = getattr(objects, "batch", None)
    if batch is None:
        yield _OneByOne(objects)
        return
    with batch(sealed_by_ref=sealed_by_ref) as found:
        yield found


def blob_entry(
    batch: ObjectBatch, stage: str, value: Payload, *, base: ObjectId | None = None
) -> TreeEntry:
    """Put ``value``'s bytes as a blob; the tree entry naming it as stage ``stage``."""
    oid = batch.put(Kind.BLOB, value.data, base=base)
    return TreeEntry(stage, oid, value.type, len(value.data), ENCODING_RAW)


@attrs.frozen
class Place:
    """Where a checkpoint is: a branch that reaches it, that branch's head, the checkpoint's
    newest commit on it (its last writes commit, or itself) and the checkpoint."""

    branch: str
    head: CommitId
    tip: Commit
    checkpoint: StoredCheckpoint


class _Values:
    """A least-recently-used cache of immutable things by id, bounded by their size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.items: OrderedDict[object, tuple[object, int]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: object) -> object | None:
        with self.lock:
            found = self.items.get(key)
            if found is None:
                return None
            self.items.move_to_end(key)
            return found[0]

    def put(self, key: object, value: object, size: int) -> None:
        if size > self.limit:
            return
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self.items[key] = (value, size)
            self.size += size
            while self.size > self.limit:
                _, (_, dropped) = self.items.popitem(last=False)
                self.size -= dropped


class ThreadReader:
    """LangGraph threads in one ckpt repository, read as the layout module describes.

    Safe to share between threads: reads need no lock (refs are read
    atomically, objects never change); :attr:`lock` serializes writers.
    """

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.lock = threading.RLock()
        self._cache_lock = threading.Lock()
        self._commits: OrderedDict[CommitId, Commit] = OrderedDict()
        self._trees: OrderedDict[ObjectId, Tree] = OrderedDict()
        self._values = _Values(VALUE_CACHE_BYTES)
        self._depths: OrderedDict[ObjectId, int] = OrderedDict()

    # -- object access ------------------------------------------------------

    def commit(self, oid: CommitId) -> Commit:
        with self._cache_lock:
            found = self._commits.get(oid)
        if found is None:
            found = self.repo.objects.get_commit(oid)
            self._remember_commit(found)
        return found

    def _remember_commit(self, commit: Commit) -> None:
        with self._cache_lock:
            self._commits[commit.id] = commit
            if len(self._commits) > _CACHE_LIMIT:
                self._commits.popitem(last=False)

    def tree(self, oid: ObjectId) -> Tree:
        with self._cache_lock:
            found = self._trees.get(oid)
        if found is None:
            found = self.repo.objects.get_tree(oid)
            self._remember_tree(oid, found)
        return found

    def _remember_tree(self, oid: ObjectId, tree: Tree) -> None:
        with self._cache_lock:
            self._trees[oid] = tree
            if len(self._trees) > _CACHE_LIMIT:
                self._trees.popitem(last=False)

    def blob(self, oid: ObjectId) -> bytes:
        """The bytes of blob ``oid`` (hash-checked when first read, then cached)."""
        found = self._values.get(oid)
        if isinstance(found, bytes):
            return found
        data = self.repo.objects.get(oid, Kind.BLOB)
        self._values.put(oid, data, len(data))
        return data

    def remember_blob(self, oid: ObjectId, data: bytes) -> None:
        """Cache the bytes of a blob this process has just written."""
        self._values.put(oid, data, len(data))

    def remember_record(self, oid: ObjectId, record: Record, size: int) -> None:
        """Cache the decoded record of a blob this process has just written."""
        self._values.put(("record", oid), record, size)

    def _payload(self, entry: TreeEntry) -> Payload:
        return Payload(entry.type, self.blob(entry.id))

    def depth(self, oid: ObjectId) -> int:
        """How many delta bases reading ``oid`` resolves (0: stored whole)."""
        with self._cache_lock:
            found = self._depths.get(oid)
        if found is None:
            found = codec.parse_header(self.repo.objects.read_stored(oid), oid).depth
            self.remember_depth(oid, found)
        return found

    def remember_depth(self, oid: ObjectId, depth: int) -> None:
        with self._cache_lock:
            self._depths[oid] = depth
            if len(self._depths) > _CACHE_LIMIT:
                self._depths.popitem(last=False)

    def job(self, thread_id: str) -> Job:
        return self.repo.job(job_name_for(thread_id))

    def cut(self, job: Job) -> frozenset[CommitId]:
        return read_record(self.repo.storage, job.name).cut

    def walk(self, start: CommitId, cut: Collection[CommitId]) -> Iterator[Commit]:
        oid: CommitId | None = start
        while oid is not None:
            commit = self.commit(oid)
            yield commit
            oid = None if commit.id in cut else commit.parent

    # -- records ------------------------------------------------------------

    def record(self, commit: Commit) -> tuple[Tree, Record] | None:
        """The tree and decoded record of a checkpoint commit of today's layout; None for a
        commit of an earlier layout (its header stage holds the serialized header)."""
        tree = self.tree(commit.tree)
        entry = tree.get(HEADER_STAGE)
        if entry is None or entry.type != RECORD_TYPE:
            return None
        key = ("record", entry.id)
        found = self._values.get(key)
        if not isinstance(found, Record):
            data = self.blob(entry.id)
            try:
                found = decode_record(data)
            except RecordError as exc:
                raise CkptError(
                    f"job {commit.job!r}: commit {commit.short_id} holds a garbled LangGraph "
                    f"record ({exc}); check out an earlier checkpoint"
                ) from None
            self._values.put(key, found, len(data))
        return tree, found

    def sealed(self, tree: Tree, entry: Array) -> bytes:
        """The sealed prefix of a list entry (empty if it has none)."""
        if entry.sealed is None:
            return b""
        stage = tree.get(entry.sealed)
        if stage is None:
            raise CkptError(f"a LangGraph record names the missing stage {entry.sealed!r}")
        return self.blob(stage.id)

    def entry_value(self, tree: Tree, entry: Entry) -> Payload:
        """The serialized value a record's channel entry holds."""
        if isinstance(entry, Inline):
            return Payload(entry.type, entry.data)
        if isinstance(entry, InBlob):
            stage = tree.get(entry.stage)
            if stage is None:
                raise CkptError(f"a LangGraph record names the missing stage {entry.stage!r}")
            return Payload(entry.type, self.blob(stage.id))
        return Payload("msgpack", b"".join((entry.head, self.sealed(tree, entry), entry.tail)))

    def _slice_value(self, tree: Tree, record: Record, value: Slice) -> Payload:
        entry = record.channels.get(value.channel)
        if not isinstance(entry, Array):
            raise CkptError(f"a LangGraph write refers to {value.channel!r}, which is no list")
        size = self._sealed_size(tree, entry)
        start, end = value.offset, value.offset + value.length
        if start >= size:
            part = entry.tail[start - size : end - size]
        else:
            part = self.sealed(tree, entry)[start:end] + entry.tail[: max(0, end - size)]
        if len(part) != value.length:
            raise CkptError("a LangGraph write refers past the end of its list")
        return Payload("msgpack", value.head + part)

    @staticmethod
    def _sealed_size(tree: Tree, entry: Array) -> int:
        if entry.sealed is None:
            return 0
        stage = tree.get(entry.sealed)
        return 0 if stage is None else stage.size

    # -- reading ------------------------------------------------------------

    def threads(self) -> list[tuple[str, str]]:
        """``(thread id, job name)`` of every job the saver wrote, sorted by job name."""
        found = []
        for name in self.repo.job_names():
            labels = read_record(self.repo.storage, name).labels
            if THREAD_LABEL not in labels:
                continue
            thread = thread_id_from_job_name(name)
            found.append((labels[THREAD_LABEL] if thread is None else thread, name))
        return found

    def namespaces(self, thread_id: str) -> list[str]:
        """The namespaces of a thread that have checkpoints, root first."""
        job = self.job(thread_id)
        found: set[str] = set()
        for branch, head in self.branch_heads(job, "").items():
            if not branch.startswith(NS_BRANCH_PREFIX):
                found.add("")
                continue
            info = commit_info(self.commit(head))
            if info is not None:
                found.add(info.ns)
        return sorted(found)

    def latest(self, thread_id: str, ns: str) -> StoredCheckpoint | None:
        """The checkpoint a graph continues from: the newest one on the namespace's current
        branch."""
        job = self.job(thread_id)
        current = self.current(job, ns, self.ns_heads(job, ns))
        if current is None:
            return None
        place = self.head_place(job, *current)
        return None if place is None else place.checkpoint

    def get(self, thread_id: str, ns: str, checkpoint_id: str) -> StoredCheckpoint | None:
        """Checkpoint ``checkpoint_id`` of the namespace, if a branch of it reaches it."""
        place = self.locate(self.job(thread_id), ns, checkpoint_id)
        return None if place is None else place.checkpoint

    def checkpoints(self, thread_id: str, ns: str) -> list[StoredCheckpoint]:
        """Every checkpoint reachable from the namespace's branches, newest id first."""
        job = self.job(thread_id)
        cut = self.cut(job)
        found: dict[str, Commit] = {}
        writes: dict[str, dict[CommitId, Commit]] = {}
        seen: set[CommitId] = set()
        for head in self.ns_heads(job, ns).values():
            for commit in self.walk(head, cut):
                if commit.id in seen:
                    break  # the rest of this history was walked from another branch
                seen.add(commit.id)
                info = commit_info(commit)
                if info is None or info.ns != ns:
                    continue
                for target in carried(commit):
                    writes.setdefault(target, {})[commit.id] = commit
                if info.kind == KIND_CHECKPOINT:
                    found.setdefault(info.checkpoint_id, commit)
        return [
            stored_checkpoint(commit, writes.get(cid, {}).values())
            for cid, commit in sorted(found.items(), reverse=True)
        ]

    def header(self, checkpoint: StoredCheckpoint) -> Payload:
        """The checkpoint's header (checkpoint without channel values, and metadata)."""
        found = self.record(checkpoint.commit)
        if found is not None:
            return Payload(found[1].header_type, found[1].header)
        entry = self.tree(checkpoint.commit.tree).get(HEADER_STAGE)
        if entry is None:
            raise CkptError(
                f"commit {checkpoint.commit.short_id} of job {checkpoint.commit.job!r} has no "
                f"{HEADER_STAGE} stage: it was not written by the LangGraph saver"
            )
        return self._payload(entry)

    def channel_values(
        self, checkpoint: StoredCheckpoint, channels: Iterable[str]
    ) -> dict[str, Payload]:
        """The stored values of ``channels`` (channels without a value are left out)."""
        found = self.record(checkpoint.commit)
        out = {}
        if found is not None:
            tree, record = found
            for channel in channels:
                entry = record.channels.get(channel)
                if entry is not None:
                    out[channel] = self.entry_value(tree, entry)
            return out
        tree = self.tree(checkpoint.commit.tree)
        for channel in channels:
            stage = tree.get(channel_stage(channel))
            if stage is not None:
                out[channel] = self._payload(stage)
        return out

    def write_value(self, commit: Commit, key: str) -> Payload | None:
        """The value of write ``key`` held by ``commit`` (a stage of its tree, or its
        record's entry); None if it holds none."""
        tree = self.tree(commit.tree)
        stage = tree.get(key)
        if stage is not None:
            return self._payload(stage)
        found = self.record(commit)
        if found is None:
            return None
        value = found[1].writes.get(key)
        if isinstance(value, Inline):
            return Payload(value.type, value.data)
        if isinstance(value, Slice):
            return self._slice_value(tree, found[1], value)
        return None

    def pending_writes(self, checkpoint: StoredCheckpoint) -> list[StoredWrite]:
        """The checkpoint's pending writes in LangGraph's order (task path, task id, index).

        A regular write stored twice for the same task and index keeps the
        first value; a special one (negative index) keeps the last.
        """
        found: dict[tuple[str, int], StoredWrite] = {}
        for commit, task_id, task_path, key, channel, idx in write_items(checkpoint):
            if idx >= 0 and (task_id, idx) in found:
                continue
            value = self.write_value(commit, key)
            if value is not None:
                found[task_id, idx] = StoredWrite(task_id, task_path, channel, idx, value)
        return sorted(found.values(), key=lambda w: (w.task_path, w.task_id, w.idx))

    # -- branches -----------------------------------------------------------

    def branch_heads(
        self, job: Job, prefix: str = "", *, skip: str | None = None
    ) -> dict[str, CommitId]:
        """Branches named ``prefix...`` (but not ``skip...``) and their heads."""
        base = job.refs.key(HEADS)
        out: dict[str, CommitId] = {}
        for info in self.repo.storage.list(base + prefix):
            name = info.key[len(base) :]
            if skip is not None and name.startswith(skip):
                continue
            oid = job.refs.read(HEADS + name)
            if oid is not None:
                out[name] = oid
        return out

    def ns_heads(self, job: Job, ns: str) -> dict[str, CommitId]:
        """The branches of namespace ``ns`` and their heads."""
        if ns == "":
            return self.branch_heads(job, skip=NS_BRANCH_PREFIX)
        return self.branch_heads(job, ns_branch_prefix(ns))

    def current(
        self, job: Job, ns: str, heads: Mapping[str, CommitId]
    ) -> tuple[str, CommitId] | None:
        """The namespace's current branch: HEAD's for the root, else the newest checkpoint's."""
        if not heads:
            return None
        if ns == "":
            branch = job.refs.current_branch()
            if branch in heads:
                return branch, heads[branch]
        if len(heads) == 1:
            return next(iter(heads.items()))

        def rank(item: tuple[str, CommitId]) -> tuple[str, bool]:
            place = self.head_place(job, *item)
            newest = "" if place is None else place.checkpoint.checkpoint_id
            return newest, item[0] == primary_branch(ns)

        return max(heads.items(), key=rank)

    def head_place(self, job: Job, branch: str, head: CommitId) -> Place | None:
        """The newest checkpoint on ``branch``, with the writes commits above it."""
        pending: list[Commit] = []
        for commit in self.walk(head, self.cut(job)):
            info = commit_info(commit)
            if info is None:
                continue
            if info.kind == KIND_WRITES:
                pending.append(commit)
                continue
            mine = [w for w in pending if writes_target(w) == info.checkpoint_id]
            return Place(branch, head, mine[0] if mine else commit, stored_checkpoint(commit, mine))
        return None

    def locate(self, job: Job, ns: str, checkpoint_id: str) -> Place | None:
        """Find a checkpoint on the namespace's branches, the current branch first; its
        writes are gathered from every branch."""
        heads = self.ns_heads(job, ns)
        current = self.current(job, ns, heads)
        order = sorted(heads.items(), key=lambda item: current is None or item[0] != current[0])
        cut = self.cut(job)
        place: Place | None = None
        writes: dict[CommitId, Commit] = {}
        for branch, head in order:
            newest: Commit | None = None
            for commit in self.walk(head, cut):
                info = commit_info(commit)
                if info is None or info.ns != ns:
                    continue
                if checkpoint_id in carried(commit):
                    writes[commit.id] = commit
                    if info.kind == KIND_WRITES:
                        newest = newest or commit
                if info.kind != KIND_CHECKPOINT or info.checkpoint_id != checkpoint_id:
                    continue
                if place is None:
                    place = Place(branch, head, newest or commit, stored_checkpoint(commit, ()))
                break  # the checkpoint's writes all lie above it
        if place is None:
            return None
        return attrs.evolve(
            place, checkpoint=stored_checkpoint(place.checkpoint.commit, writes.values())
        )

    def retrying(self, action: Callable[[], T]) -> T:
        """Run ``action`` under the write lock; rerun it if another writer moved a ref first."""
        for attempt in range(_RETRIES):
            try:
                with self.lock:
                    return action()
            except ConflictError:
                if attempt == _RETRIES - 1:
                    raise
        raise ConflictError("unreachable")


_RETRIES = 8
