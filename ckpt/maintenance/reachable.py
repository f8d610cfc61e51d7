"""What is reachable: the roots of every job and the objects they lead to.

Roots are a job's branches and tags, the older checkpoints retention kept
below a cut (the job record's ``kept_below``), plus the old and new commit of every
reflog entry younger than ``REFLOG_EXPIRY`` (so that a rolled-back checkout
can still be undone) and younger than the job's last retention prune, plus,
for a ref that is missing or garbled, where its newest reflog record says it
is (however old: the ref is damaged, not deleted).  Every job folder counts,
whether or not its ``HEAD`` exists.  From a commit, its tree, the tree's blobs
(each stage's value, and the contents of the files a value refers to) and the
commit's parents are reachable,
except that the parents of a commit in the job's history cut (see
:mod:`ckpt.history.jobrecord`) are not.  gc keeps exactly this set; verify checks it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from ckpt.history.jobrecord import JobRecord, read_record_or_default
from ckpt.history.refs import ReflogEntry, RefStore, now
from ckpt.objects.ids import CommitId
from ckpt.storage.base import Storage

#: How old an unreachable object must be before gc deletes it (a save in flight is never robbed).
DEFAULT_GRACE = dt.timedelta(hours=1)
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
    targets = refs.all_refs()
    record = read_record_or_default(storage, job)
    return roots_from(targets, refs.reflog(), record, expiry=expiry, at=at)


def roots_from(
    targets: Mapping[str, CommitId | None],
    reflog: Iterable[ReflogEntry],
    record: JobRecord,
    *,
    expiry: dt.timedelta = REFLOG_EXPIRY,
    at: dt.datetime | None = None,
) -> set[CommitId]:
    """:func:`job_roots` from a job's refs, reflog and record already read."""
    from ckpt.history.refcheck import logged_targets  # here: `ckpt log` never needs it

    entries = list(reflog)
    roots: set[CommitId] = {oid for oid in targets.values() if oid is not None}
    roots.update(record.kept_below.values())
    for ref, logged in logged_targets(entries).items():
        if logged is not None and targets.get(ref) is None:
            roots.add(logged)  # a ref deleted or garbled by accident keeps its history
    cutoff = (at or now()) - expiry
    if record.pruned_at is not None and record.pruned_at > cutoff:
        cutoff = record.pruned_at
    for entry in entries:
        if entry.time >= cutoff:
            roots.update(oid for oid in (entry.old, entry.new) if oid is not None)
    return roots


def history_cut(storage: Storage, job: str) -> frozenset[CommitId]:
    """Commits of ``job`` whose parents retention no longer keeps."""
    return read_record_or_default(storage, job).cut
