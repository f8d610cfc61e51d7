"""What is reachable: the roots of every job and the objects they lead to.

Roots are a job's branches and tags, plus the old and new commit of every
reflog entry younger than ``REFLOG_EXPIRY`` (so that a rolled-back checkout
can still be undone).  From a commit, its tree, the tree's blobs and the
commit's parents are reachable.  gc keeps exactly this set; verify checks it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from ckpt.objects.ids import CommitId
from ckpt.refs import RefStore, now
from ckpt.storage.base import Storage

REFLOG_EXPIRY = dt.timedelta(days=30)


def job_roots(
    storage: Storage,
    job: str,
    *,
    expiry: dt.timedelta = REFLOG_EXPIRY,
    at: dt.datetime | None = None,
) -> set[CommitId]:
    """Commit ids a job keeps alive: ref targets and unexpired reflog entries."""
    refs = RefStore(storage, job)
    roots: set[CommitId] = {oid for oid in refs.all_refs().values() if oid is not None}
    cutoff = (at or now()) - expiry
    for entry in refs.reflog():
        if entry.time >= cutoff:
            roots.update(oid for oid in (entry.old, entry.new) if oid is not None)
    return roots


def all_roots(
    storage: Storage, jobs: Iterable[str], *, expiry: dt.timedelta = REFLOG_EXPIRY
) -> dict[str, set[CommitId]]:
    return {job: job_roots(storage, job, expiry=expiry) for job in jobs}
