"""Stores written by earlier LangGraph savers read the same and go on.

``data/langgraph-store-0.1.tar.gz`` was written before checkpoint commits
recorded their channel versions; ``data/langgraph-store-0.2.tar.gz`` by the
saver that recorded them, stored every channel value whole and wrote a
commit for each ``put_writes`` (see ``data/README.md``).  Today's saver must
read every thread exactly as the saver that wrote it did (same states,
histories and checkpoint tuples, ids included), and continue each thread as
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

from .lg_world import Labels, Op, build, build_chat, canon, config, plain, run_op, snapshot
from .make_lg_store import chat_view, tuples_of
from .test_langgraph_differential import answers_of, assert_same

DATA = Path(__file__).with_name("data")
VERSIONS = ("0.1", "0.2")
EXPECTED = {
    v: json.loads((DATA / f"langgraph-store-{v}.json").read_text(encoding="utf-8"))
    for v in VERSIONS
}
GOING_ON: list[Op] = [
    ("resume", "later", "sync"),
    ("resume", "again", "async"),
    ("update", 2, "__copy__", 0),
    ("replay", 0, "sync"),
    ("update", None, "a", 3),
    ("resume", "last", "exit"),
]


def stories(version: str) -> dict[str, list[Op]]:
    return {t: [tuple(op) for op in ops] for t, ops in EXPECTED[version]["stories"].items()}


def open_store(version: str, tmp_path: Path) -> ckpt.Repository:
    with tarfile.open(DATA / f"langgraph-store-{version}.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    return ckpt.open(tmp_path / "store")


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(plain(value), ensure_ascii=False))


@pytest.mark.parametrize("version", VERSIONS)
def test_reads_what_the_old_saver_read(version: str, tmp_path: Path) -> None:
    legacy = open_store(version, tmp_path)
    expected = EXPECTED[version]
    saver = CkptSaver(legacy)
    app = build(saver)
    for thread in stories(version):
        assert as_json(snapshot(app, config(thread))) == expected["snapshots"][thread], thread
    if version == "0.1":
        tuples = [
            [t.config, t.parent_config, t.checkpoint, t.metadata, t.pending_writes]
            for t in saver.list(None)
        ]
        assert as_json(tuples) == expected["tuples"]
    else:
        for thread in stories(version):
            assert tuples_of(saver, thread) == expected["tuples"][thread], thread
        assert chat_view(build_chat(saver), config("chat")) == expected["chat"]["view"]
    assert legacy.verify().ok


def _threads() -> list[tuple[str, str]]:
    return [(v, t) for v in VERSIONS for t in sorted(stories(v))]


@pytest.mark.parametrize(("version", "thread"), _threads())
def test_every_thread_goes_on_as_in_memory_saver(version: str, thread: str, tmp_path: Path) -> None:
    legacy = open_store(version, tmp_path)
    oracle = InMemorySaver()
    app = build(oracle)
    for op in stories(version)[thread]:
        run_op(app, config(thread), op)
    saver = CkptSaver(legacy)
    assert_same(answers_of(oracle, GOING_ON, thread), answers_of(saver, GOING_ON, thread))
    assert legacy.verify().ok
    log = legacy.job(job_name_for(thread)).log()
    if version == "0.1":
        assert any("versions" in c.meta["langgraph"] for c in log)  # new commits record them
        assert any("versions" not in c.meta["langgraph"] for c in log)  # old ones stay as they were


def chat_answers(saver: Any, steps: list[tuple[int, str]]) -> list[str]:
    """What the chat graph on ``saver`` reports after each invocation of ``steps`` (each view
    holds the whole history, so ids are labelled afresh in each)."""
    app, cfg = build_chat(saver), config("chat")
    seen = []
    for target, durability in steps:
        app.invoke({"target": target}, cfg, durability=durability)
        seen.append(canon(chat_view(app, cfg), Labels()))
    return seen


def test_the_chat_thread_goes_on_as_in_memory_saver(tmp_path: Path) -> None:
    """A long message list written whole by the 0.2 saver grows on in today's layout."""
    legacy = open_store("0.2", tmp_path)
    written = [(int(t), str(d)) for t, d in EXPECTED["0.2"]["chat"]["steps"]]
    more = [(60, "sync"), (61, "async"), (75, "exit"), (90, "sync")]
    oracle = InMemorySaver()
    expected = chat_answers(oracle, written + more)[len(written) :]
    saver = CkptSaver(legacy)
    assert chat_answers(saver, more) == expected
    fresh = CkptSaver(ckpt.open(tmp_path / "store"))  # nothing cached: all read from the store
    assert canon(chat_view(build_chat(fresh), config("chat")), Labels()) == canon(
        chat_view(build_chat(oracle), config("chat")), Labels()
    )
    assert legacy.verify().ok


@pytest.mark.parametrize("version", VERSIONS)
def test_threads_leave_an_old_store_for_any_saver(version: str, tmp_path: Path) -> None:
    """import_threads reads an old store as it is (to InMemorySaver: string versions)."""
    saver = CkptSaver(open_store(version, tmp_path))
    copy = InMemorySaver()
    report = import_threads(saver, copy)
    found = stories(version)
    if version == "0.1":
        assert report.threads == 3 and report.checkpoints == len(EXPECTED[version]["tuples"])
    else:
        assert report.threads == len(found) + 1  # and the chat thread
    for thread in found:
        got = as_json(snapshot(build(copy), config(thread)))
        assert got == EXPECTED[version]["snapshots"][thread], thread
        assert build(copy).invoke(Command(resume="x"), config(thread))["log"]
