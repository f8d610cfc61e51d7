"""A pipeline run in a child process by the SIGKILL tests.

Usage: ``python _child.py STORE WORKDIR MODE``.  Each stage appends a line
to ``WORKDIR/log`` when it starts (and per item inside ``chapters``).  If
``WORKDIR/block`` names the stage (or ``chapters:N`` an item) being started,
the child writes ``WORKDIR/started`` and then waits forever, so that the
test can kill it mid-stage at a known point.  MODE chooses the checkpoint
policy.  On success it prints the result as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ckpt.pipeline.runner import Pipeline, StageContext
from ckpt.pipeline.stages import StageResult

STORE, WORKDIR, MODE = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
ITEMS = 20


def log(line: str) -> None:
    with open(WORKDIR / "log", "a") as handle:
        handle.write(line + "\n")
        handle.flush()


def started(point: str) -> None:
    log(point)
    block = WORKDIR / "block"
    if block.exists() and block.read_text().strip() == point:
        (WORKDIR / "started").write_text(point)
        while True:
            time.sleep(0.05)


def a(input: int) -> StageResult[int]:
    started("a")
    return StageResult(input + 1, cost=1.0, tokens=10)


def b(a: int) -> StageResult[int]:
    started("b")
    return StageResult(a * 2, cost=2.0, tokens=20)


def chapters(b: int, ctx: StageContext) -> list[int]:
    started("chapters")
    done: list[int] = ctx.partial(list[int], [])
    for item in range(len(done), ITEMS):
        started(f"chapters:{item}")
        done.append(b + item)
        ctx.checkpoint(done, cost=0.5, tokens=5, items_done=len(done), items_total=ITEMS)
    return done


def d(chapters: list[int]) -> StageResult[int]:
    started("d")
    return StageResult(sum(chapters), cost=4.0, tokens=40)


POLICIES = {
    "each": {},
    "every2": {"checkpoint_every": 2},
    "end-only": {"checkpoint_every": None, "checkpoint_interval": 3600.0},
}

pipeline = Pipeline([a, b, chapters, d], store=STORE, partial_every=5, **POLICIES[MODE])
result = pipeline.run("job", 1)
print(
    json.dumps(
        {
            "output": result.output,
            "cost": result.total_cost,  # the job's: every stage and item counted once
            "tokens": result.total_tokens,
            "paid": result.cost,  # this run's
        }
    )
)
