"""Point 2: cost and tokens per stage and cumulative; the cost limit."""

from __future__ import annotations

import pytest

import ckpt
from ckpt.pipeline.runner import CostLimitExceeded, Pipeline, StageContext
from ckpt.pipeline.stages import StageResult

RAN: list[str] = []


def research(input: str) -> StageResult[list[str]]:
    RAN.append("research")
    return StageResult([input, input], cost=2.5, tokens=1000)


def write(research: list[str], ctx: StageContext) -> str:
    RAN.append("write")
    ctx.report(cost=1.0, tokens=300)
    ctx.report(cost=0.5, tokens=200)
    return " ".join(research)


def edit(write: str) -> StageResult[str]:
    RAN.append("edit")
    return StageResult(write.title(), cost=3.0, tokens=700)


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


def test_each_commit_stores_the_stage_and_cumulative_figures(repo: ckpt.Repository) -> None:
    result = Pipeline([research, write, edit], store=repo).run("j", "sea")
    assert (result.cost, result.tokens) == (pytest.approx(7.0), 2200)
    commits = {c.stage: c for c in repo.job("j").log() if c.stage}
    assert (commits["research"].cost, commits["research"].tokens) == (2.5, 1000)
    assert (commits["write"].cost, commits["write"].tokens) == (1.5, 500)
    assert (commits["write"].total_cost, commits["write"].total_tokens) == (4.0, 1500)
    assert (commits["edit"].total_cost, commits["edit"].total_tokens) == (7.0, 2200)


def test_cost_limit_stops_before_the_next_stage_and_raising_it_continues(
    repo: ckpt.Repository,
) -> None:
    pipeline = Pipeline([research, write, edit], store=repo, cost_limit=3.0)
    with pytest.raises(CostLimitExceeded) as info:
        pipeline.run("j", "sea")
    assert isinstance(info.value, ckpt.CkptError)
    assert (info.value.spent, info.value.limit, info.value.next_stage) == (4.0, 3.0, "edit")
    assert RAN == ["research", "write"]
    job = repo.job("j")
    assert job.stages() == ["input", "research", "write"]
    assert job.status == "failed"
    head = job.head
    assert head is not None and head.meta["error_type"] == "CostLimitExceeded"

    # Running again with the same limit stops again without piling up failure records.
    with pytest.raises(CostLimitExceeded):
        pipeline.run("j")
    assert len(job.log()) == 4

    RAN.clear()
    result = pipeline.run("j", cost_limit=10.0)
    assert RAN == ["edit"]
    assert (result.cost, result.tokens) == (pytest.approx(3.0), 700)  # this run: edit
    assert (result.total_cost, result.total_tokens) == (pytest.approx(7.0), 2200)
    assert repo.job("j").status == "completed"


def test_run_result_names_this_run_s_cost_and_the_job_s_total(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([research, write, edit], store=repo)
    first = pipeline.run("j", "sea")
    assert (first.cost, first.total_cost) == (pytest.approx(7.0), pytest.approx(7.0))
    again = pipeline.run("j")  # resumed: every stage is done, nothing is spent
    assert again.skipped == ("research", "write", "edit")
    assert (again.cost, again.tokens) == (0.0, 0)
    assert (again.total_cost, again.total_tokens) == (pytest.approx(7.0), 2200)
    state = pipeline.state("j")
    assert (state.cost, state.total_cost) == (0.0, pytest.approx(7.0))
    restarted = pipeline.run("j", "sea", restart=True)  # a new run on top: the job's total grows
    assert (restarted.cost, restarted.total_cost) == (pytest.approx(7.0), pytest.approx(14.0))


def test_the_limit_is_exceeded_not_reached(repo: ckpt.Repository) -> None:
    # 2.5 is not over 2.5: the next stage runs; 4.0 is, so the one after does not.
    pipeline = Pipeline([research, write, edit], store=repo, cost_limit=2.5)
    with pytest.raises(CostLimitExceeded, match="before stage 'edit'"):
        pipeline.run("j", "sea")
    assert RAN == ["research", "write"]


def test_cost_is_per_run_after_a_restart(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([research, write, edit], store=repo)
    pipeline.run("j", "sea")
    again = pipeline.run("j", restart=True)
    assert again.cost == pytest.approx(7.0)
    head = repo.job("j").head
    assert head is not None and head.total_cost == pytest.approx(14.0)
    progress = pipeline.progress("j")
    assert progress is not None
    assert (progress.cost, progress.total_cost) == (pytest.approx(7.0), pytest.approx(14.0))


def test_no_checkpoint_runs_still_count_and_limit_cost(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([research, write, edit], store=repo)
    with pytest.raises(CostLimitExceeded):
        pipeline.run("j", "sea", no_checkpoint=True, cost_limit=1.0)
    assert RAN == ["research"]
    assert not repo.job("j").exists
