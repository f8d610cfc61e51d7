"""A cache of the jobs listing, so that ``ckpt jobs`` need not read every job.

Listing a job reads its ``HEAD``, branch ref, record and head commit (and
its tree or recent commits for the stages): about a millisecond a job.  The
cache (key ``cache/jobs``) keeps, per job, what the listing showed and the
*stamp* of the job's folders (:meth:`~ckpt.storage.base.Storage.folder_stamps`:
the job's folder, which holds ``HEAD`` and the record, and its
``refs/heads`` folder, which holds the branch refs).  Any save, checkout,
branch switch or record change replaces a key in one of these folders and so
changes the stamp; the listing then reads that job again.

It is a cache, never the truth: it is written without fsync, a missing or
garbled one is rebuilt, and an entry is used only when

- the backend gives stamps (local files; elsewhere nothing is cached),
- the job's stamp is the one recorded with the entry,
- the branch ref sits directly in ``refs/heads`` (a branch name with ``/``
  lives in a folder of its own, which the stamp does not cover), and
- the stamp was at least :data:`SETTLED` seconds old when the entry was
  read.  A folder changed twice within one tick of the file system's clock
  may keep its stamp; an entry read long enough after the last change
  cannot miss the next one, whose time is later (as git's index treats
  "racily clean" files).

Concurrent listings may each write the cache; the last write wins and both
are right.  Writers of checkpoints never touch it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from ckpt.errors import CkptError
from ckpt.history.refs import JOBS_PREFIX
from ckpt.storage.base import FolderStamp, KeyNotFoundError, Storage, stamp_time

CACHE_KEY = "cache/jobs"
#: Seconds a job's folders must have been unchanged for its entry to be trusted.
SETTLED = 5.0
_VERSION = 1


class JobsCache:
    """Entries of the last listing, checked against the jobs' stamps (see the module)."""

    def __init__(self, storage: Storage, stamps: dict[str, FolderStamp], started: float) -> None:
        self.storage = storage
        self.stamps = stamps
        #: When the stamps were taken: whatever is read from now on is at least this recent.
        self.started = started
        self._raw: bytes | None = None
        self._old: dict[str, list[Any]] = {}
        self._new: dict[str, list[Any]] = {}
        self._changed = False
        self._load()

    @classmethod
    def open(cls, storage: Storage) -> JobsCache | None:
        """The cache of ``storage``'s listing, or None where the backend gives no stamps."""
        started = time.time()
        stamps = storage.folder_stamps(JOBS_PREFIX, "refs/heads")
        if stamps is None:
            return None
        return cls(storage, stamps, started)

    def _load(self) -> None:
        import orjson

        try:
            self._raw = self.storage.get(CACHE_KEY)
            doc = orjson.loads(self._raw)
        except (CkptError, KeyNotFoundError, orjson.JSONDecodeError):
            return
        if isinstance(doc, dict) and doc.get("v") == _VERSION and isinstance(doc.get("jobs"), dict):
            self._old = doc["jobs"]

    def get(self, job: str) -> dict[str, Any] | None:
        """The listing of ``job`` as last recorded, if it is still exact; else None."""
        entry = self._old.get(job)
        stamp = self.stamps.get(job)
        if entry is None or stamp is None:
            return None
        try:
            recorded, read_at, summary = entry
            if tuple(recorded) != stamp or stamp_time(stamp) > read_at - SETTLED:
                return None
        except (TypeError, ValueError):
            return None
        if not isinstance(summary, dict):
            return None
        self._new[job] = entry
        return summary

    def put(self, job: str, summary: dict[str, Any], branch: str) -> None:
        """Record the listing of ``job``, read after the stamps were taken."""
        self._changed = True
        stamp = self.stamps.get(job)
        if stamp is None or "/" in branch:
            return
        self._new[job] = [list(stamp), self.started, summary]

    def save(self) -> None:
        """Write the entries used or read by this listing (best effort: a cache)."""
        if not self._changed and len(self._new) == len(self._old):
            return
        import orjson

        data = orjson.dumps({"v": _VERSION, "jobs": self._new})
        # Another listing may have written it meanwhile: then theirs stays.
        with contextlib.suppress(CkptError):
            self.storage.compare_and_swap(CACHE_KEY, self._raw, data)
