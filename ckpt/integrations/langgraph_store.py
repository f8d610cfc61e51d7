"""Writing LangGraph checkpoints and writes as ckpt commits: :class:`ThreadStore`.

:class:`ThreadStore` does for the saver what :class:`~ckpt.history.job.Job` does for
a pipeline: objects first, then one compare-and-swap of a branch.  Reading is
:class:`~ckpt.integrations.langgraph_reader.ThreadReader`'s; the layout both
follow is described in :mod:`ckpt.integrations.langgraph_layout`; rewriting a
thread's history (deleting runs, copying, pruning) is in
:mod:`ckpt.integrations.langgraph_history`.

**One durable step per step of a graph.**  LangGraph sends a task's writes
(``put_writes``) as soon as the task ends, then the next checkpoint
(``put``) once every task of the step has.  A ``put_writes`` for the newest
checkpoint of a branch waits up to :attr:`ThreadStore.group_wait` seconds
for that next checkpoint: if it comes (of the same run, on the same
branch), the writes are stored in the checkpoint's own commit, with its
pack and its one ref move, and both calls return once that is durable.
If it does not come in time, the writes are stored in a writes commit of
their own.  Either way ``put_writes`` returns only once its writes are stored
(by default, fsynced).  Special writes (interrupts, errors, resumes) and
writes for older checkpoints never wait, nor do those of a Python thread
that once sent the next checkpoint itself right after its writes waited in
vain (``update_state`` calls ``put_writes``, then ``put``, one after the
other).

Why this module is long: the write path keeps the layout's invariants in one
place (a channel's value stored once per version, a list's sealed prefix
shared, writes carried by the checkpoint that follows them).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from ckpt.errors import ConflictError
from ckpt.history.jobrecord import update_record
from ckpt.history.refs import DEFAULT_BRANCH, HEADS, now
from ckpt.integrations.langgraph_builder import Carried, RecordBuilder
from ckpt.integrations.langgraph_layout import (
    CARRIES,
    KIND_CHECKPOINT,
    KIND_WRITES,
    META_KEY,
    THREAD_LABEL,
    Payload,
    Write,
    checkpoint_message,
    commit_info,
    commit_stage,
    encode_name,
    label_ok,
    ns_branch_prefix,
    primary_branch,
    summary_of,
    write_items,
    write_stage,
)
from ckpt.integrations.langgraph_reader import (
    ObjectBatch,
    Place,
    ThreadReader,
    blob_entry,
    object_batch,
)
from ckpt.objects.ids import CommitId, Kind, ObjectId
from ckpt.objects.model import Commit, Tree, encode_commit
from ckpt.values.serialize import JSONValue

if TYPE_CHECKING:
    from ckpt.history.job import Job
    from ckpt.repository import Repository

__all__ = ["GROUP_WAIT", "ObjectBatch", "Place", "ThreadStore", "object_batch"]

#: How long a ``put_writes`` waits for the checkpoint that follows it (seconds).
GROUP_WAIT = 0.02
#: How long a thread seen sending the next checkpoint itself stores its writes at once.
SEQUENTIAL_FOR = 30.0

_WAITING, _STORED, _DROPPED = "waiting", "stored", "dropped"


@attrs.define(eq=False)
class _Pending:
    """Writes of one task for checkpoint ``target``, waiting to be carried by the next one."""

    target: str
    task_id: str
    task_path: str
    writes: tuple[Write, ...]
    done: threading.Event = attrs.field(factory=threading.Event)
    state: str = _WAITING


@attrs.frozen
class _Tip:
    """What the saver last wrote on a namespace's branch: the branch, its head, the newest
    checkpoint's commit and the (task, index) of the regular writes stored for it."""

    branch: str
    head: CommitId
    checkpoint: Commit
    written: frozenset[tuple[str, int]] = frozenset()

    @property
    def checkpoint_id(self) -> str:
        info = commit_info(self.checkpoint)
        return "" if info is None else info.checkpoint_id


@attrs.frozen
class _Step:
    """One commit of a chain written in one durable step: how to build its tree (from the
    tree of the commit below, if any in the chain), its stage, message and metadata."""

    build: Callable[[ObjectBatch, Tree | None], Tree]
    stage: str | None
    message: str
    meta: Mapping[str, JSONValue]


