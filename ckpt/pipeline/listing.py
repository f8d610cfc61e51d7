"""Jobs at a glance: listing with label and status filters, per-job progress, expiry marking.

``list_jobs(repo, labels={"genre": "fantasy"}, statuses=["failed"])`` gives
one :class:`JobSummary` per matching job: status (active, completed, failed
or expired -- a passed TTL shows as expired), branch, stages done, cost,
tokens, sequence number and time of the newest checkpoint, labels, TTL,
fork point and, when asked, size on disk.  ``job_progress`` tells how far one job got
and where its next run resumes.  ``expire_due`` marks every job whose TTL
has passed with an ``expired`` status commit, so that
``apply_retention(expired=True)`` removes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import attrs

from ckpt.errors import CkptError
from ckpt.history import names
from ckpt.history.job import Job
from ckpt.history.jobrecord import JobRecord
from ckpt.history.refs import HEADS
from ckpt.objects.ids import CommitId
from ckpt.objects.model import STATUS_ACTIVE, STATUS_EXPIRED, STATUS_FAILED, STATUSES, Commit
from ckpt.pipeline.progress import RunMeta
from ckpt.pipeline.stages import PARTIAL_SUFFIX
from ckpt.repository import Repository


@attrs.frozen
class JobProgress:
    """How far a job got: the stages done (in order), out of how many if known, and why it
    stopped if it failed.  ``resume_after`` is the last stage done: the next run starts after it.
    """

    job: str
    status: str
    branch: str
    stages: tuple[str, ...]
    total_stages: int | None
    head: Commit | None
    failed_stage: str | None = None
    error: str | None = None

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
            "head": None if head is None else head.id,
            "seq": None if head is None else head.seq,
            "total_cost": 0.0 if head is None else head.total_cost,
            "total_tokens": 0 if head is None else head.total_tokens,
            "updated": None if head is None else head.time.isoformat(),
        }


def job_progress(job: Job) -> JobProgress:
    """Progress of ``job`` at its HEAD.  For a job written by the stage runner the stages and
    their total come from the run's metadata; otherwise the stages saved at HEAD are listed."""
    job.refresh()
    return _progress(job, job.branch_name, job.head, job.record)


def _progress(job: Job, branch: str, head: Commit | None, record: JobRecord) -> JobProgress:
    """The progress of ``job`` from its branch, head commit and record, read by the caller
    once (a listing reads each job's keys only once)."""
    stages: tuple[str, ...] = ()
    total: int | None = None
    if head is not None:
        found = _run_meta(job, head, record.cut)
        if found is not None:
            stages, total = found.done, len(found.stages)
        else:
            names = job.repo.objects.get_tree(head.tree).names
            stages = tuple(s for s in names if not s.endswith(PARTIAL_SUFFIX))
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
    )


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


def list_jobs(
    repo: Repository,
    *,
    labels: Mapping[str, str] | Iterable[str] | None = None,
    statuses: Collection[str] = (),
    sizes: bool = False,
) -> list[JobSummary]:
    """Jobs having every given label (``key=value``; value ``*`` matches any) and one of
    ``statuses`` (none given: any), sorted by name.

    Each job's HEAD, branch ref, head commit and record are read once (and
    its tree, or the commits back to its newest runner commit, for the
    stages).  ``sizes=True`` also measures each job's disk use (``size``;
    None otherwise), which walks every object of every job: the cost of a
    full ``ckpt stats``.
    """
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
    chosen: list[tuple[Job, JobProgress, JobRecord]] = []
    for name in repo.job_names():
        job = Job(repo, name)
        record = job.record
        if any(
            key not in record.labels or value not in ("*", record.labels[key])
            for key, value in wanted.items()
        ):
            continue
        branch = job.refs.current_branch()
        head_id = job.refs.read(HEADS + branch)
        head = None if head_id is None else repo.objects.get_commit(head_id)
        progress = _progress(job, branch, head, record)
        if statuses and progress.status not in statuses:
            continue
        chosen.append((job, progress, record))
    measured: dict[str, int] = {}
    if sizes and chosen:
        from ckpt.maintenance.stats import job_sizes

        measured = {
            name: size.stored_bytes
            for name, size in job_sizes(repo, [job.name for job, _, _ in chosen]).items()
        }
    return [
        _summary(job, progress, record, measured.get(job.name) if sizes else None)
        for job, progress, record in chosen
    ]


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
