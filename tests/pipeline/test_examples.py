"""Point 10: every example runs green as a script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 300

pytestmark = pytest.mark.slow


def run(script: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=cwd,
        env=env,
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
    assert "load refused: job 'plan-001', commit " in out and "is corrupt" in out
    assert "verify: ok=False, problems: ['corrupt-object']" in out
    assert "verify after the re-run: ok=True" in out


def test_agent_run(tmp_path: Path) -> None:
    out = run("agent_run.py", "--store", str(tmp_path / "s"))
    assert "worker lost at step 3; status failed" in out
    assert "status completed, step 5, 15 messages" in out
    assert "run-123-alt forked from run-123" in out
    assert "cleaned: ('scratch',)" in out
    assert "the imported copy restores the same state" in out


def test_fanout_novel_killed_resumed_and_edited(tmp_path: Path) -> None:
    out = run("fanout_novel.py", "--store", str(tmp_path / "s"))
    killed = re.search(r"killed with (\d+)/40 chapters saved", out)
    assert killed is not None and 15 <= int(killed.group(1)) < 40
    assert re.search(r"refused: job 'saga-001' is being run by pid \d+ on .*, since ", out)
    resumed = re.search(r"resumed: (\d+) chapters written now, (\d+) loaded", out)
    assert resumed is not None
    assert int(resumed.group(1)) == 40 - int(killed.group(1))
    assert "no chapter paid twice" in out
    assert "stale: outline (version of 'outline' changed ('1' -> '2'))" in out
    assert "stale: chapters (input 'outline' is stale)" in out
    assert "chapters rewritten: 1, loaded: 39" in out


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_runs_with_no_arguments(script: str, tmp_path: Path) -> None:
    """A new user's first try: `python examples/X.py`, from any directory; the temporary
    store it makes is gone when it ends, and nothing is left in the directory."""
    temp, work = tmp_path / "tmp", tmp_path / "work"
    temp.mkdir()
    work.mkdir()
    run(script, cwd=work, env={**os.environ, "TMPDIR": str(temp)})
    assert sorted(p.name for p in temp.iterdir()) == []
    assert sorted(p.name for p in work.iterdir()) == []
