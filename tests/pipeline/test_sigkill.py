"""A real pipeline process killed with SIGKILL mid-stage resumes at the right place.

Covers points 1 (resume re-runs only the stage in flight), 2 (cumulative
cost counts every finished stage and item exactly once) and 4 (every-N and
time-interval checkpoints, and checkpoints inside a long stage).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import ckpt

from ._support import kill_child_at, read_log, run_child

ITEMS = [f"chapters:{i}" for i in range(20)]
FULL_COST = 1.0 + 2.0 + 20 * 0.5 + 4.0
FULL_TOKENS = 10 + 20 + 20 * 5 + 40
OUTPUT = sum(4 + i for i in range(20))

pytestmark = pytest.mark.slow


def stages_of(job: ckpt.Job) -> list[str | None]:
    return [c.stage for c in reversed(job.log())]


def test_killed_mid_stage_resumes_at_that_stage_only(tmp_path: Path) -> None:
    store = tmp_path / "store"
    kill_child_at(store, tmp_path, "each", "d")
    assert read_log(tmp_path) == ["a", "b", "chapters", *ITEMS, "d"]
    job = ckpt.open(store).job("job")
    assert job.head is not None and job.head.stage == "chapters"
    assert job.head.total_cost == pytest.approx(FULL_COST - 4.0)

    result = run_child(store, tmp_path, "each")
    assert read_log(tmp_path) == ["d"]
    assert result == {
        "output": OUTPUT,
        "cost": pytest.approx(FULL_COST),
        "tokens": FULL_TOKENS,
        "paid": pytest.approx(4.0),  # only d ran
    }
    job.refresh()
    assert job.status == "completed"
    assert stages_of(job)[-3:] == ["chapters", "d", None]
    assert [c.stage for c in job.log() if c.stage == "d"] == ["d"]


def test_killed_in_the_second_stage_reruns_only_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    kill_child_at(store, tmp_path, "each", "b")
    assert read_log(tmp_path) == ["a", "b"]
    result = run_child(store, tmp_path, "each")
    assert read_log(tmp_path) == ["b", "chapters", *ITEMS, "d"]
    assert result["cost"] == pytest.approx(FULL_COST)
    assert result["tokens"] == FULL_TOKENS


def test_killed_inside_a_long_stage_resumes_from_its_last_partial_checkpoint(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    kill_child_at(store, tmp_path, "each", "chapters:12")
    assert read_log(tmp_path) == ["a", "b", "chapters", *ITEMS[:13]]
    job = ckpt.open(store).job("job")
    assert job.head is not None and job.head.stage == "chapters.partial"
    assert job.load("chapters.partial") == [4 + i for i in range(10)]
    progress = ckpt.Pipeline([], store=store).progress("job")
    assert progress is not None
    assert (progress.current_stage, progress.items_done, progress.items_total) == (
        "chapters",
        10,
        20,
    )
    assert progress.completed == ("a", "b")

    before = job.head.total_cost
    result = run_child(store, tmp_path, "each")
    # Items 10 and 11 were done after the last partial checkpoint (at 10): only they and
    # the item in flight are redone; a and b are not.
    assert read_log(tmp_path) == ["chapters", *ITEMS[10:], "d"]
    assert result == {
        "output": OUTPUT,
        "cost": pytest.approx(FULL_COST),
        "tokens": FULL_TOKENS,
        "paid": pytest.approx(FULL_COST - before),
    }
    job.refresh()
    assert "chapters.partial" not in job.stages()


def test_every_two_stages_loses_the_unwritten_one(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # With checkpoint_every=2, a is held in memory until b finishes: killed in b, both rerun.
    kill_child_at(store, tmp_path, "every2", "b")
    assert read_log(tmp_path) == ["a", "b"]
    job = ckpt.open(store).job("job")
    assert stages_of(job) == ["input"]
    # Killed in d: a and b were written together after b; chapters' partial checkpoints
    # (every 5 items, the last at item 20) first wrote nothing pending; chapters itself was
    # still held in memory.  So chapters restarts from its last partial state, which holds
    # every item, and only d does real work again.
    kill_child_at(store, tmp_path, "every2", "d")
    assert read_log(tmp_path) == ["a", "b", "chapters", *ITEMS, "d"]
    job.refresh()
    assert stages_of(job)[:3] == ["input", "a", "b"]
    assert "chapters" not in stages_of(job)
    assert job.head is not None and job.head.stage == "chapters.partial"
    result = run_child(store, tmp_path, "every2")
    assert read_log(tmp_path) == ["chapters", "d"]
    assert result["cost"] == pytest.approx(FULL_COST)
    assert result["tokens"] == FULL_TOKENS


def test_time_interval_only_checkpoints_at_the_end_when_the_interval_is_long(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    # checkpoint_interval=3600 and no every-N: finished stages stay in memory, but the
    # partial checkpoints inside chapters write what is pending first.
    kill_child_at(store, tmp_path, "end-only", "b")
    assert read_log(tmp_path) == ["a", "b"]
    job = ckpt.open(store).job("job")
    assert stages_of(job) == ["input"]
    result = run_child(store, tmp_path, "end-only")
    assert read_log(tmp_path) == ["a", "b", "chapters", *ITEMS, "d"]
    assert result["cost"] == pytest.approx(FULL_COST)
    job.refresh()
    assert job.status == "completed"
