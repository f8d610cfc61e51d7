"""Reading and writing LangGraph checkpoints and writes as ckpt commits.

:class:`ThreadStore` does for the saver what :class:`~ckpt.history.job.Job` does for
a pipeline: it finds a thread's branches and checkpoints and writes new
commits, objects first, then one compare-and-swap of a branch.  The layout
it follows is described in :mod:`ckpt.integrations.langgraph_layout`;
rewriting a thread's history (deleting runs, copying, pruning) is in
:mod:`ckpt.integrations.langgraph_history`.

Why this module is long: reading and writing a thread share the layout's
invariants (one commit per checkpoint, channel values stored once); the
history rewrites already live in their own module.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

import attrs

from ckpt.errors import CkptError, ConflictError
from ckpt.history.jobrecord import read_record, update_record
from ckpt.history.refs import DEFAULT_BRANCH, HEADS, now
from ckpt.integrations.langgraph_layout import (
    HEADER_STAGE,
    KIND_CHECKPOINT,
    KIND_WRITES,
    META_KEY,
    NS_BRANCH_PREFIX,
    THREAD_LABEL,
    Payload,
    StoredCheckpoint,
    StoredWrite,
    Write,
    channel_stage,
    checkpoint_message,
    commit_info,
    commit_stage,
    encode_name,
    job_name_for,
    label_ok,
    ns_branch_prefix,
    primary_branch,
    stored_checkpoint,
    thread_id_from_job_name,
    versions_of,
    write_items,
    write_stage,
    writes_target,
)
from ckpt.objects.ids import CommitId, Kind, ObjectId
from ckpt.objects.model import ENCODING_RAW, Commit, Tree, TreeEntry, encode_commit
from ckpt.values.serialize import JSONValue

if TYPE_CHECKING:
    from ckpt.history.job import Job
    from ckpt.objects.store import ObjectStore
    from ckpt.repository import Repository

T = TypeVar("T")


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
def object_batch(objects: ObjectStore) -> Iterator[ObjectBatch]:
    """Collect the objects of one save into one write where the object store can (one pack,
    delta encoded against ``base``); every object is stored when the block ends."""
    batch = getattr(objects, "batch", None)
    if batch is None:
        yield _OneByOne(objects)
        return
    with batch() as found:
        yield found


_RETRIES = 8
_CACHE_LIMIT = 50_000


@attrs.frozen
class Place:
    """Where a checkpoint is: a branch that reaches it, that branch's head, the checkpoint's
    newest commit on it (its last writes commit, or itself) and the checkpoint."""

    branch: str
    head: CommitId
    tip: Commit
    checkpoint: StoredCheckpoint


# -- the store --------------------------------------------------------------


class ThreadStore:
    """LangGraph threads in one ckpt repository, laid out as the module docstring says.

    Safe to share between threads: writes are serialized by a lock, reads
    need none (refs are read atomically, objects never change).  Decoded
    commits and trees are cached by id, which is always safe since ids
    name immutable content.
    """

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.lock = threading.RLock()
        self._cache_lock = threading.Lock()
        self._commits: OrderedDict[CommitId, Commit] = OrderedDict()
        self._trees: OrderedDict[ObjectId, Tree] = OrderedDict()
        # (job, ns, checkpoint id) -> writes sent before the checkpoint itself
        self._early: dict[tuple[str, str, str], list[tuple[str, str, tuple[Write, ...]]]] = {}

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
            with self._cache_lock:
                self._trees[oid] = found
                if len(self._trees) > _CACHE_LIMIT:
                    self._trees.popitem(last=False)
        return found

    def _payload(self, entry: TreeEntry) -> Payload:
        return Payload(entry.type, self.repo.objects.get(entry.id, Kind.BLOB))

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
        writes: dict[str, list[Commit]] = {}
        seen: set[CommitId] = set()
        for head in self.ns_heads(job, ns).values():
            for commit in self.walk(head, cut):
                if commit.id in seen:
                    break  # the rest of this history was walked from another branch
                seen.add(commit.id)
                info = commit_info(commit)
                if info is None or info.ns != ns:
                    continue
                if info.kind == KIND_WRITES:
                    writes.setdefault(info.checkpoint_id, []).append(commit)
                else:
                    found.setdefault(info.checkpoint_id, commit)
        return [
            stored_checkpoint(commit, writes.get(cid, ()))
            for cid, commit in sorted(found.items(), reverse=True)
        ]

    def header(self, checkpoint: StoredCheckpoint) -> Payload:
        """The checkpoint's header (checkpoint without channel values, and metadata)."""
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
        tree = self.tree(checkpoint.commit.tree)
        out = {}
        for channel in channels:
            entry = tree.get(channel_stage(channel))
            if entry is not None:
                out[channel] = self._payload(entry)
        return out

    def pending_writes(self, checkpoint: StoredCheckpoint) -> list[StoredWrite]:
        """The checkpoint's pending writes in LangGraph's order (task path, task id, index).

        A regular write stored twice for the same task and index keeps the
        first value; a special one (negative index) keeps the last.
        """
        found: dict[tuple[str, int], StoredWrite] = {}
        for commit, task_id, task_path, stage, channel, idx in write_items(checkpoint):
            if idx >= 0 and (task_id, idx) in found:
                continue
            entry = self.tree(commit.tree).get(stage)
            if entry is not None:
                value = self._payload(entry)
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
                if info is None or info.checkpoint_id != checkpoint_id or info.ns != ns:
                    continue
                if info.kind == KIND_WRITES:
                    writes[commit.id] = commit
                    newest = newest or commit
                    continue
                if place is None:
                    place = Place(branch, head, newest or commit, stored_checkpoint(commit, ()))
                break  # the checkpoint's writes all lie above it
        if place is None:
            return None
        return attrs.evolve(
            place, checkpoint=stored_checkpoint(place.checkpoint.commit, writes.values())
        )

    # -- writing ------------------------------------------------------------

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

    def ensure_job(self, job: Job, thread_id: str) -> None:
        if job.exists:
            return
        job.refs.create(DEFAULT_BRANCH)
        label = thread_id if label_ok(thread_id) else job.name
        update_record(
            self.repo.storage,
            job.name,
            lambda record: attrs.evolve(record, labels={**record.labels, THREAD_LABEL: label}),
        )

    def _store_commit(
        self,
        job: Job,
        branch: str,
        parent: Commit | None,
        old: CommitId | None,
        build: Callable[[ObjectBatch], Tree],
        *,
        stage: str | None,
        message: str,
        meta: Mapping[str, JSONValue],
        reason: str,
    ) -> Commit:
        """Write the tree ``build`` makes (putting its blobs in the batch it gets) and a
        commit on ``parent`` as one pack, then move ``branch`` from ``old`` to the commit."""
        with object_batch(self.repo.objects) as batch:
            tree = build(batch)
            commit = Commit(
                id=CommitId(ObjectId("0" * 64)),
                tree=batch.put(Kind.TREE, tree.encode()),
                parents=() if parent is None else (parent.id,),
                job=job.name,
                branch=branch,
                stage=stage,
                time=now(),
                seq=1 if parent is None else parent.seq + 1,
                total_cost=0.0 if parent is None else parent.total_cost,
                total_tokens=0 if parent is None else parent.total_tokens,
                message=message,
                meta={META_KEY: dict(meta)},
            )
            commit = attrs.evolve(
                commit, id=CommitId(batch.put(Kind.COMMIT, encode_commit(commit)))
            )
        job.refs.update(HEADS + branch, old, commit.id, reason)
        self._remember_commit(commit)
        return commit

    def put_checkpoint(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        parent_id: str | None,
        *,
        header: Payload,
        versions: Mapping[str, int | float | str],
        changed: Collection[str],
        value_of: Callable[[str], Payload | None],
        summary: Mapping[str, JSONValue],
    ) -> Commit:
        """Store a checkpoint; return its commit.

        ``versions`` are the checkpoint's channels and their versions.
        Those in ``changed`` get ``value_of(channel)`` (None: the channel is
        empty).  The others keep the parent checkpoint's stored value if the
        parent's commit records the same version for them, and get
        ``value_of(channel)`` otherwise.  ``value_of`` is called only for
        the channels that need it, at most once each.
        """
        job = self.job(thread_id)
        values: dict[str, Payload | None] = {}

        def value(channel: str) -> Payload | None:
            if channel not in values:
                values[channel] = value_of(channel)
            return values[channel]

        def attempt() -> Commit:
            self.ensure_job(job, thread_id)
            branch, base, old, parent_commit, reason = self._target(
                job, ns, checkpoint_id, parent_id
            )
            parent_tree = None if parent_commit is None else self.tree(parent_commit.tree)
            parent_versions = None if parent_commit is None else versions_of(parent_commit)

            def build(batch: ObjectBatch) -> Tree:
                entries = [_blob_entry(batch, HEADER_STAGE, header)]
                for channel, version in versions.items():
                    stage = channel_stage(channel)
                    kept = None if parent_tree is None else parent_tree.get(stage)
                    same = parent_versions is not None and parent_versions.get(channel) == version
                    if channel not in changed and same:
                        # The parent holds this very version: its stage (or its lack of
                        # one, for an empty channel) is this checkpoint's.
                        if kept is not None:
                            entries.append(kept)
                        continue
                    found = value(channel)
                    if found is not None:
                        # The channel's previous value is the delta base of the new one.
                        delta_base = None if kept is None else kept.id
                        entries.append(_blob_entry(batch, stage, found, base=delta_base))
                return Tree(tuple(entries))

            meta: dict[str, JSONValue] = {
                "kind": KIND_CHECKPOINT,
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "id": checkpoint_id,
                "parent_id": parent_id,
                "versions": dict(versions),
                "metadata": dict(summary),
            }
            return self._store_commit(
                job,
                branch,
                base,
                old,
                build,
                stage=commit_stage(changed),
                message=checkpoint_message(summary, ns),
                meta=meta,
                reason=reason,
            )

        commit = self.retrying(attempt)
        if ns == "" and job.refs.current_branch() != commit.branch:
            # A fork (or a put on another branch's head) is where the thread goes on.
            with contextlib.suppress(ConflictError):
                job.refs.set_current_branch(commit.branch)
        with self.lock:
            early = self._early.pop((job.name, ns, checkpoint_id), [])
        for task_id, task_path, writes in early:
            self.put_writes(thread_id, ns, checkpoint_id, task_id, task_path, writes)
        return commit

    def _target(
        self, job: Job, ns: str, checkpoint_id: str, parent_id: str | None
    ) -> tuple[str, Commit | None, CommitId | None, Commit | None, str]:
        """Where a new checkpoint goes: (branch, ckpt parent commit, the branch's head to
        compare-and-swap, the parent checkpoint's commit, reflog reason)."""
        heads = self.ns_heads(job, ns)
        current = self.current(job, ns, heads)
        if parent_id is not None:
            order = sorted(heads.items(), key=lambda i: current is None or i[0] != current[0])
            for branch, head in order:
                place = self.head_place(job, branch, head)
                if place is not None and place.checkpoint.checkpoint_id == parent_id:
                    return branch, self.commit(head), head, place.checkpoint.commit, "langgraph"
            found = self.locate(job, ns, parent_id)
            if found is not None:
                name = ns_branch_prefix(ns) + encode_name(f"fork-{checkpoint_id}")
                suffix = 1
                while job.refs.read(HEADS + name) is not None:
                    suffix += 1
                    name = ns_branch_prefix(ns) + encode_name(f"fork-{checkpoint_id}-{suffix}")
                reason = f"langgraph: fork at checkpoint {parent_id}"
                return name, found.tip, None, found.checkpoint.commit, reason
        if current is not None:
            return current[0], self.commit(current[1]), current[1], None, "langgraph"
        return primary_branch(ns), None, None, None, "langgraph: first checkpoint"

    def put_writes(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        task_id: str,
        task_path: str,
        writes: Sequence[Write],
    ) -> None:
        """Store writes of task ``task_id`` on a checkpoint (see the module docstring).

        A regular write already stored for the same task and index is not
        stored again.  Returns once stored, or, if the checkpoint is not
        stored yet, once queued to be stored right after it.
        """
        if not writes:
            return
        job = self.job(thread_id)
        batch = tuple(writes)

        def attempt() -> None:
            place = self.locate(job, ns, checkpoint_id) if job.exists else None
            if place is None:
                key = (job.name, ns, checkpoint_id)
                self._early.setdefault(key, []).append((task_id, task_path, batch))
                return
            have = {
                (task, idx)
                for _c, task, _p, _s, _ch, idx in write_items(place.checkpoint)
                if idx >= 0
            }
            fresh = [w for w in batch if not (w.idx >= 0 and (task_id, w.idx) in have)]
            if not fresh:
                return
            head = self.commit(place.head)
            items: list[JSONValue] = [
                [write_stage(checkpoint_id, task_id, w.idx), w.channel, w.idx] for w in fresh
            ]

            def build(batch: ObjectBatch) -> Tree:
                tree = self.tree(head.tree)
                for write in fresh:
                    stage = write_stage(checkpoint_id, task_id, write.idx)
                    tree = tree.with_entry(_blob_entry(batch, stage, write.value))
                return tree

            meta: dict[str, JSONValue] = {
                "kind": KIND_WRITES,
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "id": checkpoint_id,
                "parent_id": None,
                "task_id": task_id,
                "task_path": task_path,
                "writes": items,
            }
            channels = ", ".join(sorted({w.channel for w in fresh}))
            self._store_commit(
                job,
                place.branch,
                head,
                place.head,
                build,
                stage=write_stage(checkpoint_id, task_id, fresh[0].idx),
                message=f"langgraph writes of task {task_id[:12]}: {channels}"[:200],
                meta=meta,
                reason="langgraph: put_writes",
            )

        self.retrying(attempt)

    # -- thread-wide changes ------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Remove a thread's job (refs and reflog); gc then frees what no other thread shares."""
        job = self.job(thread_id)
        with self.lock:
            for key in [k for k in self._early if k[0] == job.name]:
                del self._early[key]
            if job.exists:
                self.repo.delete_job(job.name)


def _blob_entry(
    batch: ObjectBatch, stage: str, value: Payload, *, base: ObjectId | None = None
) -> TreeEntry:
    oid = batch.put(Kind.BLOB, value.data, base=base)
    return TreeEntry(stage, oid, value.type, len(value.data), ENCODING_RAW)
