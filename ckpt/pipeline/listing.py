"""Jobs at a glance: listing with label and status filters, per-job progress, expiry marking.

``list_jobs(repo, labels={"genre": "fantasy"}, statuses=["failed"])`` gives
one :class:`JobSummary` per matching job: status (active, completed, failed
or expired -- a passed TTL shows as expired), branch, stages done, cost,
tokens, sequence number and time of the newest checkpoint, the time left
for a run of the stage runner, labels, TTL, fork point and, when asked,
size on disk; with ``damaged="mark"`` a job whose refs or newest checkpoint
cannot be read is listed as ``damaged`` instead of failing the listing.
``job_progress`` tells how far one job got and where its next run resumes.
``expire_due`` marks every job whose TTL has passed with an ``expired``
status commit, so that ``apply_retention(expired=True)`` removes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import attrs

from ckpt.errors import CkptError, CorruptObjectError, CorruptRefError, ObjectNotFoundError
from ckpt.history import names
from ckpt.history.job import Job
from ckpt.history.jobrecord import JobRecord, read_record_or_default
from ckpt.history.refs import HEADS, JOBS_PREFIX, now
from ckpt.objects.ids import CommitId
from ckpt.objects.model import (
    STATUS_ACTIVE,
    STATUS_COMPLETED,
    STATUS_EXPIRED,
    STATUS_FAILED,
    STATUSES,
    Commit,
)
from ckpt.pipeline.fingerprint import find_stale
from ckpt.pipeline.jobcache import JobsCache
from ckpt.pipeline.lease import LeaseHolder, holder_gone, read_lease
from ckpt.pipeline.progress import RunMeta, estimate_eta
from ckpt.pipeline.stages import is_internal_entry
from ckpt.repository import Repository


@attrs.frozen
class JobProgress:
    """How far a job got: the stages done (in order), out of how many if known, and why it
    stopped if it failed.  ``resume_after`` is the last stage done: the next run starts after it.

    ``interrupted`` is True when the failure was an interruption (Ctrl-C).
    ``stale`` maps each stage known to be stale to the reason: recorded by a
    run (kept, or waiting to be re-run), or seen from the store (an input of
    it changed since).  ``running`` lists the stages in flight, ``eta`` the
    estimated time left of an active run, and ``runner`` the lease holder of
    the job (read by :func:`job_progress` only) with ``runner_alive`` False
    once its lease expired or its process is known to be gone.
    """

    job: str
    status: str
    branch: str
    stages: tuple[str, ...]
    total_stages: int | None
    head: Commit | None
    failed_stage: str | None = None
    error: str | None = None
    interrupted: bool = False
    stale: Mapping[str, str] = attrs.field(factory=dict)
    running: tuple[str, ...] = ()
    eta: dt.timedelta | None = None
    runner: LeaseHolder | None = None
    runner_alive: bool = False

    @property
    def fraction(self) -> float | None:
        if not self.total_stages:
            return None
        return min(1.0, len(self.stages) / self.total_stages)

    @property
    def resume_after(self) -> str | None:
        return self.stages[-1] if self.stages else None

    def to_json(self) -> dict[str, Any]:
        head = self.head
        return {
            "job": self.job,
            "status": self.status,
            "branch": self.branch,
            "stages_done": list(self.stages),
            "total_stages": self.total_stages,
            "fraction": self.fraction,
            "resume_after": self.resume_after,
            "failed_stage": self.failed_stage,
            "error": self.error,
            "interrupted": self.interrupted,
            "stale": dict(self.stale),
            "running": list(self.running),
            "eta_seconds": _seconds(self.eta),
            "runner": None
            if self.runner is None
            else {
                "host": self.runner.host,
                "pid": self.runner.pid,
                "since": self.runner.since.isoformat(),
                "renewed": self.runner.renewed.isoformat(),
                "expires": self.runner.expires.isoformat(),
                "alive": self.runner_alive,
            },
            "head": None if head is None else head.id,
            "seq": None if head is None else head.seq,
            "total_cost": 0.0 if head is None else head.total_cost,
            "total_tokens": 0 if head is None else head.total_tokens,
            "updated": None if head is None else head.time.isoformat(),
        }


def _seconds(delta: dt.timedelta | None) -> float | None:
    return None if delta is None else round(delta.total_seconds(), 3)


def job_progress(job: Job) -> JobProgress:
    """Progress of ``job`` at its HEAD.  For a job written by the stage runner the stages and
    their total come from the run's metadata; otherwise the stages saved at HEAD are listed.
    Also reads who holds the job's lease, and judges from the store which stages are stale."""
    job.refresh()
    progress = _progress(job, job.branch_name, job.head, job.record, details=True)
    holder = read_lease(job.repo.storage, job.name)
    if holder is None:
        return progress
    alive = not holder.is_expired() and not holder_gone(holder)
    return attrs.evolve(progress, runner=holder, runner_alive=alive)


