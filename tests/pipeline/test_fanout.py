"""Fan-out with per-item resume: ``ctx.map(fn, items, max_concurrency=N)`` checkpoints every
item as it finishes; a crash costs only the items in flight; items are known by their
content (or a key), so a changed item runs again and an unchanged one does not; per-item
cost and tokens roll up into the stage."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ckpt
from ckpt.pipeline.runner import Pipeline
from ckpt.pipeline.stages import StageResult

from ._support import ckpt_status, read_log, run_fanout_child, start_blocked, stop, wait_for

CALLS: list[str] = []
FAIL_AT: set[str] = set()
LOCK = threading.Lock()


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()
    FAIL_AT.clear()


@attrs.frozen
class Beat:
    number: int
    text: str


@attrs.frozen
class Chapter:
    number: int
    body: str


def write_chapter(beat: Beat) -> StageResult[Chapter]:
    with LOCK:
        CALLS.append(beat.text)
    if beat.text in FAIL_AT:
        raise TimeoutError(f"model timed out on {beat.text}")
    return StageResult(Chapter(beat.number, beat.text.upper()), cost=0.5, tokens=100)


def outline(input: list[str]) -> list[Beat]:
    return [Beat(i, text) for i, text in enumerate(input)]


def chapters(outline: list[Beat], ctx: ckpt.StageContext) -> list[Chapter]:
    result: list[Chapter] = ctx.map(write_chapter, outline, max_concurrency=4)
    return result


def book(chapters: list[Chapter]) -> str:
    return " ".join(c.body for c in chapters)


def make(repo: ckpt.Repository, **options: object) -> Pipeline:
    return Pipeline([outline, chapters, book], store=repo, **options)  # type: ignore[arg-type]


BEATS = [f"beat{i}" for i in range(12)]


def test_every_item_is_checkpointed_and_the_output_is_the_ordered_list(
    repo: ckpt.Repository,
) -> None:
    result = make(repo).run("novel", BEATS)
    assert result["chapters"] == [Chapter(i, f"BEAT{i}") for i in range(12)]
    assert sorted(CALLS) == sorted(BEATS)
    job = repo.job("novel")
    item_commits = [c for c in job.log() if c.stage and ".item." in c.stage]
    assert 1 <= len(item_commits) <= 12  # items finishing together share a commit
    assert sum(c.cost for c in item_commits) == pytest.approx(6.0)
    assert result.stage_costs["chapters"] == (6.0, 1200)  # the items roll up into the stage
    assert (result.cost, result.tokens) == (6.0, 1200)
    assert len([n for n in job.stages() if n.startswith("chapters.item.")]) == 12
    progress = make(repo).progress("novel")
    assert progress is not None and progress.stage_costs["chapters"] == (6.0, 1200)


def test_a_failed_item_keeps_the_others_and_the_rerun_computes_only_the_rest(
    repo: ckpt.Repository,
) -> None:
    FAIL_AT.add("beat7")
    with pytest.raises(TimeoutError, match="beat7"):
        make(repo).run("novel", BEATS)
    job = repo.job("novel")
    assert job.status == "failed"
    saved = [n for n in job.stages() if n.startswith("chapters.item.")]
    first = set(CALLS)
    assert len(saved) == len(first) - 1  # every item that finished is stored
    progress = make(repo).progress("novel")
    assert progress is not None
    assert progress.items_total == 12 and progress.items_done == len(saved)
    CALLS.clear()
    FAIL_AT.clear()
    result = make(repo).run("novel")
    assert set(CALLS) == set(BEATS) - first | {"beat7"}
    assert result["chapters"] == [Chapter(i, f"BEAT{i}") for i in range(12)]
    assert result.total_cost == pytest.approx(6.0)  # each item paid for once


def test_a_changed_item_runs_again_and_unchanged_ones_do_not(repo: ckpt.Repository) -> None:
    make(repo).run("novel", BEATS)
    job = repo.job("novel")
    job.save("outline", [Beat(i, "new" if i == 3 else text) for i, text in enumerate(BEATS)])
    CALLS.clear()
    result = make(repo).run("novel")
    assert result.stale == {
        "chapters": "input 'outline' changed",
        "book": "input 'chapters' is stale",
    }
    assert CALLS == ["new"]
    assert result["chapters"][3] == Chapter(3, "NEW")
    assert result.stage_costs["chapters"] == (6.5, 1300)
    items = [n for n in job.stages() if n.startswith("chapters.item.")]
    assert len(items) == 12  # the entry of the replaced item was dropped


def test_equal_items_run_once_and_a_key_names_items(repo: ckpt.Repository) -> None:
    def twice(input: list[str], ctx: ckpt.StageContext) -> list[int]:
        out: list[int] = ctx.map(len, input)
        return out

    assert Pipeline([twice], store=repo).run("a", ["xx", "yyy", "xx"]).output == [2, 3, 2]

    seen: list[str] = []

    def by_id(input: list[dict[str, str]], ctx: ckpt.StageContext) -> list[str]:
        def render(scene: dict[str, str]) -> str:
            seen.append(scene["id"])
            return scene["id"] + ":" + scene["prompt"]

        out: list[str] = ctx.map(render, input, key=lambda scene: scene["id"])
        return out

    pipeline = Pipeline([by_id], store=repo)
    pipeline.run("b", [{"id": "s1", "prompt": "sea"}, {"id": "s2", "prompt": "sky"}])
    repo.job("b").save("input", [{"id": "s1", "prompt": "SEA"}, {"id": "s2", "prompt": "sky"}])
    seen.clear()
    # The key says the scenes are the same items: nothing runs again.
    assert pipeline.run("b").output == ["s1:sea", "s2:sky"]
    assert seen == []


def test_items_that_cannot_be_serialized_need_a_key(repo: ckpt.Repository) -> None:
    def stage(input: int, ctx: ckpt.StageContext) -> list[int]:
        out: list[int] = ctx.map(lambda lock: 1, [threading.Lock()])
        return out

    with pytest.raises(ckpt.CkptError, match=r"item 0 cannot be serialized .*pass key="):
        Pipeline([stage], store=repo).run("job", 1)


def test_async_fan_out(repo: ckpt.Repository) -> None:
    running = 0
    peak = 0

    async def draw(scene: int) -> StageResult[str]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return StageResult(f"scene {scene}", cost=0.1, tokens=1)

    async def scenes(input: int, ctx: ckpt.StageContext) -> list[str]:
        out: list[str] = await ctx.map(draw, range(input), max_concurrency=3)
        return out

    result = Pipeline([scenes], store=repo).run("video", 9)
    assert result.output == [f"scene {i}" for i in range(9)]
    assert peak == 3
    assert result.stage_costs["scenes"] == (pytest.approx(0.9), 9)


def test_the_cost_limit_is_checked_before_each_item(repo: ckpt.Repository) -> None:
    def one_at_a_time(outline: list[Beat], ctx: ckpt.StageContext) -> list[Chapter]:
        out: list[Chapter] = ctx.map(write_chapter, outline)
        return out

    pipeline = Pipeline([outline, ("chapters", one_at_a_time), book], store=repo)
    with pytest.raises(ckpt.CostLimitExceeded, match="in stage 'chapters' with 5 of 12"):
        pipeline.run("novel", BEATS, cost_limit=2.0)
    assert len(CALLS) == 5  # 5 x 0.5 > 2.0: the sixth never started
    CALLS.clear()
    result = pipeline.run("novel", cost_limit=100.0)
    assert BEATS[5:] == CALLS
    assert result.total_cost == pytest.approx(6.0)


def test_no_checkpoint_maps_in_memory(tmp_path: Path) -> None:
    result = make(ckpt.init(tmp_path / "s")).run("x", BEATS[:3], no_checkpoint=True)
    assert result.output == "BEAT0 BEAT1 BEAT2"
    assert result.cost == 1.5


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=1, max_value=4),
)
def test_a_crash_anywhere_resumes_to_the_same_list_paying_each_item_once(
    tmp_path_factory: pytest.TempPathFactory, items: list[str], crash_after: int, lanes: int
) -> None:
    repo = ckpt.init(tmp_path_factory.mktemp("s") / "store", durable=False)
    calls: list[str] = []
    state = {"left": crash_after}

    def work(item: str) -> StageResult[str]:
        with LOCK:
            if state["left"] == 0:
                raise RuntimeError("crash")
            state["left"] -= 1
            calls.append(item)
        return StageResult(item * 2, cost=1.0)

    def fan(input: list[str], ctx: ckpt.StageContext) -> list[str]:
        out: list[str] = ctx.map(work, input, max_concurrency=lanes)
        return out

    pipeline = Pipeline([fan], store=repo)
    try:
        try:
            pipeline.run("job", items)
        except RuntimeError:
            state["left"] = -1
            result = pipeline.run("job")
        else:
            result = pipeline.state("job")
        output = result.output
    finally:
        repo.close()
    assert output == [item * 2 for item in items]
    assert sorted(calls) == sorted(set(items))  # each distinct item computed exactly once
    assert result.total_cost == len(set(items))


# -- a real process killed in the middle of a fan-out -----------------------------------

FULL_COST = 1.0 + 2.0 + 40 * 0.25 + 4.0
FULL_TOKENS = 10 + 20 + 40 * 5 + 40


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_fan_out_resumes_only_the_missing_items(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    child = start_blocked(store, tmp_path, ["item:25+"])
    job = ckpt.open(store).job("job")

    def items_saved() -> int:
        return len([n for n in job.stages() if n.startswith("chapters.item.")]) if job.exists else 0

    wait_for(lambda: items_saved() == 25, "items 0-24 to be saved", child)
    assert stop(child, signal.SIGKILL)[0] == -signal.SIGKILL
    first = read_log(tmp_path)
    in_flight = [p for p in first if p.startswith("item:") and int(p[5:]) >= 25]
    assert 1 <= len(in_flight) <= 4  # the items being written when it died
    head = job.head
    assert head is not None and head.total_cost == pytest.approx(1.0 + 2.0 + 25 * 0.25)
    progress = ckpt.Pipeline([], store=store).progress("job")
    assert progress is not None
    assert (progress.current_stage, progress.items_done, progress.items_total) == (
        "chapters",
        25,
        40,
    )

    result = run_fanout_child(store, tmp_path)
    again = read_log(tmp_path)
    assert sorted(again) == sorted(["chapters", *(f"item:{n}" for n in range(25, 40)), "book"])
    assert result == {"output": 40, "cost": pytest.approx(FULL_COST), "tokens": FULL_TOKENS}
    job.refresh()
    assert job.status == "completed"


@pytest.mark.slow
def test_status_and_watch_show_progress_and_the_eta_of_an_active_run(tmp_path: Path) -> None:
    store = tmp_path / "store"
    child = start_blocked(store, tmp_path, ["item:30+", "book"])
    watch = subprocess.Popen(
        [sys.executable, "-m", "ckpt", "--store", str(store), "watch", "job", "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job = ckpt.open(store).job("job")
        wait_for(lambda: len([n for n in job.stages() if ".item." in n]) == 30, "30 items", child)
        doc = ckpt_status(store, "job", as_json=True)
        assert doc["status"] == "active" and doc["running"] == ["chapters"]
        assert doc["eta_seconds"] is not None
        text = ckpt_status(store, "job")
        assert "Running:   chapters\n" in text and "\nETA:       " in text
        (tmp_path / "block").write_text("book")  # the items go on; the run waits at `book`
        wait_for(lambda: (tmp_path / "log").read_text().count("book") == 1, "book", child)
        (tmp_path / "block").unlink()
        assert child.wait(60) == 0
        out, err = watch.communicate(timeout=60)
    finally:
        for process in (child, watch):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert watch.returncode == 0, err
    events = [line for line in out.splitlines() if line.startswith("  + ")]
    assert any(".item." in line for line in events)
    assert any("ETA " in line for line in events)  # an event that left the run active
    assert "Next run:  nothing left to do (completed)" in out
