"""Retention: which checkpoints and jobs to let go before gc collects them.

* ``keep_last=N`` cuts each branch of a job after its N newest commits: the
  job's record gains the cut (so ``log`` stops there and says so) and the
  older commits become collectable by gc.  A tag keeps what it names and
  all the history before it: no cut is made inside a tagged history.
* Whole jobs are selected by age (last checkpoint older than a duration),
  by expired TTL, or by status (completed, failed, ...), and deleted.

Every function takes ``dry_run``: then nothing changes and the report says
what would have.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import attrs

from ckpt.errors import CkptError
from ckpt.history.job import Job
from ckpt.history.jobrecord import update_record
from ckpt.history.refcheck import ref_damage
from ckpt.history.refs import HEADS, TAGS, now
from ckpt.history.repository import BaseRepository
from ckpt.objects.ids import CommitId
from ckpt.objects.model import STATUSES


@attrs.frozen
class PruneResult:
    """Where a job's history was cut and how many commits that lets go."""

    job: str
    cut_at: tuple[CommitId, ...]
    dropped_commits: int


@attrs.frozen
class RetentionReport:
    dry_run: bool
    deleted_jobs: tuple[str, ...] = ()
    pruned: tuple[PruneResult, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "deleted_jobs": list(self.deleted_jobs),
            "pruned": [
                {"job": p.job, "cut_at": list(p.cut_at), "dropped_commits": p.dropped_commits}
                for p in self.pruned
            ],
        }


def prune_job(job: Job, keep_last: int, *, dry_run: bool = False) -> PruneResult:
    """Keep the newest ``keep_last`` commits of every branch of ``job``; cut the rest."""
    if keep_last < 1:
        raise CkptError(f"keep_last must be at least 1, not {keep_last}")
    kept: dict[CommitId, CommitId | None] = {}  # commit -> its parent
    dropped: set[CommitId] = set()
    for head in [*job.branches().values(), *_damaged(job, HEADS)]:
        chain = list(job.walk(head))
        kept.update((c.id, c.parent) for c in chain[:keep_last])
        dropped.update(c.id for c in chain[keep_last:])
    kept.update(tagged_history(job))
    dropped -= kept.keys()
    # A kept commit whose parent is not kept is where history now stops.
    cuts = {oid for oid, parent in kept.items() if parent is not None and parent not in kept}
    if dropped and not dry_run:
        update_record(
            job.repo.storage,
            job.name,
            lambda record: attrs.evolve(
                record, cut=frozenset(cuts), pruned_at=now(), keep_last=keep_last
            ),
        )
    return PruneResult(job.name, tuple(sorted(cuts)), len(dropped))


def tagged_history(job: Job) -> dict[CommitId, CommitId | None]:
    """Every commit a tag keeps (the tagged commit and all its history), with its parent.

    A tag keeps the history before it, wherever it stands: retention never
    cuts inside it (only where an earlier cut already stopped it).
    """
    kept: dict[CommitId, CommitId | None] = {}
    for target in [*job.tags().values(), *_damaged(job, TAGS)]:
        for commit in job.walk(target):
            if commit.id in kept:
                break  # shared with a tag walked already
            kept[commit.id] = commit.parent
    return kept


def _damaged(job: Job, kind: str) -> list[CommitId]:
    """Where the reflog says the garbled or missing refs of ``kind`` are: retention treats
    them as the refs they were until ``ckpt repair`` puts them back."""
    return [
        damage.logged
        for damage in ref_damage(job.repo.storage, job.name)
        if damage.logged is not None and damage.ref.startswith(kind)
    ]


def select_jobs(
    repo: BaseRepository,
    *,
    older_than: dt.timedelta | None = None,
    expired: bool = False,
    statuses: Collection[str] = (),
) -> list[Job]:
    """Jobs matching every given criterion (none given: no job)."""
    unknown = set(statuses) - set(STATUSES)
    if unknown:
        raise CkptError(f"unknown status {sorted(unknown)[0]!r}; use {', '.join(STATUSES)}")
    if older_than is None and not expired and not statuses:
        return []
    cutoff = None if older_than is None else now() - older_than
    selected = []
    for job in repo.jobs():
        head = job.head
        if cutoff is not None and (head is None or head.time >= cutoff):
            continue
        if expired and not job.is_expired:
            continue
        if statuses and job.status not in statuses:
            continue
        selected.append(job)
    return selected


def apply_retention(
    repo: BaseRepository,
    *,
    keep_last: int | None = None,
    older_than: dt.timedelta | None = None,
    expired: bool = False,
    statuses: Collection[str] = (),
    dry_run: bool = False,
) -> RetentionReport:
    """Delete the selected jobs, then prune every remaining job to its keep-last setting.

    A job's own ``keep_last`` (set by ``set_keep_last``) applies even when
    ``keep_last`` is not given here.
    """
    doomed = select_jobs(repo, older_than=older_than, expired=expired, statuses=statuses)
    deleted = tuple(job.name for job in doomed)
    if not dry_run:
        for name in deleted:
            repo.delete_job(name)
    pruned = []
    for job in repo.jobs():
        if job.name in deleted:
            continue
        limit = keep_last if keep_last is not None else job.record.keep_last
        if limit is None:
            continue
        result = prune_job(job, limit, dry_run=dry_run)
        if result.cut_at:
            pruned.append(result)
    return RetentionReport(dry_run, deleted, tuple(pruned))


def set_keep_last(job: Job, keep_last: int | None) -> None:
    """Make every gc keep only the newest ``keep_last`` commits per branch of ``job``."""
    if keep_last is not None and keep_last < 1:
        raise CkptError(f"keep_last must be at least 1, not {keep_last}")
    update_record(
        job.repo.storage, job.name, lambda record: attrs.evolve(record, keep_last=keep_last)
    )
