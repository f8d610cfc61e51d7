"""The dashboard's latest verify report: ``ckpt verify`` run in the background, on request.

Verifying reads the whole store (every object with ``full``), so it runs in
its own thread with its own handle on the store, one run at a time; the
store page asks for the state (schema ``verify-run`` in ``docs/cli.md``)
until the run is over.  The report is the one ``ckpt verify --json``
prints.  Verifying only reads: the dashboard stays read-only.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ckpt.repository import Repository


class VerifyRunner:
    """One verify at a time over the store that ``open_repository`` hands out."""

    def __init__(self, open_repository: Callable[[], AbstractContextManager[Repository]]) -> None:
        self._open = open_repository
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._full: bool | None = None
        self._started: dt.datetime | None = None
        self._finished: dt.datetime | None = None
        self._done = 0
        self._total = 0
        self._report: dict[str, Any] | None = None
        self._error: str | None = None

    def state(self) -> dict[str, Any]:
        """Where the latest run stands, and its report once it is over."""
        with self._lock:
            return {
                "running": self._thread is not None,
                "full": self._full,
                "started": None if self._started is None else self._started.isoformat(),
                "finished": None if self._finished is None else self._finished.isoformat(),
                "jobs_done": self._done,
                "jobs_total": self._total,
                "report": self._report,
                "error": self._error,
            }

    def start(self, *, full: bool) -> dict[str, Any]:
        """Start a run unless one is under way; return the state."""
        with self._lock:
            if self._thread is None:
                self._full = full
                self._started = dt.datetime.now(dt.UTC)
                self._finished = None
                self._done = self._total = 0
                self._report = self._error = None
                self._thread = threading.Thread(
                    target=self._run, args=(full,), name="ckpt-ui-verify", daemon=True
                )
                self._thread.start()
        return self.state()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the run under way (if any) to end."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            self._done, self._total = done, total

    def _run(self, full: bool) -> None:
        from ckpt.maintenance.verify import verify
        from ckpt.ui.api import api_error

        report: dict[str, Any] | None = None
        error: str | None = None
        try:
            with self._open() as repo:
                self._progress(0, len(repo.job_names()))
                report = verify(repo, full=full, progress=self._progress).to_json()
        except Exception as exc:  # reported on the page, which is the only one to see it
            error = api_error(exc).message
        with self._lock:
            self._report, self._error = report, error
            self._finished = dt.datetime.now(dt.UTC)
            self._thread = None
