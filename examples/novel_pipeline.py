"""A novel pipeline (seed 000): cost limit, a real crash, resume, progress and cleanup.

Run it::

    python examples/novel_pipeline.py [--store DIR]

What happens:

1. The pipeline starts with a cost limit of $6: it stops before the stage
   that would exceed it, keeping every checkpoint (``CostLimitExceeded``).
2. The limit is raised, and the run goes on in a child process that is
   killed with SIGKILL while writing chapter 7 (a real crash, mid-stage).
3. The next run resumes: finished stages are skipped, the chapter stage
   continues from its last in-stage checkpoint, and the cost is counted once.
4. Progress, the job's state and old-job cleanup are shown.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import attrs

import ckpt
from ckpt.maintenance.retention import apply_retention

CRASH_AT_CHAPTER = "NOVEL_CRASH_AT_CHAPTER"


@attrs.frozen
class ProductionBrief:
    title: str
    genre: str
    chapters: int


@attrs.frozen
class World:
    name: str
    rules: list[str]


@attrs.frozen
class Character:
    name: str
    role: str


def brief_interpreter(input: ProductionBrief) -> ckpt.StageResult[str]:
    return ckpt.StageResult(f"A {input.genre} novel called {input.title}", cost=0.5, tokens=800)


def world_architect(brief_interpreter: str) -> ckpt.StageResult[World]:
    world = World("Vel", ["magic costs memory", "the sea remembers"])
    return ckpt.StageResult(world, cost=2.0, tokens=4000)


def character_architect(world_architect: World) -> ckpt.StageResult[list[Character]]:
    cast = [Character("Ana", "cartographer"), Character("Oru", "tide-keeper")]
    return ckpt.StageResult(cast, cost=4.0, tokens=6000)


def sequential_generator(
    input: ProductionBrief,
    world_architect: World,
    character_architect: list[Character],
    ctx: ckpt.StageContext,
) -> list[str]:
    """Writes chapter after chapter, checkpointing every 2 chapters inside the stage."""
    chapters: list[str] = ctx.partial(list[str], [])
    if chapters:
        print(f"    resuming chapters after chapter {len(chapters)}")
    for number in range(len(chapters) + 1, input.chapters + 1):
        if os.environ.get(CRASH_AT_CHAPTER) == str(number):
            print(f"    ** crash while writing chapter {number} **", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        hero = character_architect[number % len(character_architect)].name
        chapters.append(f"Chapter {number}: {hero} in {world_architect.name}")
        ctx.checkpoint(
            chapters, cost=1.25, tokens=2500, items_done=number, items_total=input.chapters
        )
    return chapters


def editor(sequential_generator: list[str]) -> ckpt.StageResult[str]:
    return ckpt.StageResult("\n".join(sequential_generator), cost=1.0, tokens=3000)


def show(event: ckpt.StageEvent) -> None:
    p = event.progress
    if event.kind == "checkpoint" and not event.partial:
        print(
            f"  [{p.percentage:5.1f}%] {event.stage} checkpointed "
            f"(${p.cost:.2f}, {p.tokens} tokens so far)"
        )


def make_pipeline(store: str, cost_limit: float | None) -> ckpt.Pipeline:
    return ckpt.Pipeline(
        [brief_interpreter, world_architect, character_architect, sequential_generator, editor],
        store=store,
        cost_limit=cost_limit,
        partial_every=2,
        labels={"genre": "fantasy"},
        on_checkpoint=show,
    )


BRIEF = ProductionBrief("The Tide Atlas", "fantasy", 10)
JOB = "novel_fantasy_001"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store directory (default: a new temporary one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the process that will crash
        make_pipeline(args.store, cost_limit=100.0).run(JOB)
        return
    store = args.store or tempfile.mkdtemp(prefix="novel-")
    if args.store is None:  # a temporary store goes when the example ends
        atexit.register(shutil.rmtree, store, ignore_errors=True)
    print(f"store: {store}")

    print("1. run with a $6.00 cost limit")
    pipeline = make_pipeline(store, cost_limit=6.0)
    try:
        pipeline.run(JOB, BRIEF)
    except ckpt.CostLimitExceeded as exc:
        print(f"  stopped: {exc}")

    print("2. raise the limit to $100 and go on in a child process that crashes")
    env = {**os.environ, CRASH_AT_CHAPTER: "7"}
    child = subprocess.run(
        [sys.executable, __file__, "--store", store, "--child"], env=env, check=False
    )
    assert child.returncode == -signal.SIGKILL, child.returncode
    progress = pipeline.progress(JOB)
    assert progress is not None
    print(
        f"  after the crash: {progress.completed_stages}/{progress.total_stages} stages, "
        f"{progress.current_stage} at item {progress.items_done}/{progress.items_total}, "
        f"${progress.cost:.2f} spent; can resume: {pipeline.can_resume(JOB)}"
    )

    print("3. resume")
    result = pipeline.run(JOB, cost_limit=100.0)
    print(f"  skipped {', '.join(result.skipped)}; ran {', '.join(result.ran)}")
    expected = 0.5 + 2.0 + 4.0 + 10 * 1.25 + 1.0
    print(
        f"  this run paid ${result.cost:.2f}; the job's total is ${result.total_cost:.2f} "
        f"(each stage and chapter paid once: ${expected:.2f})"
    )
    assert abs(result.total_cost - expected) < 1e-9
    assert 0 < result.cost < result.total_cost
    assert len(result["sequential_generator"]) == BRIEF.chapters

    print("4. progress, state and cleanup")
    final = pipeline.progress(JOB)
    assert final is not None and final.status == "completed"
    print(f"  {final.status}: {final.percentage:.0f}%, {final.tokens} tokens, ETA {final.eta}")
    state = pipeline.state(JOB)
    print(f"  brief reloaded from the store: {state['input']}")
    repo = ckpt.open(store)
    report = apply_retention(repo, older_than=dt.timedelta(days=30))
    print(f"  cleanup of jobs older than 30 days removed {len(report.deleted_jobs)} job(s)")
    print("done")


if __name__ == "__main__":
    main()
