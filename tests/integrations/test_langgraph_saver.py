"""CkptSaver with real LangGraph graphs: what ckpt sees, and that it behaves like InMemorySaver."""

from __future__ import annotations

import asyncio
import datetime as dt
import operator
import re
import threading
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

import ckpt
from ckpt.integrations.langgraph import CkptSaver
from ckpt.integrations.langgraph_layout import (
    HEADER_STAGE,
    THREAD_LABEL,
    job_name_for,
    sealed_stage,
)

from .lg_world import build_chat, chat_text


class State(TypedDict):
    log: Annotated[list[str], operator.add]
    n: int


def graph(saver: Any) -> Any:
    """START -> a -> (b, c in parallel) -> sub (a subgraph) -> ask (interrupts) -> END."""

    def a(state: State) -> dict[str, Any]:
        return {"log": ["a"], "n": state["n"] + 1}

    def b(state: State) -> dict[str, Any]:
        return {"log": ["b"]}

    def c(state: State) -> dict[str, Any]:
        return {"log": ["c"]}

    def ask(state: State) -> dict[str, Any]:
        return {"log": [f"answer:{interrupt('ok?')}"]}

    def inner(state: State) -> dict[str, Any]:
        return {"log": ["inner"]}

    sub = StateGraph(State)
    sub.add_node("inner", inner)
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)
    main = StateGraph(State)
    main.add_node("a", a)
    main.add_node("b", b)
    main.add_node("c", c)
    main.add_node("sub", sub.compile())
    main.add_node("ask", ask)
    main.add_edge(START, "a")
    main.add_edge("a", "b")
    main.add_edge("a", "c")
    main.add_edge(["b", "c"], "sub")
    main.add_edge("sub", "ask")
    main.add_edge("ask", END)
    return main.compile(checkpointer=saver)


def counter(saver: Any) -> Any:
    """One node that counts up to 3, one checkpoint per step."""

    def step(state: State) -> dict[str, Any]:
        return {"n": state["n"] + 1, "log": [str(state["n"] + 1)]}

    def route(state: State) -> str:
        return str(END) if state["n"] >= 3 else "step"

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", route)
    return builder.compile(checkpointer=saver)


def config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def story(saver: Any, durability: str, thread: str = "t:1/é") -> list[str]:
    """Run, interrupt, resume, time-travel fork, update_state fork; the outputs and history."""
    app = graph(saver)
    cfg = config(thread)
    seen = [app.invoke({"log": [], "n": 0}, cfg, durability=durability)]
    seen.append(app.invoke(Command(resume="yes"), cfg, durability=durability))
    earlier = [s for s in app.get_state_history(cfg) if s.next == ("b", "c")]
    if earlier:
        seen.append(app.invoke(None, earlier[0].config, durability=durability))
        seen.append(app.invoke(Command(resume="again"), cfg, durability=durability))
        updated = app.update_state(earlier[0].config, {"n": 100})
        seen.append(app.invoke(None, updated, durability=durability))
        seen.append(app.invoke(Command(resume="third"), cfg, durability=durability))
    history = [
        (s.values, s.next, s.metadata.get("step"), s.metadata.get("source"), len(s.tasks))
        for s in app.get_state_history(cfg)
    ]
    # Interrupt ids derive from checkpoint ids, which differ from run to run.
    return [re.sub(r"id='[0-9a-f]+'", "id=X", repr(x)) for x in (*seen, *history)]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_behaves_like_in_memory_saver(durability: str) -> None:
    repo = ckpt.init(f"memory://{uuid.uuid4().hex}")
    assert story(CkptSaver(repo), durability) == story(InMemorySaver(), durability)
    assert repo.verify().ok


def test_async_api_behaves_like_in_memory_saver() -> None:
    async def run(saver: Any) -> list[str]:
        app = graph(saver)
        cfg = config("async")
        out = [await app.ainvoke({"log": [], "n": 0}, cfg)]
        out.append(await app.ainvoke(Command(resume="yes"), cfg))
        out.extend([(s.values, s.next) async for s in app.aget_state_history(cfg)])
        return [re.sub(r"id='[0-9a-f]+'", "id=X", repr(x)) for x in out]

    repo = ckpt.init(f"memory://{uuid.uuid4().hex}")
    assert asyncio.run(run(CkptSaver(repo))) == asyncio.run(run(InMemorySaver()))


