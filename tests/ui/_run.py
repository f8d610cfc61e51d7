"""A pipeline run in a process of its own by the dashboard's tests, one stage at a time.

Usage: ``python _run.py STORE JOB WORKDIR``.  Stage N (1-based) of
:data:`STAGES` starts only once the file ``WORKDIR/go-N`` exists, so that a
test decides when the run advances and can watch the dashboard follow it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ckpt.pipeline.runner import Pipeline
from ckpt.pipeline.stages import StageResult

STORE, JOB, WORKDIR = sys.argv[1], sys.argv[2], Path(sys.argv[3])


def wait_for(step: int) -> None:
    while not (WORKDIR / f"go-{step}").exists():
        time.sleep(0.02)


def outline(input: str) -> StageResult[dict[str, object]]:
    wait_for(1)
    return StageResult({"title": input, "chapters": 3}, cost=0.12, tokens=1800)


def characters(outline: dict[str, object]) -> StageResult[list[str]]:
    wait_for(2)
    return StageResult(["Ida", "Tomas"], cost=0.31, tokens=4100)


def chapters(characters: list[str]) -> StageResult[list[str]]:
    wait_for(3)
    return StageResult([f"Chapter about {name}" for name in characters], cost=1.4, tokens=22000)


def edit(chapters: list[str]) -> StageResult[list[str]]:
    wait_for(4)
    return StageResult([text.upper() for text in chapters], cost=0.4, tokens=6000)


STAGES = (outline, characters, chapters, edit)

if __name__ == "__main__":
    Pipeline(list(STAGES), store=STORE).run(JOB, "The Long Road")
