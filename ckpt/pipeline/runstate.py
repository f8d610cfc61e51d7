"""One run of a pipeline: its in-memory state, its store writes, and what it reports.

A :class:`Run` holds the stage outputs computed but not yet committed, the
cost and tokens spent, and the runner metadata last written (see
:mod:`ckpt.pipeline.progress`).  Its write methods are where the crash
guarantees of :mod:`ckpt.pipeline.runner` are kept: stage outputs are
committed one commit per stage, in the order the stages finished; a failure
is recorded only after what is held in memory has been written; a lost
compare-and-swap (another writer on the job) is never recorded as a
failure; and once a failure is recorded the run writes nothing more.

Stages running in parallel threads, and the items of a fan-out, write
through the same Run: every write takes its lock, so that one job handle
makes one commit at a time, each on top of the last.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ckpt.errors import CkptError, ConflictError, CorruptObjectError, ObjectNotFoundError
from ckpt.history.job import Job
from ckpt.history.refs import now
from ckpt.maintenance.retention import prune_job
from ckpt.objects.model import STATUS_COMPLETED, STATUS_FAILED, Commit
from ckpt.pipeline.fingerprint import Fingerprint, short
from ckpt.pipeline.lease import Lease
from ckpt.pipeline.progress import META_KEY, Progress, RunMeta, compute_progress
from ckpt.pipeline.result import RunResult as RunResult
from ckpt.pipeline.stages import PARTIAL_SUFFIX, Stage, item_prefix
from ckpt.values.serialize import JSONValue

if TYPE_CHECKING:
    from ckpt.pipeline.context import StageContext
    from ckpt.pipeline.runner import Pipeline

Callback = Callable[["StageEvent"], object]


class CostLimitExceeded(CkptError):
    """The run's cumulative cost passed ``cost_limit`` before a stage (or a fan-out item);
    everything done is kept."""

    def __init__(
        self, job: str, spent: float, limit: float, next_stage: str, *, where: str | None = None
    ) -> None:
        self.job = job
        self.spent = spent
        self.limit = limit
        self.next_stage = next_stage
        stopped = where if where is not None else f"before stage {next_stage!r}"
        super().__init__(
            f"job {job!r}: cost so far {spent:.4f} is over the limit {limit:.4f}; stopped "
            f"{stopped} (raise cost_limit and run again to continue)"
        )


class RunClosedError(CkptError):
    """A write after the run recorded its end (a stage thread still running after Ctrl-C)."""


@attrs.frozen
class StageEvent:
    """What a callback is told: which stage, where the run stands, and the commit if one landed.

    ``reason`` is set on the start of a stage re-run because it was stale.
    """

    kind: Literal["start", "end", "checkpoint"]
    job: str
    stage: str
    index: int
    progress: Progress
    commit: Commit | None = None
    duration: float | None = None
    partial: bool = False
    reason: str | None = None


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
class _Pending:
    stage: Stage
    value: Any
    cost: float
    tokens: int
    duration: float
    used_items: frozenset[str]


def _add_cost(
    costs: Mapping[str, tuple[float, int]], stage: str, cost: float, tokens: int
) -> dict[str, tuple[float, int]]:
    old_cost, old_tokens = costs.get(stage, (0.0, 0))
    return {**costs, stage: (round(old_cost + cost, 9), old_tokens + tokens)}


def interruption(exc: BaseException) -> str | None:
    """How ``exc`` stopped a run if it was an interruption rather than an error, else None."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, asyncio.CancelledError):
        return "interrupted (task cancelled)"
    if isinstance(exc, SystemExit):
        return f"interrupted (exit {exc.code})"
    return None