class ThreadStore(ThreadReader):
    """LangGraph threads in one ckpt repository: reading (see ThreadReader) and writing.

    Safe to share between threads: writes are serialized by :attr:`lock`.
    """

    def __init__(self, repo: Repository) -> None:
        super().__init__(repo)
        #: Seconds a put_writes waits for the next checkpoint to carry it (0: never).
        self.group_wait = GROUP_WAIT
        # (job, ns, checkpoint id) -> writes sent before the checkpoint itself
        self._early: dict[tuple[str, str, str], list[Carried]] = {}
        # (job, ns, checkpoint id) -> writes waiting for the checkpoint after it
        self._waiting: dict[tuple[str, str, str], list[_Pending]] = {}
        self._tips: dict[tuple[str, str], _Tip] = {}
        self._jobs: set[str] = set()
        self._heads: dict[str, str] = {}  # job -> the branch its HEAD was last seen naming
        # A put_writes that waited in vain, and the thread it ran on: if that thread sends
        # the next checkpoint, it calls the saver one call after the other (as
        # update_state does) and its writes wait no more.
        # (The mark lasts SEQUENTIAL_FOR seconds: a pool thread that happened to pick up
        # the next checkpoint after a wait in vain waits again after that.)
        self._missed: dict[tuple[str, str, str], int] = {}
        self._sequential: dict[int, float] = {}

    @contextlib.contextmanager
    def writes_alone(self) -> Iterator[None]:
        """Within the block, put_writes stores writes at once (for callers that send every
        checkpoint after its writes' call returned, such as an import)."""
        wait, self.group_wait = self.group_wait, 0.0
        try:
            yield
        finally:
            self.group_wait = wait

    # -- jobs and refs ------------------------------------------------------

    def ensure_job(self, job: Job, thread_id: str) -> None:
        if job.name in self._jobs:
            return
        if not job.exists:
            job.refs.create(DEFAULT_BRANCH)
            label = thread_id if label_ok(thread_id) else job.name
            update_record(
                self.repo.storage,
                job.name,
                lambda record: attrs.evolve(record, labels={**record.labels, THREAD_LABEL: label}),
            )
        self._jobs.add(job.name)

    def _forget(self, job: Job, ns: str | None = None) -> None:
        """Drop what is known of a job's branches (after a conflict or a rewrite)."""
        self._jobs.discard(job.name)
        self._heads.pop(job.name, None)
        for key in [k for k in self._tips if k[0] == job.name and (ns is None or k[1] == ns)]:
            del self._tips[key]

    def forget_job(self, job: Job) -> None:
        """Drop what is known of a job whose branches were rewritten (history changes)."""
        with self.lock:
            self._forget(job)

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
        step = _Step(lambda batch, _below: build(batch), stage, message, meta)
        return self._store_commits(job, branch, parent, old, [step], reason)[0]

    def _store_commits(
        self,
        job: Job,
        branch: str,
        parent: Commit | None,
        old: CommitId | None,
        steps: Sequence[_Step],
        reason: str,
    ) -> list[Commit]:
        """Write a chain of commits on ``parent`` (each step's tree built from the tree below
        it) as one pack, then move ``branch`` from ``old`` to the last: one durable step."""
        made: list[Commit] = []
        trees: list[tuple[ObjectId, Tree]] = []
        below = parent
        with object_batch(self.repo.objects, sealed_by_ref=True) as batch:
            for step in steps:
                tree = step.build(batch, trees[-1][1] if trees else None)
                tree_id = batch.put(Kind.TREE, tree.encode())
                commit = Commit(
                    id=CommitId(ObjectId("0" * 64)),
                    tree=tree_id,
                    parents=() if below is None else (below.id,),
                    job=job.name,
                    branch=branch,
                    stage=step.stage,
                    time=now(),
                    seq=1 if below is None else below.seq + 1,
                    total_cost=0.0 if below is None else below.total_cost,
                    total_tokens=0 if below is None else below.total_tokens,
                    message=step.message,
                    meta={META_KEY: dict(step.meta)},
                )
                commit = attrs.evolve(
                    commit, id=CommitId(batch.put(Kind.COMMIT, encode_commit(commit)))
                )
                made.append(commit)
                trees.append((tree_id, tree))
                below = commit
        # A move from the commits' own parent loses no commit if its reflog line is lost.
        forward = parent is not None and old == parent.id
        job.refs.update(HEADS + branch, old, made[-1].id, reason, forward=forward)
        for commit, (tree_id, tree) in zip(made, trees, strict=True):
            self._remember_commit(commit)
            self._remember_tree(tree_id, tree)
        self.repo.objects.settle()  # what a merge in the batch left to remove
        return made

    def _writes_step(self, checkpoint_id: str, ns: str, thread_id: str, early: Carried) -> _Step:
        """A writes commit for ``early`` on top of the commit below it (see _store_commits)."""
        fresh: dict[int, Write] = {}
        for write in early.writes:
            fresh.setdefault(write.idx, write)  # a regular write is stored once

        def build(batch: ObjectBatch, below: Tree | None) -> Tree:
            tree = below or Tree()
            for write in fresh.values():
                stage = write_stage(checkpoint_id, early.task_id, write.idx)
                tree = tree.with_entry(blob_entry(batch, stage, write.value))
            return tree

        meta: dict[str, JSONValue] = {
            "kind": KIND_WRITES,
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "id": checkpoint_id,
            "parent_id": None,
            "task_id": early.task_id,
            "task_path": early.task_path,
            "writes": [
                [write_stage(checkpoint_id, early.task_id, w.idx), w.channel, w.idx]
                for w in fresh.values()
            ],
        }
        channels = ", ".join(sorted({w.channel for w in fresh.values()}))
        message = f"langgraph writes of task {early.task_id[:12]}: {channels}"[:200]
        first = min(fresh)
        return _Step(build, write_stage(checkpoint_id, early.task_id, first), message, meta)

    # -- checkpoints --------------------------------------------------------

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
        the channels that need it, at most once each.  Writes waiting for
        this checkpoint go in its durable step: those sent just before it for
        its parent in its commit, those sent for it before it was stored in
        writes commits on top of it.
        """
        job = self.job(thread_id)
        values: dict[str, Payload | None] = {}

        def value(channel: str) -> Payload | None:
            if channel not in values:
                values[channel] = value_of(channel)
            return values[channel]

        if parent_id is not None:
            with self.lock:
                if self._missed.pop((job.name, ns, parent_id), None) == threading.get_ident():
                    self._sequential[threading.get_ident()] = time.monotonic() + SEQUENTIAL_FOR

        def attempt() -> Commit:
            self.ensure_job(job, thread_id)
            try:
                branch, base, old, parent, reason = self._target(job, ns, checkpoint_id, parent_id)
                early = self._early.get((job.name, ns, checkpoint_id), [])
                taken: list[_Pending] = []
                if parent is not None and base is not None and old == base.id:
                    taken = self._joining(job, ns, parent, summary)
                carries = [Carried(p.target, p.task_id, p.task_path, p.writes) for p in taken]
                commit = self._write_checkpoint(
                    job, ns, branch, base, old, parent, reason,
                    thread_id=thread_id, checkpoint_id=checkpoint_id, parent_id=parent_id,
                    header=header, versions=versions, changed=changed, value=value,
                    summary=summary, carries=carries, early=early,
                )  # fmt: skip
            except ConflictError:
                self._forget(job, ns)
                raise
            # Still under the lock: a waiting put_writes sees its writes stored, or not taken.
            self._early.pop((job.name, ns, checkpoint_id), None)
            self._settle(job, ns, taken)
            return commit

        commit = self.retrying(attempt)
        if ns == "" and self._heads.get(job.name) != commit.branch:
            # A fork (or a put on another branch's head) is where the thread goes on.  (HEAD
            # is read again only when the saver puts on another branch than last time.)
            if job.refs.current_branch() != commit.branch:
                with contextlib.suppress(ConflictError):
                    job.refs.set_current_branch(commit.branch)
            self._heads[job.name] = commit.branch
        return commit

    def _joining(
        self, job: Job, ns: str, parent: Commit, summary: Mapping[str, JSONValue]
    ) -> list[_Pending]:
        """The writes waiting for ``parent`` that a child of the same run may carry."""
        info = commit_info(parent)
        if info is None:
            return []
        if summary_of(info).get("run_id") != summary.get("run_id"):
            return []
        key = (job.name, ns, info.checkpoint_id)
        return [p for p in self._waiting.get(key, []) if p.state == _WAITING]

    def _settle(self, job: Job, ns: str, taken: list[_Pending]) -> None:
        """Tell the put_writes calls whose writes a checkpoint carried that they are stored."""
        if not taken:
            return
        key = (job.name, ns, taken[0].target)
        queue = self._waiting.get(key, [])
        for pending in taken:
            pending.state = _STORED
            pending.done.set()
            if pending in queue:
                queue.remove(pending)
        if not queue:
            self._waiting.pop(key, None)

    def _target(
        self, job: Job, ns: str, checkpoint_id: str, parent_id: str | None
    ) -> tuple[str, Commit | None, CommitId | None, Commit | None, str]:
        """Where a new checkpoint goes: (branch, ckpt parent commit, the branch's head to
        compare-and-swap, the parent checkpoint's commit, reflog reason)."""
        tip = self._tips.get((job.name, ns))
        if parent_id is not None and tip is not None and tip.checkpoint_id == parent_id:
            # The parent is the newest checkpoint of the branch this saver wrote last: the
            # compare-and-swap of the branch finds out if anyone moved it since.
            return tip.branch, self.commit(tip.head), tip.head, tip.checkpoint, "langgraph"
        heads = self.ns_heads(job, ns)
        current = self.current(job, ns, heads)
        if parent_id is not None:
            order = sorted(heads.items(), key=lambda i: current is None or i[0] != current[0])
            for branch, head in order:
                place = self.head_place(job, branch, head)
                if place is not None and place.checkpoint.checkpoint_id == parent_id:
                    self._tips[job.name, ns] = self._tip_of(place)
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

    @staticmethod
    def _tip_of(place: Place) -> _Tip:
        written = frozenset(
            (task, idx) for _c, task, _p, _k, _ch, idx in write_items(place.checkpoint) if idx >= 0
        )
        return _Tip(place.branch, place.head, place.checkpoint.commit, written)

    def _write_checkpoint(
        self,
        job: Job,
        ns: str,
        branch: str,
        base: Commit | None,
        old: CommitId | None,
        parent: Commit | None,
        reason: str,
        *,
        thread_id: str,
        checkpoint_id: str,
        parent_id: str | None,
        header: Payload,
        versions: Mapping[str, int | float | str],
        changed: Collection[str],
        value: Callable[[str], Payload | None],
        summary: Mapping[str, JSONValue],
        carries: Sequence[Carried],
        early: Sequence[Carried],
    ) -> Commit:
        """Write the checkpoint's commit, carrying ``carries`` (its parent's writes), and a
        writes commit on it for each of ``early`` (its own writes, sent before it), in one
        durable step; return the checkpoint's commit."""

        def build(batch: ObjectBatch) -> Tree:
            builder = RecordBuilder(self, batch, parent)
            builder.add_channels(versions, changed, value)
            builder.carry(carries)
            tree = builder.tree(header)
            if builder.carried:
                meta[CARRIES] = builder.carried
            return tree

        meta: dict[str, JSONValue] = {
            "kind": KIND_CHECKPOINT,
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "id": checkpoint_id,
            "parent_id": parent_id,
            "versions": dict(versions),
            "metadata": dict(summary),
        }
        steps = [
            _Step(
                lambda batch, _below: build(batch),
                commit_stage(changed),
                checkpoint_message(summary, ns),
                meta,
            )
        ]
        steps += [self._writes_step(checkpoint_id, ns, thread_id, e) for e in early]
        made = self._store_commits(job, branch, base, old, steps, reason)
        commit = made[0]
        own = frozenset((e.task_id, w.idx) for e in early for w in e.writes if w.idx >= 0)
        self._tips[job.name, ns] = _Tip(branch, made[-1].id, commit, own)
        return commit

    # -- writes -------------------------------------------------------------

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
        stored yet, once queued to be stored with it.
        """
        if not writes:
            return
        job = self.job(thread_id)
        batch = tuple(writes)
        with self.lock:
            pending = self._enqueue(job, ns, checkpoint_id, task_id, task_path, batch)
        if pending is not None:
            pending.done.wait(self.group_wait)
            with self.lock:
                if pending.state != _WAITING:
                    return  # carried by the next checkpoint (or nothing left to store)
                key = (job.name, ns, checkpoint_id)
                queue = self._waiting.get(key, [])
                if pending in queue:
                    queue.remove(pending)
                if not queue:
                    self._waiting.pop(key, None)
                pending.state = _DROPPED
                if len(self._missed) >= 1024:
                    self._missed.clear()  # checkpoints no child came for: forget them
                self._missed[key] = threading.get_ident()
        self.retrying(
            lambda: self._store_writes(job, thread_id, ns, checkpoint_id, task_id, task_path, batch)
        )

    def _enqueue(
        self,
        job: Job,
        ns: str,
        checkpoint_id: str,
        task_id: str,
        task_path: str,
        batch: tuple[Write, ...],
    ) -> _Pending | None:
        """Queue regular writes for the newest checkpoint this saver wrote on a branch, to be
        carried by the next one; None if they must be stored at once."""
        tip = self._tips.get((job.name, ns))
        regular = all(w.idx >= 0 for w in batch)
        if self.group_wait <= 0 or not regular or tip is None:
            return None
        if self._sequential.get(threading.get_ident(), 0.0) > time.monotonic():
            return None  # this thread sends the next checkpoint itself, after this call
        if tip.checkpoint_id != checkpoint_id:
            return None
        key = (job.name, ns, checkpoint_id)
        queue = self._waiting.setdefault(key, [])
        done = tip.written | {
            (p.task_id, w.idx) for p in queue if p.state == _WAITING for w in p.writes
        }
        fresh = tuple(w for w in batch if (task_id, w.idx) not in done)
        pending = _Pending(checkpoint_id, task_id, task_path, fresh)
        if fresh:
            queue.append(pending)
        else:
            pending.state = _STORED  # a regular write is stored once
            pending.done.set()
        if not queue:
            self._waiting.pop(key, None)
        return pending

    def _store_writes(
        self,
        job: Job,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        task_id: str,
        task_path: str,
        batch: tuple[Write, ...],
    ) -> None:
        """Store writes in a writes commit of their own (or queue them: see put_writes)."""
        try:
            place = self._place_of(job, ns, checkpoint_id) if job.exists else None
        except ConflictError:
            self._forget(job, ns)
            raise
        if place is None:
            key = (job.name, ns, checkpoint_id)
            self._early.setdefault(key, []).append(
                Carried(checkpoint_id, task_id, task_path, batch)
            )
            return
        have = {
            (task, idx) for _c, task, _p, _s, _ch, idx in write_items(place.checkpoint) if idx >= 0
        }
        fresh = [w for w in batch if not (w.idx >= 0 and (task_id, w.idx) in have)]
        if not fresh:
            return
        head = self.commit(place.head)
        items: list[JSONValue] = [
            [write_stage(checkpoint_id, task_id, w.idx), w.channel, w.idx] for w in fresh
        ]

        def build(objects: ObjectBatch) -> Tree:
            tree = self.tree(head.tree)
            for write in fresh:
                stage = write_stage(checkpoint_id, task_id, write.idx)
                tree = tree.with_entry(blob_entry(objects, stage, write.value))
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
        try:
            commit = self._store_commit(
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
        except ConflictError:
            self._forget(job, ns)
            raise
        tip = self._tips.get((job.name, ns))
        if tip is not None and tip.head == place.head and tip.branch == place.branch:
            written = tip.written | {(task_id, w.idx) for w in fresh if w.idx >= 0}
            self._tips[job.name, ns] = _Tip(tip.branch, commit.id, tip.checkpoint, written)
        else:
            self._tips.pop((job.name, ns), None)

    def _place_of(self, job: Job, ns: str, checkpoint_id: str) -> Place | None:
        """Where a checkpoint is, from what this saver wrote last if it is that branch's
        newest checkpoint (its head re-read, so that a move by anyone else is seen)."""
        tip = self._tips.get((job.name, ns))
        if (
            tip is not None
            and tip.checkpoint_id == checkpoint_id
            and job.refs.read(HEADS + tip.branch) == tip.head
        ):
            place = self.head_place(job, tip.branch, tip.head)
            if place is not None and place.checkpoint.checkpoint_id == checkpoint_id:
                return place
        return self.locate(job, ns, checkpoint_id)

    # -- thread-wide changes ------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Remove a thread's job (refs and reflog); gc then frees what no other thread shares."""
        job = self.job(thread_id)
        with self.lock:
            for key in [k for k in self._early if k[0] == job.name]:
                del self._early[key]
            for key in [k for k in self._waiting if k[0] == job.name]:
                for pending in self._waiting.pop(key):
                    pending.state = _DROPPED
                    pending.done.set()
            self._forget(job)
            if job.exists:
                self.repo.delete_job(job.name)
