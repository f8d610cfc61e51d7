"""The demo pipeline of ``ckpt demo``: a small "novel" job run by the stage runner.

Five stages (``outline``, ``characters``, ``chapters``, ``edit``,
``publish``) stand for expensive model calls: each returns a small value
built from the stages before it and reports a made-up cost and token count
through :class:`~ckpt.pipeline.stages.StageResult`.  :func:`run_novel` runs them with
:class:`~ckpt.pipeline.runner.Pipeline`, so the demo shows the real thing: a stage
already checkpointed at the job's HEAD is skipped and loaded, every other
one is saved as soon as it finishes, and a crash is recorded so that
``ckpt status`` can say where the next run resumes.

Nothing here prints; the CLI narrates the steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ckpt.objects.ids import CommitId
from ckpt.pipeline.listing import job_progress
from ckpt.pipeline.runner import Pipeline
from ckpt.pipeline.runstate import StageEvent
from ckpt.pipeline.stages import Stage, StageResult
from ckpt.repository import Repository

STAGES = ("outline", "characters", "chapters", "edit", "publish")
BRIEF = {"title": "The Lighthouse at Vell", "genre": "gothic mystery", "chapters": 3}

# Made-up prices of each stage: (cost in dollars, tokens).
STAGE_COSTS = {
    "outline": (0.04, 1_250),
    "characters": (0.07, 2_180),
    "chapters": (1.32, 41_600),
    "edit": (0.38, 12_400),
    "publish": (0.01, 300),
}

Value = dict[str, Any]


class SimulatedCrash(RuntimeError):
    """The failure the demo injects (standing in for an API timeout)."""


@attrs.frozen
class StageRun:
    """One stage of a run: saved (with its commit) or skipped because it was checkpointed."""

    stage: str
    skipped: bool
    cost: float = 0.0
    tokens: int = 0
    commit: CommitId | None = None


@attrs.frozen
class NovelRun:
    """What a run did: its stages in order, and how it ended."""

    stages: tuple[StageRun, ...]
    failed_stage: str | None = None
    error: str | None = None

    @property
    def completed(self) -> bool:
        return self.failed_stage is None

    @property
    def cost(self) -> float:
        return round(sum(run.cost for run in self.stages), 6)


def _priced(stage: str, value: Any) -> StageResult[Any]:
    cost, tokens = STAGE_COSTS[stage]
    return StageResult(value, cost=cost, tokens=tokens)


def novel_pipeline(
    *,
    style: str = "lyrical",
    crash_at: str | None = None,
    on_checkpoint: Callable[[StageEvent], object] | None = None,
) -> Pipeline:
    """The five-stage novel pipeline; with ``crash_at`` that stage raises SimulatedCrash."""

    def check(stage: str) -> None:
        if stage == crash_at:
            raise SimulatedCrash("API timeout after 120 s (simulated)")

    def outline(input: Value) -> StageResult[Value]:
        check("outline")
        titles = ["The Light", "The Reply", "The Storm"][: int(input["chapters"])]
        return _priced("outline", {"title": input["title"], "chapters": titles, "style": style})

    def characters(outline: Value) -> StageResult[list[Value]]:
        check("characters")
        cast = [
            {"name": "Ida Marr", "role": "keeper's daughter", "wants": "to leave the island"},
            {"name": "Tomas Marr", "role": "the keeper", "wants": "to keep the lamp lit"},
            {"name": "The Reply", "role": "an answering light", "wants": "unknown"},
        ]
        return _priced("characters", cast)

    def chapters(outline: Value, characters: list[Value]) -> StageResult[list[Value]]:
        check("chapters")
        cast = ", ".join(person["name"] for person in characters)
        written = [
            {"title": title, "words": 2_400 + 350 * i, "cast": cast}
            for i, title in enumerate(outline["chapters"])
        ]
        return _priced("chapters", written)

    def edit(chapters: list[Value]) -> StageResult[Value]:
        check("edit")
        factor = 0.8 if style == "terse" else 0.95
        edited = [{"title": ch["title"], "words": int(ch["words"] * factor)} for ch in chapters]
        notes = ["tighten the storm scene"] if style == "terse" else ["keep the slow opening"]
        return _priced("edit", {"style": style, "chapters": edited, "notes": notes})

    def publish(outline: Value, edit: Value) -> StageResult[Value]:
        check("publish")
        words = sum(ch["words"] for ch in edit["chapters"])
        return _priced("publish", {"title": outline["title"], "words": words, "format": "epub"})

    functions = (outline, characters, chapters, edit, publish)
    return Pipeline(
        [Stage.from_function(fn) for fn in functions],
        input_type=Value,
        on_checkpoint=on_checkpoint,
    )


def run_novel(
    repo: Repository,
    job_name: str,
    *,
    crash_at: str | None = None,
    style: str = "lyrical",
    on_stage: Callable[[StageRun], None] | None = None,
) -> NovelRun:
    """Run (or resume) the novel pipeline as job ``job_name`` of ``repo``.

    Stages the job already has at HEAD are skipped and reported first.  With
    ``crash_at`` that stage fails with SimulatedCrash: the runner records the
    failure in the job, every stage saved before it stays checkpointed, and
    this function returns the failed run instead of raising.  ``on_stage``
    is called for each stage, skipped or run, as it happens.
    """
    job = repo.job(job_name)
    done = job_progress(job).stages if job.exists else ()
    runs: list[StageRun] = []

    def report(run: StageRun) -> None:
        runs.append(run)
        if on_stage is not None:
            on_stage(run)

    def saved(event: StageEvent) -> None:
        commit = event.commit
        if commit is not None:
            report(StageRun(event.stage, False, commit.cost, commit.tokens, commit.id))

    for stage in STAGES:
        if stage in done:
            report(StageRun(stage, skipped=True))
    pipeline = novel_pipeline(style=style, crash_at=crash_at, on_checkpoint=saved)
    try:
        if job.exists:
            pipeline.run(job_name, store=repo)
        else:
            pipeline.run(job_name, BRIEF, store=repo)
    except SimulatedCrash as exc:
        return NovelRun(tuple(runs), failed_stage=crash_at, error=str(exc))
    return NovelRun(tuple(runs))