def test_thread_is_a_job_with_a_readable_log(repo: ckpt.Repository) -> None:
    app = counter(CkptSaver(repo))
    app.invoke({"log": [], "n": 0}, config("chat:42"))
    name = job_name_for("chat:42")
    assert name == "lg.chat=3A42"
    assert repo.job_names() == [name]
    job = repo.job(name)
    assert job.labels == {THREAD_LABEL: "chat:42"}
    checkpoints = [c for c in job.log() if c.meta["langgraph"]["kind"] == "checkpoint"]
    assert [c.meta["langgraph"]["metadata"]["step"] for c in checkpoints] == [3, 2, 1, 0, -1]
    assert checkpoints[0].message == "langgraph loop step 3"
    # Small channel values are in the checkpoint's record: one stage per commit.
    assert set(job.stages()) == {HEADER_STAGE}
    assert job.tree().get(HEADER_STAGE).type == "lg.record"  # type: ignore[union-attr]
    # The newest state reads back through the serializer.
    saver = CkptSaver(repo)
    assert saver.get_tuple(config("chat:42")).checkpoint["channel_values"]["n"] == 3  # type: ignore[union-attr]


def test_checkout_makes_the_next_invocation_continue_there(repo: ckpt.Repository) -> None:
    saver = CkptSaver(repo)
    app = counter(saver)
    cfg = config("rollback")
    app.invoke({"log": [], "n": 0}, cfg)
    job = repo.job("rollback")
    step1 = next(
        c
        for c in job.log()
        if c.meta["langgraph"]["kind"] == "checkpoint"
        and c.meta["langgraph"]["metadata"]["step"] == 1
    )
    job.checkout(step1.id)  # what `ckpt checkout rollback <commit>` does
    assert app.get_state(cfg).values["n"] == 1
    result = app.invoke(None, cfg)  # continues from step 1 on the same branch
    assert result["n"] == 3 and result["log"] == ["1", "2", "3"]
    assert sorted(job.branches()) == ["main"]
    assert repo.verify().ok


def test_fork_from_an_older_checkpoint_starts_a_branch(repo: ckpt.Repository) -> None:
    app = counter(CkptSaver(repo))
    cfg = config("fork")
    app.invoke({"log": [], "n": 0}, cfg)
    job = repo.job("fork")
    main_head = job.branches()["main"]
    step1 = next(s for s in app.get_state_history(cfg) if s.metadata["step"] == 1)
    forked = app.update_state(step1.config, {"n": 0})
    assert app.invoke(None, forked)["log"] == ["1", "1", "2", "3"]
    branches = job.branches()
    assert set(branches) == {"main", f"fork-{forked['configurable']['checkpoint_id']}"}
    assert branches["main"] == main_head  # the original history is untouched
    assert job.branch_name != "main"  # the thread goes on from the fork
    job.switch("main")
    assert app.get_state(cfg).values["n"] == 3
    assert repo.verify().ok


def test_gc_keeps_every_checkpoint_and_write(repo: ckpt.Repository) -> None:
    saver = CkptSaver(repo)
    app = graph(saver)
    cfg = config("gc")
    app.invoke({"log": [], "n": 0}, cfg)
    app.invoke(Command(resume="yes"), cfg)
    before = [(t.checkpoint["channel_values"], t.pending_writes) for t in saver.list(None)]
    report = repo.gc(grace=dt.timedelta(0))
    assert report.deleted == 0
    fresh = CkptSaver(ckpt.open(repo.location))
    after = [(t.checkpoint["channel_values"], t.pending_writes) for t in fresh.list(None)]
    assert after == before and len(after) > 5
    assert repo.verify().ok


class Doc(TypedDict):
    doc: str
    log: Annotated[list[str], operator.add]


def documents(saver: Any) -> Any:
    """One node that sets a 20 KB document and appends to a log, three times."""

    def step(state: Doc) -> dict[str, Any]:
        n = len(state["log"]) + 1
        return {"doc": "lorem ipsum " * 1700 + str(n // 2), "log": [str(n)]}

    builder = StateGraph(Doc)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: str(END) if len(s["log"]) >= 3 else "step")
    return builder.compile(checkpointer=saver)


def test_identical_values_are_stored_once(repo: ckpt.Repository) -> None:
    app = documents(CkptSaver(repo))
    for thread in ("x", "y"):
        app.invoke({"log": [], "doc": ""}, config(thread))
    trees = [repo.job(t).tree() for t in ("x", "y")]
    assert trees[0].get("doc") == trees[1].get("doc")  # same value, same blob
    docs = [repo.job("x").tree(c.id).get("doc") for c in repo.job("x").log()]
    assert len({e.id for e in docs if e is not None}) == 2  # "... 0", "... 1" (n // 2)


def test_a_long_list_keeps_its_sealed_prefix(repo: ckpt.Repository) -> None:
    """A message list stores each step's message once: its sealed prefix is shared by the
    checkpoints that follow (and by another thread with the same messages)."""
    saver = CkptSaver(repo)
    for thread in ("c1", "c2"):
        build_chat(saver).invoke({"target": 80}, config(thread))
    job = repo.job("c1")
    stage = sealed_stage("messages")
    sealed = [job.tree(c.id).get(stage) for c in job.log()]
    ids = {e.id for e in sealed if e is not None}
    assert 1 <= len(ids) <= 4 and len(sealed) > 80
    assert repo.job("c2").tree().get(stage) == job.tree().get(stage)
    state = CkptSaver(repo).get_tuple(config("c1"))
    assert state is not None
    messages = state.checkpoint["channel_values"]["messages"]
    assert [m.id for m in messages] == [f"m{n}" for n in range(80)]
    assert messages[-1].content == chat_text(79)
    assert repo.verify().ok


def test_a_new_process_resumes_an_interrupted_run(location: str) -> None:
    repo = ckpt.init(location)
    app = graph(CkptSaver(repo))
    cfg = config("resume")
    app.invoke({"log": [], "n": 0}, cfg)
    assert app.get_state(cfg).next == ("ask",)
    again = graph(CkptSaver(location))  # opens the same store by location
    assert again.invoke(Command(resume="later"), cfg)["log"][-1] == "answer:later"


def test_writes_sent_before_their_checkpoint_are_kept() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    cfg = {"configurable": {"thread_id": "early", "checkpoint_ns": ""}}
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=1))
    saver.put_writes(
        {**cfg, "configurable": {**cfg["configurable"], "checkpoint_id": cp["id"]}},
        [("ch", 1)],
        "task",
    )
    stored = saver.put(cfg, cp, {"source": "loop", "step": 0}, {})
    found = saver.get_tuple(stored)
    assert found is not None and found.pending_writes == [("task", "ch", 1)]


