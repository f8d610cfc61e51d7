"""Fan-out inside a stage: ``ctx.map(fn, items)`` with every item checkpointed as it finishes.

Each item is known by a key: a digest of ``fn``'s code (or its declared
version) and of the item's canonical bytes (or of ``key(item)``).  Its
result is stored as the tree entry ``STAGE.item.KEY`` in a commit of its
own, or with the other items that finished while that commit was being
written (a group commit: one commit per write, never one item lost).  A
later attempt of the stage, after a crash or when the stage re-runs
because it was stale, loads the results whose keys it finds and computes
only the others.  When the stage finishes, the entries of the items it
used stay in its tree (so that a re-run finds them) and the others are
dropped.

Items run in threads (a plain ``fn``) or as tasks (an ``async`` one), up
to ``max_concurrency`` at once.  The thread or task that called ``map``
writes the commits, so a stage's items are written by one writer, in
turn with the rest of the run (see :class:`ckpt.pipeline.runstate.Run`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ckpt.errors import CkptError, NotFoundError, SerializationError
from ckpt.pipeline.fingerprint import code_digest, digest
from ckpt.pipeline.runstate import CostLimitExceeded
from ckpt.pipeline.stages import as_plain, item_entry, output_type_of, split_result
from ckpt.values import serialize

if TYPE_CHECKING:
    from ckpt.pipeline.context import StageContext
    from ckpt.pipeline.runstate import Run


@attrs.frozen
class _Outcome:
    """One item's result (value, cost, tokens) or the exception it raised."""

    entry: str
    value: Any = None
    cost: float = 0.0
    tokens: int = 0
    error: BaseException | None = None


class _Plan:
    """One ``map`` call: the items' entries, what is stored already, what is left."""

    def __init__(
        self,
        ctx: StageContext,
        run: Run,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        key: Callable[[Any], Any] | None,
        type: Any,
        version: str | int | None,
        limit: int,
    ) -> None:
        self.ctx = ctx
        self.run = run
        self.fn = fn
        self.limit = limit
        self.type = type if type is not None else output_type_of(fn)
        self.checkpointing = run.job is not None
        fn_id = f"version {version}" if version is not None else code_digest(fn)
        self.entries = [
            item_entry(ctx.stage, _item_key(ctx.stage, index, item, key, fn_id))
            for index, item in enumerate(items)
        ]
        self.total = len(self.entries)
        self.results: dict[str, Any] = self._stored()
        seen: set[str] = set(self.results)
        self.todo: deque[tuple[str, Any]] = deque()
        for entry, item in zip(self.entries, items, strict=True):
            if entry not in seen:
                seen.add(entry)
                self.todo.append((entry, item))
        ctx.used_items.update(self.entries)

    def _stored(self) -> dict[str, Any]:
        """Results stored by earlier attempts (an unreadable one is computed again)."""
        run, job = self.run, self.run.job
        if job is None:
            return {}
        with run.lock:
            head = None if run.head is None else run.head.id
            present = [e for e in dict.fromkeys(self.entries) if e in run.entries]
        found: dict[str, Any] = {}
        for entry in present:
            try:
                found[entry] = job.load(entry, self.type, at=head)
            except (NotFoundError, SerializationError):
                continue
        return found

    @property
    def done(self) -> int:
        return sum(1 for entry in self.entries if entry in self.results)

    def attempt(self, entry: str, item: Any, catch: type[BaseException]) -> _Outcome:
        try:
            value, cost, tokens = split_result(self.fn(item))
        except catch as exc:
            return _Outcome(entry, error=exc)
        return self.finished(entry, value, cost, tokens)

    def finished(self, entry: str, value: Any, cost: float, tokens: int) -> _Outcome:
        if self.checkpointing:
            try:
                value = as_plain(value, self.type)
            except SerializationError as exc:
                # Named as a stage's own output is (see schedule.py), with the item's place.
                named = SerializationError(
                    f"stage {self.ctx.stage!r} of job {self.run.job_name!r}, "
                    f"item {self.entries.index(entry)}: {exc}"
                )
                named.__cause__ = exc
                return _Outcome(entry, error=named)
        return _Outcome(entry, value, cost, tokens)

    def take(self, batch: Iterable[_Outcome], error: BaseException | None) -> BaseException | None:
        """Save the results of ``batch`` (one commit); return the first error seen."""
        values: dict[str, Any] = {}
        cost, tokens = 0.0, 0
        for outcome in batch:
            if outcome.error is not None:
                error = error or outcome.error
                continue
            values[outcome.entry] = outcome.value
            cost += outcome.cost
            tokens += outcome.tokens
        if not values:
            return error
        self.results.update(values)
        if self.checkpointing:
            self.run.save_items(self.ctx, values, self.type, cost, tokens, (self.done, self.total))
        else:
            self.ctx.report(cost, tokens)
        return error

    def over_limit(self) -> BaseException | None:
        run = self.run
        if not run.over_cost_limit():
            return None
        assert run.cost_limit is not None
        return CostLimitExceeded(
            run.job_name,
            run.cost,
            run.cost_limit,
            self.ctx.stage,
            where=f"in stage {self.ctx.stage!r} with {self.done} of {self.total} items done",
        )

    def ordered(self) -> list[Any]:
        return [self.results[entry] for entry in self.entries]


