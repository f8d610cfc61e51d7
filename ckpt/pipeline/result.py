"""What a pipeline run returns: :class:`RunResult`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ckpt.objects.model import Commit


@attrs.frozen
class RunResult:
    """The outcome of a run (or, from ``Pipeline.state``, of the job as it stands).

    ``stale`` maps each stage this run found stale to the reason (re-run,
    or kept with ``stale="keep"``); ``stage_costs`` each stage's cost and
    tokens in this run, fan-out items and partial checkpoints included.

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
    stale: Mapping[str, str] = attrs.field(factory=dict)
    stage_costs: Mapping[str, tuple[float, int]] = attrs.field(factory=dict)
    total_cost: float = 0.0
    total_tokens: int = 0

    def __getitem__(self, stage: str) -> Any:
        return self.outputs[stage]

    @property
    def output(self) -> Any:
        """The last stage's output."""
        return self.outputs[self.stages[-1]]