def test_late_writes_of_an_older_checkpoint_are_kept() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    cfg = {"configurable": {"thread_id": "late", "checkpoint_ns": ""}}
    first = empty_checkpoint()
    first["id"] = str(uuid6(clock_seq=1))
    c1 = saver.put(cfg, first, {"step": 0}, {})
    second = empty_checkpoint()
    second["id"] = str(uuid6(clock_seq=2))
    c2 = saver.put(c1, second, {"step": 1}, {})
    saver.put_writes(c1, [("ch", "late")], "task")
    assert saver.get_tuple(c1).pending_writes == [("task", "ch", "late")]  # type: ignore[union-attr]
    latest = saver.get_tuple(cfg)
    assert latest is not None and latest.config == c2 and latest.pending_writes == []
    third = empty_checkpoint()
    third["id"] = str(uuid6(clock_seq=3))
    saver.put(c2, third, {"step": 2}, {})  # still appended to main, not forked
    assert sorted(saver.repo.job("late").branches()) == ["main"]


def test_concurrent_writes_from_threads_are_all_stored() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    cfg = {"configurable": {"thread_id": "par", "checkpoint_ns": ""}}
    cp = empty_checkpoint()
    stored = saver.put(cfg, cp, {"step": 0}, {})
    workers = [
        threading.Thread(target=saver.put_writes, args=(stored, [("ch", i)], f"task-{i}"))
        for i in range(8)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    found = saver.get_tuple(stored)
    assert found is not None
    assert sorted(w[2] for w in found.pending_writes or []) == list(range(8))


def test_delete_for_runs_prune_copy_then_gc_keep_the_rest_intact(repo: ckpt.Repository) -> None:
    saver = CkptSaver(repo)
    app = counter(saver)

    def run(thread: str, run_id: str) -> None:
        # LangGraph copies config["metadata"] (where a server puts run_id) into checkpoints.
        app.invoke({"log": [], "n": 0}, {**config(thread), "metadata": {"run_id": run_id}})

    run("keep", "run-keep")
    run("drop", "run-drop")
    run("two", "run-1")
    run("two", "run-2")  # the same thread again: its state goes on from run-1's
    run("prune", "run-prune")
    saver.copy_thread("keep", "copy")
    saver.delete_for_runs(["run-drop", "run-1"])
    saver.prune(["prune"])
    saver.delete_thread("keep")
    repo.gc(grace=dt.timedelta(0))
    assert repo.verify().ok
    assert repo.job_names() == sorted(job_name_for(t) for t in ("copy", "prune", "two"))
    assert [t.checkpoint["channel_values"]["n"] for t in saver.list(config("prune"))] == [3]
    copied = [t.checkpoint["channel_values"].get("n") for t in saver.list(config("copy"))]
    assert copied == [3, 2, 1, 0, None]
    assert counter(saver).get_state(config("copy")).values["log"] == ["1", "2", "3"]
    left = list(saver.list(config("two")))
    assert {t.metadata["run_id"] for t in left} == {"run-2"} and len(left) == 5
    assert left[0].checkpoint["channel_values"]["log"] == ["1", "2", "3", "1", "2", "3"]


def test_thread_ids_of_any_shape_round_trip() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    threads = ["plain-id_1", "a b/c:d", "ünïcödé", "x" * 400, "HEAD", "lg.x", "_=3A"]
    for thread in threads:
        cfg = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        saver.put(cfg, empty_checkpoint(), {"step": 0}, {})
    assert sorted(t.config["configurable"]["thread_id"] for t in saver.list(None)) == sorted(
        threads
    )
    assert len(saver.repo.job_names()) == len(threads)