def _item_key(
    stage: str, index: int, item: Any, key: Callable[[Any], Any] | None, fn_id: str
) -> str:
    what = "key" if key is not None else "item"
    try:
        raw = serialize.dumps(key(item) if key is not None else item)
    except SerializationError as exc:
        hint = "" if key is not None else ": pass key= to name the items"
        raise CkptError(
            f"stage {stage!r}: the {what} of item {index} cannot be serialized ({exc}){hint}"
        ) from exc
    return digest(what, fn_id, raw)


def fan_out(
    ctx: StageContext,
    run: Run,
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    max_concurrency: int,
    key: Callable[[Any], Any] | None,
    type: Any,
    version: str | int | None,
) -> Any:
    """``ctx.map``: the list of results, or an awaitable of it when ``fn`` is async."""
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise CkptError(f"max_concurrency must be a positive integer, not {max_concurrency!r}")
    plan = _Plan(ctx, run, fn, list(items), key, type, version, max_concurrency)
    if _is_async(fn):
        return _run_async(plan)
    return _run_sync(plan)


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    call = vars(type(fn)).get("__call__")
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


class _Workers:
    """Daemon threads running items: a Ctrl-C in the caller is not held up by them."""

    def __init__(self, plan: _Plan, results: queue.SimpleQueue[_Outcome]) -> None:
        self.tasks: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self.count = plan.limit
        for number in range(self.count):
            threading.Thread(
                target=self._work,
                args=(plan, results),
                name=f"ckpt-map-{plan.ctx.stage}-{number}",
                daemon=True,
            ).start()

    def _work(self, plan: _Plan, results: queue.SimpleQueue[_Outcome]) -> None:
        while True:
            task = self.tasks.get()
            if task is None:
                return
            results.put(plan.attempt(*task, catch=BaseException))

    def submit(self, entry: str, item: Any) -> None:
        self.tasks.put((entry, item))

    def stop(self) -> None:
        for _ in range(self.count):
            self.tasks.put(None)


def _run_sync(plan: _Plan) -> list[Any]:
    results: queue.SimpleQueue[_Outcome] = queue.SimpleQueue()
    workers = _Workers(plan, results) if plan.limit > 1 and len(plan.todo) > 1 else None
    running = 0
    error: BaseException | None = None
    try:
        while True:
            while plan.todo and error is None and running < plan.limit:
                error = plan.over_limit()
                if error is not None:
                    break
                entry, item = plan.todo.popleft()
                running += 1
                if workers is None:
                    results.put(plan.attempt(entry, item, catch=Exception))
                else:
                    workers.submit(entry, item)
            if running == 0:
                break
            batch = [results.get()]
            while True:
                try:
                    batch.append(results.get_nowait())
                except queue.Empty:
                    break
            running -= len(batch)
            error = plan.take(batch, error)
    finally:
        if workers is not None:
            workers.stop()
    if error is not None:
        raise error
    return plan.ordered()


async def _attempt_async(plan: _Plan, entry: str, item: Any) -> _Outcome:
    try:
        value, cost, tokens = split_result(await plan.fn(item))
    except Exception as exc:
        return _Outcome(entry, error=exc)
    return plan.finished(entry, value, cost, tokens)


async def _run_async(plan: _Plan) -> list[Any]:
    running: dict[asyncio.Task[_Outcome], str] = {}
    error: BaseException | None = None
    try:
        while True:
            while plan.todo and error is None and len(running) < plan.limit:
                error = plan.over_limit()
                if error is not None:
                    break
                entry, item = plan.todo.popleft()
                running[asyncio.ensure_future(_attempt_async(plan, entry, item))] = entry
            if not running:
                break
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            batch = []
            for task in finished:
                del running[task]
                batch.append(task.result())
            if plan.checkpointing:
                error = await asyncio.to_thread(plan.take, batch, error)
            else:
                error = plan.take(batch, error)
    except BaseException:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    if error is not None:
        raise error
    return plan.ordered()
