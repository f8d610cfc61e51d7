"""Point 8: a pipeline job (or one checkpoint) as human-readable JSON and back, lossless."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid
from pathlib import PurePosixPath

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

import ckpt
from ckpt.pipeline.agent import AgentRun, AgentState
from ckpt.pipeline.runner import Pipeline
from ckpt.transfer.exchange import export_job, import_job


class Mood(enum.Enum):
    DARK = "dark"
    LIGHT = "light"


@attrs.frozen
class Scene:
    title: str
    mood: Mood
    when: dt.datetime
    budget: decimal.Decimal
    id: uuid.UUID
    path: PurePosixPath
    raw: bytes
    tags: frozenset[str]
    span: dt.timedelta


def scenes(input: int) -> list[Scene]:
    return [
        Scene(
            f"scene {i}",
            Mood.DARK if i % 2 else Mood.LIGHT,
            dt.datetime(2026, 1, 17, 10, i, tzinfo=dt.UTC),
            decimal.Decimal("12.50") * i,
            uuid.UUID(int=i),
            PurePosixPath(f"out/{i}.png"),
            bytes([i, 0, 255]),
            frozenset({"a", str(i)}),
            dt.timedelta(seconds=i, microseconds=5),
        )
        for i in range(input)
    ]


def count(scenes: list[Scene]) -> dict[str, int]:
    return {s.title: len(s.raw) for s in scenes}


def test_job_export_import_round_trip_is_lossless(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([scenes, count], store=repo)
    original = pipeline.run("film", 3)
    doc = export_job(repo.job("film"))
    text = json.dumps(doc, indent=2)
    assert '"scene 1"' in text and '"dark"' in text  # readable by a person
    copy = import_job(repo, json.loads(text), name="film-copy")
    assert [c.id for c in copy.log()] != []
    assert copy.load("scenes", list[Scene]) == original["scenes"]
    # Same content gives the same objects: the trees are identical.
    assert copy.head is not None and repo.job("film").head is not None
    assert copy.head.tree == repo.job("film").head.tree
    # The pipeline resumes the imported job as completed.
    assert pipeline.run("film-copy").skipped == ("scenes", "count")


def test_one_checkpoint_export(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([scenes, count], store=repo)
    pipeline.run("film", 2)
    doc = export_job(repo.job("film"), rev="scenes")
    assert len(doc["commits"]) == 1
    single = import_job(repo, json.loads(json.dumps(doc)), name="one")
    assert single.load("scenes", list[Scene]) == scenes(2)
    assert pipeline.run("one").ran == ("count",)


def test_agent_run_export_import(repo: ckpt.Repository) -> None:
    run = AgentRun(repo, "agent")
    state = AgentState(context={"k": [1, 2]})
    state.add_message("user", "hi")
    state.add_tool_call("c1", "search", {"q": "x"}, result={"ok": True})
    run.save(state, step_name="one")
    doc = json.loads(json.dumps(export_job(run.job)))
    assert doc["commits"][0]["stages"]["agent"]["value"]["messages"][0]["content"] == "hi"
    copy = AgentRun(repo, "agent-copy")
    import_job(repo, doc, name="agent-copy")
    assert copy.restore() == state


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=30, deadline=None)
@given(value=json_values)
def test_any_json_stage_value_round_trips(value: object) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as where:
        repo = ckpt.init(where + "/s", durable=False)
        job = repo.job("j")
        job.save("v", value)
        copy = import_job(repo, json.loads(json.dumps(export_job(job))), name="k")
        assert copy.load("v") == value
        assert copy.load_raw("v") == job.load_raw("v")
