"""Preparing a run: where it starts, what it keeps, what is stale.

``prepare`` applies ``branch`` / ``at`` / ``resume_from``, then resumes the
run found at HEAD (skipping its done stages) or starts a new one by saving
the input.  On resume it judges which done stages are stale (see
:mod:`ckpt.pipeline.fingerprint`) and, as the run's ``stale`` policy says,
re-runs them (``"rerun"``), keeps them with a :class:`StaleStageWarning`
(``"keep"``) or refuses to run (``"error"``, :class:`StaleStagesError`).
Re-run or kept, the stale stages and the reasons are recorded in one
commit before any stage runs, so that ``ckpt status`` shows them.
"""

from __future__ import annotations

import builtins
import logging
import types
import typing
import uuid
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ckpt.errors import CkptError, NotFoundError, SerializationError
from ckpt.history import names
from ckpt.history.job import Job
from ckpt.history.refs import now
from ckpt.maintenance.retention import set_keep_last
from ckpt.objects.model import Commit
from ckpt.pipeline.fingerprint import find_stale
from ckpt.pipeline.lease import Lease
from ckpt.pipeline.progress import RunMeta, run_commit
from ckpt.pipeline.runstate import Outputs, Run
from ckpt.pipeline.stages import is_internal_entry
from ckpt.values import serialize

if TYPE_CHECKING:
    from ckpt.pipeline.runner import Pipeline

StalePolicy = Literal["rerun", "keep", "error"]
STALE_POLICIES = ("rerun", "keep", "error")
MISSING: Any = object()
log = logging.getLogger("ckpt.pipeline")


class InputMismatchError(CkptError):
    """A job was resumed with an input other than the one it was started with."""


class MissingInputError(NotFoundError):
    """A run was started without the input its first stages need."""


class StaleStagesError(CkptError):
    """Done stages are stale and the run was told ``stale="error"``; ``stale`` says why."""

    def __init__(self, job: str, stale: Mapping[str, str]) -> None:
        self.job = job
        self.stale = dict(stale)
        listed = "; ".join(f"{name} ({why})" for name, why in stale.items())
        count = f"{len(stale)} stage{'' if len(stale) == 1 else 's'}"
        super().__init__(
            f"job {job!r}: {count} stale: {listed}; run with stale='rerun' to re-run "
            "them, or stale='keep' to keep them"
        )


class StaleStageWarning(UserWarning):
    """Stale stages were kept (``stale="keep"``): their outputs may not match the code."""


@attrs.frozen
class RunOptions:
    """How one call of ``Pipeline.run`` wants its run."""

    store: Any
    restart: bool
    resume_from: str | None
    at: str | None
    branch: str | None
    no_checkpoint: bool
    cost_limit: float | None
    stale: StalePolicy
    wait: bool | float
    concurrency: int


def prepare(
    pipeline: Pipeline, job: Job, input: Any, options: RunOptions, lease: Lease | None
) -> Run:
    """Apply branch / at / resume_from, then resume the run at HEAD or start a new one."""
    move(pipeline, job, options)
    found = None if options.restart or not job.exists else run_commit(job)
    if found is not None and job.is_expired:
        raise CkptError(
            f"job {job.name!r} has expired (its TTL passed); pass restart=True to start over"
        )
    if found is None:
        return start(pipeline, job, input, options, lease)
    commit, meta = found
    head = job.head
    assert head is not None
    if input is not MISSING:
        given = _input_bytes(pipeline, job, input)
        if given != job.load_raw(pipeline.input_name, at=commit.id):
            raise InputMismatchError(
                f"job {job.name!r} was started with another input; use a new job id, or "
                "pass restart=True to start it over with this input"
            )
    meta = attrs.evolve(
        meta,
        stages=pipeline.stage_names,
        done=tuple(name for name in meta.done if name in pipeline.stage_names),
        invoked=now(),
        concurrency=options.concurrency,
    )
    run = Run(pipeline, job.name, job, meta, cost_limit=options.cost_limit, lease=lease)
    run.set_head(head)
    run.start_cost, run.start_tokens = head.total_cost, head.total_tokens
    run.cost = round(head.total_cost - meta.base_cost, 9)
    run.tokens = head.total_tokens - meta.base_tokens
    run.outputs = Outputs(job, head.id, pipeline.output_types())
    _judge_stale(pipeline, run, options.stale)
    for name in (pipeline.input_name, *run.done):
        run.outputs.add_stored(name)
    apply_settings(pipeline, job, new_run=False)
    return run


