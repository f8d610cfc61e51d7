"""What only the reflog keeps, and letting it go: why gc frees nothing after ``branch -d``.

A deleted branch, a checkout that rolled a branch back, a forced pull: their
old commits stay reachable through the reflog for ``REFLOG_EXPIRY`` (30 days)
so that the move can be undone, and gc keeps them (see
:mod:`ckpt.maintenance.reachable`).  :func:`kept_by_reflog` counts those
commits per job, so that gc can say why it freed nothing;
:func:`expire_reflog` lets reflog entries older than a given age keep
nothing any more, for gc and verify alike (it moves each job record's
``pruned_at`` forward, as retention does; the entries stay listed by
``ckpt reflog``).
"""

from __future__ import annotations

import datetime as dt

import attrs

from ckpt.errors import CkptError
from ckpt.history.jobrecord import read_record, read_record_or_default, update_record
from ckpt.history.refs import RefStore, now
from ckpt.history.repository import BaseRepository
from ckpt.maintenance.reachable import REFLOG_EXPIRY, roots_from
from ckpt.objects.ids import CommitId


def kept_by_reflog(repo: BaseRepository, *, expiry: dt.timedelta = REFLOG_EXPIRY) -> dict[str, int]:
    """Job -> how many of its commits no branch or tag reaches, only reflog entries younger
    than ``expiry`` (jobs with none are left out).  Commits that cannot be read are
    skipped: ``verify`` reports them."""
    kept: dict[str, int] = {}
    for job in repo.job_names():
        refs = RefStore(repo.storage, job)
        targets = refs.all_refs()
        record = read_record_or_default(repo.storage, job)
        # What refs keep, and the older checkpoints retention kept below a cut.
        kept_alive = {oid for oid in targets.values() if oid} | set(record.kept_below.values())
        from_refs = _closure(repo, kept_alive, record.cut, set())
        roots = roots_from(targets, refs.reflog(), record, expiry=expiry)
        only = _closure(repo, roots - from_refs, record.cut, from_refs)
        if only:
            kept[job] = len(only)
    return kept


def _closure(
    repo: BaseRepository,
    starts: set[CommitId],
    cut: frozenset[CommitId],
    known: set[CommitId],
) -> set[CommitId]:
    """Commits reachable from ``starts`` (parents of a cut commit not followed), not
    counting those in ``known`` or below them."""
    seen: set[CommitId] = set()
    stack = [oid for oid in starts if oid not in known]
    while stack:
        oid = stack.pop()
        if oid in seen or oid in known:
            continue
        try:
            commit = repo.objects.get_commit(oid)
        except CkptError:
            continue
        seen.add(oid)
        if oid not in cut:
            stack.extend(commit.parents)
    return seen


def expire_reflog(repo: BaseRepository, older_than: dt.timedelta) -> list[str]:
    """Let every job's reflog entries older than ``older_than`` keep nothing alive; return the
    jobs whose record changed.  A shorter age than gc's default only: a longer one would
    not bring back what an earlier expiry let go."""
    cutoff = now() - older_than
    changed = []
    for job in repo.job_names():
        record = read_record(repo.storage, job)
        if record.pruned_at is not None and record.pruned_at >= cutoff:
            continue
        update_record(
            repo.storage,
            job,
            lambda mine: (
                mine
                if mine.pruned_at is not None and mine.pruned_at >= cutoff
                else attrs.evolve(mine, pruned_at=cutoff)
            ),
        )
        changed.append(job)
    return changed