def _progress(
    job: Job, branch: str, head: Commit | None, record: JobRecord, *, details: bool = False
) -> JobProgress:
    """The progress of ``job`` from its branch, head commit and record, read by the caller
    once (a listing reads each job's keys only once).  ``details`` adds what costs a read of
    the head's tree: the stale stages."""
    stages: tuple[str, ...] = ()
    total: int | None = None
    stale: dict[str, str] = {}
    running: tuple[str, ...] = ()
    eta: dt.timedelta | None = None
    if head is not None:
        found = _run_meta(job, head, record.cut)
        if found is not None:
            stages, total = found.done, len(found.stages)
            running = found.running
            eta = estimate_eta(found, head.status)
            if details:
                stale = _stale(job, head, found)
        else:
            names = job.repo.objects.get_tree(head.tree).names
            stages = tuple(s for s in names if not is_internal_entry(s))
    failed_stage = error = None
    if head is not None and head.status == STATUS_FAILED:
        stage = head.meta.get("failed_stage")
        message = head.meta.get("error")
        failed_stage = None if stage is None else str(stage)
        error = None if message is None else str(message)
    status = STATUS_ACTIVE if head is None else head.status
    if head is not None and record.is_expired():
        status = STATUS_EXPIRED  # due for collection, whatever its last status (as Job.status)
    return JobProgress(
        job=job.name,
        status=status,
        branch=branch,
        stages=stages,
        total_stages=total,
        head=head,
        failed_stage=failed_stage,
        error=error,
        interrupted=head is not None
        and head.status == STATUS_FAILED
        and head.meta.get("interrupted") is True,
        stale=stale,
        running=running if status == STATUS_ACTIVE else (),
        eta=eta if status in (STATUS_ACTIVE, STATUS_COMPLETED) else None,
    )


def _stale(job: Job, head: Commit, meta: RunMeta) -> dict[str, str]:
    """Stale stages as the store shows them: those a run recorded (kept, or waiting to be
    re-run), and those whose inputs changed since they ran."""
    ids = {entry.name: entry.id for entry in job.repo.objects.get_tree(head.tree)}
    found = {**find_stale(meta.stages, meta.done, meta.fingerprints, ids), **meta.stale}
    order = {name: index for index, name in enumerate(meta.stages)}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))


def _run_meta(job: Job, head: Commit, cut: frozenset[CommitId]) -> RunMeta | None:
    """The runner metadata of the newest runner commit at or behind ``head`` (as
    :func:`ckpt.pipeline.progress.run_commit`, stopping where retention cut history)."""
    commit = head
    while True:
        meta = RunMeta.from_commit(commit)
        if meta is not None:
            return meta
        parent = commit.parent
        if parent is None or commit.id in cut:
            return None
        commit = job.repo.objects.get_commit(parent)


