"""Running the stages of one run: each as soon as its inputs are ready, some at once.

A stage depends on the stages its parameters name.  The scheduler starts
the stages not done, in pipeline order, as soon as every stage they depend
on is done, up to ``max_concurrency`` at a time: in threads for plain
stages run by ``Pipeline.run`` (in the calling thread when only one runs at
a time), as tasks in ``run_async`` (plain stages there run in worker
threads).  A stage that finishes is handed to the run, which commits it at
once (by default): one commit per finished stage, in the order they
finished.

Stopping: when a stage fails, or the run's cost passes its limit, no new
stage starts; the stages still running are waited for, and committed; then
the failure is recorded and raised.  An interruption (Ctrl-C, cancellation)
does not wait: the stages that had finished are committed, the
interruption is recorded, naming the stages that were running, and raised;
the stage threads left running can write nothing more.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ckpt.errors import CkptError, SerializationError
from ckpt.pipeline.context import StageContext
from ckpt.pipeline.runstate import CostLimitExceeded, Run, StageEvent
from ckpt.pipeline.stages import Stage, as_plain, split_result

if TYPE_CHECKING:
    from ckpt.pipeline.runner import Pipeline


@attrs.frozen
class _Finished:
    stage: Stage
    index: int
    value: Any = None
    cost: float = 0.0
    tokens: int = 0
    duration: float = 0.0
    used_items: frozenset[str] = frozenset()
    error: BaseException | None = None


class Scheduler:
    """Runs the stages of ``run`` that are not done; see the module docstring."""

    def __init__(self, pipeline: Pipeline, run: Run, *, limit: int) -> None:
        self.pipeline = pipeline
        self.run = run
        self.limit = limit
        self.todo: list[tuple[int, Stage]] = []
        for index, stage in enumerate(pipeline.stages):
            if stage.name in run.done:
                run.skipped.append(stage.name)
            else:
                self.todo.append((index, stage))
        self.failure: tuple[BaseException, str] | None = None
        self.cost_stop: str | None = None

    # -- deciding -----------------------------------------------------------

    def _launchable(self) -> Iterator[tuple[int, Stage]]:
        """The stages to start now, one at a time (re-checked after each start)."""
        run = self.run
        while self.failure is None and self.cost_stop is None and len(run.running) < self.limit:
            ready = next(
                (
                    position
                    for position, (_, stage) in enumerate(self.todo)
                    if all(dep in run.done for dep in self.pipeline.stage_deps(stage))
                ),
                None,
            )
            if ready is None:
                return
            index, stage = self.todo[ready]
            if run.over_cost_limit():
                self.cost_stop = stage.name
                return
            del self.todo[ready]
            yield index, stage

    def _started(self, stage: Stage, index: int) -> None:
        run = self.run
        with run.lock:
            run.running.append(stage.name)
        run.emit(
            self.pipeline.on_stage_start,
            StageEvent(
                "start",
                run.job_name,
                stage.name,
                index,
                run.progress(stage.name),
                reason=None if stage.name not in run.stale else f"stale: {run.stale[stage.name]}",
            ),
        )

    def _record(self, outcome: _Finished) -> bool:
        """Take a finished stage; True if its output should be committed now."""
        run = self.run
        with run.lock:
            if outcome.stage.name in run.running:
                run.running.remove(outcome.stage.name)
        if outcome.error is not None:
            if self.failure is None:
                self.failure = (outcome.error, outcome.stage.name)
            return False
        run.complete_stage(
            outcome.stage,
            outcome.value,
            outcome.cost,
            outcome.tokens,
            outcome.duration,
            outcome.used_items,
        )
        run.emit(
            self.pipeline.on_stage_end,
            StageEvent(
                "end",
                run.job_name,
                outcome.stage.name,
                outcome.index,
                run.progress(),
                duration=outcome.duration,
            ),
        )
        return run.flush_due()

    def _keep(self, outcome: _Finished) -> None:
        """Take a stage that finished (its output is committed with the failure record)."""
        if outcome.error is None and not self.run.closed:
            self._record(outcome)
        else:
            with self.run.lock:
                if outcome.stage.name in self.run.running:
                    self.run.running.remove(outcome.stage.name)

    def _interrupted(self, exc: BaseException) -> None:
        run = self.run
        with run.lock:
            running = list(run.running)
        where = running[0] if running else (self.todo[0][1].name if self.todo else "")
        if where:
            run.fail(exc, where, running=running)

    def _conclude(self) -> None:
        """Raise what stopped the run (recorded first), if anything did."""
        run = self.run
        if self.failure is not None:
            exc, stage = self.failure
            extra = {"cost_limit": run.cost_limit} if isinstance(exc, CostLimitExceeded) else None
            run.fail(exc, stage, extra)
            raise exc
        if self.cost_stop is not None:
            assert run.cost_limit is not None
            run.stop_for_cost(run.cost_limit, self.cost_stop)
        if self.todo:
            left = ", ".join(stage.name for _, stage in self.todo)
            raise CkptError(f"stages {left} could not run: what they depend on did not finish")

    # -- calling one stage -----------------------------------------------------

    def _arguments(self, stage: Stage, ctx: StageContext) -> dict[str, Any]:
        outputs = self.run.outputs
        kwargs = {p.name: outputs[p.name] for p in stage.params if p.name in outputs}
        if stage.wants_context is not None:
            kwargs[stage.wants_context] = ctx
        return kwargs

    def _outcome(
        self, stage: Stage, index: int, ctx: StageContext, result: Any, started: float
    ) -> _Finished:
        duration = time.monotonic() - started
        value, cost, tokens = split_result(result)
        if self.run.job is not None:
            try:
                value = as_plain(value, stage.output_type)
            except SerializationError as exc:
                raise SerializationError(
                    f"stage {stage.name!r} of job {self.run.job_name!r}: {exc}"
                ) from exc
        return _Finished(
            stage,
            index,
            value,
            ctx.cost + cost,
            ctx.tokens + tokens,
            duration,
            frozenset(ctx.used_items),
        )

    def _call(self, stage: Stage, index: int) -> _Finished:
        """Run a plain stage in this thread; any exception becomes the outcome."""
        try:
            ctx = StageContext(self.run, stage, index)
            kwargs = self._arguments(stage, ctx)
            started = time.monotonic()
            result = stage.fn(**kwargs)
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise CkptError(
                    f"stage {stage.name!r} returned an awaitable: use "
                    "`await pipeline.run_async(...)`"
                )
            return self._outcome(stage, index, ctx, result, started)
        except BaseException as exc:
            return _Finished(stage, index, error=exc)

    async def _call_async(self, stage: Stage, index: int) -> _Finished:
        try:
            ctx = StageContext(self.run, stage, index)
            kwargs = await asyncio.to_thread(self._arguments, stage, ctx)
            started = time.monotonic()
            if stage.is_async:
                result = await stage.fn(**kwargs)
            else:
                result = await asyncio.to_thread(stage.fn, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return self._outcome(stage, index, ctx, result, started)
        except BaseException as exc:
            return _Finished(stage, index, error=exc)

    # -- driving ----------------------------------------------------------------

    def drive(self) -> None:
        """Run the stages from a plain (non-async) caller."""
        outcomes: queue.SimpleQueue[_Finished] = queue.SimpleQueue()
        try:
            while True:
                for index, stage in self._launchable():
                    self._started(stage, index)
                    if self.limit == 1:
                        outcomes.put(self._call(stage, index))
                    else:
                        threading.Thread(
                            target=lambda s=stage, i=index: outcomes.put(self._call(s, i)),
                            name=f"ckpt-stage-{stage.name}",
                            daemon=True,
                        ).start()
                if not self.run.running:
                    break
                if self._record(outcomes.get()):
                    self.run.flush()
        except BaseException as exc:
            while True:  # keep the stages that finished before the interruption
                try:
                    self._keep(outcomes.get_nowait())
                except queue.Empty:
                    break
            self._interrupted(exc)
            raise
        self._conclude()

    async def drive_async(self) -> None:
        """Run the stages from a coroutine (async stages as tasks, plain ones in threads)."""
        tasks: dict[asyncio.Task[_Finished], str] = {}
        try:
            while True:
                for index, stage in self._launchable():
                    self._started(stage, index)
                    tasks[asyncio.ensure_future(self._call_async(stage, index))] = stage.name
                if not tasks:
                    break
                finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    del tasks[task]
                    if self._record(task.result()):
                        await asyncio.to_thread(self.run.flush)
        except BaseException as exc:
            for task in tasks:
                if task.done() and not task.cancelled():
                    self._keep(task.result())  # finished before the interruption: kept
                else:
                    task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            self._interrupted(exc)
            raise
        await asyncio.to_thread(self._conclude)
