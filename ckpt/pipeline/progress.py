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
from ckpt.pipeline.fingerprint import Fingerprint
from ckpt.pipeline.stages import is_internal_entry

if TYPE_CHECKING:
    from ckpt.repository import Repository

META_KEY = "pipeline"
TERMINAL = (STATUS_COMPLETED, STATUS_FAILED, STATUS_EXPIRED)


@attrs.frozen
class RunMeta:
    """The runner's bookkeeping stored in each of its commits under ``meta["pipeline"]``.

    ``inflight`` maps each stage that saved work inside it (``ctx.checkpoint``
    or ``ctx.map`` items) and has not finished to its item counts (done,
    total) when known; ``fingerprints`` holds what each done stage was
    computed from (see :mod:`ckpt.pipeline.fingerprint`); ``stale`` the stages
    a run found stale, with the reason (kept ones stay in ``done``);
    ``stage_costs`` each stage's cost and tokens in this run, its items and
    partial checkpoints included; ``concurrency`` how many stages the run
    may run at once.
    """

    run: str
    stages: tuple[str, ...]
    done: tuple[str, ...] = ()
    durations: Mapping[str, float] = attrs.field(factory=dict)
    started: dt.datetime = attrs.field(factory=now)
    invoked: dt.datetime = attrs.field(factory=now)
    base_cost: float = 0.0
    base_tokens: int = 0
    inflight: Mapping[str, tuple[int, int | None] | None] = attrs.field(factory=dict)
    fingerprints: Mapping[str, Fingerprint] = attrs.field(factory=dict)
    stale: Mapping[str, str] = attrs.field(factory=dict)
    stage_costs: Mapping[str, tuple[float, int]] = attrs.field(factory=dict)
    concurrency: int = 1

    @property
    def running(self) -> tuple[str, ...]:
        """The stages in flight (that saved work inside them), in pipeline order.  (Stored
        metadata is canonical JSON, whose keys are sorted: the order comes from ``stages``.)"""
        known = [s for s in self.stages if s in self.inflight and s not in self.done]
        return (*known, *sorted(s for s in self.inflight if s not in self.stages))

    @property
    def partial(self) -> str | None:
        """The first stage in flight (None: none)."""
        running = self.running
        return running[0] if running else None

    @property
    def items(self) -> tuple[int, int | None] | None:
        """Item counts of :attr:`partial`."""
        partial = self.partial
        return None if partial is None else self.inflight.get(partial)

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
            "inflight": {k: None if v is None else list(v) for k, v in self.inflight.items()},
            "fingerprints": {k: v.to_json() for k, v in self.fingerprints.items()},
            "stale": dict(self.stale),
            "stage_costs": {k: [round(c, 9), t] for k, (c, t) in self.stage_costs.items()},
            "concurrency": self.concurrency,
        }

    @classmethod
    def from_commit(cls, commit: Commit) -> RunMeta | None:
        """The runner metadata of ``commit``, or None if it has none (or it is unreadable)."""
        doc = commit.meta.get(META_KEY)
        if not isinstance(doc, dict):
            return None
        try:
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
                inflight=_inflight(doc),
                fingerprints=_fingerprints(doc.get("fingerprints")),
                stale={str(k): str(v) for k, v in _dict(doc.get("stale") or {}).items()},
                stage_costs={
                    str(k): (float(_num(_list(v)[0])), int(_num(_list(v)[1])))
                    for k, v in _dict(doc.get("stage_costs") or {}).items()
                },
                concurrency=max(1, int(_num(doc.get("concurrency") or 1))),
            )
        except (KeyError, TypeError, ValueError, IndexError):
            return None


def _items(value: object) -> tuple[int, int | None] | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    return int(_num(value[0])), None if value[1] is None else int(_num(value[1]))


def _inflight(doc: dict[str, Any]) -> dict[str, tuple[int, int | None] | None]:
    """The stages in flight; a commit written before ``inflight`` existed names one, as
    ``partial`` with its ``items``."""
    inflight = doc.get("inflight")
    if isinstance(inflight, dict):
        return {str(k): _items(v) for k, v in inflight.items()}
    partial = doc.get("partial")
    return {} if partial is None else {str(partial): _items(doc.get("items"))}


def _fingerprints(doc: object) -> dict[str, Fingerprint]:
    found: dict[str, Fingerprint] = {}
    for name, value in _dict(doc or {}).items():
        fingerprint = Fingerprint.from_json(value)
        if fingerprint is not None:
            found[str(name)] = fingerprint
    return found