def _judge_stale(pipeline: Pipeline, run: Run, policy: StalePolicy) -> None:
    meta = run.meta
    reasons = find_stale(
        pipeline.stage_names, meta.done, meta.fingerprints, run.entries, pipeline.shapes()
    )
    recorded = {name: why for name, why in meta.stale.items() if name in meta.done}
    run.stale = dict(reasons)
    if not reasons:
        if recorded:
            run.mark_stale({}, keep=True)  # kept stale stages are fresh again
        return
    listed = "; ".join(f"{name}: {why}" for name, why in reasons.items())
    if policy == "error":
        raise StaleStagesError(run.job_name, reasons)
    if policy == "keep":
        warnings.warn(
            f"job {run.job_name!r}: keeping stale stages ({listed})", StaleStageWarning, 3
        )
        if reasons != recorded:
            run.mark_stale(reasons, keep=True)
        return
    log.info("job %r: re-running stale stages (%s)", run.job_name, listed)
    run.mark_stale(reasons, keep=False)
    run.done = [name for name in run.done if name not in reasons]


def check_input(pipeline: Pipeline, job: str, input: Any) -> None:
    """Raise MissingInputError if ``input`` is None where the stages need a value."""
    if input is None and not _admits_none(pipeline.input_type):
        raise MissingInputError(
            f"job {job!r}: no input given (its stages need "
            f"{_describe(pipeline.input_type)} as {pipeline.input_name!r})"
        )


def _input_bytes(pipeline: Pipeline, job: Job, input: Any) -> bytes:
    """The input's canonical bytes; a missing input (None where the stages need a value) is
    reported as missing, not as a value that cannot be serialized."""
    check_input(pipeline, job.name, input)
    try:
        return serialize.dumps(input, as_type=pipeline.input_type)
    except SerializationError as exc:
        raise SerializationError(f"the input of job {job.name!r}: {exc}") from exc


def _admits_none(type: Any) -> bool:
    """True if None is a value of ``type`` (unknown, Any, object, None or an optional)."""
    if type in (None, Any, object, builtins.type(None)):
        return True
    if typing.get_origin(type) in (typing.Union, types.UnionType):
        return builtins.type(None) in typing.get_args(type)
    return False


def _describe(type: Any) -> str:
    name = type.__qualname__ if isinstance(type, builtins.type) else serialize.type_name(type)
    return f"a {name}"


def start(
    pipeline: Pipeline, job: Job, input: Any, options: RunOptions, lease: Lease | None
) -> Run:
    """A new run: the input saved first (dropping what earlier runs left inside stages)."""
    if input is MISSING:
        if not (job.exists and job.has_stage(pipeline.input_name)):
            raise MissingInputError(
                f"job {job.name!r} has no saved run to resume: pass an input to start one"
            )
        input = job.load(pipeline.input_name, pipeline.input_type)
    else:
        _input_bytes(pipeline, job, input)
    head = job.head
    moment = now()
    meta = RunMeta(
        run=uuid.uuid4().hex[:12],
        stages=pipeline.stage_names,
        started=moment,
        invoked=moment,
        base_cost=0.0 if head is None else head.total_cost,
        base_tokens=0 if head is None else head.total_tokens,
        concurrency=options.concurrency,
    )
    run = Run(pipeline, job.name, job, meta, cost_limit=options.cost_limit, lease=lease)
    run.start_cost, run.start_tokens = meta.base_cost, meta.base_tokens
    if lease is not None:
        lease.check()
    leftovers = [] if head is None else [n for n in job.stages(head.id) if is_internal_entry(n)]
    commit = job.save_many(
        {pipeline.input_name: input},
        types={pipeline.input_name: pipeline.input_type},
        drop=leftovers,
        message=f"run {meta.run} started",
        meta=run._meta_json(meta),
    )
    run.set_head(commit)
    run.meta = meta
    run.outputs.set(pipeline.input_name, input)
    apply_settings(pipeline, job, new_run=True)
    return run


def apply_settings(pipeline: Pipeline, job: Job, *, new_run: bool) -> None:
    record = job.record
    if pipeline.labels and any(record.labels.get(k) != v for k, v in pipeline.labels.items()):
        job.set_labels(pipeline.labels)
    if new_run and (pipeline.ttl is not None or record.ttl_seconds is not None):
        job.set_ttl(pipeline.ttl)
    if pipeline.keep_last is not None and record.keep_last != pipeline.keep_last:
        set_keep_last(job, pipeline.keep_last)


def move(pipeline: Pipeline, job: Job, options: RunOptions) -> None:
    if options.resume_from is not None and options.resume_from not in pipeline.stage_names:
        raise CkptError(
            f"no stage {options.resume_from!r} in this pipeline "
            f"(stages: {', '.join(pipeline.stage_names)})"
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
        target = before_stage(pipeline, job, options.resume_from, target)
    if new_branch is not None:
        job.checkout(target.id, new_branch=new_branch)
    elif target.id != head.id:
        job.checkout(target.id)


def before_stage(pipeline: Pipeline, job: Job, stage: str, start: Commit) -> Commit:
    """The newest commit of the run at ``start`` where neither ``stage`` nor a stage after it
    is done or in flight."""
    later = set(pipeline.stage_names[pipeline.stage_names.index(stage) :])
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
        if not later.intersection(meta.done) and not later.intersection(meta.inflight):
            return commit
    raise CkptError(
        f"job {job.name!r}: the checkpoints before stage {stage!r} were pruned "
        "(keep_last); pass restart=True to run it again from the start"
    )
