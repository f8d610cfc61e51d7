"""Agent runs: conversation messages, tool calls, context and step, checkpointed every step.

An :class:`AgentRun` is a job whose stage ``agent`` holds an
:class:`AgentState`.  Each ``save`` is one checkpoint with a sequence number
(the commit's ``seq``), a step name, optional checkpoint tags, cost and
tokens.  ``restore()`` gives the newest state, ``restore(at)`` the state at
any checkpoint (a commit id or prefix, tag, or ``HEAD~N``), and ``fork``
starts a new run from any checkpoint, remembering where it came from.
``complete()`` and ``fail(error)`` mark the run; a TTL makes it expire
``ttl`` after its newest checkpoint.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

import attrs

from ckpt.errors import CkptError
from ckpt.history.job import Job
from ckpt.maintenance.retention import prune_job, set_keep_last
from ckpt.objects.model import Commit
from ckpt.pipeline.runner import Store, open_store
from ckpt.values.serialize import JSONValue

AGENT_STAGE = "agent"


@attrs.frozen
class Message:
    """One conversation message (OpenAI-style fields)."""

    role: str
    content: str
    name: str | None = None
    tool_call_id: str | None = None


@attrs.define
class ToolCall:
    """A tool the agent called: its call id, tool name, arguments and (once known) result."""

    id: str
    name: str
    arguments: dict[str, Any] = attrs.field(factory=dict)
    result: Any = None


@attrs.define
class AgentState:
    """Everything an agent needs to continue: step, messages, tool calls, context, free state."""

    step: int = 0
    messages: list[Message] = attrs.field(factory=list)
    tool_calls: list[ToolCall] = attrs.field(factory=list)
    context: dict[str, Any] = attrs.field(factory=dict)
    state: dict[str, Any] = attrs.field(factory=dict)

    def add_message(
        self, role: str, content: str, *, name: str | None = None, tool_call_id: str | None = None
    ) -> Message:
        message = Message(role, content, name, tool_call_id)
        self.messages.append(message)
        return message

    def add_tool_call(
        self, id: str, name: str, arguments: dict[str, Any] | None = None, result: Any = None
    ) -> ToolCall:
        call = ToolCall(id, name, dict(arguments or {}), result)
        self.tool_calls.append(call)
        return call


@attrs.frozen
class AgentCheckpoint:
    """A restored checkpoint: the state and the commit that holds it."""

    run_id: str
    state: AgentState
    commit: Commit

    @property
    def checkpoint_id(self) -> str:
        return self.commit.id

    @property
    def sequence(self) -> int:
        return self.commit.seq

    @property
    def step_name(self) -> str:
        return self.commit.message

    @property
    def tags(self) -> list[str]:
        tags = self.commit.meta.get("tags")
        return [str(t) for t in tags] if isinstance(tags, list) else []


class AgentRun:
    """Checkpoints of one agent run (a job named ``run_id``).

    ``ttl`` (seconds) is renewed by each save: the run expires that long
    after its newest checkpoint.  ``keep_last`` keeps only the newest N
    checkpoints: each save cuts the history behind them (as
    ``Pipeline(keep_last=N)`` does), and gc collects what was cut.
    ``min_interval`` makes ``save`` skip (returning None) when the last save
    was less than that many seconds ago, unless ``force=True``.
    """

    def __init__(
        self,
        store: Store | None,
        run_id: str,
        *,
        ttl: float | dt.timedelta | None = None,
        keep_last: int | None = None,
        min_interval: float = 0.0,
    ) -> None:
        self.repo = open_store(store)
        self.job: Job = self.repo.job(run_id)
        self.run_id = self.job.name
        self.ttl = ttl
        self.keep_last = keep_last
        self.min_interval = min_interval
        self._last_save: float | None = None

    def __repr__(self) -> str:
        return f"AgentRun({self.run_id!r})"

    def save(
        self,
        state: AgentState,
        *,
        step_name: str = "",
        cost: float = 0.0,
        tokens: int = 0,
        tags: Iterable[str] = (),
        force: bool = False,
    ) -> Commit | None:
        """Checkpoint ``state``; None if skipped by ``min_interval``.  Durable on return."""
        moment = time.monotonic()
        if (
            not force
            and self._last_save is not None
            and moment - self._last_save < self.min_interval
        ):
            return None
        first = not self.job.exists
        tag_list: list[JSONValue] = [str(tag) for tag in sorted(set(tags))]
        commit = self.job.save(
            AGENT_STAGE,
            state,
            type=AgentState,
            cost=cost,
            tokens=tokens,
            message=step_name or f"step {state.step}",
            meta={"step": state.step, "tags": tag_list},
        )
        self._last_save = moment
        if self.ttl is not None:
            self.job.set_ttl(self.ttl)
        self._prune(first)
        return commit

    def _prune(self, first: bool = False) -> None:
        if self.keep_last is None:
            return
        if first:
            set_keep_last(self.job, self.keep_last)
        prune_job(self.job, self.keep_last)

    def restore(self, at: str | None = None) -> AgentState | None:
        """The state at checkpoint ``at`` (default: the newest); None if the run has none."""
        found = self.checkpoint(at)
        return None if found is None else found.state

    def checkpoint(self, at: str | None = None) -> AgentCheckpoint | None:
        """The checkpoint ``at`` (default newest) with its commit; None if the run has none."""
        self.job.refresh()
        if at is None and (not self.job.exists or not self.job.has_stage(AGENT_STAGE)):
            return None
        commit = self.job.resolve(at)
        state = self.job.load(AGENT_STAGE, AgentState, at=commit.id)
        return AgentCheckpoint(self.run_id, state, commit)

    def checkpoints(self, limit: int | None = None) -> list[Commit]:
        """The run's checkpoints (and status commits), newest first."""
        self.job.refresh()
        return self.job.log(limit=limit) if self.job.exists else []

    def fork(self, run_id: str, at: str | None = None) -> AgentRun:
        """A new run starting from checkpoint ``at`` (default newest) of this one."""
        self.job.fork(run_id, at=at)
        return AgentRun(
            self.repo,
            run_id,
            ttl=self.ttl,
            keep_last=self.keep_last,
            min_interval=self.min_interval,
        )

    def complete(self, message: str = "", *, tags: Iterable[str] = ()) -> Commit:
        """Mark the run completed.  The completion is the newest checkpoint (what
        ``restore()`` and ``checkpoint()`` return): it carries the step and tags of the
        checkpoint before it (whose state it holds), plus ``tags``."""
        if not self.job.exists:
            raise CkptError(f"agent run {self.run_id!r} has no checkpoints to mark completed")
        commit = self.job.complete(message, meta=self._status_meta(tags))
        self._prune()
        return commit

    def fail(self, error: BaseException | str, *, tags: Iterable[str] = ()) -> Commit:
        """Mark the run failed with ``error``; ``tags`` go on the failure checkpoint."""
        if not self.job.exists:
            raise CkptError(f"agent run {self.run_id!r} has no checkpoints to mark failed")
        commit = self.job.fail(error, meta=self._status_meta(tags))
        self._prune()
        return commit

    def _status_meta(self, tags: Iterable[str]) -> dict[str, JSONValue]:
        head = self.job.head
        step = None if head is None else head.meta.get("step")
        before = [] if head is None else head.meta.get("tags")
        merged = {str(tag) for tag in tags}
        if isinstance(before, list):
            merged.update(str(tag) for tag in before)
        tag_list: list[JSONValue] = [tag for tag in sorted(merged)]
        return {"step": step, "tags": tag_list}

    @property
    def status(self) -> str:
        self.job.refresh()
        return self.job.status

    @property
    def is_expired(self) -> bool:
        return self.job.is_expired

    def delete(self) -> None:
        """Delete the run's refs (its objects go at the next gc)."""
        self.repo.delete_job(self.run_id)
