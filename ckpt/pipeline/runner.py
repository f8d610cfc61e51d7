"""The stage runner: run named stages in order, checkpointing after each.

``Pipeline.run(job_id, input)`` saves the input first (stage ``input``),
then runs each stage and commits its output.  Run it again with the same job
id and the stages already done at HEAD are skipped and their outputs loaded;
``resume_from="stage"`` rolls the branch back to just before a stage (and
``branch="alt"`` does that on a new branch); ``restart=True`` starts over on
top of the old history.

Crash guarantees: a stage's output is on stable storage once its checkpoint
is written (after every stage by default; see ``checkpoint_every`` and
``checkpoint_interval``).  A killed process loses only the work not yet
checkpointed; the next run re-runs exactly the stages whose checkpoints are
missing.  A stage that raises leaves every checkpoint intact, writes the
outputs it was still holding, records the failure (status failed, error
type and message, stage) and re-raises; the next run resumes.  Nothing is
written with ``no_checkpoint=True``.

The bookkeeping lives in each commit's ``meta["pipeline"]`` (see
:mod:`ckpt.pipeline.progress`), so any process can read progress from the store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Literal, TypeVar, overload

import attrs

from ckpt import repository as repo_module
from ckpt.errors import (
    CkptError,
    NotFoundError,
    SerializationError,
    StoreExistsError,
    StoreNotFoundError,
)
from ckpt.history import names
from ckpt.history.job import Job
from ckpt.history.refs import now
from ckpt.maintenance.retention import set_keep_last
from ckpt.objects.model import STATUS_COMPLETED, Commit
from ckpt.pipeline.progress import Progress, RunMeta, read_progress, run_commit
from ckpt.pipeline.runstate import (
    Callback,
    CostLimitExceeded,
    Outputs,
    Run,
    RunResult,
    StageContext,
    StageEvent,
)
from ckpt.pipeline.stages import PARTIAL_SUFFIX, Stage, StageResult, as_stage, stage
from ckpt.repository import Repository
from ckpt.values import serialize

OnSuccess = Literal["keep", "final", "delete"]
Store = Repository | str | os.PathLike[str]
_MISSING: Any = object()
F = TypeVar("F", bound=Callable[..., Any])


class InputMismatchError(CkptError):
    """A job was resumed with an input other than the one it was started with."""


def open_store(store: Store | None) -> Repository:
    """A Repository for ``store``: an open one, a path (created if absent) or None (found)."""
    if isinstance(store, Repository):
        return store
    if store is None:
        return repo_module.open()
    try:
        return repo_module.open(store)
    except StoreNotFoundError:
        try:
            return repo_module.init(store)
        except StoreExistsError:
            return repo_module.open(store)


class Pipeline:
    """An ordered list of named stages and how to checkpoint them.

    ``checkpoint_every`` (default 1) and ``checkpoint_interval`` (seconds) say
    when finished stages are committed: after every N stages, or when T
    seconds have passed since the last commit, whichever comes first (None
    disables either; both None commits only at the end and on failure).
    ``partial_every``/``partial_interval`` do the same for ``ctx.checkpoint``
    inside a stage.  ``keep_last`` cuts each branch's history after N
    commits; ``on_success`` keeps the job ("keep"), keeps only its final
    checkpoint ("final") or deletes it ("delete") once every stage is done.
    """

    def __init__(
        self,
        stages: Iterable[Stage | Callable[..., Any] | tuple[str, Callable[..., Any]]] = (),
        *,
        store: Store | None = None,
        input_name: str = "input",
        input_type: Any = None,
        checkpoint_every: int | None = 1,
        checkpoint_interval: float | dt.timedelta | None = None,
        partial_every: int | None = 1,
        partial_interval: float | dt.timedelta | None = None,
        cost_limit: float | None = None,
        keep_last: int | None = None,
        ttl: float | dt.timedelta | None = None,
        labels: Mapping[str, str] | None = None,
        on_success: OnSuccess = "keep",
        on_stage_start: Callback | None = None,
        on_stage_end: Callback | None = None,
        on_checkpoint: Callback | None = None,
    ) -> None:
        for label, value in (("checkpoint_every", checkpoint_every), ("keep_last", keep_last)):
            if value is not None and value < 1:
                raise CkptError(f"{label} must be at least 1, not {value}")
        if on_success not in ("keep", "final", "delete"):
            raise CkptError(f"on_success must be 'keep', 'final' or 'delete', not {on_success!r}")
        self.store = store
        self.input_name = names.stage_name(input_name)
        self.input_type = input_type
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = _seconds(checkpoint_interval)
        self.partial_every = partial_every
        self.partial_interval = _seconds(partial_interval)
        self.cost_limit = cost_limit
        self.keep_last = keep_last
        self.ttl = ttl
        self.labels = dict(labels or {})
        self.on_success = on_success
        self.on_stage_start = on_stage_start
        self.on_stage_end = on_stage_end
        self.on_checkpoint = on_checkpoint
        self.stages: list[Stage] = []
        self._repos: dict[str, Repository] = {}
        for item in stages:
            self.add(as_stage(item))

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(self.stage_names)})"

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    @property
    def is_async(self) -> bool:
        return any(s.is_async for s in self.stages)

    def output_types(self) -> dict[str, Any]:
        """Stage name (and the input's name) -> the type its value is loaded as."""
        types = {s.name: s.output_type for s in self.stages}
        types[self.input_name] = self.input_type
        return types

    def add(self, new: Stage) -> Stage:
        """Append a stage; raise CkptError if a parameter names nothing it can receive."""
        known = {self.input_name, *self.stage_names}
        if new.name in known:
            raise CkptError(f"stage {new.name!r} is defined twice (or shadows the input)")
        for param in new.params:
            if param.name not in known and not param.has_default:
                raise CkptError(
                    f"stage {new.name!r}: parameter {param.name!r} is neither the input "
                    f"({self.input_name!r}) nor an earlier stage ({', '.join(self.stage_names)})"
                )
            if param.name == self.input_name and self.input_type is None:
                self.input_type = param.annotation
        self.stages.append(new)
        return new

    @overload
    def stage(self, fn: F, /) -> F: ...

    @overload
    def stage(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        partial_every: int | None = None,
        partial_interval: float | None = None,
    ) -> Callable[[F], F]: ...

    def stage(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        partial_every: int | None = None,
        partial_interval: float | None = None,
    ) -> Any:
        """Decorator adding a function as the next stage (``@pipeline.stage`` or with options).
        The function itself is returned unchanged, so it can still be called directly."""

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add(
                Stage.from_function(
                    func, name=name, partial_every=partial_every, partial_interval=partial_interval
                )
            )
            return func

        return register if fn is None else register(fn)

    # -- the store ---------------------------------------------------------

    def repository(self, store: Store | None = None) -> Repository:
        """The store to use: ``store``, else the pipeline's, else the one ``ckpt.open()`` finds."""
        where = store if store is not None else self.store
        if isinstance(where, Repository):
            return where
        key = "" if where is None else os.fspath(where)
        if key not in self._repos:
            self._repos[key] = open_store(where)
        return self._repos[key]

    def job(self, job_id: str, store: Store | None = None) -> Job:
        return self.repository(store).job(job_id)

    # -- running -----------------------------------------------------------

    def run(
        self,
        job_id: str,
        input: Any = _MISSING,
        *,
        store: Store | None = None,
        restart: bool = False,
        resume_from: str | None = None,
        at: str | None = None,
        branch: str | None = None,
        no_checkpoint: bool = False,
        cost_limit: float | None = _MISSING,
    ) -> RunResult:
        """Run (or resume) job ``job_id``; see the module docstring for what is kept when.

        ``input`` may be left out to resume a job that saved one.  ``at``
        rolls the branch back to that checkpoint (a commit id, tag or
        ``HEAD~N``) and resumes from it.  Raises CostLimitExceeded, a
        stage's own exception, or CkptError for a misuse; in each case every
        checkpoint written stays.  Pipelines with async stages run in a new
        event loop (use ``run_async`` inside one).
        """
        options = _Options(store, restart, resume_from, at, branch, no_checkpoint, cost_limit)
        if not self.is_async:
            return _drive(self._execute(job_id, input, options, offload=False))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._execute(job_id, input, options, offload=True))
        raise CkptError("this pipeline has async stages: use `await pipeline.run_async(...)`")

    async def run_async(
        self,
        job_id: str,
        input: Any = _MISSING,
        *,
        store: Store | None = None,
        restart: bool = False,
        resume_from: str | None = None,
        at: str | None = None,
        branch: str | None = None,
        no_checkpoint: bool = False,
        cost_limit: float | None = _MISSING,
    ) -> RunResult:
        """As :meth:`run`, awaiting async stages; sync stages and store writes run in threads."""
        options = _Options(store, restart, resume_from, at, branch, no_checkpoint, cost_limit)
        return await self._execute(job_id, input, options, offload=True)

    def resume(self, job_id: str, *, store: Store | None = None, **options: Any) -> RunResult:
        """Continue a job from its stored input and checkpoints (NotFoundError if it has none)."""
        return self.run(job_id, store=store, **options)

    def can_resume(self, job_id: str, store: Store | None = None) -> bool:
        """True if the job holds a run of this pipeline with stages left to do."""
        job = self.job(job_id, store)
        if not job.exists or job.head is None:
            return False
        found = run_commit(job)
        if found is None:
            return False
        return job.status != STATUS_COMPLETED and any(
            s not in found[1].done for s in self.stage_names
        )

    def progress(self, job_id: str, store: Store | None = None) -> Progress | None:
        """Progress of the job's current run, read from the store (None: no run)."""
        return read_progress(self.job(job_id, store))

    def state(self, job_id: str, store: Store | None = None) -> RunResult:
        """The job as it stands: stages done, their outputs (loaded on access), cost, tokens."""
        job = self.job(job_id, store)
        found = run_commit(job) if job.exists else None
        if found is None:
            raise NotFoundError(f"job {job_id!r} holds no pipeline run")
        head = job.head
        assert head is not None
        outputs = Outputs(job, head.id, self.output_types())
        for name in (self.input_name, *found[1].done):
            outputs.add_stored(name)
        return RunResult(
            job=job.name,
            status=job.status,
            stages=self.stage_names,
            completed=found[1].done,
            ran=(),
            skipped=(),
            outputs=outputs,
            cost=0.0,
            tokens=0,
            head=head,
            total_cost=head.total_cost,
            total_tokens=head.total_tokens,
        )

    async def _io(self, offload: bool, fn: Callable[..., Any], *args: Any) -> Any:
        if offload:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def _execute(
        self, job_id: str, input: Any, options: _Options, *, offload: bool
    ) -> RunResult:
        names.job_name(job_id)
        if not self.stages:
            raise CkptError("the pipeline has no stages")
        limit = self.cost_limit if options.cost_limit is _MISSING else options.cost_limit
        if options.no_checkpoint:
            if input is _MISSING:
                raise CkptError("a run with no_checkpoint needs its input")
            run = Run(self, job_id, None, RunMeta(run="", stages=self.stage_names))
            run.outputs.set(self.input_name, input)
        else:
            job = self.job(job_id, options.store)
            run = await self._io(offload, self._prepare, job, input, options)
        last = len(self.stages) - 1
        for index, step in enumerate(self.stages):
            if step.name in run.done:
                run.skipped.append(step.name)
                continue
            if limit is not None and run.cost > limit:
                await self._io(offload, run.stop_for_cost, limit, step.name)
            try:
                await self._run_stage(run, step, index, offload)
                if run.flush_due(index == last):
                    await self._io(offload, run.flush)
            except BaseException as exc:
                if not run.failure_recorded:
                    await self._io(offload, run.fail, exc, step.name)
                raise
        await self._io(offload, run.finish)
        head = run.head
        total_cost = head.total_cost if head else run.cost
        total_tokens = head.total_tokens if head else run.tokens
        return RunResult(
            job=job_id,
            status=STATUS_COMPLETED,
            stages=self.stage_names,
            completed=tuple(run.done),
            ran=tuple(run.ran),
            skipped=tuple(run.skipped),
            outputs=run.outputs,
            cost=round(total_cost - run.start_cost, 9),
            tokens=total_tokens - run.start_tokens,
            head=head,
            total_cost=total_cost,
            total_tokens=total_tokens,
        )

    async def _run_stage(self, run: Run, stage: Stage, index: int, offload: bool) -> None:
        ctx = StageContext(run, stage, index)
        kwargs: dict[str, Any] = {}
        for param in stage.params:
            if param.name in run.outputs:
                kwargs[param.name] = await self._io(offload, run.outputs.__getitem__, param.name)
        if stage.wants_context is not None:
            kwargs[stage.wants_context] = ctx
        run.emit(
            self.on_stage_start,
            StageEvent("start", run.job_name, stage.name, index, run.progress(stage.name)),
        )
        started = time.monotonic()
        if stage.is_async:
            result = await stage.fn(**kwargs)
        elif offload:
            result = await asyncio.to_thread(stage.fn, **kwargs)
        else:
            result = stage.fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        duration = time.monotonic() - started
        cost, tokens = ctx.cost, ctx.tokens
        if isinstance(result, StageResult):
            cost, tokens, result = cost + result.cost, tokens + result.tokens, result.value
        if stage.output_type is None and run.job is not None:
            # Unannotated outputs come back from the store as plain JSON data: hand later
            # stages the same form now, so that a fresh run and a resumed one agree.
            try:
                result = serialize.loads(serialize.dumps(result))
            except SerializationError as exc:
                raise SerializationError(
                    f"stage {stage.name!r} of job {run.job_name!r}: {exc}"
                ) from exc
        run.complete_stage(stage, result, cost, tokens, duration)
        run.emit(
            self.on_stage_end,
            StageEvent("end", run.job_name, stage.name, index, run.progress(), duration=duration),
        )

    # -- preparing a run ---------------------------------------------------

    def _prepare(self, job: Job, input: Any, options: _Options) -> Run:
        """Apply branch / at / resume_from, then resume the run at HEAD or start a new one."""
        self._move(job, options)
        found = None if options.restart or not job.exists else run_commit(job)
        if found is not None and job.is_expired:
            raise CkptError(
                f"job {job.name!r} has expired (its TTL passed); pass restart=True to start over"
            )
        if found is None:
            return self._start(job, input)
        commit, meta = found
        head = job.head
        assert head is not None
        if input is not _MISSING:
            given = serialize.dumps(input, as_type=self.input_type)
            if given != job.load_raw(self.input_name, at=commit.id):
                raise InputMismatchError(
                    f"job {job.name!r} was started with another input; use a new job id, or "
                    "pass restart=True to start it over with this input"
                )
        run = Run(self, job.name, job, attrs.evolve(meta, invoked=now()))
        run.head = head
        run.start_cost, run.start_tokens = head.total_cost, head.total_tokens
        run.cost = round(head.total_cost - meta.base_cost, 9)
        run.tokens = head.total_tokens - meta.base_tokens
        run.outputs = Outputs(job, head.id, self.output_types())
        for name in (self.input_name, *meta.done):
            run.outputs.add_stored(name)
        if meta.partial is not None and meta.partial not in meta.done:
            run.partial_at = commit.id
            run.partials_saved.add(meta.partial + PARTIAL_SUFFIX)
        self._apply_settings(job, new_run=False)
        return run

    def _start(self, job: Job, input: Any) -> Run:
        if input is _MISSING:
            if not (job.exists and job.has_stage(self.input_name)):
                raise NotFoundError(
                    f"job {job.name!r} has no saved run to resume: pass an input to start one"
                )
            input = job.load(self.input_name, self.input_type)
        head = job.head
        moment = now()
        meta = RunMeta(
            run=uuid.uuid4().hex[:12],
            stages=self.stage_names,
            started=moment,
            invoked=moment,
            base_cost=0.0 if head is None else head.total_cost,
            base_tokens=0 if head is None else head.total_tokens,
        )
        run = Run(self, job.name, job, meta)
        run.start_cost, run.start_tokens = meta.base_cost, meta.base_tokens
        commit = job.save(
            self.input_name,
            input,
            type=self.input_type,
            message=f"run {meta.run} started",
            meta=run._meta_json(meta),
        )
        run._committed(commit, meta)
        run.outputs.set(self.input_name, input)
        self._apply_settings(job, new_run=True)
        return run

    def _apply_settings(self, job: Job, *, new_run: bool) -> None:
        record = job.record
        if self.labels and any(record.labels.get(k) != v for k, v in self.labels.items()):
            job.set_labels(self.labels)
        if new_run and (self.ttl is not None or record.ttl_seconds is not None):
            job.set_ttl(self.ttl)
        if self.keep_last is not None and record.keep_last != self.keep_last:
            set_keep_last(job, self.keep_last)

    def _move(self, job: Job, options: _Options) -> None:
        if options.resume_from is not None and options.resume_from not in self.stage_names:
            raise CkptError(
                f"no stage {options.resume_from!r} in this pipeline "
                f"(stages: {', '.join(self.stage_names)})"
            )
        wanted = options.branch or options.resume_from or options.at
        if wanted is None:
            return
        if not job.exists or job.head is None:
            raise NotFoundError(f"job {job.name!r} has no checkpoints to resume or branch from")
        new_branch = None
        if options.branch is not None:
            if options.branch in job.branches():
                job.switch(options.branch)
                job.refresh()
            else:
                new_branch = names.branch_name(options.branch)
        head = job.head
        assert head is not None
        target = head if options.at is None else job.resolve(options.at)
        if options.resume_from is not None:
            target = self._before_stage(job, options.resume_from, target)
        if new_branch is not None:
            job.checkout(target.id, new_branch=new_branch)
        elif target.id != head.id:
            job.checkout(target.id)

    def _before_stage(self, job: Job, stage: str, start: Commit) -> Commit:
        later = set(self.stage_names[self.stage_names.index(stage) :])
        found = run_commit(job, start.id)
        if found is None:
            raise NotFoundError(f"job {job.name!r} holds no pipeline run to roll back")
        run_id = found[1].run
        for commit in job.walk(start.id):
            meta = RunMeta.from_commit(commit)
            if meta is None:
                continue
            if meta.run != run_id:
                break
            if not later.intersection(meta.done) and meta.partial not in later:
                return commit
        raise CkptError(
            f"job {job.name!r}: the checkpoints before stage {stage!r} were pruned "
            "(keep_last); pass restart=True to run it again from the start"
        )


@attrs.frozen
class _Options:
    store: Store | None
    restart: bool
    resume_from: str | None
    at: str | None
    branch: str | None
    no_checkpoint: bool
    cost_limit: Any


def _seconds(value: float | dt.timedelta | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if seconds <= 0:
        raise CkptError(f"an interval must be positive, not {value!r}")
    return seconds


def _drive(coro: Coroutine[Any, Any, RunResult]) -> RunResult:
    """Run a coroutine that never suspends (a pipeline of sync stages) without an event loop,
    so that a stage may itself call ``asyncio.run``."""
    try:
        coro.send(None)
    except StopIteration as stop:
        result: RunResult = stop.value
        return result
    coro.close()
    raise CkptError("a stage returned an awaitable: use `await pipeline.run_async(...)`")


__all__ = [
    "CostLimitExceeded",
    "InputMismatchError",
    "OnSuccess",
    "Outputs",
    "Pipeline",
    "RunResult",
    "Stage",
    "StageContext",
    "StageEvent",
    "StageResult",
    "open_store",
    "stage",
]
