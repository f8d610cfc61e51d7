"""What a stage is handed: report cost, save and restore its own state, fan work out.

A stage that takes a ``ctx`` parameter (or one annotated ``StageContext``)
receives a :class:`StageContext`.  Through it the stage reports cost and
tokens, saves partial state with ``checkpoint`` and reads it back after a
crash with ``partial``, and runs a function over many items with ``map``,
each item checkpointed as it finishes (see :mod:`ckpt.pipeline.fanout`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ckpt.pipeline import fanout
from ckpt.pipeline.stages import PARTIAL_SUFFIX, Stage

if TYPE_CHECKING:
    from ckpt.pipeline.runstate import Run


class StageContext:
    """Handed to a stage that asks for it: report cost, save and restore state inside a
    stage, and fan out over items with per-item resume."""

    def __init__(self, run: Run, stage: Stage, index: int) -> None:
        self._run = run
        self._stage = stage
        self.job_id = run.job_name
        self.stage = stage.name
        self.index = index
        self.total = len(run.pipeline.stages)
        self.cost = 0.0
        self.tokens = 0
        self._calls = 0
        self._last_save = time.monotonic()
        #: Fan-out items this attempt of the stage used (their entries stay in the tree).
        self.used_items: set[str] = set()
        # The partial state an earlier attempt of this stage left, as it was when this one began.
        partial = stage.name + PARTIAL_SUFFIX
        self._resume_at = (
            run.start_head
            if partial in run.start_entries and stage.name in run.meta.inflight
            else None
        )

    def report(self, cost: float = 0.0, tokens: int = 0) -> None:
        """Add ``cost`` and ``tokens`` to this stage's figures (saved with its next checkpoint)."""
        self.cost += float(cost)
        self.tokens += int(tokens)

    @property
    def resumed(self) -> bool:
        """True if an earlier attempt of this stage saved partial state."""
        return self._resume_at is not None

    def partial(self, type: Any = None, default: Any = None) -> Any:
        """The state this stage saved at its last ``checkpoint`` before a crash, or ``default``."""
        if not self.resumed or self._run.job is None:
            return default
        return self._run.job.load(self.stage + PARTIAL_SUFFIX, type, at=self._resume_at)

    def checkpoint(
        self,
        state: object,
        *,
        type: Any = None,
        cost: float = 0.0,
        tokens: int = 0,
        items_done: int | None = None,
        items_total: int | None = None,
        force: bool = False,
    ) -> bool:
        """Offer the stage's partial state; it is saved every N calls or T seconds (as set by
        ``partial_every``/``partial_interval``) or when ``force``.  True if it was saved: then
        a crash from here on resumes this stage from ``partial()``."""
        self.report(cost, tokens)
        self._calls += 1
        every = self._stage.partial_every
        interval = self._stage.partial_interval
        if every is None and interval is None:
            every, interval = self._run.pipeline.partial_every, self._run.pipeline.partial_interval
        due = force or (every is not None and self._calls >= every)
        due = due or (interval is not None and time.monotonic() - self._last_save >= interval)
        if not due or self._run.job is None:
            return False
        items = None if items_done is None else (items_done, items_total)
        self._run.save_partial(self, state, type, items)
        self.cost, self.tokens, self._calls = 0.0, 0, 0
        self._last_save = time.monotonic()
        return True

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        *,
        max_concurrency: int = 1,
        key: Callable[[Any], Any] | None = None,
        type: Any = None,
        version: str | int | None = None,
    ) -> Any:
        """Run ``fn`` on every item, up to ``max_concurrency`` at once; return the results
        in the order of ``items``.

        Every item's result is checkpointed as soon as it finishes, so that a
        crash costs only the items in flight: the next attempt of the stage
        computes only the items whose results are not stored.  An item is
        known by its content (or by ``key(item)``) together with ``fn``'s code
        (or ``version``), so a changed item, or a changed ``fn``, runs again
        and an unchanged one does not; equal items run once.  ``fn`` may
        return ``StageResult(value, cost=, tokens=)``: each item's cost and
        tokens are saved with it and add up into the stage's.  ``type`` (default:
        ``fn``'s return annotation) is the type results are saved and loaded as.

        A plain ``fn`` runs in threads and ``map`` returns the list; an
        ``async`` ``fn`` runs as tasks and ``map`` returns an awaitable
        (``await ctx.map(fn, items)``).  The cost limit is checked before each
        item.  If an item raises, no new item starts, the items running
        finish and are saved, and the first exception is raised.
        """
        return fanout.fan_out(
            self,
            self._run,
            fn,
            items,
            max_concurrency=max_concurrency,
            key=key,
            type=type,
            version=version,
        )
