"""Point 10: every example runs green as a script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 300

pytestmark = pytest.mark.slow


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_novel_pipeline_cost_limit_crash_and_resume(tmp_path: Path) -> None:
    out = run("novel_pipeline.py", "--store", str(tmp_path / "s"))
    assert "stopped: job 'novel_fantasy_001': cost so far 6.5000 is over the limit" in out
    assert "crash while writing chapter 7" in out
    assert "resuming chapters after chapter 6" in out
    assert "ran sequential_generator, editor" in out
    assert "this run paid $6.00; the job's total is $20.00" in out


def test_progress_sse(tmp_path: Path) -> None:
    out = run("progress_sse.py", "--store", str(tmp_path / "s"))
    events = [line for line in out.splitlines() if line.strip().startswith("event:")]
    assert events[-1].split()[1] == "completed"
    assert "3/3 (100%)" in events[-1]


def test_video_workflow_flags(tmp_path: Path) -> None:
    out = run("video_workflow.py", "--demo", str(tmp_path / "demo"))
    assert "TimeoutError: API timeout in story_generator" in out
    assert "Next run resumes at stage story_generator." in out
    assert "done: ran story_generator, script_segmenter, character_designer, video_assembler" in out
    assert "done: ran video_assembler;" in out
    assert "03_story_generator.json" in out


def test_graph_executor(tmp_path: Path) -> None:
    out = run("graph_executor.py", "--store", str(tmp_path / "s"))
    assert "execution failed: connection reset while aggregating" in out
    assert "history cut before step" in out and ": True" in out
    assert "ran aggregate, report" in out
    assert "verify ok: True" in out


def test_planner_workflow(tmp_path: Path) -> None:
    out = run("planner_workflow.py", "--store", str(tmp_path / "s"))
    assert "ran node_08, node_09, node_10, node_11, node_12" in out
    assert "(after node_10): ran node_11, node_12" in out
    assert "load refused: object" in out and "is corrupt" in out
    assert "verify: ok=False, problems: ['corrupt-object']" in out
    assert "verify after the re-run: ok=True" in out


def test_agent_run(tmp_path: Path) -> None:
    out = run("agent_run.py", "--store", str(tmp_path / "s"))
    assert "worker lost at step 3; status failed" in out
    assert "status completed, step 5, 15 messages" in out
    assert "run-123-alt forked from run-123" in out
    assert "cleaned: ('scratch',)" in out
    assert "the imported copy restores the same state" in out
