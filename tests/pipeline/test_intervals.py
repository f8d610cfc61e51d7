"""Point 4: checkpoint every stage, every N stages, on a time interval, and inside a stage."""

from __future__ import annotations

import time

import pytest

import ckpt
from ckpt.pipeline.runner import Pipeline, StageContext

RAN: list[str] = []


def s1(input: int) -> int:
    RAN.append("s1")
    return input + 1


def s2(s1: int) -> int:
    RAN.append("s2")
    return s1 + 1


def s3(s2: int) -> int:
    RAN.append("s3")
    return s2 + 1


def s4(s3: int) -> int:
    RAN.append("s4")
    time.sleep(0.01)
    return s3 + 1


def s5(s4: int) -> int:
    RAN.append("s5")
    time.sleep(0.01)
    return s4 + 1


STAGES = [s1, s2, s3, s4, s5]


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


def ref_moves(job: ckpt.Job) -> list[str]:
    """Reasons of the branch's ref moves, oldest first."""
    return [e.reason for e in reversed(job.reflog()) if e.ref == "refs/heads/main"]


def test_default_checkpoints_after_every_stage(repo: ckpt.Repository) -> None:
    seen: list[tuple[str, int]] = []

    def on_checkpoint(event: ckpt.StageEvent) -> None:
        seen.append((event.stage, event.progress.completed_stages))

    Pipeline(STAGES, store=repo, on_checkpoint=on_checkpoint).run("j", 0)
    assert seen == [("s1", 1), ("s2", 2), ("s3", 3), ("s4", 4), ("s5", 5)]


def test_every_n_stages_writes_them_in_batches(repo: ckpt.Repository) -> None:
    batches: list[list[str]] = []

    def on_stage_end(event: ckpt.StageEvent) -> None:
        batches.append([])

    def on_checkpoint(event: ckpt.StageEvent) -> None:
        batches[-1].append(event.stage)

    pipeline = Pipeline(
        STAGES,
        store=repo,
        checkpoint_every=2,
        on_stage_end=on_stage_end,
        on_checkpoint=on_checkpoint,
    )
    pipeline.run("j", 0)
    assert batches == [[], ["s1", "s2"], [], ["s3", "s4"], ["s5"]]
    # Each stage still has its own commit, so `resume_from` and `log` see every stage.
    assert [c.stage for c in reversed(repo.job("j").log())] == [
        "input", "s1", "s2", "s3", "s4", "s5", None,
    ]  # fmt: skip


def test_a_failure_writes_the_stages_held_in_memory(repo: ckpt.Repository) -> None:
    def s3(s2: int) -> int:
        raise RuntimeError("boom")

    pipeline = Pipeline([s1, s2, ("s3", s3)], store=repo, checkpoint_every=10)
    with pytest.raises(RuntimeError):
        pipeline.run("j", 0)
    job = repo.job("j")
    assert job.stages() == ["input", "s1", "s2"]
    assert job.status == "failed"


def test_time_interval(repo: ckpt.Repository) -> None:
    # An interval far longer than the run: only the end writes (besides the input).
    Pipeline(STAGES, store=repo, checkpoint_every=None, checkpoint_interval=3600).run("long", 0)
    moves = ref_moves(repo.job("long"))
    assert moves[0] == "save: input"
    assert len(moves) == 7  # input, 5 stages written together at the end, completed
    # An interval shorter than any stage: every stage is written as it finishes.
    seen: list[int] = []
    Pipeline(
        STAGES,
        store=repo,
        checkpoint_every=None,
        checkpoint_interval=1e-6,
        on_checkpoint=lambda event: seen.append(event.progress.completed_stages),
    ).run("short", 0)
    assert seen == [1, 2, 3, 4, 5]


def graph_nodes(input: int, ctx: StageContext) -> list[int]:
    done: list[int] = ctx.partial(list[int], [])
    RAN.append(f"resume@{len(done)}")
    for node in range(len(done), input):
        if node == 7 and not ctx.resumed:
            raise ConnectionError("node 7 failed")
        done.append(node * node)
        ctx.checkpoint(done, cost=0.25, items_done=len(done), items_total=input)
    return done


def test_checkpoints_inside_a_stage_every_n_items(repo: ckpt.Repository) -> None:
    saved: list[int | None] = []
    pipeline = Pipeline(
        [ckpt.stage(graph_nodes, partial_every=3)],
        store=repo,
        on_checkpoint=lambda event: saved.append(event.progress.items_done),
    )
    with pytest.raises(ConnectionError):
        pipeline.run("graph", 10)
    assert saved == [3, 6]
    job = repo.job("graph")
    assert job.load("graph_nodes.partial") == [0, 1, 4, 9, 16, 25]
    progress = pipeline.progress("graph")
    assert progress is not None
    assert (progress.current_stage, progress.items_done, progress.items_total) == (
        "graph_nodes",
        6,
        10,
    )
    result = pipeline.run("graph")
    assert RAN == ["resume@0", "resume@6"]
    assert result.output == [n * n for n in range(10)]
    # Each item's cost is counted once: items 6 (lost in the crash) and on are paid here.
    assert (result.cost, result.total_cost) == (pytest.approx(1.0), pytest.approx(2.5))
    assert "graph_nodes.partial" not in repo.job("graph").stages()


def test_checkpoints_inside_a_stage_on_a_time_interval(repo: ckpt.Repository) -> None:
    def many(input: int, ctx: StageContext) -> int:
        total = ctx.partial(int, 0)
        for step in range(input):
            total += step
            ctx.checkpoint(total)
        return total

    saves: list[bool] = []
    long_interval = Pipeline(
        [ckpt.stage(many, partial_interval=3600)],
        store=repo,
        on_checkpoint=lambda event: saves.append(event.partial),
    )
    long_interval.run("a", 50)
    assert saves == [False]  # only the stage's own checkpoint
    saves.clear()
    Pipeline(
        [ckpt.stage(many, partial_interval=1e-9)],
        store=repo,
        on_checkpoint=lambda event: saves.append(event.partial),
    ).run("b", 5)
    assert saves == [True] * 5 + [False]


def test_no_checkpoint_makes_partial_checkpoints_no_ops(repo: ckpt.Repository) -> None:
    result = Pipeline([graph_nodes], store=repo).run("g", 3, no_checkpoint=True)
    assert result.output == [0, 1, 4]
    assert not repo.job("g").exists
