"""A LangGraph graph that exercises every kind of checkpoint, and a canonical view of what a
graph reports, so that two savers' answers can be compared exactly.

The graph: ``START -> a -> (Send fan-out to 1-3 workers) -> sub -> ask -> END``, where
``sub`` is a subgraph (its checkpoints live in namespace ``sub:<task id>``) that interrupts
when ``n`` is odd, and ``ask`` always interrupts.  So one invocation stores input, loop,
fan-out, subgraph and interrupt checkpoints, pending writes (Sends, interrupts, resumes)
and, with durability ``async``, writes sent before their checkpoint.

:func:`build_chat` is a chat graph whose message list grows by one message of about
1.2 KB per step, as an agent's does.

:func:`canon` turns anything a graph or a saver returns into JSON text in which every
checkpoint, task and interrupt id is replaced by a label in order of first appearance
(ids differ from run to run; their pattern, parent links included, must not).
"""

from __future__ import annotations

import dataclasses
import json
import operator
import re
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Send, interrupt


class State(TypedDict):
    log: Annotated[list[str], operator.add]
    n: int


def build(saver: Any) -> Any:
    """The graph of the module docstring, compiled with ``saver``."""

    def a(state: State) -> dict[str, Any]:
        return {"log": ["a"], "n": state["n"] + 1}

    def fan(state: State) -> list[Send]:
        return [Send("worker", {"i": i}) for i in range(state["n"] % 3 + 1)]

    def worker(arg: dict[str, Any]) -> dict[str, Any]:
        return {"log": [f"w{arg['i']}"]}

    def inner(state: State) -> dict[str, Any]:
        return {"log": ["inner"]}

    def gate(state: State) -> dict[str, Any]:
        if state["n"] % 2 == 1:
            answer = interrupt(f"sub {state['n']}?")
            return {"log": [f"sub:{answer}"]}
        return {"log": ["gate"]}

    def ask(state: State) -> dict[str, Any]:
        return {"log": [f"ask:{interrupt('ok?')}"]}

    sub = StateGraph(State)
    sub.add_node("inner", inner)
    sub.add_node("gate", gate)
    sub.add_edge(START, "inner")
    sub.add_edge("inner", "gate")
    sub.add_edge("gate", END)

    main = StateGraph(State)
    main.add_node("a", a)
    main.add_node("worker", worker)
    main.add_node("sub", sub.compile())
    main.add_node("ask", ask)
    main.add_edge(START, "a")
    main.add_conditional_edges("a", fan, ["worker"])
    main.add_edge("worker", "sub")
    main.add_edge("sub", "ask")
    main.add_edge("ask", END)
    return main.compile(checkpointer=saver)


class Chat(MessagesState):
    target: int


_WORDS = [
    "the",
    "agent",
    "reads",
    "a",
    "tool",
    "result",
    "and",
    "writes",
    "its",
    "plan",
    "for",
    "the",
    "next",
    "call",
    "while",
    "the",
    "user",
    "waits",
    "checkpoint",
    "state",
    "graph",
    "message",
    "token",
    "budget",
    "retry",
    "answer",
    "question",
    "search",
    "code",
]


def chat_text(number: int, size: int = 1200) -> str:
    """Deterministic prose of about ``size`` characters for message ``number``."""
    words, state = [], number * 2654435761 % 2**32 or 1
    while sum(len(w) + 1 for w in words) < size:
        state = state * 1103515245 + 12345 & 0x7FFFFFFF
        words.append(_WORDS[state % len(_WORDS)])
    return f"#{number} " + " ".join(words)


def build_chat(saver: Any) -> Any:
    """A chat graph: one node appends message number ``len(messages)`` (about 1.2 KB, an AI
    message or a human one in turn) until ``target`` messages are in the state, so that each
    step's checkpoint holds a longer message list."""

    def say(state: Chat) -> dict[str, Any]:
        number = len(state["messages"])
        kind = AIMessage if number % 2 else HumanMessage
        return {"messages": [kind(chat_text(number), id=f"m{number}")]}

    def more(state: Chat) -> str:
        return "say" if len(state["messages"]) < state["target"] else str(END)

    chat = StateGraph(Chat)
    chat.add_node("say", say)
    chat.add_conditional_edges(START, more)
    chat.add_conditional_edges("say", more)
    return chat.compile(checkpointer=saver)


def config(thread: str, **more: Any) -> Any:
    return {"configurable": {"thread_id": thread, **more}}


# -- canonical form ---------------------------------------------------------

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_IDS = re.compile(rf"{_UUID}|\b[0-9a-f]{{32}}\b")
_DROP = {"created_at", "ts"}  # timestamps; "__pregel_*" config entries (the saver) go too


