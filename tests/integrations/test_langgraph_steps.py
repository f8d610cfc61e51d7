"""One step of a graph is one commit and one durable step of the store.

A task's writes wait (up to ``ThreadStore.group_wait``) for the checkpoint that
follows them and are stored in its commit; writes no checkpoint follows, and
interrupts and other special writes, are stored on their own; writes sent
before their checkpoint are stored with it.  Whatever path they take, what
the saver reads back is the same.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

import ckpt
from ckpt.integrations.langgraph import CkptSaver
from ckpt.integrations.langgraph_layout import CARRIES, KIND_CHECKPOINT, KIND_WRITES
from ckpt.integrations.langgraph_record import Slice

from .lg_world import build_chat, config

WAIT = 10.0  # seconds a test waits for a thread it started (never reached when all is well)
CFG = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


def kinds(repo: ckpt.Repository, job: str = "t") -> list[str]:
    return [c.meta["langgraph"]["kind"] for c in reversed(repo.job(job).log())]


def checkpoint(n: int) -> Any:
    found = empty_checkpoint()
    found.update(id=str(uuid6(clock_seq=n)), channel_values={"x": n}, channel_versions={"x": n})
    return found


def in_thread(call: Any, *args: Any) -> threading.Thread:
    worker = threading.Thread(target=call, args=args)
    worker.start()
    return worker


def test_a_graph_step_is_one_commit_whose_writes_are_slices(tmp_path: Path) -> None:
    repo = ckpt.init(tmp_path / "store")
    saver = CkptSaver(repo)
    saver.store.group_wait = 5.0  # however slow the machine, the next checkpoint comes first
    build_chat(saver).invoke({"target": 60}, config("chat"), durability="sync")
    log = list(reversed(repo.job("chat").log()))
    # Each step's writes went in with the next checkpoint.  (The input's writes, sent in
    # the background as the input checkpoint is saved, may race it and be stored apart;
    # the thread that lost that race then stores its next writes at once, for a while.)
    assert sum(c.meta["langgraph"]["kind"] == KIND_WRITES for c in log) <= 2
    carrying = [c for c in log if CARRIES in c.meta["langgraph"]]
    assert len(carrying) >= 58
    # One ref move per commit: the reflog has a line for each.
    assert len(repo.job("chat").reflog()) == len(log)
    # The message a node wrote is the one its list gained: stored once, as a slice.
    found = saver.store.record(carrying[-1])
    assert found is not None
    assert any(isinstance(v, Slice) for v in found[1].writes.values())
    # Read back as InMemorySaver would: the writes of each step, with its message.
    history = list(saver.list(config("chat")))
    writes = [t.pending_writes for t in history if t.pending_writes]
    assert len(writes) == len(history) - 1
    latest_writes = dict((ch, v) for _task, ch, v in writes[0])
    assert latest_writes["messages"][0].id == "m59"
    assert repo.verify().ok


def test_writes_no_checkpoint_follows_are_stored_on_their_own() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    saver.store.group_wait = 0.05
    stored = saver.put(CFG, checkpoint(1), {"step": 0}, {"x": 1})
    saver.put_writes(stored, [("x", 5)], "task")
    assert kinds(saver.repo) == [KIND_CHECKPOINT, KIND_WRITES]
    assert saver.get_tuple(stored).pending_writes == [("task", "x", 5)]  # type: ignore[union-attr]
    saver.put_writes(stored, [("x", 6)], "task")  # index 0 of this task is stored already
    assert kinds(saver.repo) == [KIND_CHECKPOINT, KIND_WRITES]


def test_a_waiting_write_is_carried_by_the_next_checkpoint() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    saver.store.group_wait = 600.0  # only the next checkpoint ends the wait
    first = saver.put(CFG, checkpoint(1), {"step": 0, "run_id": "r"}, {"x": 1})
    worker = in_thread(saver.put_writes, first, [("x", 7)], "task-a")
    other = in_thread(saver.put_writes, first, [("x", 8)], "task-b")
    while len(saver.store._waiting.get(("t", "", first["configurable"]["checkpoint_id"]), [])) < 2:
        threading.Event().wait(0.001)
    second = saver.put(first, checkpoint(2), {"step": 1, "run_id": "r"}, {"x": 2})
    worker.join(WAIT)
    other.join(WAIT)
    assert not worker.is_alive() and not other.is_alive()
    assert kinds(saver.repo) == [KIND_CHECKPOINT, KIND_CHECKPOINT]
    found = saver.get_tuple(first)
    assert found is not None
    assert found.pending_writes == [("task-a", "x", 7), ("task-b", "x", 8)]
    assert saver.get_tuple(second).pending_writes == []  # type: ignore[union-attr]


def test_writes_are_not_carried_into_another_run() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    saver.store.group_wait = 0.2
    first = saver.put(CFG, checkpoint(1), {"step": 0, "run_id": "one"}, {"x": 1})
    worker = in_thread(saver.put_writes, first, [("x", 7)], "task")
    saver.put(first, checkpoint(2), {"step": 1, "run_id": "two"}, {"x": 2})
    worker.join(WAIT)
    assert kinds(saver.repo) == [KIND_CHECKPOINT, KIND_CHECKPOINT, KIND_WRITES]
    assert saver.get_tuple(first).pending_writes == [("task", "x", 7)]  # type: ignore[union-attr]


@pytest.mark.parametrize("channel", ["__interrupt__", "__error__"])
def test_special_writes_never_wait(channel: str) -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    saver.store.group_wait = 600.0
    stored = saver.put(CFG, checkpoint(1), {"step": 0}, {"x": 1})
    worker = in_thread(saver.put_writes, stored, [(channel, "stop")], "task")
    worker.join(WAIT)
    assert not worker.is_alive()
    assert kinds(saver.repo) == [KIND_CHECKPOINT, KIND_WRITES]


def test_deleting_the_thread_releases_a_waiting_write() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    saver.store.group_wait = 600.0
    stored = saver.put(CFG, checkpoint(1), {"step": 0}, {"x": 1})
    worker = in_thread(saver.put_writes, stored, [("x", 7)], "task")
    while not saver.store._waiting:
        threading.Event().wait(0.001)
    saver.delete_thread("t")
    worker.join(WAIT)
    assert not worker.is_alive()
    assert saver.repo.job_names() == []


def test_writes_sent_before_their_checkpoint_go_in_its_durable_step() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    first = saver.put(CFG, checkpoint(1), {"step": 0}, {"x": 1})
    early = checkpoint(2)
    target = {"configurable": {**CFG["configurable"], "checkpoint_id": early["id"]}}
    saver.put_writes(target, [("x", 9)], "task")  # before its checkpoint: queued
    assert kinds(saver.repo) == [KIND_CHECKPOINT]
    second = saver.put(first, early, {"step": 1}, {"x": 2})
    assert kinds(saver.repo) == [KIND_CHECKPOINT, KIND_CHECKPOINT, KIND_WRITES]
    # Both commits came with one move of the branch.
    reasons = [e.reason for e in saver.repo.job("t").reflog()]
    assert len(reasons) == 2
    assert saver.get_tuple(second).pending_writes == [("task", "x", 9)]  # type: ignore[union-attr]


def test_a_second_saver_on_the_same_thread_takes_turns(tmp_path: Path) -> None:
    """Two savers (as two processes would) write one thread by turns: each sees the other's
    commits, whatever it remembered of the branch."""
    one, two = CkptSaver(ckpt.init(tmp_path / "store")), CkptSaver(ckpt.open(tmp_path / "store"))
    first = one.put(CFG, checkpoint(1), {"step": 0}, {"x": 1})
    second = two.put(first, checkpoint(2), {"step": 1}, {"x": 2})
    third = one.put(second, checkpoint(3), {"step": 2}, {"x": 3})  # not first's child: moved
    one.put_writes(third, [("x", 30)], "task")
    fourth = two.put(third, checkpoint(4), {"step": 3}, {"x": 4})
    assert sorted(one.repo.job("t").branches()) == ["main"]
    for saver in (one, two, CkptSaver(ckpt.open(tmp_path / "store"))):
        found = [t.config for t in saver.list(CFG)]
        assert found == [fourth, third, second, first]
        assert saver.get_tuple(third).pending_writes == [("task", "x", 30)]  # type: ignore[union-attr]


def test_a_thread_that_sends_its_own_next_checkpoint_stops_waiting() -> None:
    """update_state calls put_writes, then put, on one thread: once a wait was in vain, that
    thread's writes are stored at once."""
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    saver.store.group_wait = 0.05

    def one_after_the_other() -> None:
        first = saver.put(CFG, checkpoint(1), {"step": 0}, {"x": 1})
        saver.put_writes(first, [("x", 5)], "task")  # waits in vain, then is stored
        second = saver.put(first, checkpoint(2), {"step": 1}, {"x": 2})
        saver.store.group_wait = 600.0  # would hang the test if this thread still waited
        saver.put_writes(second, [("x", 6)], "task")
        saver.put(second, checkpoint(3), {"step": 2}, {"x": 3})

    worker = in_thread(one_after_the_other)
    worker.join(WAIT)
    assert not worker.is_alive()
    assert kinds(saver.repo) == [KIND_CHECKPOINT, KIND_WRITES] * 2 + [KIND_CHECKPOINT]
    found = [t.pending_writes for t in saver.list(CFG)]
    assert found == [[], [("task", "x", 6)], [("task", "x", 5)]]
