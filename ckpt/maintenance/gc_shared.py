"""Garbage collection in two phases, for shared stores whose ``delete_if_older`` is not atomic.

On S3 "delete this object if it was not modified since T" is two requests:
a HEAD to read the modification time, then a DELETE.  A save that reuses
the object in between (it *touches* the object's pack, which is how it tells
gc "I need this") is not seen, and the object is deleted under it.  Such a
backend says ``atomic_delete_if_older = False``, and :func:`ckpt.maintenance.gc.collect`
hands the store to :func:`collect_two_phase`, which never deletes an object
it has seen only once:

**Phase 1** (every run).  Before marking, the run writes a record
``gc/candidates/NAME`` and takes its modification time, *by the storage's
own clock*, as the phase-1 time ``T``.  It marks what the refs reach, and
writes into the record the ids of every object that is unreachable and whose
pack (or loose file) is older than ``T - grace``: the *candidates*.

**Phase 2** (a later run, once a record has held its ids for at least one
grace period by the storage's clock).  A candidate is deleted only if

* it is still unreachable now, and
* its pack or loose file has not been modified since ``T`` (a save that
  reused the object touched it, which saves it).

Then, and only then, the record is removed.  A pack that also holds objects
still needed is rewritten without the deleted ones, as in one-phase gc.

**Writers** never rely on a candidate: a save that finds an object it would
reuse (or anything that object needs) listed in a record stores its own copy
instead (:mod:`ckpt.objects.reliance`).  This closes the race between
phase 2's HEAD and DELETE of a pack, which a touch cannot: a writer that
touches the pack in that window looked for candidates less than a grace
period before, when the record already held its ids (phase 2 waits a grace
period after that), and the record is removed only after the DELETE.

All times that are compared come from the storage (object mtimes and the
record's mtime), so a collector whose clock is off cannot delete young
objects.  What can still lose an object: a writer that stored or reused it
before ``T`` and moves its ref only after the phase-2 run marked, i.e. a
writer stalled for more than a grace period between writing its objects and
committing (a checkpoint then names a missing object, which ``ckpt verify``
reports and :func:`ckpt.maintenance.repair.repair` heals from a remote).
S3 keeps modification times to the second, which shortens that allowance
by up to a second.  ``docs/backends.md``
("Many machines, one store") gives the rule for running workers and gc.

A dry run writes no record: it reports what phase 2 would delete now (using
the collector's clock as ``T``) and what phase 1 would record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import time
from collections.abc import Mapping

import attrs

from ckpt.errors import CkptError, ConflictError, StorageError
from ckpt.history.jobrecord import JobRecord
from ckpt.history.repository import BaseRepository
from ckpt.maintenance.mark import GcReport, mark
from ckpt.maintenance.reachable import DEFAULT_GRACE, REFLOG_EXPIRY
from ckpt.objects.ids import ObjectId, check_object_id
from ckpt.objects.progress import Meter, ProgressFn
from ckpt.objects.reliance import CANDIDATES_PREFIX, RECORD_FORMAT
from ckpt.objects.scan import StoreScan
from ckpt.storage.base import KeyNotFoundError, Storage

RECORD_VERSION = 1
#: A record whose run never finished marking is removed after this long.
STALE_MARKING = dt.timedelta(days=1)


@attrs.frozen
class CandidateRecord:
    """One run's phase-1 record.  ``marked_at`` is None while that run is still marking
    (or if the record cannot be read)."""

    key: str
    mtime: float
    marked_at: float | None
    ids: frozenset[ObjectId]


@attrs.frozen
class SharedGcReport(GcReport):
    """A two-phase gc run: the one-phase figures (``deleted`` counts phase-2 deletions),
    plus what each phase did."""

    record: str | None
    recorded: int
    due_records: int
    waiting_records: int
    spared: int


def read_records(storage: Storage) -> list[CandidateRecord]:
    """Every candidate record in the store, oldest first."""
    records = []
    for info in storage.list(CANDIDATES_PREFIX):
        try:
            doc = json.loads(storage.get(info.key))
        except KeyNotFoundError:
            continue  # removed by a concurrent run
        except ValueError:
            doc = None
        records.append(_parse(info.key, info.mtime, doc))
    records.sort(key=lambda r: (r.marked_at if r.marked_at is not None else r.mtime, r.key))
    return records


def _parse(key: str, mtime: float, doc: object) -> CandidateRecord:
    """A record as stored; anything unreadable counts as one still marking (it is
    removed once stale, and none of its ids are ever deleted)."""
    if (
        not isinstance(doc, dict)
        or doc.get("format") != RECORD_FORMAT
        or doc.get("state") != "recorded"
        or not isinstance(doc.get("marked_at"), int | float)
        or not isinstance(doc.get("ids"), list)
    ):
        return CandidateRecord(key, mtime, None, frozenset())
    ids: set[ObjectId] = set()
    for oid in doc["ids"]:
        try:
            ids.add(check_object_id(oid))
        except (CkptError, TypeError):
            return CandidateRecord(key, mtime, None, frozenset())
    return CandidateRecord(key, mtime, float(doc["marked_at"]), frozenset(ids))


def _begin(storage: Storage) -> tuple[str, bytes, float]:
    """Write this run's record in its marking state; return its key, bytes and the
    phase-1 time (the record's mtime by the storage's clock)."""
    key = f"{CANDIDATES_PREFIX}{time.time_ns():020d}-{secrets.token_hex(4)}"
    doc = {"format": RECORD_FORMAT, "version": RECORD_VERSION, "state": "marking"}
    data = json.dumps(doc).encode() + b"\n"
    storage.put_if_absent(key, data)
    info = storage.stat(key)
    if info is None:
        raise StorageError(f"the gc record {key} vanished right after it was written")
    return key, data, info.mtime


def _finish(
    storage: Storage,
    key: str,
    marking: bytes,
    marked_at: float,
    grace: float,
    ids: list[ObjectId],
) -> None:
    """Turn this run's record into its final form, or remove it if it has no candidates."""
    if not ids:
        storage.delete(key)
        return
    doc = {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "state": "recorded",
        "marked_at": marked_at,
        "grace_seconds": grace,
        "ids": ids,
    }
    try:
        storage.compare_and_swap(key, marking, json.dumps(doc).encode() + b"\n")
    except ConflictError:
        raise CkptError(f"the gc record {key} was changed by someone else; run gc again") from None


