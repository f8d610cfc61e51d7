"""A pipeline with a parallel pair and a fan-out, run in a child process by the tests.

Usage: ``python _fanout_child.py STORE WORKDIR [OPTIONS-JSON]``.  Stages ``a``
and ``b`` take only the input and run side by side (``max_concurrency=2``);
``chapters`` takes both and fans out over ``ITEMS`` items, four at a time;
``book`` joins them.  Each stage (and item, as ``item:N``) appends a line
to ``WORKDIR/log`` when it starts.  ``WORKDIR/block`` lists points (one a
line; ``item:N+`` means every item from N on) at which the child writes
``WORKDIR/started`` and waits until the rule is removed, so that a test can
kill or interrupt it at a known place.  OPTIONS-JSON is passed to ``Pipeline.run``
(plus ``lease_seconds`` for the pipeline).  On success it prints the result
as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ckpt.pipeline.context import StageContext
from ckpt.pipeline.runner import Pipeline
from ckpt.pipeline.stages import StageResult

STORE, WORKDIR = sys.argv[1], Path(sys.argv[2])
OPTIONS = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
ITEMS = 40


def log(line: str) -> None:
    with open(WORKDIR / "log", "a") as handle:
        handle.write(line + "\n")
        handle.flush()


def blocks(point: str) -> bool:
    path = WORKDIR / "block"
    if not path.exists():
        return False
    for rule in path.read_text().split():
        if rule == point:
            return True
        ranged = rule.endswith("+") and rule.startswith("item:") and point.startswith("item:")
        if ranged and int(point[5:]) >= int(rule[5:-1]):
            return True
    return False


def started(point: str) -> None:
    log(point)
    if blocks(point):
        (WORKDIR / "started").write_text(point)
        while blocks(point):  # until killed, or the test removes the block
            time.sleep(0.05)


def a(input: int) -> StageResult[int]:
    started("a")
    return StageResult(input + 1, cost=1.0, tokens=10)


def b(input: int) -> StageResult[int]:
    started("b")
    return StageResult(input * 2, cost=2.0, tokens=20)


def write(n: int) -> StageResult[str]:
    started(f"item:{n}")
    return StageResult(f"chapter {n}", cost=0.25, tokens=5)


def chapters(a: int, b: int, ctx: StageContext) -> list[str]:
    started("chapters")
    written: list[str] = ctx.map(write, range(ITEMS), max_concurrency=4)
    return written


def book(chapters: list[str]) -> StageResult[int]:
    started("book")
    return StageResult(len(chapters), cost=4.0, tokens=40)


lease_seconds = OPTIONS.pop("lease_seconds", 60.0)
pipeline = Pipeline(
    [a, b, chapters, book], store=STORE, max_concurrency=2, lease_seconds=lease_seconds
)
result = pipeline.run("job", 1, **OPTIONS)
print(
    json.dumps({"output": result.output, "cost": result.total_cost, "tokens": result.total_tokens})
)
