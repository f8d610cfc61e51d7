"""Point 1: the stage runner -- input first, a checkpoint per stage, skip on re-run, partial
resume, branches, failures, no_checkpoint, async stages."""

from __future__ import annotations

import asyncio
import datetime as dt

import attrs
import pytest

import ckpt
from ckpt.pipeline.runner import InputMismatchError, Pipeline, StageContext

CALLS: list[str] = []


@attrs.frozen
class Brief:
    title: str
    chapters: int
    due: dt.date


@attrs.frozen
class Outline:
    beats: tuple[str, ...]


def outline(input: Brief) -> Outline:
    CALLS.append("outline")
    return Outline(tuple(f"{input.title} {i}" for i in range(input.chapters)))


def draft(outline: Outline, input: Brief) -> list[str]:
    CALLS.append("draft")
    return [beat.upper() for beat in outline.beats]


def polish(draft: list[str]) -> dict[str, int]:
    CALLS.append("polish")
    return {line: len(line) for line in draft}


BRIEF = Brief("Sea", 3, dt.date(2026, 1, 17))


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def make(repo: ckpt.Repository, **options: object) -> Pipeline:
    return Pipeline([outline, draft, polish], store=repo, **options)  # type: ignore[arg-type]


def test_input_is_saved_first_then_one_checkpoint_per_stage(repo: ckpt.Repository) -> None:
    result = make(repo).run("novel", BRIEF)
    job = repo.job("novel")
    assert [c.stage for c in reversed(job.log())] == ["input", "outline", "draft", "polish", None]
    assert job.status == "completed"
    assert job.load("input", Brief) == BRIEF
    assert result.ran == ("outline", "draft", "polish")
    assert result["draft"] == ["SEA 0", "SEA 1", "SEA 2"]
    assert result.output == {"SEA 0": 5, "SEA 1": 5, "SEA 2": 5}


def test_rerun_skips_completed_stages_and_loads_typed_outputs(repo: ckpt.Repository) -> None:
    pipeline = make(repo)
    pipeline.run("novel", BRIEF)
    CALLS.clear()
    again = pipeline.run("novel")
    assert CALLS == []
    assert again.skipped == ("outline", "draft", "polish")
    assert again["outline"] == Outline(("Sea 0", "Sea 1", "Sea 2"))
    assert again["input"] == BRIEF
    assert len(repo.job("novel").log()) == 5  # nothing new written


def test_can_resume_and_resume(repo: ckpt.Repository) -> None:
    pipeline = make(repo)
    assert not pipeline.can_resume("novel")
    with pytest.raises(ckpt.NotFoundError, match="pass an input"):
        pipeline.resume("novel")
    job = repo.job("novel")
    job.save("input", BRIEF, meta={})  # a job saved by hand holds no run
    assert not pipeline.can_resume("novel")


