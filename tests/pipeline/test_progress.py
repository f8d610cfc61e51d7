"""Point 3: progress (done/total, percentage, latest stage, cost, tokens, elapsed, ETA),
callbacks, and the async watcher following a pipeline run by another process."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ckpt
from ckpt.objects.canonical import canonical_json
from ckpt.pipeline.fingerprint import Fingerprint
from ckpt.pipeline.progress import META_KEY, Progress, RunMeta, read_progress, watch
from ckpt.pipeline.runner import Pipeline
from ckpt.pipeline.stages import StageResult


def one(input: int) -> StageResult[int]:
    return StageResult(input + 1, cost=0.5, tokens=50)


def two(one: int) -> StageResult[int]:
    return StageResult(one + 1, cost=1.5, tokens=150)


def three(two: int) -> int:
    raise ValueError("three is broken")


def test_progress_fields(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([one, two, three], store=repo)
    assert pipeline.progress("job") is None
    with pytest.raises(ValueError):
        pipeline.run("job", 1)
    progress = pipeline.progress("job")
    assert progress is not None
    assert (progress.completed_stages, progress.total_stages) == (2, 3)
    assert progress.percentage == pytest.approx(200 / 3)
    assert progress.latest_stage == "two"
    assert progress.next_stage == "three"
    assert (progress.cost, progress.tokens) == (2.0, 200)
    assert progress.status == "failed" and progress.done
    assert progress.eta is None  # a failed run is going nowhere
    assert progress.elapsed >= dt.timedelta(0)
    assert progress.started_at <= progress.updated_at
    doc = progress.to_json()
    assert doc["percentage"] == pytest.approx(66.67)
    assert doc["completed"] == ["one", "two"]


def test_eta_is_mean_stage_duration_times_stages_left(repo: ckpt.Repository) -> None:
    from ckpt.pipeline.progress import RunMeta, compute_progress

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    meta = RunMeta(
        run="r",
        stages=("a", "b", "c", "d"),
        done=("a", "b"),
        durations={"a": 10.0, "b": 30.0},
        started=start,
        invoked=start,
    )
    progress = compute_progress(
        job="j",
        branch="main",
        status="active",
        meta=meta,
        total_cost=1.0,
        total_tokens=1,
        updated_at=start + dt.timedelta(seconds=40),
        commit=None,
        seq=3,
        at=start + dt.timedelta(seconds=45),
    )
    assert progress.eta == dt.timedelta(seconds=40)
    assert progress.elapsed == dt.timedelta(seconds=45)
    assert progress.resumed_at is None


def test_callbacks_see_start_end_and_checkpoint_in_order(repo: ckpt.Repository) -> None:
    events: list[tuple[str, str, int]] = []

    def record(event: ckpt.StageEvent) -> None:
        events.append((event.kind, event.stage, event.progress.completed_stages))

    pipeline = Pipeline(
        [one, two], store=repo, on_stage_start=record, on_stage_end=record, on_checkpoint=record
    )
    pipeline.run("job", 1)
    assert events == [
        ("start", "one", 0),
        ("end", "one", 1),
        ("checkpoint", "one", 1),
        ("start", "two", 1),
        ("end", "two", 2),
        ("checkpoint", "two", 2),
    ]


CHILD = """
import sys, time
from pathlib import Path
from ckpt.pipeline.runner import Pipeline
from ckpt.pipeline.stages import StageResult

work = Path(sys.argv[2])

def wait_for(name):
    while not (work / name).exists():
        time.sleep(0.01)

def s1(input: int) -> StageResult[int]:
    wait_for("go-s1")
    return StageResult(input + 1, cost=1.0, tokens=10)

def s2(s1: int) -> StageResult[int]:
    wait_for("go-s2")
    return StageResult(s1 + 1, cost=1.0, tokens=10)

def s3(s2: int) -> StageResult[int]:
    wait_for("go-s3")
    return StageResult(s2 + 1, cost=1.0, tokens=10)