def collect_two_phase(
    repo: BaseRepository,
    *,
    grace: dt.timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
    plan: Mapping[str, JobRecord | None] | None = None,
    reflog_expiry: dt.timedelta = REFLOG_EXPIRY,
) -> SharedGcReport:
    """Run phase 1 (record candidates) and, for records a grace period old, phase 2
    (delete those still unreachable and untouched).  See the module docstring.

    If the run fails or is killed, nothing was deleted that its rules would
    spare; a record left half-written is ignored and removed a day later.
    ``progress`` receives the marking and sweeping phases' events; ``plan``
    (dry runs only) marks as :func:`~ckpt.maintenance.mark.mark` does with it.
    """
    if grace < dt.timedelta(0):
        raise CkptError("the grace period must not be negative")
    storage = repo.storage
    grace_s = grace.total_seconds()
    key: str | None = None
    marking = b""
    if dry_run:
        marked_at = time.time()
    else:
        key, marking, marked_at = _begin(storage)
    try:
        marking_meter = Meter(progress, "marking objects")
        marked = mark(
            repo, progress=marking_meter, plan=plan if dry_run else None, expiry=reflog_expiry
        )
        marking_meter.finish()
        sweeping = Meter(progress, "sweeping objects")
        scan = StoreScan(repo.objects).sweep(
            marked, marked_at - grace_s, dry_run=True, progress=sweeping
        )
        sweeping.finish()
        unreachable = set(scan.candidates)
        records = [r for r in read_records(storage) if r.key != key]
        ready = [(r, r.marked_at) for r in records if r.marked_at is not None]
        # Due a grace period after the record got its ids (its mtime), not after
        # marking began: a writer that looked for candidates before they were
        # recorded finishes its save within that grace period.
        due = [(r, at) for r, at in ready if marked_at - max(at, r.mtime) >= grace_s]
        due_ids: set[ObjectId] = set().union(*(r.ids for r, _ in due))
        doomed = due_ids & unreachable
        deleted: tuple[ObjectId, ...] = ()
        deleted_count = deleted_bytes = 0
        stored = {obj.id for obj in repo.objects} if due_ids else set()
        if doomed:
            # One sweep for every due record, from the oldest phase-1 time: an object
            # touched since any of them is spared.
            cutoff = min(at for _, at in due)
            swept = StoreScan(repo.objects).sweep(stored - doomed, cutoff, dry_run=dry_run)
            deleted = tuple(oid for oid in swept.candidates if oid in doomed)
            deleted_count, deleted_bytes = swept.deleted, swept.deleted_bytes
        remaining = sorted(unreachable - set(deleted))
        if key is not None:
            _finish(storage, key, marking, marked_at, grace_s, remaining)
            for record, _ in due:
                storage.delete(record.key)
            stale = marked_at - STALE_MARKING.total_seconds()
            for record in records:
                if record.marked_at is None and record.mtime < stale:
                    storage.delete(record.key)
    except BaseException:
        if key is not None:
            with contextlib.suppress(CkptError):
                storage.delete(key)
        raise
    return SharedGcReport(
        dry_run=dry_run,
        reachable=len(marked),
        deleted=deleted_count,
        deleted_bytes=deleted_bytes,
        kept_by_grace=scan.kept_by_grace,
        candidates=deleted,
        record=None if key is None or not remaining else key,
        recorded=len(remaining),
        due_records=len(due),
        waiting_records=len(ready) - len(due),
        spared=len((due_ids & stored) - set(deleted)),
    )


__all__ = [
    "CANDIDATES_PREFIX",
    "CandidateRecord",
    "SharedGcReport",
    "collect_two_phase",
    "read_records",
]
