"""The LangGraph example runs green as a script and shows what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langgraph_agent.py"

pytestmark = pytest.mark.slow


def test_interrupt_resume_fork_and_rollback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--store", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "interrupted at ('approve',)" in out
    assert "resumed, the agent says: It is 18 °C and light rain in Paris." in out
    assert "forked: the agent now says: Understood, I won't look it up." in out
    assert "branches: fork-" in out and ", main - current: fork-" in out
    assert "the graph waits at ('approve',)" in out
    assert "continued from there: Understood, I won't look it up." in out
    assert "verify: ok; gc deleted 0 objects" in out
    assert out.rstrip().endswith("verify: ok")
