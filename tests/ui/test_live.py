"""Live updates: the event streams follow runs and ref moves made by other processes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import ckpt
from ckpt.ui import live
from ckpt.ui.server import Dashboard

from .conftest import EventStream, Run, get_json


def test_the_jobs_stream_follows_a_run_in_another_process(
    dashboard: Dashboard, pipeline_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "REFRESH_SECONDS", 0.5)  # a deletion writes no pack
    stream = EventStream(dashboard.url, "/api/events/jobs")
    try:
        name, first = stream.wait_for("the listing", lambda name, doc: True)
        assert name == "jobs"
        assert {job["name"] for job in first["jobs"]} >= {"novel", "draft"}

        def running_with(done: int) -> object:
            return lambda name, doc: (
                name == "jobs-changed"
                and any(
                    job["name"] == "running" and len(job["stages"]) == done for job in doc["jobs"]
                )
            )

        for done in (1, 2, 3):
            pipeline_run.advance()
            _, changed = stream.wait_for(f"{done} stages done", running_with(done))
            entry = next(job for job in changed["jobs"] if job["name"] == "running")
            assert entry["total_stages"] == 4 and entry["status"] == "active"
            assert {job["name"] for job in changed["jobs"]} == {"running"}  # only what changed
        pipeline_run.finish()
        stream.wait_for(
            "completion",
            lambda name, doc: (
                name == "jobs-changed"
                and any(j["name"] == "running" and j["status"] == "completed" for j in doc["jobs"])
            ),
        )
        with ckpt.open(dashboard.location, durable=False) as repo:
            repo.delete_job("draft")
        stream.wait_for("removal", lambda name, doc: "draft" in doc.get("removed", []))
    finally:
        stream.close()


def test_the_job_stream_tells_each_move_of_a_ref(dashboard: Dashboard, store: Path) -> None:
    stream = EventStream(dashboard.url, "/api/events/jobs/novel")
    try:
        _, first = stream.wait_for("the status", lambda name, doc: name == "job")
        assert first == get_json(dashboard.url, "/api/jobs/novel/status")[1]
        with ckpt.open(store, durable=False) as repo:
            job = repo.job("novel")
            job.checkout("outline")  # moves a ref, writes no object
            stream.wait_for(
                "the checkout",
                lambda name, doc: name == "job" and doc["stages_done"] == ["outline"],
            )
            job.tag("before-edit")
            count = len(stream.events)
            stream.wait_for("the tag", lambda name, doc: len(stream.events) > count)
            repo.delete_job("novel")
        stream.wait_for("the deletion", lambda name, doc: name == "gone")
    finally:
        stream.close()


def test_a_move_that_writes_no_pack_is_seen_at_the_next_refresh(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "REFRESH_SECONDS", 0.3)
    stop = threading.Event()
    with ckpt.open(store, durable=False) as repo:
        events = live.jobs_events(repo, interval=0.05, stop=stop)
        first = next(events)
        assert first is not None and first[0] == "jobs"
        quiet = [next(events) for _ in range(3)]
        assert quiet == [None, None, None]  # nothing changed, nothing listed again
        repo.job("novel").checkout("outline")
        found = next(e for e in events if e is not None)
        assert found[0] == "jobs-changed"
        assert [job["stages"] for job in found[1]["jobs"]] == [["outline"]]
        stop.set()
        assert list(events) == []
