"""CkptSaver answers exactly as LangGraph's InMemorySaver (the oracle), sync and async.

Hypothesis generates sequences of what LangGraph does with a checkpointer
(see ``lg_world.Op``): invoke, interrupt and ``Command(resume=...)``, replays
and resumes from any checkpoint of the history, ``update_state`` as a node,
as ``__copy__`` and as ``__input__``, with durability sync, async and exit,
on a graph with a ``Send`` fan-out and a subgraph that interrupts.  The same
sequence runs on both savers; after every step the step's result, the state
(with subgraph states), the history (values, next, tasks, interrupts,
metadata, parent links) and every checkpoint tuple of every namespace must
be equal, ids aside (see ``lg_world.canon``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver

import ckpt
from ckpt.integrations.langgraph import CkptSaver, import_threads

from .lg_world import Labels, Op, arun_op, asnapshot, build, canon, config, run_op, snapshot

durabilities = st.sampled_from(["sync", "async", "exit"])
answers = st.sampled_from(["yes", "no"])
index = st.integers(0, 40)
nodes = st.sampled_from(["__copy__", "__input__", "a", "worker", "sub", "ask", None])
ops: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("invoke"), st.integers(0, 5), durabilities),
    st.tuples(st.just("resume"), answers, durabilities),
    st.tuples(st.just("replay"), index, durabilities),
    st.tuples(st.just("resume_at"), index, answers, durabilities),
    st.tuples(st.just("update"), st.none() | index, nodes, st.integers(0, 5)),
    st.tuples(st.just("update"), st.none() | index, st.just("__copy__"), st.just(0)),
)
scenarios = st.tuples(
    st.tuples(st.just("invoke"), st.integers(0, 5), durabilities), st.lists(ops, max_size=5)
).map(lambda found: [found[0], *found[1]])

#: Scenarios per test; CKPT_LG_EXAMPLES=500 for a deeper search than CI's.
EXAMPLES = settings(
    max_examples=int(os.environ.get("CKPT_LG_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
THREAD = "t:1/é"


def checkpoints(saver: Any, thread: str) -> list[Any]:
    """Every checkpoint tuple of every namespace of ``thread``, namespaces in the order they
    began, without channel versions (each saver has its own form)."""
    spaces: dict[str, list[Any]] = {}
    for found in saver.list({"configurable": {"thread_id": thread}}):
        checkpoint = {
            k: v
            for k, v in found.checkpoint.items()
            if k not in ("channel_versions", "versions_seen")
        }
        ns = found.config["configurable"]["checkpoint_ns"]
        spaces.setdefault(ns, []).append(
            [found.config, found.parent_config, checkpoint, found.metadata, found.pending_writes]
        )
    return sorted(spaces.values(), key=lambda rows: rows[-1][0]["configurable"]["checkpoint_id"])


def answers_of(saver: Any, scenario: list[Op], thread: str = THREAD) -> list[str]:
    """What a graph on ``saver`` answers at each step of ``scenario``."""
    labels, app, cfg = Labels(), build(saver), config(thread)
    seen = []
    for op in scenario:
        seen.append(canon([op, run_op(app, cfg, op)], labels))
        seen.append(canon(snapshot(app, cfg), labels))
        seen.append(canon(checkpoints(saver, thread), labels))
    return seen


async def async_answers_of(saver: Any, scenario: list[Op]) -> list[str]:
    labels, app, cfg = Labels(), build(saver), config(THREAD)
    seen = []
    for op in scenario:
        seen.append(canon([op, await arun_op(app, cfg, op)], labels))
        seen.append(canon(await asnapshot(app, cfg), labels))
        seen.append(canon(checkpoints(saver, THREAD), labels))
    return seen


def assert_same(expected: list[str], found: list[str]) -> None:
    assert len(found) == len(expected)
    for step, (want, got) in enumerate(zip(expected, found, strict=True)):
        assert got == want, f"step {step // 3}: {('result', 'state', 'checkpoints')[step % 3]}"


def fresh_saver() -> CkptSaver:
    return CkptSaver(f"memory://{uuid.uuid4().hex}")


@EXAMPLES
@given(scenarios)
def test_sync_answers_equal_in_memory_saver(scenario: list[Op]) -> None:
    saver = fresh_saver()
    assert_same(answers_of(InMemorySaver(), scenario), answers_of(saver, scenario))
    assert saver.repo.verify().ok


@EXAMPLES
@given(scenarios)
def test_async_answers_equal_in_memory_saver(scenario: list[Op]) -> None:
    saver = fresh_saver()
    expected = asyncio.run(async_answers_of(InMemorySaver(), scenario))
    assert_same(expected, asyncio.run(async_answers_of(saver, scenario)))


def other_saver(kind: str) -> Any:
    if kind == "memory":
        return InMemorySaver()
    sqlite = pytest.importorskip("langgraph.checkpoint.sqlite")
    return sqlite.SqliteSaver(sqlite3.connect(":memory:", check_same_thread=False))


@EXAMPLES
@given(scenarios, st.integers(1, 5), st.sampled_from(["memory", "sqlite"]))
def test_threads_from_other_savers_go_on_alike(scenario: list[Op], split: int, kind: str) -> None:
    """A thread begun on InMemorySaver or SqliteSaver (string channel versions), copied into
    CkptSaver, reads as in its source and goes on as it does there."""
    source = other_saver(kind)
    app, cfg = build(source), config(THREAD)
    for op in scenario[:split]:
        run_op(app, cfg, op)
    saver = fresh_saver()
    import_threads(source, saver)
    assert canon(snapshot(build(saver), cfg), Labels()) == canon(snapshot(app, cfg), Labels())
    rest = scenario[split:] or [("resume", "yes", "sync")]
    assert_same(answers_of(source, rest), answers_of(saver, rest))


# Named cases: the two findings of the issue and the branches the generator may miss.
CASES: dict[str, list[Op]] = {
    # A __copy__ fork of the checkpoint waiting at the subgraph's interrupt, resumed.
    "copy-fork-resumed": [
        ("invoke", 0, "sync"),
        ("update", 0, "__copy__", 0),
        ("resume", "yes", "sync"),
        ("resume", "no", "sync"),
    ],
    # A copy of an older checkpoint whose channels moved on since.
    "copy-of-older-checkpoint": [
        ("invoke", 0, "sync"),
        ("resume", "yes", "async"),
        ("update", 3, "__copy__", 0),
        ("replay", 0, "sync"),
        ("resume", "no", "exit"),
    ],
    "input-and-node-updates-on-history": [
        ("invoke", 1, "async"),
        ("update", 2, "__input__", 4),
        ("replay", 0, "sync"),
        ("update", 5, "a", 2),
        ("resume_at", 1, "yes", "exit"),
    ],
    "exit-durability-then-time-travel": [
        ("invoke", 2, "exit"),
        ("resume", "yes", "exit"),
        ("resume", "no", "exit"),
        ("replay", 2, "exit"),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_named_cases(name: str) -> None:
    saver = fresh_saver()
    assert_same(answers_of(InMemorySaver(), CASES[name]), answers_of(saver, CASES[name]))
    expected = asyncio.run(async_answers_of(InMemorySaver(), CASES[name]))
    assert_same(expected, asyncio.run(async_answers_of(fresh_saver(), CASES[name])))


def test_named_case_on_a_local_store(tmp_path: Path) -> None:
    saver = CkptSaver(ckpt.init(tmp_path / "store"))
    scenario = CASES["copy-of-older-checkpoint"]
    assert_same(answers_of(InMemorySaver(), scenario), answers_of(saver, scenario))
    assert saver.repo.verify().ok


def _put_three(saver: Any) -> Any:
    """The issue's reproduction: A (x="old", v1), B under A (x="new", v2), then a copy of
    B under A with no new versions, as ``update_state(..., as_node="__copy__")`` does."""
    cfg = {"configurable": {"thread_id": "copy", "checkpoint_ns": ""}}
    a = empty_checkpoint()
    a.update(id=str(uuid6(clock_seq=1)), channel_values={"x": "old"}, channel_versions={"x": 1})
    at_a = saver.put(cfg, a, {"step": 0}, {"x": 1})
    b = empty_checkpoint()
    b.update(id=str(uuid6(clock_seq=2)), channel_values={"x": "new"}, channel_versions={"x": 2})
    saver.put(at_a, b, {"step": 1}, {"x": 2})
    copy = {**b, "id": str(uuid6(clock_seq=3))}
    return saver.get_tuple(saver.put(at_a, copy, {"step": 2, "source": "fork"}, {}))


def test_a_copy_holds_the_value_of_its_own_versions() -> None:
    expected = _put_three(InMemorySaver())
    found = _put_three(fresh_saver())
    assert expected.checkpoint["channel_values"] == {"x": "new"}
    assert found.checkpoint["channel_values"] == {"x": "new"}
    assert found.checkpoint["channel_versions"] == {"x": 2}
