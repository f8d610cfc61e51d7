"""Progress of long operations (push, pull, clone, verify, gc), as plain events.

A long operation runs in *phases* (``counting objects``, ``copying
objects``, ``checking objects``, ...).  Each phase reports through a
:class:`Meter` how many objects (or jobs) and bytes it has done, out of a
total when the total is known; the meter turns that into
:class:`ProgressEvent` values for a sink the caller gives.  The library
only counts: rates, ETAs and how the events are drawn (a bar on a
terminal, JSON lines for scripts) are the caller's (``ckpt.cli.progress``).

A meter may be advanced from several threads at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs


@attrs.frozen
class ProgressEvent:
    """Where one phase of an operation stands.

    ``done`` counts ``unit`` (``objects`` or ``jobs``) out of ``total``;
    ``bytes`` counts bytes out of ``bytes_total``.  A total is None when it is
    not known (yet).  ``finished`` is true on the phase's last event.
    """

    phase: str
    unit: str
    done: int
    total: int | None
    bytes: int
    bytes_total: int | None
    finished: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "unit": self.unit,
            "done": self.done,
            "total": self.total,
            "bytes": self.bytes,
            "bytes_total": self.bytes_total,
            "finished": self.finished,
        }


ProgressFn = Callable[[ProgressEvent], None]


class Meter:
    """Counts one phase's work and reports each step to ``sink`` (if any)."""

    def __init__(
        self,
        sink: ProgressFn | None,
        phase: str,
        *,
        unit: str = "objects",
        total: int | None = None,
        bytes_total: int | None = None,
    ) -> None:
        self.sink = sink
        self.phase = phase
        self.unit = unit
        self.total = total
        self.bytes_total = bytes_total
        self.done = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def set_total(self, total: int | None, bytes_total: int | None = None) -> None:
        """Announce (or correct) the totals; reported with the next step."""
        with self._lock:
            self.total = total
            self.bytes_total = bytes_total
            self._report(False)

    def advance(self, done: int = 1, nbytes: int = 0) -> None:
        """Record ``done`` more units and ``nbytes`` more bytes."""
        with self._lock:
            self.done += done
            self.bytes += nbytes
            self._report(False)

    def finish(self) -> None:
        """Report the phase's last event (``finished``)."""
        with self._lock:
            self._report(True)

    def _report(self, finished: bool) -> None:
        if self.sink is not None:
            self.sink(
                ProgressEvent(
                    self.phase,
                    self.unit,
                    self.done,
                    self.total,
                    self.bytes,
                    self.bytes_total,
                    finished,
                )
            )