class Run:
    """One invocation of a pipeline on one job: in-memory state plus its store writes."""

    def __init__(
        self,
        pipeline: Pipeline,
        job_name: str,
        job: Job | None,
        meta: RunMeta,
        *,
        cost_limit: float | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.job_name = job_name
        self.job = job
        self.meta = meta  # as last written to the store
        self.cost_limit = cost_limit
        self.lease = lease
        self.lock = threading.RLock()
        self.done: list[str] = list(meta.done)
        self.durations: dict[str, float] = dict(meta.durations)
        self.stage_costs: dict[str, tuple[float, int]] = dict(meta.stage_costs)
        self.pending: list[_Pending] = []
        self.cost = 0.0
        self.tokens = 0
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.running: list[str] = []
        self.stale: dict[str, str] = {}  # found stale at the start of this run
        self.last_flush = time.monotonic()
        self.head: Commit | None = None
        # The job's totals when this call began: what it spends is measured from here.
        self.start_cost = 0.0
        self.start_tokens = 0
        self.failure_recorded = False
        self.closed = False
        self.outputs = Outputs(job, None, pipeline.output_types())
        #: Tree entries at HEAD (name -> object id; "" where not read back): stage outputs,
        #: partial states, fan-out items.
        self.entries: dict[str, str] = {}
        #: HEAD and its entries when the run began: the work earlier attempts left.
        self.start_head: str | None = None
        self.start_entries: frozenset[str] = frozenset()

    # -- bookkeeping -------------------------------------------------------

    def progress(self, current: str | None = None) -> Progress:
        with self.lock:
            meta = attrs.evolve(
                self.meta,
                done=tuple(self.done),
                durations=dict(self.durations),
                stage_costs=dict(self.stage_costs),
            )
            running = tuple(self.running)
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
            running=running,
        )

    def emit(self, callback: Callback | None, event: StageEvent) -> None:
        if callback is not None:
            callback(event)

    def over_cost_limit(self) -> bool:
        return self.cost_limit is not None and self.cost > self.cost_limit

    def _meta_json(self, meta: RunMeta) -> dict[str, JSONValue]:
        return {META_KEY: meta.to_json()}

    def _committed(self, commit: Commit, meta: RunMeta) -> None:
        self.head = commit
        self.meta = meta
        self.last_flush = time.monotonic()

    def set_head(self, commit: Commit) -> None:
        """Start from ``commit`` (read the entries of its tree)."""
        assert self.job is not None
        self.head = commit
        tree = self.job.repo.objects.get_tree(commit.tree)
        self.entries = {entry.name: entry.id for entry in tree}
        self.start_head = commit.id
        self.start_entries = frozenset(self.entries)

    def _save(
        self,
        values: Mapping[str, Any],
        *,
        types: Mapping[str, Any],
        drop: Iterable[str] = (),
        label: str | None = None,
        cost: float = 0.0,
        tokens: int = 0,
        message: str = "",
        meta: RunMeta,
        ids: bool = False,
    ) -> Commit:
        """One commit of ``values`` (dropping ``drop``) with ``meta``, by this run's rules.
        ``ids``: read the new entries' object ids back (a stage output, which a later stage's
        fingerprint names); otherwise only their names are tracked."""
        assert self.job is not None
        if self.closed:
            raise RunClosedError(f"job {self.job_name!r}: the run has ended; not saving")
        if self.lease is not None:
            self.lease.check()
        dropped = [name for name in drop if name in self.entries]
        commit = self.job.save_many(
            values,
            types=types,
            drop=dropped,
            stage=label,
            cost=cost,
            tokens=tokens,
            message=message,
            meta=self._meta_json(meta),
        )
        for name in dropped:
            self.entries.pop(name, None)
        if ids and values:
            tree = self.job.repo.objects.get_tree(commit.tree)
            for name in values:
                entry = tree.get(name)
                if entry is not None:
                    self.entries[name] = entry.id
        else:
            self.entries.update(dict.fromkeys(values, ""))
        self._committed(commit, meta)
        return commit

    def fingerprint(self, stage: Stage) -> Fingerprint:
        """What ``stage`` was computed from: its code, version, parameters and input ids."""
        params = self.pipeline.bound_params(stage)
        return Fingerprint(
            code=stage.code or None,
            version=stage.version,
            params=params,
            inputs={p: short(self.entries[p]) for p in params if self.entries.get(p)},
        )

    # -- writes ------------------------------------------------------------

    def complete_stage(
        self,
        stage: Stage,
        value: Any,
        cost: float,
        tokens: int,
        duration: float,
        used_items: Iterable[str] = (),
    ) -> None:
        with self.lock:
            self.pending.append(
                _Pending(stage, value, cost, tokens, duration, frozenset(used_items))
            )
            if stage.name in self.done:
                self.done.remove(stage.name)
            self.done.append(stage.name)
            self.durations[stage.name] = duration
            self.stage_costs = _add_cost(self.stage_costs, stage.name, cost, tokens)
            self.cost = round(self.cost + cost, 9)
            self.tokens += tokens
            self.ran.append(stage.name)
            self.outputs.set(stage.name, value)

    def flush_due(self) -> bool:
        every, interval = self.pipeline.checkpoint_every, self.pipeline.checkpoint_interval
        with self.lock:
            if not self.pending:
                return False
            if every is not None and len(self.pending) >= every:
                return True
            return interval is not None and time.monotonic() - self.last_flush >= interval

    def flush(self) -> None:
        """Commit every stage output still held in memory, one commit each, in order."""
        with self.lock:
            if self.job is None:
                self.pending.clear()
                return
            wrote = False
            while self.pending:
                item = self.pending[0]
                name = item.stage.name
                try:
                    commit = self._flush_one(item)
                except BaseException as exc:
                    self.pending.clear()
                    self.fail(exc, name)
                    raise
                self.pending.pop(0)
                wrote = True
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
            if wrote and self.pipeline.keep_last is not None:
                prune_job(self.job, self.pipeline.keep_last)

    def _flush_one(self, item: _Pending) -> Commit:
        name = item.stage.name
        prefix = item_prefix(name)
        drop = [name + PARTIAL_SUFFIX]
        drop += [e for e in self.entries if e.startswith(prefix) and e not in item.used_items]
        # The fingerprint names the input ids at HEAD: every input finished (and so was
        # committed) before this stage did, and none changed since.
        fingerprint = self.fingerprint(item.stage)
        meta = attrs.evolve(
            self.meta,
            done=(*(d for d in self.meta.done if d != name), name),
            durations={**self.meta.durations, name: item.duration},
            inflight={k: v for k, v in self.meta.inflight.items() if k != name},
            fingerprints={**self.meta.fingerprints, name: fingerprint},
            stale={k: v for k, v in self.meta.stale.items() if k != name},
            stage_costs=_add_cost(self.meta.stage_costs, name, item.cost, item.tokens),
        )
        return self._save(
            {name: item.value},
            types={name: item.stage.output_type},
            drop=drop,
            cost=item.cost,
            tokens=item.tokens,
            meta=meta,
            ids=True,
        )

    def save_partial(
        self, ctx: StageContext, state: object, type: Any, items: tuple[int, int | None] | None
    ) -> Commit:
        """Commit ``ctx``'s stage's partial state (what was held in memory first)."""
        with self.lock:
            self.flush()
            name = ctx.stage + PARTIAL_SUFFIX
            meta = attrs.evolve(
                self.meta,
                inflight={**self.meta.inflight, ctx.stage: items},
                stage_costs=_add_cost(self.meta.stage_costs, ctx.stage, ctx.cost, ctx.tokens),
            )
            commit = self._save(
                {name: state},
                types={name: type},
                label=name,
                cost=ctx.cost,
                tokens=ctx.tokens,
                message=f"partial: {ctx.stage}",
                meta=meta,
            )
            self._spent(ctx.stage, ctx.cost, ctx.tokens)
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
        return commit

    def save_items(
        self,
        ctx: StageContext,
        values: Mapping[str, Any],
        type: Any,
        cost: float,
        tokens: int,
        items: tuple[int, int],
    ) -> Commit:
        """Commit finished fan-out items of ``ctx``'s stage (one commit for all of them)."""
        with self.lock:
            self.flush()
            meta = attrs.evolve(
                self.meta,
                inflight={**self.meta.inflight, ctx.stage: items},
                stage_costs=_add_cost(self.meta.stage_costs, ctx.stage, cost, tokens),
            )
            label = list(values)[-1]
            commit = self._save(
                values,
                types=dict.fromkeys(values, type),
                label=label,
                cost=cost,
                tokens=tokens,
                message=f"{ctx.stage}: items {items[0]}/{items[1]}",
                meta=meta,
            )
            self._spent(ctx.stage, cost, tokens)
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
        return commit

    def _spent(self, stage: str, cost: float, tokens: int) -> None:
        self.cost = round(self.cost + cost, 9)
        self.tokens += tokens
        self.stage_costs = _add_cost(self.stage_costs, stage, cost, tokens)

    def mark_stale(self, reasons: Mapping[str, str], *, keep: bool) -> None:
        """Record the stale stages found at the start (re-run ones leave ``done``)."""
        with self.lock:
            assert self.job is not None
            done = self.meta.done if keep else tuple(d for d in self.meta.done if d not in reasons)
            meta = attrs.evolve(self.meta, done=done, stale=dict(reasons))
            what = ", ".join(f"{name} ({why})" for name, why in reasons.items())
            self._save(
                {},
                types={},
                message=f"stale, {'kept' if keep else 're-run'}: {what}"[:500],
                meta=meta,
            )

    def fail(
        self,
        exc: BaseException,
        stage: str,
        extra: Mapping[str, JSONValue] | None = None,
        running: Iterable[str] = (),
    ) -> None:
        """Record ``exc`` as the failure of ``stage``, after writing what is held in memory;
        then the run writes nothing more.  An interruption (Ctrl-C, cancellation) is
        recorded as such, naming the stages that were running.  Never raises: a problem
        recording is attached to ``exc`` as a note."""
        with self.lock:
            if self.job is None or self.closed:
                return
            if isinstance(exc, ConflictError):
                self.closed = True  # another writer moved the job: write nothing more
                return
            if isinstance(exc, CorruptObjectError | ObjectNotFoundError) and exc.stage is not None:
                # The stage whose stored value is damaged, not the one that was reading it.
                extra = {**(extra or {}), "damaged_stage": exc.stage, "read_by": stage}
                stage = exc.stage
            try:
                if self.pending:
                    self.flush()
                info: dict[str, JSONValue] = {**self._meta_json(self.meta), **(extra or {})}
                stopped = interruption(exc)
                error: BaseException | str = exc
                if stopped is not None:
                    names = [stage, *(s for s in running if s != stage)]
                    info["interrupted"] = True
                    info["error_type"] = exc.__class__.__name__
                    info["running_stages"] = list(names)
                    error = f"{stopped} during stage {', '.join(repr(s) for s in names)}"
                self.head = self.job.fail(error, stage=stage, meta=info)
                self.failure_recorded = True
                if self.pipeline.keep_last is not None:
                    prune_job(self.job, self.pipeline.keep_last)
            except BaseException as problem:
                exc.add_note(f"ckpt: could not record the failure: {problem}")
            finally:
                self.closed = True

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
        with self.lock:
            self.flush()
            job = self.job
            if job is None:
                return
            if self.head is None or self.head.status != STATUS_COMPLETED:
                if self.lease is not None:
                    self.lease.check()
                self.head = job.complete("pipeline completed", meta=self._meta_json(self.meta))
            self.closed = True
            policy = self.pipeline.on_success
            if policy == "keep" and self.pipeline.keep_last is not None:
                prune_job(job, self.pipeline.keep_last)
            elif policy == "final":
                prune_job(job, 1)
            elif policy == "delete":
                self.outputs.materialize()
                job.repo.delete_job(job.name)
