"""Helpers for the pipeline tests: running and killing a child pipeline process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("_child.py")
#: How long a child may take to reach its blocking point (a safety net, not a measurement).
START_TIMEOUT = 120.0


def run_child(store: Path, workdir: Path, mode: str) -> dict[str, Any]:
    """Run the child pipeline to completion; return what it printed."""
    done = subprocess.run(
        [sys.executable, str(CHILD), str(store), str(workdir), mode],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def kill_child_at(store: Path, workdir: Path, mode: str, point: str) -> None:
    """Start the child, wait until it reaches ``point`` (a stage or ``stage:item``), SIGKILL it."""
    (workdir / "block").write_text(point)
    marker = workdir / "started"
    marker.unlink(missing_ok=True)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(store), str(workdir), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not marker.exists():
            if child.poll() is not None:
                _, err = child.communicate()
                raise AssertionError(f"child exited with {child.returncode}: {err.decode()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"child never reached {point}")
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()
        if child.stderr:
            child.stderr.close()
    (workdir / "block").unlink()


def read_log(workdir: Path) -> list[str]:
    """Stage (and item) starts logged so far, then clear the log."""
    path = workdir / "log"
    lines = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines
