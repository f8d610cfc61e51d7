"""A store written by the LangGraph saver of ckpt 0.1 reads the same and goes on.

``data/langgraph-store-0.1.tar.gz`` was written before checkpoint commits
recorded their channel versions (see ``data/README.md``).  Today's saver
must read every thread exactly as that saver did (same states, histories
and checkpoint tuples, ids included), and continue each thread as
LangGraph's InMemorySaver continues the same thread.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

import ckpt
from ckpt.integrations.langgraph import CkptSaver, import_threads
from ckpt.integrations.langgraph_layout import job_name_for

from .lg_world import Op, build, config, plain, run_op, snapshot
from .test_langgraph_differential import answers_of, assert_same

DATA = Path(__file__).with_name("data")
EXPECTED = json.loads((DATA / "langgraph-store-0.1.json").read_text(encoding="utf-8"))
STORIES: dict[str, list[Op]] = {
    t: [tuple(op) for op in ops] for t, ops in EXPECTED["stories"].items()
}
GOING_ON: list[Op] = [
    ("resume", "later", "sync"),
    ("resume", "again", "async"),
    ("update", 2, "__copy__", 0),
    ("replay", 0, "sync"),
    ("update", None, "a", 3),
    ("resume", "last", "exit"),
]


@pytest.fixture
def legacy(tmp_path: Path) -> ckpt.Repository:
    with tarfile.open(DATA / "langgraph-store-0.1.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    return ckpt.open(tmp_path / "store")


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(plain(value), ensure_ascii=False))


def test_reads_what_the_old_saver_read(legacy: ckpt.Repository) -> None:
    saver = CkptSaver(legacy)
    app = build(saver)
    for thread in STORIES:
        assert as_json(snapshot(app, config(thread))) == EXPECTED["snapshots"][thread], thread
    tuples = [
        [t.config, t.parent_config, t.checkpoint, t.metadata, t.pending_writes]
        for t in saver.list(None)
    ]
    assert as_json(tuples) == EXPECTED["tuples"]
    assert legacy.verify().ok


@pytest.mark.parametrize("thread", sorted(STORIES))
def test_every_thread_goes_on_as_in_memory_saver(legacy: ckpt.Repository, thread: str) -> None:
    oracle = InMemorySaver()
    app = build(oracle)
    for op in STORIES[thread]:
        run_op(app, config(thread), op)
    saver = CkptSaver(legacy)
    assert_same(answers_of(oracle, GOING_ON, thread), answers_of(saver, GOING_ON, thread))
    assert legacy.verify().ok
    log = legacy.job(job_name_for(thread)).log()
    assert any("versions" in c.meta["langgraph"] for c in log)  # new commits record them
    assert any("versions" not in c.meta["langgraph"] for c in log)  # old ones stay as they were


def test_threads_leave_an_old_store_for_any_saver(legacy: ckpt.Repository) -> None:
    """import_threads reads an old store as it is (to InMemorySaver: string versions)."""
    saver = CkptSaver(legacy)
    copy = InMemorySaver()
    report = import_threads(saver, copy)
    assert report.threads == 3 and report.checkpoints == len(EXPECTED["tuples"])
    for thread in STORIES:
        found = as_json(snapshot(build(copy), config(thread)))
        assert found == EXPECTED["snapshots"][thread], thread
        assert build(copy).invoke(Command(resume="x"), config(thread))["log"]
