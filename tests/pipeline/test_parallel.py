"""Parallel stages: stages that do not depend on each other run at once (threads for plain
stages, tasks for async ones), each is checkpointed as soon as it finishes, cost limits and
progress stay right, and a crash (SIGKILL) or a Ctrl-C keeps every finished stage."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path

import pytest

import ckpt
from ckpt.pipeline.runner import Pipeline
from ckpt.pipeline.stages import StageResult

from ._support import ckpt_status, read_log, run_fanout_child, start_blocked, stop, wait_for

#: Long enough for a broken scheduler to show; never reached when stages overlap.
MEET_TIMEOUT = 30.0


def pair(
    barrier: threading.Barrier, seen: list[str], timeout: float = MEET_TIMEOUT
) -> tuple[ckpt.Stage, ckpt.Stage, ckpt.Stage]:
    def left(input: int) -> StageResult[int]:
        seen.append("left")
        barrier.wait(timeout)  # returns only if `right` is running at the same time
        return StageResult(input + 1, cost=1.0, tokens=1)

    def right(input: int) -> StageResult[int]:
        seen.append("right")
        barrier.wait(timeout)
        return StageResult(input * 10, cost=2.0, tokens=2)

    def join(left: int, right: int) -> int:
        seen.append("join")
        return left + right

    return ckpt.stage(left), ckpt.stage(right), ckpt.stage(join)


def test_independent_stages_run_at_the_same_time_in_threads(repo: ckpt.Repository) -> None:
    seen: list[str] = []
    barrier = threading.Barrier(2)
    running: list[tuple[str, ...]] = []
    pipeline = Pipeline(
        pair(barrier, seen),
        store=repo,
        max_concurrency=2,
        on_stage_start=lambda event: running.append(event.progress.running),
    )
    result = pipeline.run("job", 1)
    assert result.output == 12
    assert seen[-1] == "join" and set(seen[:2]) == {"left", "right"}
    assert running[1] == ("left", "right")  # progress names both stages in flight
    job = repo.job("job")
    stages = [c.stage for c in reversed(job.log())]
    assert stages[0] == "input" and set(stages[1:3]) == {"left", "right"}
    assert stages[3:] == ["join", None]  # one commit per finished stage
    assert (result.cost, result.tokens) == (3.0, 3)
    assert job.head is not None and job.head.total_cost == 3.0


def test_one_at_a_time_by_default(repo: ckpt.Repository) -> None:
    barrier = threading.Barrier(2)
    pipeline = Pipeline(pair(barrier, [], timeout=0.2), store=repo)
    with pytest.raises(threading.BrokenBarrierError):
        pipeline.run("job", 1, max_concurrency=1)
    head = repo.job("job").head
    assert head is not None and head.meta["failed_stage"] == "left"


def test_async_stages_run_as_concurrent_tasks(repo: ckpt.Repository) -> None:
    both = asyncio.Event()
    arrived: list[str] = []

    async def meet(name: str) -> None:
        arrived.append(name)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), MEET_TIMEOUT)

    async def fetch(input: str) -> str:
        await meet("fetch")
        return input + " fetched"

    async def draw(input: str) -> str:
        await meet("draw")
        return input + " drawn"

    def combine(fetch: str, draw: str) -> str:
        return f"{fetch} + {draw}"

    pipeline = Pipeline([fetch, draw, combine], store=repo, max_concurrency=2)
    assert pipeline.run("job", "x").output == "x fetched + x drawn"

    async def inside_a_loop() -> str:
        result = await pipeline.run_async("other", "y")
        return str(result.output)

    assert asyncio.run(inside_a_loop()) == "y fetched + y drawn"


def test_a_finished_stage_is_committed_while_its_neighbour_still_runs(
    repo: ckpt.Repository,
) -> None:
    def slow(input: int) -> int:
        job = ckpt.open(repo.location).job("job")
        wait_for(lambda: "quick" in job.stages(), "quick's checkpoint")
        return input

    def quick(input: int) -> int:
        return input * 2

    Pipeline([slow, quick], store=repo, max_concurrency=2).run("job", 4)
    assert [c.stage for c in reversed(repo.job("job").log())] == [
        "input", "quick", "slow", None,
    ]  # fmt: skip


def test_a_failing_stage_lets_its_neighbour_finish_and_keeps_it(
    repo: ckpt.Repository,
) -> None:
    gate = threading.Event()
    calls: list[str] = []

    def broken(input: int) -> int:
        calls.append("broken")
        raise TimeoutError("API timeout")

    def steady(input: int) -> int:
        calls.append("steady")
        gate.wait(0.2)  # still running when `broken` fails
        return input

    def after(broken: int, steady: int) -> int:
        calls.append("after")
        return broken + steady

    pipeline = Pipeline([broken, steady, after], store=repo, max_concurrency=2)
    with pytest.raises(TimeoutError, match="API timeout"):
        pipeline.run("job", 3)
    job = repo.job("job")
    assert job.status == "failed"
    assert "steady" in job.stages()
    head = job.head
    assert head is not None and head.meta["failed_stage"] == "broken"

    calls.clear()
    fixed = Pipeline([("broken", lambda input: input), steady, after], store=repo)
    assert fixed.run("job").output == 6
    assert calls == ["after"]


def test_the_cost_limit_holds_between_parallel_stages(repo: ckpt.Repository) -> None:
    def one(input: int) -> StageResult[int]:
        return StageResult(1, cost=3.0)

    def two(input: int) -> StageResult[int]:
        return StageResult(2, cost=3.0)

    def three(one: int, two: int) -> StageResult[int]:
        return StageResult(3, cost=3.0)

    pipeline = Pipeline([one, two, three], store=repo, max_concurrency=2, cost_limit=5.0)
    with pytest.raises(ckpt.CostLimitExceeded) as caught:
        pipeline.run("job", 0)
    assert (caught.value.spent, caught.value.next_stage) == (6.0, "three")
    assert set(repo.job("job").stages()) == {"input", "one", "two"}
    result = pipeline.run("job", cost_limit=10.0)
    assert result.ran == ("three",) and result.total_cost == 9.0


# -- real processes ------------------------------------------------------------------

FULL_COST = 1.0 + 2.0 + 40 * 0.25 + 4.0
FULL_TOKENS = 10 + 20 + 40 * 5 + 40

pytest_slow = pytest.mark.slow


@pytest_slow
def test_sigkill_in_a_parallel_pair_keeps_the_finished_one(tmp_path: Path) -> None:
    store = tmp_path / "store"
    child = start_blocked(store, tmp_path, ["a"])
    job = ckpt.open(store).job("job")
    wait_for(lambda: job.exists and "b" in job.stages(), "b's checkpoint", child)
    assert stop(child, signal.SIGKILL)[0] == -signal.SIGKILL
    assert sorted(read_log(tmp_path)) == ["a", "b"]
    assert "a" not in job.stages()
    assert job.head is not None and job.head.total_cost == 2.0

    result = run_fanout_child(store, tmp_path)
    log = read_log(tmp_path)
    assert log[0] == "a" and "b" not in log  # b is not paid for twice
    assert result == {"output": 40, "cost": pytest.approx(FULL_COST), "tokens": FULL_TOKENS}


@pytest_slow
def test_ctrl_c_in_a_parallel_pair_is_recorded_as_interrupted(tmp_path: Path) -> None:
    store = tmp_path / "store"
    child = start_blocked(store, tmp_path, ["a", "b"])
    job = ckpt.open(store).job("job")
    wait_for(lambda: sorted(read_log(tmp_path, keep=True)) == ["a", "b"], "both stages", child)
    code, err = stop(child, signal.SIGINT)
    assert code != 0 and "KeyboardInterrupt" in err
    head = job.head
    assert head is not None and head.status == "failed"
    assert head.meta["interrupted"] is True
    assert head.meta["error_type"] == "KeyboardInterrupt"
    assert sorted(head.meta["running_stages"]) == ["a", "b"]  # type: ignore[arg-type]
    assert head.message.startswith("failed: interrupted (Ctrl-C) during stage")

    text = ckpt_status(str(store), "job")
    assert "Stopped:" in text and "interrupted (Ctrl-C)" in text
    read_log(tmp_path)
    result = run_fanout_child(store, tmp_path)
    assert result["cost"] == pytest.approx(FULL_COST)


def test_a_cancelled_async_run_is_recorded_as_interrupted(repo: ckpt.Repository) -> None:
    started = asyncio.Event()

    async def quick(input: int) -> int:
        return input

    async def forever(input: int) -> int:
        started.set()
        await asyncio.sleep(3600)
        return input

    pipeline = Pipeline([quick, forever], store=repo, max_concurrency=2)

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(pipeline.run_async("job", 1))
        await asyncio.wait_for(started.wait(), MEET_TIMEOUT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    head = repo.job("job").head
    assert head is not None and head.status == "failed"
    assert head.message == "failed: interrupted (task cancelled) during stage 'forever'"
    assert head.meta["interrupted"] is True
    assert repo.job("job").has_stage("quick")
