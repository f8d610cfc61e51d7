"""Progress of a pipeline run, read from the store, and a watcher that streams it.

Every commit the stage runner writes carries a ``pipeline`` entry in its
metadata (see :class:`RunMeta`): the stage list, the stages done so far in
this run with their durations, when the run started and the cost and tokens
spent before it.  Progress is therefore computed from one commit (HEAD, or
the nearest runner commit behind it), by any process that can read the
store, without walking history and without the pipeline's code.

:func:`watch` polls a job's branch ref (one small read) and yields a new
:class:`Progress` whenever it moves, so that a WebSocket or Server-Sent
Events endpoint is a loop over it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ckpt.history.job import Job
from ckpt.history.refs import HEADS, now
from ckpt.objects.ids import CommitId
from ckpt.objects.model import (
    STATUS_ACTIVE,
    STATUS_COMPLETED,
    STATUS_EXPIRED,
    STATUS_FAILED,
    Commit,
)

if TYPE_CHECKING:
    from ckpt.repository import Repository

META_KEY = "pipeline"
TERMINAL = (STATUS_COMPLETED, STATUS_FAILED, STATUS_EXPIRED)


@attrs.frozen
class RunMeta:
    """The runner's bookkeeping stored in each of its commits under ``meta["pipeline"]``."""

    run: str
    stages: tuple[str, ...]
    done: tuple[str, ...] = ()
    durations: Mapping[str, float] = attrs.field(factory=dict)
    started: dt.datetime = attrs.field(factory=now)
    invoked: dt.datetime = attrs.field(factory=now)
    base_cost: float = 0.0
    base_tokens: int = 0
    partial: str | None = None
    items: tuple[int, int | None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "stages": list(self.stages),
            "done": list(self.done),
            "durations": {k: round(v, 6) for k, v in self.durations.items()},
            "started": self.started.isoformat(),
            "invoked": self.invoked.isoformat(),
            "base_cost": self.base_cost,
            "base_tokens": self.base_tokens,
            "partial": self.partial,
            "items": None if self.items is None else list(self.items),
        }

    @classmethod
    def from_commit(cls, commit: Commit) -> RunMeta | None:
        """The runner metadata of ``commit``, or None if it has none (or it is unreadable)."""
        doc = commit.meta.get(META_KEY)
        if not isinstance(doc, dict):
            return None
        try:
            items = doc.get("items")
            durations = doc.get("durations") or {}
            if not isinstance(durations, dict):
                return None
            return cls(
                run=str(doc["run"]),
                stages=tuple(str(s) for s in _list(doc["stages"])),
                done=tuple(str(s) for s in _list(doc.get("done") or [])),
                durations={str(k): float(_num(v)) for k, v in durations.items()},
                started=dt.datetime.fromisoformat(str(doc["started"])),
                invoked=dt.datetime.fromisoformat(str(doc["invoked"])),
                base_cost=float(_num(doc.get("base_cost") or 0.0)),
                base_tokens=int(_num(doc.get("base_tokens") or 0)),
                partial=None if doc.get("partial") is None else str(doc["partial"]),
                items=None
                if not isinstance(items, list) or len(items) != 2
                else (int(_num(items[0])), None if items[1] is None else int(_num(items[1]))),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _num(value: object) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("expected a number")
    return value


def run_commit(job: Job, start: CommitId | None = None) -> tuple[Commit, RunMeta] | None:
    """The newest commit at or behind ``start`` (default HEAD) that the runner wrote, with its
    metadata; None if there is none (no run yet, or retention cut history before it)."""
    if start is None:
        head = job.head
        if head is None:
            return None
        start = head.id
    for commit in job.walk(start):
        meta = RunMeta.from_commit(commit)
        if meta is not None:
            return commit, meta
    return None


@attrs.frozen
class Progress:
    """Where a run stands: stages done of total, cost, tokens, timing and an ETA.

    ``cost`` and ``tokens`` count this run (since its input was saved, so a
    restarted job starts from zero); ``total_cost``/``total_tokens`` are the
    branch's running totals.  ``eta`` is the mean duration of the stages done
    times the stages left (None until a stage has finished).
    """

    job: str
    branch: str
    status: str
    stages: tuple[str, ...]
    completed: tuple[str, ...]
    latest_stage: str | None
    current_stage: str | None
    items_done: int | None
    items_total: int | None
    cost: float
    tokens: int
    total_cost: float
    total_tokens: int
    started_at: dt.datetime
    resumed_at: dt.datetime | None
    updated_at: dt.datetime
    elapsed: dt.timedelta
    eta: dt.timedelta | None
    commit: CommitId | None
    seq: int

    @property
    def completed_stages(self) -> int:
        return len(self.completed)

    @property
    def total_stages(self) -> int:
        return len(self.stages)

    @property
    def percentage(self) -> float:
        return 100.0 if not self.stages else 100.0 * len(self.completed) / len(self.stages)

    @property
    def next_stage(self) -> str | None:
        """The first stage not done yet (None when every stage is done)."""
        return next((s for s in self.stages if s not in self.completed), None)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, e.g. for a WebSocket or SSE message."""
        return {
            "job": self.job,
            "branch": self.branch,
            "status": self.status,
            "completed_stages": len(self.completed),
            "total_stages": len(self.stages),
            "percentage": round(self.percentage, 2),
            "completed": list(self.completed),
            "latest_stage": self.latest_stage,
            "current_stage": self.current_stage,
            "next_stage": self.next_stage,
            "items_done": self.items_done,
            "items_total": self.items_total,
            "cost": self.cost,
            "tokens": self.tokens,
            "total_cost": self.total_cost,
            "total_tokens": self.total_tokens,
            "started_at": self.started_at.isoformat(),
            "resumed_at": None if self.resumed_at is None else self.resumed_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "elapsed_seconds": round(self.elapsed.total_seconds(), 3),
            "eta_seconds": None if self.eta is None else round(self.eta.total_seconds(), 3),
            "commit": self.commit,
            "seq": self.seq,
        }


def estimate_eta(meta: RunMeta, status: str) -> dt.timedelta | None:
    """Time left for a run: the mean duration of the stages done times the stages left.

    Zero when the run completed or has no stage left; None when no stage has
    finished yet or the run is not active (failed or expired).
    """
    durations = [meta.durations[s] for s in meta.done if s in meta.durations]
    left = len([s for s in meta.stages if s not in meta.done])
    if status == STATUS_COMPLETED or left == 0:
        return dt.timedelta(0)
    if durations and status == STATUS_ACTIVE:
        return dt.timedelta(seconds=sum(durations) / len(durations) * left)
    return None


def compute_progress(
    *,
    job: str,
    branch: str,
    status: str,
    meta: RunMeta,
    total_cost: float,
    total_tokens: int,
    updated_at: dt.datetime,
    commit: CommitId | None,
    seq: int,
    current_stage: str | None = None,
    at: dt.datetime | None = None,
) -> Progress:
    """A Progress from runner metadata and the head's totals (shared by runner and watcher)."""
    moment = at or now()
    end = updated_at if status in TERMINAL else moment
    eta = estimate_eta(meta, status)
    items = meta.items if meta.partial is not None else None
    return Progress(
        job=job,
        branch=branch,
        status=status,
        stages=meta.stages,
        completed=meta.done,
        latest_stage=meta.done[-1] if meta.done else None,
        current_stage=current_stage if current_stage is not None else meta.partial,
        items_done=None if items is None else items[0],
        items_total=None if items is None else items[1],
        cost=round(total_cost - meta.base_cost, 9),
        tokens=total_tokens - meta.base_tokens,
        total_cost=total_cost,
        total_tokens=total_tokens,
        started_at=meta.started,
        resumed_at=meta.invoked if meta.invoked > meta.started else None,
        updated_at=updated_at,
        elapsed=max(end - meta.started, dt.timedelta(0)),
        eta=eta,
        commit=commit,
        seq=seq,
    )


def read_progress(job: Job) -> Progress | None:
    """The progress of the run at the job's HEAD, read fresh from the store.

    None if the job does not exist or holds no run of the stage runner.
    """
    job.refresh()
    head = job.head
    if head is None:
        return None
    found = run_commit(job, head.id)
    if found is None:
        return None
    _, meta = found
    return compute_progress(
        job=job.name,
        branch=job.branch_name,
        status=job.status,
        meta=meta,
        total_cost=head.total_cost,
        total_tokens=head.total_tokens,
        updated_at=head.time,
        commit=head.id,
        seq=head.seq,
    )


def _head_position(job: Job) -> tuple[str, CommitId | None]:
    branch = job.refs.current_branch()
    return branch, job.refs.read(HEADS + branch)


async def watch(
    repo: Repository,
    job: str | Job,
    *,
    interval: float = 0.5,
    until_done: bool = True,
) -> AsyncIterator[Progress]:
    """Yield the job's progress now and each time a checkpoint lands (from any process).

    Polls the job's branch ref every ``interval`` seconds.  With
    ``until_done`` the iterator ends after yielding a completed, failed or
    expired status; it also ends if the job is deleted while watched.  A job
    that does not exist yet is waited for.
    """
    handle = job if isinstance(job, Job) else repo.job(job)
    last: tuple[str, CommitId | None] | None = None
    seen_job = False
    while True:
        position = await asyncio.to_thread(_head_position, handle)
        if position[1] is None and seen_job:
            return
        if position != last and position[1] is not None:
            seen_job = True
            last = position
            progress = await asyncio.to_thread(read_progress, handle)
            if progress is not None:
                yield progress
                if until_done and progress.done:
                    return
        await asyncio.sleep(interval)