Pipeline([s1, s2, s3], store=sys.argv[1]).run("watched", 0)
"""


@pytest.mark.slow
def test_watch_follows_a_run_in_another_process(tmp_path: Path) -> None:
    store = tmp_path / "store"
    repo = ckpt.init(store)
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    child = subprocess.Popen([sys.executable, str(script), str(store), str(tmp_path)])

    async def follow() -> list[Progress]:
        seen: list[Progress] = []
        async for progress in watch(repo, "watched", interval=0.02):
            seen.append(progress)
            nxt = progress.next_stage
            if nxt is not None:
                (tmp_path / f"go-{nxt}").touch()
        return seen

    try:
        seen = asyncio.run(asyncio.wait_for(follow(), timeout=120))
    finally:
        assert child.wait(timeout=120) == 0
    counts = [p.completed_stages for p in seen]
    assert counts == sorted(counts)
    assert sorted(set(counts)) == [0, 1, 2, 3]
    assert seen[-1].status == "completed"
    assert seen[-1].percentage == 100.0
    assert (seen[-1].cost, seen[-1].tokens) == (3.0, 30)
    assert next(p.latest_stage for p in seen if p.completed_stages == 2) == "s2"


def test_watch_waits_for_a_job_and_ends_when_it_is_done(repo: ckpt.Repository) -> None:
    async def scenario() -> list[str]:
        statuses: list[str] = []

        async def produce() -> None:
            await asyncio.sleep(0.05)
            await Pipeline([one, two], store=repo).run_async("later", 1)

        task = asyncio.create_task(produce())
        async for progress in watch(repo, "later", interval=0.01):
            statuses.append(progress.status)
        await task
        return statuses

    statuses = asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert statuses[-1] == "completed"
    assert all(s == "active" for s in statuses[:-1])


def test_jobs_saved_by_hand_have_progress_too(repo: ckpt.Repository) -> None:
    job = repo.job("manual")
    job.save("outline", {"beats": 3}, cost=0.25, tokens=40)
    job.save("draft", "text", cost=0.5, tokens=60)
    progress = read_progress(job)
    assert progress is not None
    assert progress.planned is False
    assert progress.completed == ("outline", "draft") and progress.latest_stage == "draft"
    assert (progress.cost, progress.tokens) == (0.75, 100)
    assert progress.updated_at == job.head.time  # type: ignore[union-attr]
    assert progress.total_stages is None and progress.percentage is None
    assert progress.next_stage is None and progress.eta is None
    doc = progress.to_json()
    assert doc["total_stages"] is None and doc["completed_stages"] == 2
    job.complete()
    done = read_progress(job)
    assert done is not None and done.status == "completed" and done.done


def test_eta_divides_by_the_stages_run_at_once() -> None:
    from ckpt.pipeline.progress import RunMeta, estimate_eta

    meta = RunMeta(
        run="r",
        stages=("a", "b", "c", "d", "e"),
        done=("a",),
        durations={"a": 10.0},
        concurrency=2,
    )
    assert estimate_eta(meta, "active") == dt.timedelta(seconds=20)  # 4 left, 2 lanes
    assert estimate_eta(meta, "failed") is None
    assert estimate_eta(attrs.evolve(meta, done=meta.stages), "active") == dt.timedelta(0)


NAMES = st.sampled_from(["input", "outline", "chapters", "cover", "book"])


@st.composite
def run_metas(draw: st.DrawFn) -> RunMeta:
    stages = tuple(draw(st.lists(NAMES, unique=True, min_size=1)))
    done = tuple(draw(st.lists(st.sampled_from(stages), unique=True)))
    hexes = st.text("0123456789abcdef", min_size=16, max_size=16)
    fingerprint = st.builds(
        Fingerprint,
        st.none() | hexes,
        st.none() | st.sampled_from(["1", "2", "v3"]),
        st.lists(NAMES, unique=True).map(tuple),
        st.dictionaries(NAMES, hexes),
    )
    counts = st.none() | st.tuples(st.integers(0, 500), st.none() | st.integers(0, 500))
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return RunMeta(
        run=draw(hexes),
        stages=stages,
        done=done,
        durations=draw(st.dictionaries(st.sampled_from(stages), st.floats(0, 1e4))),
        started=moment,
        invoked=moment + dt.timedelta(seconds=draw(st.integers(0, 10**6))),
        base_cost=draw(st.floats(0, 1e6)),
        base_tokens=draw(st.integers(0, 10**9)),
        inflight=draw(st.dictionaries(st.sampled_from(stages), counts)),
        fingerprints=draw(st.dictionaries(st.sampled_from(stages), fingerprint)),
        stale=draw(st.dictionaries(st.sampled_from(stages), st.text(max_size=40))),
        stage_costs=draw(
            st.dictionaries(
                st.sampled_from(stages), st.tuples(st.floats(0, 1e6), st.integers(0, 10**9))
            )
        ),
        concurrency=draw(st.integers(1, 64)),
    )


@settings(max_examples=150, deadline=None)
@given(run_metas())
def test_runner_metadata_survives_a_commit(meta: RunMeta) -> None:
    """What the runner writes in a commit's meta (canonical JSON) reads back the same."""
    stored = json.loads(canonical_json(meta.to_json()))
    back = RunMeta.from_commit(SimpleNamespace(meta={META_KEY: stored}))  # type: ignore[arg-type]
    assert back is not None
    expected = attrs.evolve(
        meta,
        durations={k: round(v, 6) for k, v in meta.durations.items()},
        stage_costs={k: (round(c, 9), t) for k, (c, t) in meta.stage_costs.items()},
    )
    assert back == expected
    assert back.running == tuple(
        s for s in meta.stages if s in meta.inflight and s not in meta.done
    )