def plain(value: Any) -> Any:
    """``value`` as JSON-able data: named tuples and dataclasses become dicts tagged with
    their type name, dict keys are sorted; timestamps are left out."""
    if isinstance(value, dict):
        return {
            str(k): plain(v)
            for k, v in sorted(value.items(), key=lambda i: str(i[0]))
            if k not in _DROP and not str(k).startswith("__pregel_")
        }
    if hasattr(value, "_asdict"):
        fields = {k: v for k, v in value._asdict().items() if k not in _DROP}
        return {"<type>": type(value).__name__, **plain(fields)}
    if hasattr(value, "model_dump") and not isinstance(value, type):  # a pydantic model
        return {"<type>": type(value).__name__, **plain(value.model_dump())}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"<type>": type(value).__name__, **plain(fields)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, BaseException):
        return {"<error>": type(value).__name__, "message": str(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"<object>": type(value).__name__}


class Labels:
    """Replaces ids by labels in order of first appearance, shared by every call."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        def label(match: re.Match[str]) -> str:
            found = match.group(0)
            if found not in self.seen:
                self.seen[found] = f"<id{len(self.seen)}>"
            return self.seen[found]

        return _IDS.sub(label, text)


def canon(value: Any, labels: Labels) -> str:
    """One canonical line for ``value`` (see the module docstring)."""
    return labels(json.dumps(plain(value), sort_keys=True, ensure_ascii=False))


def snapshot(app: Any, cfg: Any) -> list[Any]:
    """What a graph reports about a thread: its state with subgraph states (or the error
    LangGraph raises building it), and its history."""
    try:
        state = app.get_state(cfg, subgraphs=True)
    except Exception as exc:
        state = exc
    return [state, list(app.get_state_history(cfg))]


async def asnapshot(app: Any, cfg: Any) -> list[Any]:
    try:
        state = await app.aget_state(cfg, subgraphs=True)
    except Exception as exc:
        state = exc
    return [state, [s async for s in app.aget_state_history(cfg)]]


def tuples(saver: Any, cfg: Any | None = None) -> list[Any]:
    """Every checkpoint tuple ``saver.list`` returns, in a form two savers can share:
    channel versions are left out (savers pick their own form)."""
    out = []
    for found in saver.list(cfg):
        checkpoint = {
            k: v
            for k, v in found.checkpoint.items()
            if k not in ("channel_versions", "versions_seen")
        }
        out.append(
            [found.config, found.parent_config, checkpoint, found.metadata, found.pending_writes]
        )
    return out


# -- operations -------------------------------------------------------------

#: What a differential scenario does, one tuple per step:
#: ("invoke", n, durability)            invoke with input {"log": [], "n": n}
#: ("resume", answer, durability)       invoke with Command(resume=answer)
#: ("replay", index, durability)        invoke(None) from the history's checkpoint ``index``
#: ("resume_at", index, answer, durability)  resume from the history's checkpoint ``index``
#: ("update", index, as_node, n)        update_state on checkpoint ``index`` (None: the
#:                                      current one) as ``as_node`` (None: LangGraph's pick)
Op = tuple[Any, ...]


def _values(as_node: str | None, n: int) -> Any:
    if as_node == "__copy__":
        return None
    return {"log": [f"u{n}"], "n": n}


def _pick(history: list[Any], cfg: Any, index: int | None) -> Any:
    if index is None or not history:
        return cfg
    return history[index % len(history)].config


def run_op(app: Any, cfg: Any, op: Op) -> Any:
    """Do one step of a scenario; return its result, or the exception it raised."""
    from langgraph.types import Command

    kind = op[0]
    try:
        if kind == "invoke":
            return app.invoke({"log": [], "n": op[1]}, cfg, durability=op[2])
        if kind == "resume":
            return app.invoke(Command(resume=op[1]), cfg, durability=op[2])
        history = list(app.get_state_history(cfg))
        if kind == "replay":
            return app.invoke(None, _pick(history, cfg, op[1]), durability=op[2])
        if kind == "resume_at":
            return app.invoke(Command(resume=op[2]), _pick(history, cfg, op[1]), durability=op[3])
        if kind == "update":
            return app.update_state(_pick(history, cfg, op[1]), _values(op[2], op[3]), op[2])
    except Exception as exc:
        return exc
    raise ValueError(f"unknown operation {op!r}")


async def arun_op(app: Any, cfg: Any, op: Op) -> Any:
    """:func:`run_op` through the async API."""
    from langgraph.types import Command

    kind = op[0]
    try:
        if kind == "invoke":
            return await app.ainvoke({"log": [], "n": op[1]}, cfg, durability=op[2])
        if kind == "resume":
            return await app.ainvoke(Command(resume=op[1]), cfg, durability=op[2])
        history = [s async for s in app.aget_state_history(cfg)]
        if kind == "replay":
            return await app.ainvoke(None, _pick(history, cfg, op[1]), durability=op[2])
        if kind == "resume_at":
            picked = _pick(history, cfg, op[1])
            return await app.ainvoke(Command(resume=op[2]), picked, durability=op[3])
        if kind == "update":
            picked = _pick(history, cfg, op[1])
            return await app.aupdate_state(picked, _values(op[2], op[3]), op[2])
    except Exception as exc:
        return exc
    raise ValueError(f"unknown operation {op!r}")