def _dict(value: object) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value


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
    times the stages left, divided by the stages the run may run at once
    (None until a stage has finished).  ``running`` lists the stages in
    flight (the runner's own view while it runs; from the store, the stages
    that saved work inside them), ``current_stage`` is the first of them.
    ``stale`` maps each stage found stale to the reason, and ``stage_costs``
    each stage's cost and tokens in this run, its fan-out items included.

    A job written with ``Job.save`` rather than the runner has progress too:
    its stages are the ones saved, ``planned`` is False, and the total,
    percentage, next stage and ETA are unknown (None).
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
    running: tuple[str, ...] = ()
    stale: Mapping[str, str] = attrs.field(factory=dict)
    stage_costs: Mapping[str, tuple[float, int]] = attrs.field(factory=dict)
    planned: bool = True

    @property
    def completed_stages(self) -> int:
        return len(self.completed)

    @property
    def total_stages(self) -> int | None:
        """How many stages the run has (None when not planned: a job saved by hand)."""
        return len(self.stages) if self.planned else None

    @property
    def percentage(self) -> float | None:
        if not self.planned:
            return None
        return 100.0 if not self.stages else 100.0 * len(self.completed) / len(self.stages)

    @property
    def next_stage(self) -> str | None:
        """The first stage not done yet (None when every stage is done, or not planned)."""
        if not self.planned:
            return None
        return next((s for s in self.stages if s not in self.completed), None)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, e.g. for a WebSocket or SSE message."""
        percentage = self.percentage
        return {
            "job": self.job,
            "branch": self.branch,
            "status": self.status,
            "planned": self.planned,
            "completed_stages": len(self.completed),
            "total_stages": self.total_stages,
            "percentage": None if percentage is None else round(percentage, 2),
            "completed": list(self.completed),
            "latest_stage": self.latest_stage,
            "current_stage": self.current_stage,
            "running": list(self.running),
            "next_stage": self.next_stage,
            "items_done": self.items_done,
            "items_total": self.items_total,
            "cost": self.cost,
            "tokens": self.tokens,
            "total_cost": self.total_cost,
            "total_tokens": self.total_tokens,
            "stage_costs": {
                name: {"cost": cost, "tokens": tokens}
                for name, (cost, tokens) in self.stage_costs.items()
            },
            "stale": dict(self.stale),
            "started_at": self.started_at.isoformat(),
            "resumed_at": None if self.resumed_at is None else self.resumed_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "elapsed_seconds": round(self.elapsed.total_seconds(), 3),
            "eta_seconds": None if self.eta is None else round(self.eta.total_seconds(), 3),
            "commit": self.commit,
            "seq": self.seq,
        }


def estimate_eta(meta: RunMeta, status: str) -> dt.timedelta | None:
    """Mean duration of the stages done times the stages left, over the concurrency."""
    left = len([s for s in meta.stages if s not in meta.done])
    if status == STATUS_COMPLETED or left == 0:
        return dt.timedelta(0)
    durations = [meta.durations[s] for s in meta.done if s in meta.durations]
    if not durations or status != STATUS_ACTIVE:
        return None
    lanes = max(1, min(meta.concurrency, left))
    return dt.timedelta(seconds=sum(durations) / len(durations) * left / lanes)


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
    running: tuple[str, ...] | None = None,
    at: dt.datetime | None = None,
) -> Progress:
    """A Progress from runner metadata and the head's totals (shared by runner and watcher).

    ``running`` (default: the stages in flight in ``meta``) are the stages
    being run now; ``current_stage`` (default: the first of them) the one
    the caller is about.
    """
    moment = at or now()
    end = updated_at if status in TERMINAL else moment
    if running is None:
        running = meta.running
    current = current_stage if current_stage is not None else next(iter(running), None)
    items = None if current is None else meta.inflight.get(current)
    return Progress(
        job=job,
        branch=branch,
        status=status,
        stages=meta.stages,
        completed=meta.done,
        latest_stage=meta.done[-1] if meta.done else None,
        current_stage=current,
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
        eta=estimate_eta(meta, status),
        commit=commit,
        seq=seq,
        running=running,
        stale=dict(meta.stale),
        stage_costs=dict(meta.stage_costs),
    )


def read_progress(job: Job) -> Progress | None:
    """The progress of the job at its HEAD, read fresh from the store.

    For a run of the stage runner it comes from the run's metadata; for a
    job written with ``Job.save`` it lists the stages saved at HEAD, the
    cost and tokens and the last activity (``planned`` is False).  None if
    the job does not exist.
    """
    job.refresh()
    head = job.head
    if head is None:
        return None
    found = run_commit(job, head.id)
    if found is None:
        return _saved_progress(job, head)
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


def _saved_progress(job: Job, head: Commit) -> Progress:
    """Progress of a job its owner saves stage by stage (no runner metadata)."""
    saved = tuple(s for s in job.tree(head.id).names if not is_internal_entry(s))
    started = job.record.created or head.time
    status = job.status
    end = head.time if status in TERMINAL else now()
    return Progress(
        job=job.name,
        branch=job.branch_name,
        status=status,
        stages=saved,
        completed=saved,
        latest_stage=head.stage if head.stage in saved else (saved[-1] if saved else None),
        current_stage=None,
        items_done=None,
        items_total=None,
        cost=head.total_cost,
        tokens=head.total_tokens,
        total_cost=head.total_cost,
        total_tokens=head.total_tokens,
        started_at=started,
        resumed_at=None,
        updated_at=head.time,
        elapsed=max(end - started, dt.timedelta(0)),
        eta=None,
        commit=head.id,
        seq=head.seq,
        planned=False,
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
