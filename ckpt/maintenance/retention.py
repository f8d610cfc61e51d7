"""Retention: which checkpoints and jobs to let go before gc collects them.

* A :class:`KeepPolicy` says which checkpoints of each branch to keep, as
  restic's ``forget`` does for snapshots: the newest ``last``, and the
  newest checkpoint of each of the ``daily`` most recent days that have one
  (``weekly``: ISO weeks, ``monthly``: months), by commit time in UTC.  A
  checkpoint any rule keeps is kept; the others are let go.  ``keep_last=N``
  alone cuts each branch after its N newest commits.
* The job's record gains the cut (so ``log`` says where history was
  removed) and, below each cut, the next older checkpoint that was kept
  (``kept_below``: ``log`` goes on there, gc keeps it); the checkpoints let
  go become collectable by gc.  A tag keeps what it names and all the
  history before it: no cut is made inside a tagged history.
* Whole jobs are selected by age (last checkpoint older than a duration),
  by expired TTL, or by status (completed, failed, ...), and deleted.

Every function takes ``dry_run``: then nothing changes and the report says
what would have, including (``RetentionReport.plan``) the records retention
would write, from which ``gc --dry-run`` counts what would be freed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

import attrs

from ckpt.errors import CkptError
from ckpt.history.job import Job
from ckpt.history.jobrecord import JobRecord, update_record
from ckpt.history.refcheck import ref_damage
from ckpt.history.refs import HEADS, TAGS, now
from ckpt.history.repository import BaseRepository
from ckpt.history.retained import retained_history
from ckpt.objects.ids import CommitId
from ckpt.objects.model import STATUSES, Commit


@attrs.frozen
class KeepPolicy:
    """Which checkpoints of a branch to keep (None or 0: that rule keeps none)."""

    last: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("last", "daily", "weekly", "monthly"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise CkptError(f"keep {name} must be a count >= 0, not {value!r}")
        if not any((self.last, self.daily, self.weekly, self.monthly)):
            raise CkptError("a retention policy must keep something (keep last, daily, ...)")

    def select(self, chain: Sequence[Commit]) -> set[CommitId]:
        """The commits of ``chain`` (one branch's history, newest first) that this keeps."""
        keep: set[CommitId] = {c.id for c in chain[: self.last or 0]}
        for count, bucket in (
            (self.daily, _day),
            (self.weekly, _week),
            (self.monthly, _month),
        ):
            if not count:
                continue
            buckets: set[tuple[int, ...]] = set()
            for commit in chain:
                period = bucket(commit.time.astimezone(dt.UTC))
                if period in buckets:
                    continue  # an older checkpoint of a period already kept
                if len(buckets) == count:
                    break
                buckets.add(period)
                keep.add(commit.id)
        return keep


def _day(when: dt.datetime) -> tuple[int, ...]:
    return (when.year, when.month, when.day)


def _week(when: dt.datetime) -> tuple[int, ...]:
    year, week, _ = when.isocalendar()
    return (year, week)


def _month(when: dt.datetime) -> tuple[int, ...]:
    return (when.year, when.month)


@attrs.frozen
class PruneResult:
    """Where a job's history was cut and how many commits that lets go.

    ``record`` is the job record retention wrote (or, in a dry run, would
    write); None when nothing is let go.
    """

    job: str
    cut_at: tuple[CommitId, ...]
    dropped_commits: int
    record: JobRecord | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class RetentionReport:
    dry_run: bool
    deleted_jobs: tuple[str, ...] = ()
    pruned: tuple[PruneResult, ...] = ()

    @property
    def plan(self) -> dict[str, JobRecord | None]:
        """Job -> the record retention gives it (None: the job is deleted), for
        :func:`ckpt.maintenance.gc.collect` to count what a dry run would free."""
        plan: dict[str, JobRecord | None] = {name: None for name in self.deleted_jobs}
        for pruned in self.pruned:
            if pruned.record is not None:
                plan[pruned.job] = pruned.record
        return plan

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "deleted_jobs": list(self.deleted_jobs),
            "pruned": [
                {"job": p.job, "cut_at": list(p.cut_at), "dropped_commits": p.dropped_commits}
                for p in self.pruned
            ],
        }