def test_a_failing_stage_keeps_checkpoints_records_and_reraises(
    repo: ckpt.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(outline: Outline) -> list[str]:
        CALLS.append("broken")
        raise TimeoutError("API timeout")

    pipeline = Pipeline([outline, ("draft", broken), polish], store=repo)
    with pytest.raises(TimeoutError, match="API timeout"):
        pipeline.run("novel", BRIEF)
    job = repo.job("novel")
    head = job.head
    assert head is not None
    assert job.status == "failed"
    assert head.meta["error_type"] == "TimeoutError"
    assert head.meta["error"] == "API timeout"
    assert head.meta["failed_stage"] == "draft"
    assert job.stages() == ["input", "outline"]
    assert pipeline.can_resume("novel")
    state = pipeline.state("novel")
    assert state.completed == ("outline",)
    assert state["outline"] == Outline(("Sea 0", "Sea 1", "Sea 2"))

    CALLS.clear()
    result = make(repo).run("novel")  # the fixed pipeline resumes after the failed status
    assert CALLS == ["draft", "polish"]
    assert result.skipped == ("outline",)
    assert repo.job("novel").status == "completed"


def test_restart_starts_over_on_top_of_the_history(repo: ckpt.Repository) -> None:
    pipeline = make(repo)
    pipeline.run("novel", BRIEF)
    CALLS.clear()
    result = pipeline.run("novel", restart=True)  # the stored input is reused
    assert CALLS == ["outline", "draft", "polish"]
    assert result.ran == ("outline", "draft", "polish")
    assert len(repo.job("novel").log()) == 10


def test_a_different_input_is_refused_when_resuming(repo: ckpt.Repository) -> None:
    pipeline = make(repo)
    pipeline.run("novel", BRIEF)
    with pytest.raises(InputMismatchError, match="restart=True"):
        pipeline.run("novel", attrs.evolve(BRIEF, chapters=4))
    pipeline.run("novel", BRIEF)  # the same input is fine


def test_resume_from_rolls_back_to_just_before_the_stage(repo: ckpt.Repository) -> None:
    pipeline = make(repo)
    pipeline.run("novel", BRIEF)
    old_head = repo.job("novel").head
    CALLS.clear()
    result = pipeline.run("novel", resume_from="draft")
    assert CALLS == ["draft", "polish"]
    assert result.skipped == ("outline",)
    job = repo.job("novel")
    assert [c.stage for c in reversed(job.log())] == ["input", "outline", "draft", "polish", None]
    assert old_head is not None and old_head.id in job.known_commits()  # via the reflog


def test_resume_from_on_a_new_branch_keeps_the_original(repo: ckpt.Repository) -> None:
    pipeline = make(repo)
    pipeline.run("novel", BRIEF)
    main_head = repo.job("novel").branches()["main"]
    CALLS.clear()
    pipeline.run("novel", resume_from="polish", branch="alt")
    assert CALLS == ["polish"]
    job = repo.job("novel")
    assert job.branch_name == "alt"
    assert job.branches()["main"] == main_head
    alt = job.log()
    # The branch's first new commit has the pre-polish checkpoint of main as parent.
    fork_point = job.resolve("main~2")
    assert fork_point.stage == "draft"
    assert alt[1].parent == fork_point.id
    with pytest.raises(ckpt.NotFoundError, match="no checkpoints"):
        pipeline.run("other", resume_from="draft")


def test_resume_from_an_unknown_stage_is_refused(repo: ckpt.Repository) -> None:
    pipeline = make(repo)
    pipeline.run("novel", BRIEF)
    with pytest.raises(ckpt.CkptError, match="no stage 'nope'"):
        pipeline.run("novel", resume_from="nope")


def test_at_resumes_from_a_specific_checkpoint(repo: ckpt.Repository) -> None:
    pipeline = make(repo)
    pipeline.run("novel", BRIEF)
    outline_commit = repo.job("novel").resolve("outline")
    CALLS.clear()
    pipeline.run("novel", at=outline_commit.id[:10])
    assert CALLS == ["draft", "polish"]


def test_no_checkpoint_writes_nothing(repo: ckpt.Repository) -> None:
    before = sorted(info.key for info in repo.storage.list())
    result = make(repo).run("novel", BRIEF, no_checkpoint=True)
    assert result.output == {"SEA 0": 5, "SEA 1": 5, "SEA 2": 5}
    assert result.head is None
    assert sorted(info.key for info in repo.storage.list()) == before


def test_a_parameter_naming_nothing_is_refused() -> None:
    def lost(nothing: int) -> int:
        return nothing

    with pytest.raises(ckpt.CkptError, match="parameter 'nothing'"):
        Pipeline([outline, lost])


def unannotated(outline: Outline):  # type: ignore[no-untyped-def]
    return Outline(outline.beats[:1])


def test_unannotated_outputs_are_plain_data_fresh_or_resumed(repo: ckpt.Repository) -> None:
    def use(unannotated: object) -> str:
        return repr(unannotated)

    pipeline = Pipeline([outline, unannotated, use], store=repo)
    fresh = pipeline.run("plain", BRIEF)
    assert fresh["unannotated"] == {"beats": ["Sea 0"]}
    assert fresh.output == repr({"beats": ["Sea 0"]})
    assert pipeline.run("plain").output == fresh.output


async def fetch(input: Brief, ctx: StageContext) -> list[str]:
    await asyncio.sleep(0)
    CALLS.append("fetch")
    return [input.title] * input.chapters


def count(fetch: list[str]) -> int:
    CALLS.append("count")
    return len(fetch)


def test_async_stages_run_sync_and_async(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([fetch, count], store=repo)
    assert pipeline.is_async
    assert pipeline.run("a", BRIEF).output == 3
    assert asyncio.run(pipeline.run_async("b", BRIEF)).output == 3
    assert CALLS == ["fetch", "count", "fetch", "count"]

    async def inside_a_loop() -> None:
        with pytest.raises(ckpt.CkptError, match="run_async"):
            pipeline.run("c", BRIEF)

    asyncio.run(inside_a_loop())


def test_a_sync_stage_may_use_asyncio_run(repo: ckpt.Repository) -> None:
    def uses_a_loop(input: Brief) -> int:
        return asyncio.run(asyncio.sleep(0, result=input.chapters))

    assert Pipeline([uses_a_loop], store=repo).run("loop", BRIEF).output == 3


def test_decorator_form_and_a_store_path(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    pipeline = Pipeline(store=tmp_path / "new-store")

    @pipeline.stage
    def first(input: int) -> int:
        return input + 1

    @pipeline.stage(name="second")
    def anything(first: int) -> int:
        return first * 10

    assert first(1) == 2  # the function is unchanged
    assert pipeline.stage_names == ("first", "second")
    assert pipeline.run("deco", 1).output == 20
    assert ckpt.open(tmp_path / "new-store").job("deco").status == "completed"


def test_an_interrupt_is_recorded_and_the_next_run_resumes(repo: ckpt.Repository) -> None:
    def interrupted(outline: Outline) -> list[str]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Pipeline([outline, ("draft", interrupted), polish], store=repo).run("novel", BRIEF)
    job = repo.job("novel")
    head = job.head
    assert head is not None and head.meta["error_type"] == "KeyboardInterrupt"
    assert head.meta["interrupted"] is True and head.meta["failed_stage"] == "draft"
    assert head.message == "failed: interrupted (Ctrl-C) during stage 'draft'"
    CALLS.clear()
    make(repo).run("novel")
    assert CALLS == ["draft", "polish"]


def test_another_writer_is_never_recorded_as_a_failure(repo: ckpt.Repository) -> None:
    def meddle(outline: Outline) -> list[str]:
        other = ckpt.open(repo.location).job("novel")
        other.save("note", "written by someone else")
        return ["x"]

    with pytest.raises(ckpt.ConflictError):
        Pipeline([outline, ("draft", meddle), polish], store=repo).run("novel", BRIEF)
    job = repo.job("novel")
    head = job.head
    assert head is not None
    assert (head.stage, head.status) == ("note", "active")