@attrs.frozen
class JobSummary:
    """One line of a job listing."""

    name: str
    status: str
    branch: str
    stages: tuple[str, ...]
    total_stages: int | None
    cost: float
    tokens: int
    seq: int
    updated: dt.datetime | None
    labels: Mapping[str, str]
    expires_at: dt.datetime | None
    forked_from: tuple[str, CommitId] | None
    size: int | None
    """Stored bytes of every object the job reaches; None when not measured."""
    eta: dt.timedelta | None = None
    """Time left for the stage runner's run (see :func:`ckpt.pipeline.progress.estimate_eta`)."""
    damage: str | None = None
    """Why the job could not be read (status ``damaged``); None for a readable job."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "branch": self.branch,
            "stages": list(self.stages),
            "total_stages": self.total_stages,
            "cost": self.cost,
            "tokens": self.tokens,
            "seq": self.seq,
            "updated": None if self.updated is None else self.updated.isoformat(),
            "labels": dict(self.labels),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "forked_from": None
            if self.forked_from is None
            else {"job": self.forked_from[0], "commit": self.forked_from[1]},
            "size": self.size,
            "eta_seconds": _seconds(self.eta),
            "damage": self.damage,
        }


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """``["genre=fantasy", "owner=ana"]`` -> ``{"genre": "fantasy", "owner": "ana"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CkptError(f"label {item!r} is not KEY=VALUE")
        out[names.validate_name("label", key.strip())] = value.strip()
    return out


#: What a listing does with a job it cannot read: raise the error, or list the job as damaged.
DAMAGED_CHOICES = ("raise", "mark")
STATUS_DAMAGED = "damaged"
_DAMAGE_ERRORS = (CorruptObjectError, ObjectNotFoundError, CorruptRefError)


def list_jobs(
    repo: Repository,
    *,
    labels: Mapping[str, str] | Iterable[str] | None = None,
    statuses: Collection[str] = (),
    sizes: bool = False,
    damaged: str = "raise",
) -> list[JobSummary]:
    """Jobs having every given label (``key=value``; value ``*`` matches any) and one of
    ``statuses`` (none given: any), sorted by name.

    Each job's HEAD, branch ref, head commit and record are read once (and
    its tree, or the commits back to its newest runner commit, for the
    stages), unless the listing cache (:mod:`ckpt.pipeline.jobcache`) shows
    that none of them changed since the last listing.  ``sizes=True`` also
    measures each job's disk use (``size``; None otherwise), which walks
    every object of every job: the cost of a full ``ckpt stats``.

    A job whose refs, record or newest checkpoints are damaged (corrupt or
    missing) raises the error, or with ``damaged="mark"`` is listed with
    status ``damaged`` and the error in ``damage``, whatever the filters (its
    labels and status cannot be read, and damage is not to be hidden).
    """
    if damaged not in DAMAGED_CHOICES:
        raise CkptError(f"damaged must be one of {', '.join(DAMAGED_CHOICES)}, not {damaged!r}")
    wanted = (
        {}
        if labels is None
        else dict(labels)
        if isinstance(labels, Mapping)
        else parse_labels(labels)
    )
    unknown = set(statuses) - set(STATUSES)
    if unknown:
        raise CkptError(f"unknown status {sorted(unknown)[0]!r}; use {', '.join(STATUSES)}")
    cache = JobsCache.open(repo.storage)
    chosen: list[JobSummary] = []
    # With the cache, every folder under jobs/ is a candidate: a job whose entry is
    # still exact has its HEAD (removing it would have changed the folder's stamp);
    # the others are checked as job_names() checks them.
    names = repo.job_names() if cache is None else sorted(cache.stamps)
    for name in names:
        summary = _cached(cache, name)
        if summary is None:
            if cache is not None and repo.storage.stat(f"{JOBS_PREFIX}{name}/HEAD") is None:
                continue
            job = Job(repo, name)
            try:
                record = read_record_or_default(repo.storage, job.name)
                branch = job.refs.current_branch()
                head_id = job.refs.read(HEADS + branch)
                head = None if head_id is None else repo.objects.get_commit(head_id)
                progress = _progress(job, branch, head, record)
            except _DAMAGE_ERRORS as exc:
                if damaged == "raise":
                    raise
                chosen.append(_damaged(job.name, exc))  # never cached: damage is not hidden
                continue
            summary = _summary(job, progress, record, None)
            if cache is not None:
                cache.put(name, _summary_json(summary, head), branch)
        if any(
            key not in summary.labels or value not in ("*", summary.labels[key])
            for key, value in wanted.items()
        ):
            continue
        if statuses and summary.status not in statuses:
            continue
        chosen.append(summary)
    if cache is not None:
        cache.save()
    readable = [s.name for s in chosen if s.damage is None]
    if sizes and readable:
        from ckpt.maintenance.stats import job_sizes

        measured = {name: size.stored_bytes for name, size in job_sizes(repo, readable).items()}
        chosen = [
            s if s.damage is not None else attrs.evolve(s, size=measured.get(s.name))
            for s in chosen
        ]
    return chosen


def _summary_json(summary: JobSummary, head: Commit | None) -> dict[str, Any]:
    """What the jobs cache keeps of a listed job: its summary, with the head's own status
    (a job whose TTL passes shows as expired from then on, see :func:`_cached`)."""
    doc = summary.to_json()
    doc["head_status"] = None if head is None else head.status
    return doc


def _cached(cache: JobsCache | None, name: str) -> JobSummary | None:
    """The summary of job ``name`` from the listing cache, if it is still exact."""
    doc = None if cache is None else cache.get(name)
    if doc is None:
        return None
    try:
        expires_at = _when(doc["expires_at"])
        head_status = doc["head_status"]
        status = STATUS_ACTIVE if head_status is None else str(head_status)
        if head_status is not None and expires_at is not None and expires_at <= now():
            status = STATUS_EXPIRED
        fork = doc["forked_from"]
        eta = doc.get("eta_seconds")
        return JobSummary(
            name=name,
            status=status,
            branch=str(doc["branch"]),
            stages=tuple(str(stage) for stage in doc["stages"]),
            total_stages=doc["total_stages"],
            cost=float(doc["cost"]),
            tokens=int(doc["tokens"]),
            seq=int(doc["seq"]),
            updated=_when(doc["updated"]),
            labels={str(k): str(v) for k, v in doc["labels"].items()},
            expires_at=expires_at,
            forked_from=None if fork is None else (str(fork["job"]), CommitId(fork["commit"])),
            size=None,
            eta=None if eta is None else dt.timedelta(seconds=float(eta)),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _when(text: object) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(str(text))


def _damaged(name: str, error: Exception) -> JobSummary:
    return JobSummary(
        name=name,
        status=STATUS_DAMAGED,
        branch="",
        stages=(),
        total_stages=None,
        cost=0.0,
        tokens=0,
        seq=0,
        updated=None,
        labels={},
        expires_at=None,
        forked_from=None,
        size=None,
        damage=str(error) or error.__class__.__name__,
    )


def _summary(job: Job, progress: JobProgress, record: JobRecord, size: int | None) -> JobSummary:
    head = progress.head
    fork = record.forked_from
    return JobSummary(
        name=job.name,
        status=progress.status,
        branch=progress.branch,
        stages=progress.stages,
        total_stages=progress.total_stages,
        cost=0.0 if head is None else head.total_cost,
        tokens=0 if head is None else head.total_tokens,
        seq=0 if head is None else head.seq,
        updated=None if head is None else head.time,
        labels=dict(record.labels),
        expires_at=record.expires_at,
        forked_from=None if fork is None else (fork.job, fork.commit),
        size=size,
        eta=progress.eta,
    )


def expire_due(repo: Repository, *, dry_run: bool = False) -> list[str]:
    """Mark every job whose TTL has passed as expired (one status commit each); return their
    names.  Jobs already marked are left alone."""
    marked = []
    for job in repo.jobs():
        head = job.head
        if head is None or head.status == STATUS_EXPIRED or not job.record.is_expired():
            continue
        if not dry_run:
            job.expire()
        marked.append(job.name)
    return marked
