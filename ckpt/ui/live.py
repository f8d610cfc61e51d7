"""What the dashboard's pages learn without reloading, found by polling the store.

Writers are other processes (a pipeline run, ``ckpt checkout`` in a
terminal), so the store itself is watched: no writer has to cooperate.
Each generator here yields an event ``(name, document)`` when something
changed and ``None`` at each look that found nothing, so that the server
can send a keep-alive; it ends when ``stop`` is set.

- :func:`jobs_events` -- the job listing (as ``ckpt jobs --json``): the whole
  of it first, then the entries that changed.  Listing a store of many jobs
  reads every job's refs and head, so it is not repeated at every look: a
  look lists the packs (one listing call; every save writes a pack) and the
  jobs are listed again only when the packs changed, or every
  :data:`REFRESH_SECONDS` (a checkout moves refs and writes no pack), and
  never sooner than twice the time the last listing took.
- :func:`job_events` -- one job: its status (as ``ckpt status --json``)
  whenever its HEAD or one of its refs moves; a look reads only its refs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from ckpt.errors import CkptError
from ckpt.repository import Repository
from ckpt.ui.api import api_error

#: At most this long between two listings of the jobs, even when no pack changed.
REFRESH_SECONDS = 10.0
#: The next listing waits at least this many times as long as the last one took.
LISTING_BACKOFF = 2.0

Event = tuple[str, dict[str, Any]]


def _packs(repo: Repository) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((info.key, info.size) for info in repo.objects.packs()))


def jobs_events(
    repo: Repository, *, interval: float, stop: threading.Event
) -> Iterator[Event | None]:
    """Events of the job listing: ``jobs`` with the whole listing first, then
    ``jobs-changed`` with ``jobs`` (the entries that changed or appeared) and ``removed``
    (names), or ``error`` when the store could not be read (the next look tries again)."""
    from ckpt.pipeline.listing import list_jobs

    listed: dict[str, dict[str, Any]] | None = None
    packs: tuple[tuple[str, int], ...] | None = None
    due = earliest = 0.0
    while not stop.is_set():
        event: Event | None = None
        try:
            now = time.monotonic()
            seen = _packs(repo)
            if (seen != packs or now >= due) and now >= earliest:
                began = time.monotonic()
                docs = {s.name: s.to_json() for s in list_jobs(repo, damaged="mark")}
                ended = time.monotonic()
                took = ended - began
                earliest = ended + LISTING_BACKOFF * took
                due = ended + max(REFRESH_SECONDS, 10 * took)
                packs = seen
                if listed is None:
                    event = ("jobs", {"jobs": list(docs.values())})
                else:
                    changed = [doc for name, doc in docs.items() if listed.get(name) != doc]
                    removed = [name for name in listed if name not in docs]
                    if changed or removed:
                        event = ("jobs-changed", {"jobs": changed, "removed": removed})
                listed = docs
        except CkptError as exc:
            event = ("error", api_error(exc).to_json())
        yield event
        stop.wait(interval)


def job_events(
    repo: Repository, name: str, *, interval: float, stop: threading.Event
) -> Iterator[Event | None]:
    """Events of job ``name``: ``job`` with its status (now, then whenever its HEAD or a
    ref moves), ``gone`` once it is deleted (then the events end), or ``error`` when it
    could not be read."""
    from ckpt.pipeline.listing import job_progress

    seen: object = None
    while not stop.is_set():
        event: Event | None = None
        job = repo.job(name)
        try:
            if not job.exists:
                yield ("gone", {"job": name})
                return
            position = (job.refs.current_branch(), sorted(job.refs.all_refs().items()))
            if position != seen:
                event = ("job", job_progress(job).to_json())
                seen = position
        except CkptError as exc:
            failure = api_error(exc).to_json()
            if seen != failure:
                event = ("error", failure)
                seen = failure
        yield event
        stop.wait(interval)
