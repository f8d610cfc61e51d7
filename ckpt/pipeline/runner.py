"""The stage runner: run named stages, checkpointing each as it finishes.

``Pipeline.run(job_id, input)`` saves the input first (stage ``input``),
then runs each stage and commits its output.  Stages whose parameters show
they do not depend on each other may run at once (``max_concurrency``).
Run it again with the same job id and the stages already done at HEAD are
skipped and their outputs loaded, unless they are stale (their code,
version, parameters or inputs changed: see :mod:`ckpt.pipeline.resume`);
``resume_from="stage"`` rolls the branch back to just before a stage (and
``branch="alt"`` does that on a new branch); ``restart=True`` starts over on
top of the old history.  One runner at a time: a run holds a lease on its
job (:mod:`ckpt.pipeline.lease`), and a second runner fails at once.

Crash guarantees: a stage's output is on stable storage once its checkpoint
is written (as soon as it finishes by default; see ``checkpoint_every`` and
``checkpoint_interval``), and so is each fan-out item (``ctx.map``).  A
killed process loses only the work not yet checkpointed; the next run
re-runs exactly the stages (and items) whose checkpoints are missing.  A
stage that raises leaves every checkpoint intact, lets the stages running
beside it finish and commits them, writes the outputs it was still holding,
records the failure (status failed, error type and message, stage; an
interruption as such) and re-raises; the next run resumes.  Nothing is
written with ``no_checkpoint=True``.

The bookkeeping lives in each commit's ``meta["pipeline"]`` (see
:mod:`ckpt.pipeline.progress`), so any process can read progress from the store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Literal, TypeVar, overload

from ckpt import repository as repo_module
from ckpt.errors import CkptError, NotFoundError, StoreExistsError, StoreNotFoundError
from ckpt.history import names
from ckpt.history.job import Job
from ckpt.objects.model import STATUS_COMPLETED
from ckpt.pipeline.context import StageContext
from ckpt.pipeline.fingerprint import StageShape, find_stale
from ckpt.pipeline.lease import DEFAULT_LEASE_SECONDS, Lease, LeaseHeldError, LeaseLostError
from ckpt.pipeline.progress import Progress, RunMeta, read_progress, run_commit
from ckpt.pipeline.resume import (
    MISSING,
    STALE_POLICIES,
    InputMismatchError,
    MissingInputError,
    RunOptions,
    StalePolicy,
    StaleStagesError,
    StaleStageWarning,
    check_input,
    prepare,
)
from ckpt.pipeline.runstate import (
    Callback,
    CostLimitExceeded,
    Outputs,
    Run,
    RunResult,
    StageEvent,
)
from ckpt.pipeline.schedule import Scheduler
from ckpt.pipeline.stages import Stage, StageResult, as_stage, stage
from ckpt.repository import Repository

OnSuccess = Literal["keep", "final", "delete"]
Store = Repository | str | os.PathLike[str]
F = TypeVar("F", bound=Callable[..., Any])


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
        max_concurrency: int = 1,
        stale: StalePolicy = "rerun",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        for label, value in (
            ("checkpoint_every", checkpoint_every),
            ("keep_last", keep_last),
            ("max_concurrency", max_concurrency),
        ):
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
        self.max_concurrency = _concurrency(max_concurrency)
        self.stale_policy = _stale_policy(stale)
        if not lease_seconds > 0:
            raise CkptError(f"lease_seconds must be positive, not {lease_seconds!r}")
        self.lease_seconds = float(lease_seconds)
        self.stages: list[Stage] = []
        self._bound: dict[str, tuple[str, ...]] = {}
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
        self._bound[new.name] = tuple(p.name for p in new.params if p.name in known)
        return new

    def bound_params(self, stage: Stage) -> tuple[str, ...]:
        """The parameters of ``stage`` that receive the input or an earlier stage's output."""
        return self._bound[stage.name]

    def stage_deps(self, stage: Stage) -> tuple[str, ...]:
        """The stages whose outputs ``stage`` takes: it runs once they are done."""
        return tuple(p for p in self._bound[stage.name] if p != self.input_name)

    def shapes(self) -> dict[str, StageShape]:
        """Each stage's code digest, version and parameters, for judging staleness."""
        return {
            s.name: StageShape(s.name, s.code, s.version, self._bound[s.name]) for s in self.stages
        }

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
        version: str | int | None = None,
    ) -> Callable[[F], F]: ...

    def stage(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        partial_every: int | None = None,
        partial_interval: float | None = None,
        version: str | int | None = None,
    ) -> Any:
        """Decorator adding a function as the next stage (``@pipeline.stage`` or with options,
        e.g. ``version="2"``).  The function itself is returned unchanged, so it can still be
        called directly."""

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add(
                Stage.from_function(
                    func,
                    name=name,
                    partial_every=partial_every,
                    partial_interval=partial_interval,
                    version=version,
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
        input: Any = MISSING,
        *,
        store: Store | None = None,
        restart: bool = False,
        resume_from: str | None = None,
        at: str | None = None,
        branch: str | None = None,
        no_checkpoint: bool = False,
        cost_limit: float | None = MISSING,
        stale: StalePolicy | None = None,
        wait: bool | float = False,
        max_concurrency: int | None = None,
    ) -> RunResult:
        """Run (or resume) job ``job_id``; see the module docstring for what is kept when.

        ``input`` may be left out to resume a job that saved one.  ``at``
        rolls the branch back to that checkpoint (a commit id, tag or
        ``HEAD~N``) and resumes from it.  ``stale``, ``max_concurrency`` and
        ``cost_limit`` override the pipeline's settings for this run.  If
        another runner holds the job, raises LeaseHeldError at once, or with
        ``wait`` waits for it (True: as long as it takes; a number: that many
        seconds at most).  Raises CostLimitExceeded, StaleStagesError, a
        stage's own exception, or CkptError for a misuse; in each case every
        checkpoint written stays.  Pipelines with async stages run in a new
        event loop (use ``run_async`` inside one).
        """
        options = self._options(
            store,
            restart,
            resume_from,
            at,
            branch,
            no_checkpoint,
            cost_limit,
            stale,
            wait,
            max_concurrency,
        )
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
        input: Any = MISSING,
        *,
        store: Store | None = None,
        restart: bool = False,
        resume_from: str | None = None,
        at: str | None = None,
        branch: str | None = None,
        no_checkpoint: bool = False,
        cost_limit: float | None = MISSING,
        stale: StalePolicy | None = None,
        wait: bool | float = False,
        max_concurrency: int | None = None,
    ) -> RunResult:
        """As :meth:`run`, awaiting async stages; sync stages and store writes run in threads."""
        options = self._options(
            store,
            restart,
            resume_from,
            at,
            branch,
            no_checkpoint,
            cost_limit,
            stale,
            wait,
            max_concurrency,
        )
        return await self._execute(job_id, input, options, offload=True)

    def _options(
        self,
        store: Store | None,
        restart: bool,
        resume_from: str | None,
        at: str | None,
        branch: str | None,
        no_checkpoint: bool,
        cost_limit: float | None,
        stale: StalePolicy | None,
        wait: bool | float,
        max_concurrency: int | None,
    ) -> RunOptions:
        if not isinstance(wait, (bool, int, float)) or (
            not isinstance(wait, bool) and not wait >= 0
        ):
            raise CkptError(f"wait must be True, False or a number of seconds, not {wait!r}")
        return RunOptions(
            store=store,
            restart=restart,
            resume_from=resume_from,
            at=at,
            branch=branch,
            no_checkpoint=no_checkpoint,
            cost_limit=self.cost_limit if cost_limit is MISSING else cost_limit,
            stale=self.stale_policy if stale is None else _stale_policy(stale),
            wait=wait,
            concurrency=(
                self.max_concurrency if max_concurrency is None else _concurrency(max_concurrency)
            ),
        )

    def resume(self, job_id: str, *, store: Store | None = None, **options: Any) -> RunResult:
        """Continue a job from its stored input and checkpoints (NotFoundError if it has none)."""
        return self.run(job_id, store=store, **options)

    def can_resume(self, job_id: str, store: Store | None = None) -> bool:
        """True if the job holds a run of this pipeline with stages left to do, or stale."""
        job = self.job(job_id, store)
        if not job.exists or job.head is None:
            return False
        found = run_commit(job)
        if found is None:
            return False
        if any(s not in found[1].done for s in self.stage_names):
            return job.status != STATUS_COMPLETED
        return bool(self.stale(job_id, store))

    def stale(self, job_id: str, store: Store | None = None) -> dict[str, str]:
        """The done stages of the job that a run would find stale, each with the reason
        (nothing is written)."""
        job = self.job(job_id, store)
        head = job.head if job.exists else None
        found = None if head is None else run_commit(job, head.id)
        if head is None or found is None:
            return {}
        meta = found[1]
        ids = {entry.name: entry.id for entry in job.tree(head.id)}
        return find_stale(self.stage_names, meta.done, meta.fingerprints, ids, self.shapes())

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
        meta = found[1]
        outputs = Outputs(job, head.id, self.output_types())
        for name in (self.input_name, *meta.done):
            outputs.add_stored(name)
        return RunResult(
            job=job.name,
            status=job.status,
            stages=self.stage_names,
            completed=meta.done,
            ran=(),
            skipped=(),
            outputs=outputs,
            cost=0.0,
            tokens=0,
            head=head,
            total_cost=head.total_cost,
            total_tokens=head.total_tokens,
            stale=dict(meta.stale),
            stage_costs=dict(meta.stage_costs),
        )

    async def _io(self, offload: bool, fn: Callable[..., Any], *args: Any) -> Any:
        if offload:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def _execute(
        self, job_id: str, input: Any, options: RunOptions, *, offload: bool
    ) -> RunResult:
        names.job_name(job_id)
        if not self.stages:
            raise CkptError("the pipeline has no stages")
        if options.no_checkpoint:
            if input is MISSING:
                raise MissingInputError("a run with no_checkpoint needs its input")
            check_input(self, job_id, input)
            meta = RunMeta(run="", stages=self.stage_names, concurrency=options.concurrency)
            run = Run(self, job_id, None, meta, cost_limit=options.cost_limit)
            run.outputs.set(self.input_name, input)
            return await self._stages(run, options, offload)
        job = self.job(job_id, options.store)
        lease = Lease(job.repo.storage, job.name, seconds=self.lease_seconds)
        await self._io(offload, lease.acquire, options.wait)
        try:
            run = await self._io(offload, prepare, self, job, input, options, lease)
            return await self._stages(run, options, offload)
        finally:
            await self._io(offload, lease.release)

    async def _stages(self, run: Run, options: RunOptions, offload: bool) -> RunResult:
        scheduler = Scheduler(self, run, limit=options.concurrency)
        if offload:
            await scheduler.drive_async()
        else:
            scheduler.drive()
        await self._io(offload, run.finish)
        head = run.head
        total_cost = head.total_cost if head else run.cost
        total_tokens = head.total_tokens if head else run.tokens
        return RunResult(
            job=run.job_name,
            status=STATUS_COMPLETED,
            stages=self.stage_names,
            completed=tuple(s for s in self.stage_names if s in run.done),
            ran=tuple(run.ran),
            skipped=tuple(run.skipped),
            outputs=run.outputs,
            cost=round(total_cost - run.start_cost, 9),
            tokens=total_tokens - run.start_tokens,
            head=head,
            total_cost=total_cost,
            total_tokens=total_tokens,
            stale=dict(run.stale),
            stage_costs=dict(run.stage_costs),
        )


def _concurrency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CkptError(f"max_concurrency must be a positive integer, not {value!r}")
    return value


def _stale_policy(value: object) -> StalePolicy:
    if value not in STALE_POLICIES:
        raise CkptError(f"stale must be 'rerun', 'keep' or 'error', not {value!r}")
    policy: StalePolicy = value  # type: ignore[assignment]
    return policy


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
    "LeaseHeldError",
    "LeaseLostError",
    "MissingInputError",
    "OnSuccess",
    "Outputs",
    "Pipeline",
    "RunResult",
    "Stage",
    "StageContext",
    "StageEvent",
    "StageResult",
    "StaleStageWarning",
    "StaleStagesError",
    "open_store",
    "stage",
]
