"""Rewriting LangGraph threads: deleting runs, copying a thread, keeping the latest only.

These change which commits a thread's branches reach.  Kept checkpoints
keep their full trees (every channel value is in every checkpoint's tree),
so dropping history never changes what the remaining checkpoints load.  The
dropped commits stay in the store until gc; the reflog does not keep them
alive, since each rewrite marks the job as pruned.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from typing import Any

import attrs

from ckpt.errors import ConflictError
from ckpt.history.jobrecord import update_record
from ckpt.history.refs import HEADS, now
from ckpt.integrations.langgraph_layout import (
    KIND_CHECKPOINT,
    NS_BRANCH_PREFIX,
    commit_info,
    for_thread,
    summary_of,
)
from ckpt.integrations.langgraph_store import ObjectBatch, ThreadStore, object_batch
from ckpt.objects.ids import CommitId, Kind, ObjectId
from ckpt.objects.model import Commit, encode_commit


def delete_runs(store: ThreadStore, run_ids: Collection[str]) -> None:
    """Drop every checkpoint whose run id is in ``run_ids``, with its writes, from every thread.

    Branches are rewritten without them (later checkpoints keep their
    full state); a branch left empty is removed, a thread left empty is
    deleted.  The reflog no longer keeps the dropped commits: the next
    gc frees them.
    """
    wanted = set(run_ids)
    for thread_id, _name in store.threads() if wanted else []:
        store.retrying(functools.partial(_delete_runs_locked, store, thread_id, wanted))


def _delete_runs_locked(store: ThreadStore, thread_id: str, run_ids: set[str]) -> None:
    job = store.job(thread_id)
    store.forget_job(job)
    if not job.exists:
        return
    cut = store.cut(job)
    heads = store.branch_heads(job, "")
    chains = {branch: list(store.walk(head, cut))[::-1] for branch, head in heads.items()}
    dropped = {
        info.checkpoint_id
        for chain in chains.values()
        for commit in chain
        if (info := commit_info(commit)) is not None
        and info.kind == KIND_CHECKPOINT
        and summary_of(info).get("run_id") in run_ids
    }
    if not dropped:
        return

    def keep(commit: Commit) -> bool:
        info = commit_info(commit)
        return info is None or info.checkpoint_id not in dropped

    rewritten: dict[CommitId, Commit | None] = {}
    with object_batch(store.repo.objects) as batch:
        new_heads = {b: _rechain(batch, chain, keep, rewritten) for b, chain in chains.items()}
    for branch, new_head in new_heads.items():
        new_id = None if new_head is None else new_head.id
        if new_id != heads[branch]:
            job.refs.update(HEADS + branch, heads[branch], new_id, "langgraph: delete runs")
    remaining = store.branch_heads(job, "")
    if not remaining:
        store.repo.delete_job(job.name)
        return
    if job.refs.current_branch() not in remaining:
        roots = sorted(b for b in remaining if not b.startswith(NS_BRANCH_PREFIX))
        if roots:
            job.refs.set_current_branch(roots[0])
    update_record(
        store.repo.storage,
        job.name,
        lambda record: attrs.evolve(
            record,
            cut=frozenset(c for c in record.cut if rewritten.get(c, c) is not None),
            pruned_at=now(),
        ),
    )


def _rechain(
    batch: ObjectBatch,
    chain: Sequence[Commit],
    keep: Callable[[Commit], bool],
    rewritten: dict[CommitId, Commit | None],
    **changes: Any,
) -> Commit | None:
    """Rebuild ``chain`` (oldest first) with only the commits ``keep`` accepts; return
    the new head (None: nothing kept).

    ``rewritten`` maps old ids to new commits (None: dropped) and is
    shared by the branches of a job, so that shared history stays
    shared.  ``changes`` are set on every commit (another job, say).
    """
    parent: Commit | None = None
    for index, commit in enumerate(chain):
        if commit.id in rewritten:
            parent = rewritten[commit.id] or parent
            continue
        if not keep(commit):
            rewritten[commit.id] = None
            continue
        if parent is not None:
            parents: tuple[CommitId, ...] = (parent.id,)
        else:
            # The oldest commit walked keeps its parents (a cut or the root); one whose
            # older commits were all dropped becomes a root.
            parents = commit.parents if index == 0 and not changes else ()
        if not changes and parents == commit.parents:
            rewritten[commit.id] = parent = commit
            continue
        new = attrs.evolve(
            commit,
            id=CommitId(ObjectId("0" * 64)),
            parents=parents,
            seq=1 if parent is None else parent.seq + 1,
            total_cost=commit.cost + (0.0 if parent is None else parent.total_cost),
            total_tokens=commit.tokens + (0 if parent is None else parent.total_tokens),
            **changes,
        )
        new = attrs.evolve(new, id=CommitId(batch.put(Kind.COMMIT, encode_commit(new))))
        rewritten[commit.id] = parent = new
    return parent


def copy_thread(store: ThreadStore, source: str, target: str) -> bool:
    """Copy every branch of thread ``source`` to the new thread ``target``.

    The copy shares every tree and value with the source, so it costs
    only its commits.  Returns False (copying nothing) if the source
    has no checkpoints; raises ConflictError if the target has some.
    """
    with store.lock:
        src, dst = store.job(source), store.job(target)
        store.forget_job(dst)
        if not src.exists:
            return False
        if dst.exists and store.branch_heads(dst, ""):
            raise ConflictError(
                f"thread {target!r} already has checkpoints; delete it first or copy to "
                "a new thread id"
            )
        cut = store.cut(src)
        rewritten: dict[CommitId, Commit | None] = {}
        new_heads: dict[str, Commit] = {}
        with object_batch(store.repo.objects) as batch:
            for branch, head in sorted(store.branch_heads(src, "").items()):
                chain = [for_thread(c, target) for c in reversed(list(store.walk(head, cut)))]
                new_head = _rechain(batch, chain, lambda _c: True, rewritten, job=dst.name)
                if new_head is not None:
                    new_heads[branch] = new_head
        if not new_heads:
            return False
        store.ensure_job(dst, target)
        for branch, commit in new_heads.items():
            dst.refs.update(HEADS + branch, None, commit.id, f"langgraph: copy of {src.name}")
        current = src.refs.current_branch()
        if current in new_heads and dst.refs.current_branch() != current:
            dst.refs.set_current_branch(current)
        return True


def keep_latest(store: ThreadStore, thread_id: str) -> None:
    """Keep only the newest checkpoint (and its writes) of each namespace of a thread.

    The namespace's other branches are removed and the history below
    each kept checkpoint is cut, as ckpt's retention does; gc frees it.
    """
    store.retrying(functools.partial(_keep_latest_locked, store, thread_id))


def _keep_latest_locked(store: ThreadStore, thread_id: str) -> None:
    job = store.job(thread_id)
    store.forget_job(job)
    if not job.exists:
        return
    cuts: set[CommitId] = set()
    for ns in store.namespaces(thread_id):
        heads = store.ns_heads(job, ns)
        current = store.current(job, ns, heads)
        if current is None:
            continue
        for branch, head in heads.items():
            if branch != current[0]:
                job.refs.update(HEADS + branch, head, None, "langgraph: prune keep_latest")
        place = store.head_place(job, *current)
        if place is not None and place.checkpoint.commit.parent is not None:
            cuts.add(place.checkpoint.commit.id)
    update_record(
        store.repo.storage,
        job.name,
        lambda record: attrs.evolve(record, cut=record.cut | cuts, pruned_at=now()),
    )
