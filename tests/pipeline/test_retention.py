"""Point 6: keep_last per job (history cut, log says so, gc collects), age-based cleanup, and
the on-success policy (keep / final / delete)."""

from __future__ import annotations

import datetime as dt

import pytest

import ckpt
from ckpt.maintenance.retention import apply_retention
from ckpt.pipeline.runner import Pipeline


def s1(input: int) -> list[int]:
    return [input] * 100


def s2(s1: list[int]) -> list[int]:
    return [x + 1 for x in s1]


def s3(s2: list[int]) -> list[int]:
    return [x * 3 for x in s2]


def s4(s3: list[int]) -> int:
    return sum(s3)


STAGES = [s1, s2, s3, s4]


def test_keep_last_cuts_history_and_gc_collects_it(repo: ckpt.Repository) -> None:
    pipeline = Pipeline(STAGES, store=repo, keep_last=2)
    result = pipeline.run("j", 1)
    job = repo.job("j")
    log = job.log()
    assert [c.stage for c in log] == [None, "s4"]
    assert job.is_cut(log[-1])
    assert job.record.keep_last == 2
    assert result.output == 600
    # The cut commits are unreachable; gc (with no grace) collects their unique objects.
    report = repo.gc(grace=dt.timedelta(0))
    assert report.deleted > 0
    assert repo.verify().ok
    # Everything the final checkpoint holds survives: the job resumes as completed.
    again = pipeline.run("j")
    assert again.skipped == ("s1", "s2", "s3", "s4")
    assert again["s2"] == [2] * 100


def test_keep_last_refuses_a_resume_from_before_the_cut(repo: ckpt.Repository) -> None:
    pipeline = Pipeline(STAGES, store=repo, keep_last=3)
    pipeline.run("j", 1)
    with pytest.raises(ckpt.CkptError, match="pruned"):
        pipeline.run("j", resume_from="s2")
    assert pipeline.run("j", resume_from="s4").ran == ("s4",)


def test_cleanup_of_old_jobs(repo: ckpt.Repository) -> None:
    pipeline = Pipeline(STAGES, store=repo)
    pipeline.run("old", 1)
    pipeline.run("new", 1)
    report = apply_retention(repo, older_than=dt.timedelta(days=30), dry_run=True)
    assert report.deleted_jobs == ()
    report = apply_retention(repo, older_than=dt.timedelta(0))
    assert report.deleted_jobs == ("new", "old")
    assert repo.job_names() == []


def test_on_success_keep(repo: ckpt.Repository) -> None:
    Pipeline(STAGES, store=repo, on_success="keep").run("j", 1)
    assert len(repo.job("j").log()) == 6


def test_on_success_final_keeps_only_the_final_checkpoint(repo: ckpt.Repository) -> None:
    Pipeline(STAGES, store=repo, on_success="final").run("j", 1)
    job = repo.job("j")
    log = job.log()
    assert len(log) == 1 and log[0].status == "completed"
    assert job.is_cut(log[0])
    assert job.load("s3") == [6] * 100  # the final checkpoint holds every stage
    repo.gc(grace=dt.timedelta(0))
    assert repo.verify().ok
    assert Pipeline(STAGES, store=repo).run("j").skipped == ("s1", "s2", "s3", "s4")


def test_on_success_delete(repo: ckpt.Repository) -> None:
    result = Pipeline(STAGES, store=repo, on_success="delete").run("j", 1)
    assert not repo.job("j").exists
    assert result["s2"] == [2] * 100
    assert result.output == 600


def test_on_success_only_applies_to_success(repo: ckpt.Repository) -> None:
    def bad(s1: list[int]) -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        Pipeline([s1, ("s2", bad)], store=repo, on_success="delete").run("j", 1)
    assert repo.job("j").status == "failed"


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ckpt.CkptError, match="on_success"):
        Pipeline(STAGES, on_success="maybe")  # type: ignore[arg-type]
    with pytest.raises(ckpt.CkptError, match="keep_last"):
        Pipeline(STAGES, keep_last=0)