def prune_job(job: Job, keep: int | KeepPolicy, *, dry_run: bool = False) -> PruneResult:
    """Keep what ``keep`` selects of every branch of ``job`` (an int: the newest N); cut the
    rest.  Older checkpoints a policy keeps below a cut stay reachable (``kept_below``)."""
    if isinstance(keep, int):
        if isinstance(keep, bool) or keep < 1:
            raise CkptError(f"keep_last must be at least 1, not {keep}")
        policy = KeepPolicy(last=keep)
    else:
        policy = keep
    kept: set[CommitId] = set()
    chains: list[list[Commit]] = []
    for head in [*job.branches().values(), *_damaged(job, HEADS)]:
        chain = list(retained_history(job, head))
        chains.append(chain)
        kept |= policy.select(chain)
    kept |= tagged_history(job).keys()
    dropped = {c.id for chain in chains for c in chain} - kept
    cuts: set[CommitId] = set()
    below: dict[CommitId, CommitId] = {}
    for chain in chains:
        for index, commit in enumerate(chain):
            if commit.id not in kept or commit.parent is None:
                continue
            rest = chain[index + 1 :]
            if rest and rest[0].id == commit.parent and commit.parent in kept:
                continue  # its parent stays: no cut here
            cuts.add(commit.id)
            older = next((c.id for c in rest if c.id in kept), None)
            if older is not None:
                below[commit.id] = older
    record = None
    if dropped:
        # keep-last alone is remembered as the job's own setting, as it always was.
        by_count = not (policy.daily or policy.weekly or policy.monthly)
        keep_last = policy.last if by_count else None

        def change(current: JobRecord) -> JobRecord:
            return attrs.evolve(
                current,
                cut=frozenset(cuts),
                kept_below=below,
                pruned_at=now(),
                keep_last=keep_last if keep_last is not None else current.keep_last,
            )

        if dry_run:
            record = change(job.record)
        else:
            record = update_record(job.repo.storage, job.name, change)
    return PruneResult(job.name, tuple(sorted(cuts)), len(dropped), record)


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
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    older_than: dt.timedelta | None = None,
    expired: bool = False,
    statuses: Collection[str] = (),
    dry_run: bool = False,
) -> RetentionReport:
    """Delete the selected jobs, then prune every remaining job.

    Any of ``keep_last``, ``keep_daily``, ``keep_weekly`` and ``keep_monthly``
    make one :class:`KeepPolicy` applied to every branch of every job.
    Without them, a job's own ``keep_last`` (set by ``set_keep_last``) applies.
    """
    policy = (
        KeepPolicy(keep_last, keep_daily, keep_weekly, keep_monthly)
        if any(n is not None for n in (keep_last, keep_daily, keep_weekly, keep_monthly))
        else None
    )
    doomed = select_jobs(repo, older_than=older_than, expired=expired, statuses=statuses)
    deleted = tuple(job.name for job in doomed)
    if not dry_run:
        for name in deleted:
            repo.delete_job(name)
    pruned = []
    for job in repo.jobs():
        if job.name in deleted:
            continue
        keep: int | KeepPolicy | None = policy if policy is not None else job.record.keep_last
        if keep is None:
            continue
        result = prune_job(job, keep, dry_run=dry_run)
        if result.dropped_commits:
            pruned.append(result)
    return RetentionReport(dry_run, deleted, tuple(pruned))


def set_keep_last(job: Job, keep_last: int | None) -> None:
    """Make every gc keep only the newest ``keep_last`` commits per branch of ``job``."""
    if keep_last is not None and keep_last < 1:
        raise CkptError(f"keep_last must be at least 1, not {keep_last}")
    update_record(
        job.repo.storage, job.name, lambda record: attrs.evolve(record, keep_last=keep_last)
    )
