"""Progress of long commands (push, pull, clone, verify, gc): a bar, or JSON events.

The library reports :class:`~ckpt.objects.progress.ProgressEvent` values,
phase by phase; :func:`progress_events` turns them into what the reader
of this command wants:

* on a terminal (stderr is one), one bar per phase, redrawn in place::

    Copying objects   33% [######--------------]  120/300 objects,
        1.0 MiB of 3.0 MiB, 512.0 KiB/s, ETA 0:04          (one line)

* with ``--json``, one JSON object per line on stderr (stdout keeps the one
  result document), the event's fields plus ``elapsed`` (seconds since the
  phase began), ``rate`` (bytes per second, or units per second when no
  bytes are counted) and ``eta`` (seconds left, null when unknown)::

    {"event": "progress", "phase": "copying objects", "unit": "objects", "done": 126, ...}

  The first and last (``finished``) event of every phase are always
  written, the others at most every :data:`JSON_INTERVAL` seconds.
* otherwise (piped, no ``--json``) nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from ckpt.cli import output as out

if TYPE_CHECKING:
    from ckpt.objects.progress import ProgressEvent, ProgressFn

#: Seconds between two redraws of a bar, and between two JSON events of a phase.
BAR_INTERVAL = 0.1
JSON_INTERVAL = 0.5
BAR_WIDTH = 20


def _duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Phase:
    """Timing of one phase: when it began and when it was last shown."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.shown = float("-inf")
        self.width = 0


def rate_and_eta(event: ProgressEvent, elapsed: float) -> tuple[float | None, float | None]:
    """Bytes (or units, when no bytes are counted) per second, and seconds left."""
    rate: float | None = None
    if elapsed > 0:
        rate = (event.bytes if event.bytes or event.bytes_total else event.done) / elapsed
    if event.bytes_total:
        fraction = event.bytes / event.bytes_total
    elif event.total:
        fraction = event.done / event.total
    else:
        return rate, None
    if event.finished or fraction >= 1:
        return rate, 0.0
    if fraction <= 0 or elapsed <= 0:
        return rate, None
    return rate, elapsed * (1 - fraction) / fraction


def bar_line(event: ProgressEvent, elapsed: float) -> str:
    """The text of one phase's bar (without styles)."""
    label = event.phase[:1].upper() + event.phase[1:]
    parts: list[str] = []
    if event.total:
        fraction = min(1.0, event.done / event.total)
        if event.bytes_total:
            fraction = min(1.0, event.bytes / event.bytes_total)
        filled = int(fraction * BAR_WIDTH)
        head = f"{int(fraction * 100):3d}% [{'#' * filled}{'-' * (BAR_WIDTH - filled)}]"
        parts.append(f"{out.count(event.done)}/{out.count(event.total)} {event.unit}")
    else:
        head = ""
        parts.append(f"{out.count(event.done)} {event.unit}")
    if event.bytes_total:
        parts.append(f"{out.size(event.bytes)} of {out.size(event.bytes_total)}")
    elif event.bytes:
        parts.append(out.size(event.bytes))
    rate, eta = rate_and_eta(event, elapsed)
    if rate is not None and not event.finished:
        per_second = (
            f"{out.size(int(rate))}/s"
            if event.bytes or event.bytes_total
            else f"{rate:,.0f} {event.unit}/s"
        )
        parts.append(per_second)
    if eta is not None and not event.finished:
        parts.append(f"ETA {_duration(eta)}")
    if event.finished:
        parts.append(f"done in {_duration(elapsed)}")
    return "  ".join(p for p in (label, head, ", ".join(parts)) if p)


class ProgressDisplay:
    """Shows events as a bar on ``stream`` (``mode="bar"``) or as JSON lines (``"json"``)."""

    def __init__(
        self,
        stream: TextIO,
        mode: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        columns: int | None = None,
    ) -> None:
        self.stream = stream
        self.mode = mode
        self.clock = clock
        self.columns = columns
        self.phases: dict[str, _Phase] = {}
        self.open_bar: str | None = None

    def __call__(self, event: ProgressEvent) -> None:
        now = self.clock()
        phase = self.phases.get(event.phase)
        first = phase is None
        if phase is None:
            phase = self.phases[event.phase] = _Phase(now)
        elapsed = now - phase.started
        interval = BAR_INTERVAL if self.mode == "bar" else JSON_INTERVAL
        if not (first or event.finished or now - phase.shown >= interval):
            return
        phase.shown = now
        if self.mode == "json":
            self._json(event, elapsed)
        else:
            self._bar(event, elapsed, phase)

    def _json(self, event: ProgressEvent, elapsed: float) -> None:
        import json

        rate, eta = rate_and_eta(event, elapsed)
        doc: dict[str, Any] = {
            "event": "progress",
            **event.to_json(),
            "elapsed": round(elapsed, 3),
            "rate": None if rate is None else round(rate, 1),
            "eta": None if eta is None else round(eta, 1),
        }
        self.stream.write(json.dumps(doc) + "\n")
        self.stream.flush()

    def _bar(self, event: ProgressEvent, elapsed: float, phase: _Phase) -> None:
        if self.open_bar is not None and self.open_bar != event.phase:
            self.stream.write("\n")  # another phase began: leave the last bar as it was
        columns = self.columns
        if columns is None:
            import shutil

            columns = shutil.get_terminal_size((100, 24)).columns
        text = bar_line(event, elapsed)[: max(10, columns - 1)]
        pad = " " * max(0, phase.width - len(text))
        phase.width = len(text)
        self.stream.write("\r" + text + pad)
        if event.finished:
            self.stream.write("\n")
            self.open_bar = None
        else:
            self.open_bar = event.phase
        self.stream.flush()

    def close(self) -> None:
        """End a bar left open (an operation that failed half-way)."""
        if self.open_bar is not None:
            self.stream.write("\n")
            self.stream.flush()
            self.open_bar = None


@contextmanager
def progress_events(as_json: bool) -> Iterator[ProgressFn | None]:
    """A sink for the library's progress events: JSON lines on stderr with ``--json``, a bar
    when stderr is a terminal, else None (the library then skips the reporting)."""
    stream = sys.stderr
    if as_json:
        mode = "json"
    elif out.is_terminal(sys.stderr):
        mode = "bar"
    else:
        yield None
        return
    display = ProgressDisplay(stream, mode)
    try:
        yield display
    finally:
        display.close()
