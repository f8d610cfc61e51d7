"""Garbage collection: delete objects no job can reach any more.

gc runs in two steps.

1. **Mark**: read every job's roots (see :mod:`ckpt.maintenance.reachable`) and walk
   commits, trees and blobs from them.  If an object on the way cannot be
   read, gc stops without deleting anything: it cannot know what that
   object would have kept alive (run ``ckpt verify``).
2. **Sweep**: every stored object that was not marked (nor is a chunk or
   delta base a marked object needs) *and* whose pack or loose file is
   older than the grace period is deleted: a pack holding such objects is
   rewritten without them and then removed with the backend's atomic
   ``delete_if_older`` (see :meth:`ckpt.objects.scan.StoreScan.sweep`).

A save writes (or touches, when the content already exists) its objects
before it moves its ref.  The grace period therefore protects an in-flight
save's objects as long as the save takes less than the grace period from
its first object write to its ref update.  A writer stalled for longer
(e.g. a suspended process) may find its objects gone: its ref update then
still succeeds but points at missing objects, which ``ckpt verify`` reports;
the default grace of one hour makes that a deliberate act.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping

from ckpt.errors import CkptError
from ckpt.history.jobrecord import JobRecord
from ckpt.history.repository import BaseRepository
from ckpt.maintenance.gc_shared import collect_two_phase
from ckpt.maintenance.mark import GcReport, mark
from ckpt.maintenance.reachable import DEFAULT_GRACE, REFLOG_EXPIRY
from ckpt.maintenance.reflog import expire_reflog
from ckpt.objects.progress import Meter, ProgressFn
from ckpt.objects.scan import StoreScan
from ckpt.objects.storemap import restore_set_aside


def collect(
    repo: BaseRepository,
    *,
    grace: dt.timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
    plan: Mapping[str, JobRecord | None] | None = None,
    reflog_expiry: dt.timedelta = REFLOG_EXPIRY,
) -> GcReport:
    """Mark, then sweep unreachable objects older than ``grace``.

    Reflog entries older than ``reflog_expiry`` keep nothing alive (see
    :mod:`ckpt.maintenance.reachable`); an expiry shorter than the default is
    recorded in each job (:func:`ckpt.maintenance.reflog.expire_reflog`, not
    in a dry run), so that verify agrees with what gc kept.  On a backend whose ``delete_if_older``
    is not atomic against ``touch`` (S3), objects are deleted in two phases a
    grace period apart instead:
    see :mod:`ckpt.maintenance.gc_shared` (the report is then a ``SharedGcReport``).
    ``progress`` receives the events of the two phases (``marking objects``,
    ``sweeping objects``).  ``plan``, for a dry run only, counts what gc would
    free once retention has run: see :func:`~ckpt.maintenance.mark.mark`.
    """
    if grace < dt.timedelta(0):
        raise CkptError("the grace period must not be negative")
    if plan is not None and not dry_run:
        raise CkptError("a retention plan is only for a dry run; apply retention first")
    if reflog_expiry < REFLOG_EXPIRY and not dry_run:
        expire_reflog(repo, reflog_expiry)
    # -- shared stores (issue 8): two-phase collection, see ckpt.maintenance.gc_shared --
    if not repo.storage.atomic_delete_if_older:
        return collect_two_phase(
            repo,
            grace=grace,
            dry_run=dry_run,
            progress=progress,
            plan=plan,
            reflog_expiry=reflog_expiry,
        )
    cutoff = time.time() - grace.total_seconds()
    if not dry_run:
        # What an older gc, killed midway through a deletion, left hidden.
        restore_set_aside(repo.objects)
    scan = StoreScan(repo.objects)
    marking = Meter(progress, "marking objects")
    marked = mark(repo, scan=scan, progress=marking, plan=plan, expiry=reflog_expiry)
    marking.finish()
    # The sweep goes pack by pack (a pack with dead objects is rewritten
    # once, not once per object) and keeps the chunks and delta bases that
    # marked objects need.
    sweeping = Meter(progress, "sweeping objects")
    swept = scan.sweep(marked, cutoff, dry_run=dry_run, progress=sweeping)
    sweeping.finish()
    return GcReport(
        dry_run,
        len(marked),
        swept.deleted,
        swept.deleted_bytes,
        swept.kept_by_grace,
        swept.candidates,
    )


__all__ = ["DEFAULT_GRACE", "GcReport", "collect", "mark"]
