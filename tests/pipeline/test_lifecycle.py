"""Point 5: job lifecycle through the runner -- status, complete/fail, TTL and expiry, labels
with filtering, sequence numbers, and the parent link of forked jobs and branches."""

from __future__ import annotations

import datetime as dt
import time

import pytest

import ckpt
from ckpt.history.jobrecord import update_record
from ckpt.maintenance.retention import apply_retention
from ckpt.pipeline.listing import expire_due, list_jobs, parse_labels
from ckpt.pipeline.runner import Pipeline
from tests.objects._helpers import flip


def plan(input: str) -> str:
    return input + "!"


def act(plan: str) -> str:
    if plan.startswith("fail"):
        raise RuntimeError("act failed")
    return plan * 2


def test_statuses_active_completed_failed(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([plan, act], store=repo)
    pipeline.run("ok", "go")
    with pytest.raises(RuntimeError):
        pipeline.run("bad", "fail")
    repo.job("open").save("input", "x")
    assert {s.name: s.status for s in list_jobs(repo, sizes=False)} == {
        "bad": "failed",
        "ok": "completed",
        "open": "active",
    }
    assert [s.name for s in list_jobs(repo, statuses=["failed"])] == ["bad"]


def test_sequence_numbers_count_up_per_checkpoint(repo: ckpt.Repository) -> None:
    Pipeline([plan, act], store=repo).run("j", "go")
    assert [c.seq for c in reversed(repo.job("j").log())] == [1, 2, 3, 4]


def test_ttl_expiry_is_shown_and_marked(repo: ckpt.Repository) -> None:
    Pipeline([plan, act], store=repo, ttl=dt.timedelta(hours=1)).run("kept", "go")
    Pipeline([plan, act], store=repo, ttl=0.01).run("short", "go")
    time.sleep(0.05)
    job = repo.job("short")
    assert job.is_expired
    listed = {s.name: s for s in list_jobs(repo, sizes=False)}
    assert listed["kept"].status == "completed"
    short_expiry = listed["short"].expires_at
    assert short_expiry is not None and short_expiry < dt.datetime.now(dt.UTC)
    assert expire_due(repo, dry_run=True) == ["short"]
    assert expire_due(repo) == ["short"]
    assert expire_due(repo) == []  # already marked
    listed = {s.name: s for s in list_jobs(repo, sizes=False)}
    assert listed["short"].status == "expired"
    assert [s.name for s in list_jobs(repo, statuses=["expired"])] == ["short"]
    head = job.head
    assert head is not None and head.status == "expired"
    with pytest.raises(ckpt.CkptError, match="expired"):
        Pipeline([plan, act], store=repo).run("short")
    report = apply_retention(repo, expired=True)
    assert report.deleted_jobs == ("short",)
    assert repo.job_names() == ["kept"]


def test_restart_renews_an_expired_job(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([plan, act], store=repo)
    pipeline.run("j", "go")
    job = repo.job("j")
    job.save("note", "an active checkpoint after the run")
    job.set_ttl(0.01)
    time.sleep(0.05)
    assert job.status == "expired"  # an active job whose TTL passed shows as expired
    pipeline.run("j", restart=True)
    job.refresh()
    assert job.status == "completed"
    assert job.record.expires_at is None


def test_labels_are_set_by_the_runner_and_filter_listings(repo: ckpt.Repository) -> None:
    Pipeline([plan, act], store=repo, labels={"genre": "fantasy", "owner": "ana"}).run("f", "a")
    Pipeline([plan, act], store=repo, labels={"genre": "crime"}).run("c", "a")
    Pipeline([plan, act], store=repo).run("none", "a")
    assert repo.job("f").labels == {"genre": "fantasy", "owner": "ana"}
    assert [s.name for s in list_jobs(repo, labels={"genre": "fantasy"})] == ["f"]
    assert [s.name for s in list_jobs(repo, labels=["genre=*"])] == ["c", "f"]
    assert [s.name for s in list_jobs(repo, labels=["genre=crime", "owner=ana"])] == []
    assert parse_labels(["a=b", "c = d=e"]) == {"a": "b", "c": "d=e"}
    with pytest.raises(ckpt.CkptError, match="KEY=VALUE"):
        parse_labels(["novalue"])
    with pytest.raises(ckpt.CkptError, match="unknown status"):
        list_jobs(repo, statuses=["paused"])


def test_fork_and_branch_keep_a_parent_link(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([plan, act], store=repo)
    pipeline.run("orig", "go")
    source = repo.job("orig")
    plan_commit = source.resolve("plan")
    fork = source.fork("copy", at="plan")
    assert fork.record.forked_from is not None
    assert fork.record.forked_from.commit == plan_commit.id
    summary = next(s for s in list_jobs(repo, sizes=False) if s.name == "copy")
    assert summary.forked_from == ("orig", plan_commit.id)
    # The forked job resumes the pipeline from its fork point.
    result = pipeline.run("copy")
    assert result.ran == ("act",)
    assert result.skipped == ("plan",)

    pipeline.run("orig", resume_from="act", branch="try2")
    source.refresh()
    assert source.branch_name == "try2"
    first_on_branch = next(c for c in source.log() if c.stage == "act")
    assert first_on_branch.branch == "try2"
    assert first_on_branch.parent == plan_commit.id


def test_a_job_record_change_does_not_stop_resume(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([plan, act], store=repo)
    with pytest.raises(RuntimeError):
        pipeline.run("j", "fail")
    update_record(repo.storage, "j", lambda record: record)
    assert pipeline.can_resume("j")


def test_listing_and_status_estimate_the_time_left_of_a_run(repo: ckpt.Repository) -> None:
    from ckpt.pipeline.listing import job_progress
    from ckpt.pipeline.progress import RunMeta

    meta = RunMeta(
        run="r1", stages=("plan", "act", "ship"), done=("plan",), durations={"plan": 2.0}
    )
    job = repo.job("running")
    job.save("plan", "x", meta={"pipeline": meta.to_json()})
    Pipeline([plan, act], store=repo).run("done", "go")
    repo.job("by-hand").save("notes", "x")
    listed = {s.name: s.to_json()["eta_seconds"] for s in list_jobs(repo)}
    # The mean stage duration (2 s) times the two stages left; nothing left once completed.
    assert listed == {"running": 4.0, "done": 0.0, "by-hand": None}
    assert job_progress(job).to_json()["eta_seconds"] == 4.0
    job.fail("boom", stage="act")
    assert job_progress(job).eta is None


def test_a_damaged_job_is_listed_as_damaged_or_raises(repo: ckpt.Repository) -> None:
    from ckpt.errors import CorruptObjectError

    Pipeline([plan, act], store=repo).run("good", "go")
    head = repo.job("bad").save("plan", "x")
    flip(repo.storage, repo.objects, head.id)
    fresh = ckpt.open(repo.location, durable=False)
    with pytest.raises(CorruptObjectError):
        list_jobs(fresh)
    # Marked: listed whatever the filters, the others as usual.
    marked = {s.name: s for s in list_jobs(fresh, damaged="mark", statuses=["completed"])}
    assert sorted(marked) == ["bad", "good"]
    assert marked["bad"].status == "damaged"
    assert marked["bad"].damage is not None and head.id in marked["bad"].damage
    assert marked["good"].status == "completed" and marked["good"].damage is None
    with pytest.raises(ckpt.CkptError, match="damaged must be one of raise, mark"):
        list_jobs(fresh, damaged="ignore")
    fresh.close()
