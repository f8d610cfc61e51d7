"""Long message lists through CkptSaver answer exactly as through InMemorySaver.

A list is stored as its newest elements in the checkpoint's record plus a
sealed prefix shared by the checkpoints that follow, and a message a node
wrote is stored once, as a slice of the list (see
``ckpt.integrations.langgraph_record``).  Hypothesis grows lists past
several seal points, removes and edits messages in the middle (the sealed
prefix no longer matches), forks from older checkpoints and copies them,
with durability sync, async and exit; after every step the state, the
history and every checkpoint tuple (pending writes included) must equal
InMemorySaver's, and so must a saver opened afresh on the same store.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

import ckpt
from ckpt.integrations.langgraph import CkptSaver
from ckpt.integrations.langgraph_layout import sealed_stage

from .lg_world import Labels, canon, chat_text, config
from .test_langgraph_differential import checkpoints

THREAD = "talk"
Op = tuple[Any, ...]


class Talk(MessagesState):
    target: int
    count: int


def build_talk(saver: Any) -> Any:
    """A node appends message number ``count`` (about 1.2 KB) until ``target`` messages."""

    def say(state: Talk) -> dict[str, Any]:
        n = state.get("count", 0)
        kind = AIMessage if n % 2 else HumanMessage
        return {"messages": [kind(chat_text(n), id=f"m{n}")], "count": n + 1}

    def more(state: Talk) -> str:
        return "say" if len(state["messages"]) < state["target"] else str(END)

    talk = StateGraph(Talk)
    talk.add_node("say", say)
    talk.add_conditional_edges(START, more)
    talk.add_conditional_edges("say", more)
    return talk.compile(checkpointer=saver)


def run(app: Any, op: Op) -> Any:
    """Do one step; return its result or the exception it raised."""
    cfg = config(THREAD)
    kind = op[0]
    try:
        state = app.get_state(cfg)
        have = len(state.values.get("messages", []))
        if kind == "grow":
            return app.invoke({"target": have + op[1]}, cfg, durability=op[2])
        messages = state.values.get("messages", [])
        history = list(app.get_state_history(cfg))
        if kind in ("remove", "edit"):
            if not messages:
                return None
            victim = messages[op[1] % len(messages)]
            if kind == "remove":
                return app.update_state(cfg, {"messages": [RemoveMessage(id=victim.id)]})
            edited = type(victim)(f"edited {op[1]}", id=victim.id)
            return app.update_state(cfg, {"messages": [edited]})
        if not history:
            return None
        picked = history[op[1] % len(history)].config
        if kind == "fork":
            target = len(app.get_state(picked).values.get("messages", [])) + op[2]
            return app.invoke({"target": target}, picked, durability="sync")
        if kind == "copy":
            return app.update_state(picked, None, as_node="__copy__")
    except Exception as exc:
        return exc
    raise ValueError(f"unknown operation {op!r}")


def view(app: Any, saver: Any) -> Any:
    cfg = config(THREAD)
    state = app.get_state(cfg)
    history = [
        [s.config, s.parent_config, s.metadata, s.next, s.tasks, s.values]
        for s in app.get_state_history(cfg)
    ]
    return [state, history, checkpoints(saver, THREAD)]


def answers(saver: Any, scenario: list[Op]) -> list[str]:
    app = build_talk(saver)
    seen = []
    for op in scenario:
        result = run(app, op)
        seen.append(canon([op, result, view(app, saver)], Labels()))
    return seen


durabilities = st.sampled_from(["sync", "async", "exit"])
index = st.integers(0, 200)
ops: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("grow"), st.integers(1, 45), durabilities),
    st.tuples(st.just("remove"), index),
    st.tuples(st.just("edit"), index),
    st.tuples(st.just("fork"), index, st.integers(1, 20)),
    st.tuples(st.just("copy"), index),
)
scenarios = st.tuples(
    st.tuples(st.just("grow"), st.integers(30, 60), durabilities), st.lists(ops, max_size=4)
).map(lambda found: [found[0], *found[1]])
EXAMPLES = settings(
    max_examples=int(os.environ.get("CKPT_LG_EXAMPLES", "6")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@EXAMPLES
@given(scenarios)
def test_lists_answer_as_in_memory_saver(scenario: list[Op]) -> None:
    location = f"memory://{uuid.uuid4().hex}"
    saver = CkptSaver(location)
    expected = answers(InMemorySaver(), scenario)
    assert answers(saver, scenario) == expected
    fresh = CkptSaver(ckpt.open(location))  # nothing cached: everything read from the store
    app = build_talk(fresh)
    assert canon(["again", view(app, fresh)], Labels()) == canon(
        ["again", view(build_talk(saver), saver)], Labels()
    )
    assert saver.repo.verify().ok


CASES: dict[str, list[Op]] = {
    "grow-past-several-seals": [("grow", 60, "sync"), ("grow", 45, "async"), ("grow", 30, "exit")],
    "edit-inside-the-sealed-prefix": [("grow", 80, "sync"), ("edit", 3), ("grow", 5, "sync")],
    "remove-then-grow": [("grow", 70, "sync"), ("remove", 10), ("remove", 60), ("grow", 9, "sync")],
    "fork-and-copy": [("grow", 60, "sync"), ("fork", 30, 15), ("copy", 50), ("grow", 3, "sync")],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_named_cases_on_a_local_store(name: str, tmp_path: Path) -> None:
    repo = ckpt.init(tmp_path / "store")
    saver = CkptSaver(repo)
    assert answers(saver, CASES[name]) == answers(InMemorySaver(), CASES[name])
    fresh = CkptSaver(ckpt.open(tmp_path / "store"))
    assert canon(view(build_talk(fresh), fresh), Labels()) == canon(
        view(build_talk(saver), saver), Labels()
    )
    assert repo.verify().ok
    # The list grew past its seal point: checkpoints share a sealed prefix.
    job = repo.job(THREAD)
    assert any(
        job.tree(c.id).get(sealed_stage("messages"))
        for branch in job.branches()
        for c in job.log(branch)
    )
