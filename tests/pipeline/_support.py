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


def read_log(workdir: Path, *, keep: bool = False) -> list[str]:
    """Stage (and item) starts logged so far, then clear the log (unless ``keep``)."""
    path = workdir / "log"
    lines = path.read_text().split() if path.exists() else []
    if not keep:
        path.unlink(missing_ok=True)
    return lines


FANOUT_CHILD = Path(__file__).with_name("_fanout_child.py")


def start_blocked(
    store: Path | str, workdir: Path, block: list[str], options: dict[str, Any] | None = None
) -> subprocess.Popen[bytes]:
    """Start the fan-out child and return once it waits at one of the ``block`` points."""
    (workdir / "block").write_text("\n".join(block))
    marker = workdir / "started"
    marker.unlink(missing_ok=True)
    child = subprocess.Popen(
        [sys.executable, str(FANOUT_CHILD), str(store), str(workdir), json.dumps(options or {})],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: marker.exists(), "the child to reach " + ", ".join(block), child)
    except BaseException:
        stop(child, signal.SIGKILL)
        raise
    return child


def wait_for(predicate: Any, what: str, child: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``predicate`` until it holds (a safety-net timeout, not a measurement)."""
    deadline = time.monotonic() + START_TIMEOUT
    while not predicate():
        if child is not None and child.poll() is not None:
            _, err = child.communicate()
            raise AssertionError(f"child exited with {child.returncode}: {err.decode()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop(child: subprocess.Popen[bytes], sig: int) -> tuple[int, str]:
    """Send ``sig`` to the child, wait for it; return its exit code and stderr."""
    if child.poll() is None:
        os.kill(child.pid, sig)
    try:
        _, err = child.communicate(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate()
    return child.returncode, err.decode()


def fanout_process(
    store: Path | str, workdir: Path, options: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the fan-out child to its end (nothing blocks)."""
    (workdir / "block").unlink(missing_ok=True)
    return subprocess.run(
        [sys.executable, str(FANOUT_CHILD), str(store), str(workdir), json.dumps(options or {})],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def run_fanout_child(
    store: Path | str, workdir: Path, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the fan-out child to completion (nothing blocks); return what it printed."""
    done = fanout_process(store, workdir, options)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ckpt_status(store: Path | str, job: str, *, as_json: bool = False) -> Any:
    """What `ckpt status JOB` prints (parsed with ``as_json``), run as its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "ckpt", "--store", str(store), "status", job]
        + (["--json"] if as_json else []),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if as_json else done.stdout
