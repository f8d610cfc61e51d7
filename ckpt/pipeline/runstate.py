"""One run of a pipeline: its in-memory state, its store writes, and what it reports.

A :class:`Run` holds the stage outputs computed but not yet committed, the
cost and tokens spent, and the runner metadata last written (see
:mod:`ckpt.pipeline.progress`).  Its write methods are where the crash guarantees of
:mod:`ckpt.pipeline.runner` are kept: stage outputs are committed oldest first, a
failure is recorded only after what is held in memory has been written,
and a lost compare-and-swap (another writer on the job) is never recorded
as a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ckpt.errors import CkptError, ConflictError
from ckpt.history.job import Job
from ckpt.history.refs import now
from ckpt.maintenance.retention import prune_job
from ckpt.objects.model import STATUS_COMPLETED, STATUS_FAILED, Commit
from ckpt.pipeline.progress import META_KEY, Progress, RunMeta, compute_progress
from ckpt.pipeline.stages import PARTIAL_SUFFIX, Stage

if TYPE_CHECKING:
    from ckpt.pipeline.runner import Pipeline

Callback = Callable[["StageEvent"], object]


class CostLimitExceeded(CkptError):
    """The run's cumulative cost passed ``cost_limit`` before a stage; everything done is kept."""

    def __init__(self, job: str, spent: float, limit: float, next_stage: str) -> None:
        self.job = job
        self.spent = spent
        self.limit = limit
        self.next_stage = next_stage
        super().__init__(
            f"job {job!r}: cost so far {spent:.4f} is over the limit {limit:.4f}; stopped "
            f"before stage {next_stage!r} (raise cost_limit and run again to continue)"
        )


@attrs.frozen
class StageEvent:
    """What a callback is told: which stage, where the run stands, and the commit if one landed."""

    kind: Literal["start", "end", "checkpoint"]
    job: str
    stage: str
    index: int
    progress: Progress
    commit: Commit | None = None
    duration: float | None = None
    partial: bool = False


class Outputs(Mapping[str, Any]):
    """Stage outputs of a run: values computed in this run, the rest loaded on first access."""

    def __init__(self, job: Job | None, at: str | None, types: Mapping[str, Any]) -> None:
        self._job = job
        self._at = at
        self.types = types
        self._stored: set[str] = set()
        self._values: dict[str, Any] = {}

    def add_stored(self, stage: str) -> None:
        self._stored.add(stage)

    def set(self, stage: str, value: Any) -> None:
        self._values[stage] = value
        self._stored.discard(stage)

    def __getitem__(self, stage: str) -> Any:
        if stage in self._values:
            return self._values[stage]
        if stage not in self._stored or self._job is None:
            raise KeyError(stage)
        value = self._job.load(stage, self.types.get(stage), at=self._at)
        self._values[stage] = value
        return value

    def __contains__(self, stage: object) -> bool:
        return stage in self._values or stage in self._stored

    def __iter__(self) -> Iterator[str]:
        yield from self._values
        yield from (s for s in self._stored if s not in self._values)

    def __len__(self) -> int:
        return len(self._values.keys() | self._stored)

    def materialize(self) -> None:
        for stage in list(self._stored):
            self[stage]


@attrs.frozen
class RunResult:
    """The outcome of a run (or, from ``Pipeline.state``, of the job as it stands).

    Two figures each for cost and tokens: ``cost`` and ``tokens`` are what this call
    spent (a resumed run that found everything done spent nothing; ``Pipeline.state``
    runs nothing), ``total_cost`` and ``total_tokens`` the job's totals at its head, every
    run of every earlier call included (the branch's running totals, as in ``Commit``).
    """

    job: str
    status: str
    stages: tuple[str, ...]
    completed: tuple[str, ...]
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    outputs: Mapping[str, Any]
    cost: float
    tokens: int
    head: Commit | None
    total_cost: float = 0.0
    total_tokens: int = 0

    def __getitem__(self, stage: str) -> Any:
        return self.outputs[stage]

    @property
    def output(self) -> Any:
        """The last stage's output."""
        return self.outputs[self.stages[-1]]


@attrs.frozen
class _Pending:
    stage: Stage
    value: Any
    cost: float
    tokens: int
    duration: float


class StageContext:
    """Handed to a stage that asks for it: report cost, save and restore state inside a stage."""

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
        # The partial state an earlier attempt of this stage left, as it was when this one began.
        self._resume_at = run.partial_at if run.partial_stage == stage.name else None

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


class Run:
    """One invocation of a pipeline on one job: in-memory state plus its store writes."""

    def __init__(self, pipeline: Pipeline, job_name: str, job: Job | None, meta: RunMeta) -> None:
        self.pipeline = pipeline
        self.job_name = job_name
        self.job = job
        self.meta = meta  # as last written to the store
        self.done: list[str] = list(meta.done)
        self.durations: dict[str, float] = dict(meta.durations)
        self.pending: list[_Pending] = []
        self.cost = 0.0
        self.tokens = 0
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.partial_stage: str | None = meta.partial
        self.partial_at: str | None = None
        self.last_flush = time.monotonic()
        self.head: Commit | None = None
        # The job's totals when this call began: what it spends is measured from here.
        self.start_cost = 0.0
        self.start_tokens = 0
        self.failure_recorded = False
        self.partials_saved: set[str] = set()  # partial entries in the tree, dropped on completion
        self.outputs = Outputs(job, None, pipeline.output_types())

    # -- bookkeeping -------------------------------------------------------

    def progress(self, current: str | None = None) -> Progress:
        meta = attrs.evolve(self.meta, done=tuple(self.done), durations=dict(self.durations))
        head = self.head
        return compute_progress(
            job=self.job_name,
            branch=self.job.branch_name if self.job is not None else "",
            status="active",  # this run is going on, whatever the last status written
            meta=meta,
            total_cost=round(self.meta.base_cost + self.cost, 9),
            total_tokens=self.meta.base_tokens + self.tokens,
            updated_at=head.time if head is not None else now(),
            commit=None if head is None else head.id,
            seq=0 if head is None else head.seq,
            current_stage=current,
        )

    def emit(self, callback: Callback | None, event: StageEvent) -> None:
        if callback is not None:
            callback(event)

    def _meta_json(self, meta: RunMeta) -> dict[str, Any]:
        return {META_KEY: meta.to_json()}

    def _committed(self, commit: Commit, meta: RunMeta) -> None:
        self.head = commit
        self.meta = meta
        self.last_flush = time.monotonic()

    # -- writes ------------------------------------------------------------

    def complete_stage(self, stage: Stage, value: Any, cost: float, tokens: int, t: float) -> None:
        self.pending.append(_Pending(stage, value, cost, tokens, t))
        self.done.append(stage.name)
        self.durations[stage.name] = t
        self.cost = round(self.cost + cost, 9)
        self.tokens += tokens
        self.ran.append(stage.name)
        self.partial_stage = None
        self.outputs.set(stage.name, value)

    def flush_due(self, last: bool) -> bool:
        every, interval = self.pipeline.checkpoint_every, self.pipeline.checkpoint_interval
        if not self.pending:
            return False
        if last or (every is not None and len(self.pending) >= every):
            return True
        return interval is not None and time.monotonic() - self.last_flush >= interval

    def flush(self) -> None:
        """Commit every stage output still held in memory, oldest first."""
        if self.job is None:
            self.pending.clear()
            return
        while self.pending:
            item = self.pending[0]
            name = item.stage.name
            meta = attrs.evolve(
                self.meta,
                done=(*self.meta.done, name),
                durations={**self.meta.durations, name: item.duration},
                partial=None,
                items=None,
            )
            try:
                partial = name + PARTIAL_SUFFIX
                commit = self.job.save_many(
                    {name: item.value},
                    types={name: item.stage.output_type},
                    drop=[partial] if partial in self.partials_saved else [],
                    cost=item.cost,
                    tokens=item.tokens,
                    meta=self._meta_json(meta),
                )
                self.partials_saved.discard(partial)
            except BaseException as exc:
                self.pending.clear()
                self.fail(exc, name)
                raise
            self.pending.pop(0)
            self._committed(commit, meta)
            self.emit(
                self.pipeline.on_checkpoint,
                StageEvent(
                    "checkpoint",
                    self.job_name,
                    name,
                    self.pipeline.stage_names.index(name),
                    self.progress(),
                    commit,
                ),
            )
        if self.pipeline.keep_last is not None:
            prune_job(self.job, self.pipeline.keep_last)

    def save_partial(
        self, ctx: StageContext, state: object, type: Any, items: tuple[int, int | None] | None
    ) -> None:
        assert self.job is not None
        self.flush()
        meta = attrs.evolve(self.meta, partial=ctx.stage, items=items)
        commit = self.job.save(
            ctx.stage + PARTIAL_SUFFIX,
            state,
            type=type,
            cost=ctx.cost,
            tokens=ctx.tokens,
            message=f"partial: {ctx.stage}",
            meta=self._meta_json(meta),
        )
        self.cost = round(self.cost + ctx.cost, 9)
        self.tokens += ctx.tokens
        self._committed(commit, meta)
        self.partial_stage, self.partial_at = ctx.stage, commit.id
        self.partials_saved.add(ctx.stage + PARTIAL_SUFFIX)
        self.emit(
            self.pipeline.on_checkpoint,
            StageEvent(
                "checkpoint",
                self.job_name,
                ctx.stage,
                ctx.index,
                self.progress(),
                commit,
                partial=True,
            ),
        )

    def fail(self, exc: BaseException, stage: str, extra: Mapping[str, Any] | None = None) -> None:
        """Record ``exc`` as the failure of ``stage``, after writing what is held in memory.
        Never raises: a problem recording is attached to ``exc`` as a note."""
        if self.job is None or isinstance(exc, ConflictError):
            return
        try:
            if self.pending:
                self.flush()
            meta = {**self._meta_json(self.meta), **(extra or {})}
            self.head = self.job.fail(exc, stage=stage, meta=meta)
            self.failure_recorded = True
            if self.pipeline.keep_last is not None:
                prune_job(self.job, self.pipeline.keep_last)
        except BaseException as problem:
            exc.add_note(f"ckpt: could not record the failure: {problem}")

    def stop_for_cost(self, limit: float, stage: str) -> None:
        exc = CostLimitExceeded(self.job_name, self.cost, limit, stage)
        head = self.head
        same = (
            head is not None
            and head.status == STATUS_FAILED
            and head.meta.get("error_type") == "CostLimitExceeded"
            and head.meta.get("failed_stage") == stage
        )
        if not same:
            self.fail(exc, stage, {"cost_limit": limit})
        raise exc

    def finish(self) -> None:
        """Write the completed status, then apply the pipeline's on-success policy."""
        self.flush()
        job = self.job
        if job is None:
            return
        if self.head is None or self.head.status != STATUS_COMPLETED:
            self.head = job.complete("pipeline completed", meta=self._meta_json(self.meta))
        policy = self.pipeline.on_success
        if policy == "keep" and self.pipeline.keep_last is not None:
            prune_job(job, self.pipeline.keep_last)
        elif policy == "final":
            prune_job(job, 1)
        elif policy == "delete":
            self.outputs.materialize()
            job.repo.delete_job(job.name)
