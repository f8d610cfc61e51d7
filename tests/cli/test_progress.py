"""Progress of push, pull, clone, verify --full and gc: a bar on a terminal, JSON events with
--json, nothing when piped."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ckpt.cli import output as out
from ckpt.cli.progress import ProgressDisplay
from ckpt.history.job import Job
from ckpt.objects.progress import Meter
from ckpt.repository import Repository

from .conftest import Run, save_stages


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _screen(text: str) -> list[str]:
    """What a terminal shows: each line as its last redraw left it."""
    return [line.split("\r")[-1].rstrip() for line in text.split("\n")]


def test_a_bar_shows_objects_bytes_rate_and_eta() -> None:
    clock, stream = Clock(), io.StringIO()
    display = ProgressDisplay(stream, "bar", clock=clock, columns=200)
    counting = Meter(display, "counting objects")
    counting.advance(3)
    clock.now += 0.5
    counting.advance(4)
    assert _screen(stream.getvalue())[-1] == "Counting objects  7 objects, 14 objects/s"
    counting.finish()
    copying = Meter(display, "copying objects", total=300, bytes_total=3 << 20)
    copying.advance(0)
    clock.now += 2
    copying.advance(120, 1 << 20)
    assert _screen(stream.getvalue())[-1] == (
        "Copying objects   33% [######--------------]  120/300 objects, "
        "1.0 MiB of 3.0 MiB, 512.0 KiB/s, ETA 0:04"
    )
    clock.now += 0.01  # redrawn at most every 0.1 s
    copying.advance(1, 1)
    assert _screen(stream.getvalue())[-1].startswith("Copying objects   33% ")
    clock.now += 2
    copying.advance(179, (2 << 20) - 1)
    copying.finish()
    assert _screen(stream.getvalue()) == [
        "Counting objects  7 objects, done in 0:01",
        "Copying objects  100% [####################]  300/300 objects, "
        "3.0 MiB of 3.0 MiB, done in 0:04",
        "",
    ]


def test_json_events_keep_the_first_and_last_of_each_phase() -> None:
    clock, stream = Clock(), io.StringIO()
    display = ProgressDisplay(stream, "json", clock=clock)
    copying = Meter(display, "copying objects", total=8, bytes_total=800)
    copying.advance(0)
    for _ in range(8):
        clock.now += 0.125
        copying.advance(1, 100)
    copying.finish()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["done"], e["elapsed"], e["finished"]) for e in events] == [
        (0, 0.0, False),
        (4, 0.5, False),
        (8, 1.0, False),
        (8, 1.0, True),
    ]
    assert events[1] == {
        "event": "progress",
        "phase": "copying objects",
        "unit": "objects",
        "done": 4,
        "total": 8,
        "bytes": 400,
        "bytes_total": 800,
        "finished": False,
        "elapsed": 0.5,
        "rate": 800.0,
        "eta": 0.5,
    }


def _events(stderr: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stderr.splitlines()]
    assert all(e["event"] == "progress" for e in events)
    return events


def _finished(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["phase"]: e for e in events if e["finished"]}


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return tmp_path / "remote"


def test_push_pull_and_clone_report_progress_as_json(
    run: Run, novel: Job, repo: Repository, remote: Path, tmp_path: Path
) -> None:
    pushed = run("push", str(remote), "--json")
    assert pushed.exit_code == 0, pushed.output
    report = json.loads(pushed.stdout)
    events = _events(pushed.stderr)
    assert [e["phase"] for e in events if e["finished"]] == [
        "counting objects",
        "copying objects",
    ]
    copied = _finished(events)["copying objects"]
    objects = sum(1 for _ in repo.objects)
    assert (copied["done"], copied["total"]) == (objects, objects)
    assert copied["bytes"] == copied["bytes_total"] == report["bytes_copied"]
    assert _finished(events)["counting objects"]["done"] == objects
    novel.save("edit", {"text": "more"})
    pulled = run("--store", str(remote), "pull", str(repo.location), "--json")
    assert pulled.exit_code == 0, pulled.output
    assert _finished(_events(pulled.stderr))["copying objects"]["done"] == 3
    cloned = run("clone", str(remote), str(tmp_path / "clone"), "--json")
    assert cloned.exit_code == 0, cloned.output
    clone_copy = _finished(_events(cloned.stderr))["copying objects"]
    assert clone_copy["done"] == json.loads(cloned.stdout)["objects_copied"] == objects + 3


def test_without_a_terminal_or_json_there_is_no_progress(
    run: Run, novel: Job, remote: Path
) -> None:
    pushed = run("push", str(remote))
    assert pushed.exit_code == 0
    assert pushed.stderr == ""
    assert run("verify", "--full").stderr == ""
    assert run("gc").stderr == ""


def test_a_terminal_gets_a_bar(
    run: Run, novel: Job, repo: Repository, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(out, "is_terminal", lambda stream=None: stream is sys.stderr)
    pushed = run("push", str(remote))
    assert pushed.exit_code == 0
    objects = sum(1 for _ in repo.objects)
    screen = _screen(pushed.stderr)
    assert screen[0].startswith(f"Counting objects  {objects} objects, done in ")
    assert screen[1].startswith(
        f"Copying objects  100% [####################]  {objects}/{objects} objects, "
    )
    assert screen[2] == ""
    verified = run("verify", "--full")
    assert verified.exit_code == 0
    screen = _screen(verified.stderr)
    assert screen[0].startswith(
        f"Checking objects  100% [####################]  {objects}/{objects} objects, "
    )
    assert screen[1].startswith("Checking jobs  100% [####################]  1/1 jobs, ")


def test_verify_full_advances_per_object_not_per_job(run: Run, repo: Repository) -> None:
    for name in ("a", "b", "c", "d"):
        save_stages(repo.job(name))
    result = run("verify", "--full", "--json")
    assert result.exit_code == 0
    events = _events(result.stderr)
    objects = sum(1 for _ in repo.objects)
    checked = [e for e in events if e["phase"] == "checking objects"]
    assert checked[-1] == {
        **checked[-1],
        "unit": "objects",
        "done": objects,
        "total": objects,
        "finished": True,
    }
    assert checked[-1]["bytes"] == checked[-1]["bytes_total"] > 0
    jobs = _finished(events)["checking jobs"]
    assert (jobs["unit"], jobs["done"], jobs["total"]) == ("jobs", 4, 4)
    assert json.loads(result.stdout)["ok"] is True


def test_gc_reports_marking_and_sweeping(run: Run, novel: Job, repo: Repository) -> None:
    result = run("gc", "--json")
    assert result.exit_code == 0
    finished = _finished(_events(result.stderr))
    assert list(finished) == ["marking objects", "sweeping objects"]
    commits_and_trees = 2 * len(novel.log())
    assert finished["marking objects"]["done"] == commits_and_trees
    objects = sum(1 for _ in repo.objects)
    assert finished["sweeping objects"]["done"] == finished["sweeping objects"]["total"] == objects
