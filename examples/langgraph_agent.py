"""A LangGraph agent checkpointed by ckpt: interrupted, resumed, forked and rolled back.

The agent is a small real LangGraph graph with a fake chat model (no
network): asked for the weather, the model calls a tool, a human approves
the call (an ``interrupt``), the tool answers and the model replies.

    python examples/langgraph_agent.py [--store PATH]   # default: a new temporary store

What it shows, with the ckpt command that does the same from a shell:

1. The run stops at the approval; a new saver on the same store (as after a
   crash or in another process) resumes it.     ``ckpt log weather-1``
2. Forking from the step before the approval (the human says no) starts a
   branch ``fork-...``; the original answer stays on ``main``.
                                                 ``ckpt branch weather-1``
3. Switching back to ``main`` and rolling it back to the approval step makes
   the next invocation continue from there.     ``ckpt checkout weather-1 COMMIT``
4. The store verifies clean, and gc keeps everything the thread needs.
                                                 ``ckpt verify``, ``ckpt gc``
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import shutil
import tempfile
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

import ckpt
from ckpt.integrations.langgraph import CkptSaver

THREAD = "weather-1"
CONFIG: Any = {"configurable": {"thread_id": THREAD}}


def fake_model(state: MessagesState) -> dict[str, Any]:
    """A deterministic stand-in for a chat model: call the weather tool, then answer."""
    last = state["messages"][-1]
    if isinstance(last, HumanMessage):
        city = last.content.rstrip("?").split()[-1] if isinstance(last.content, str) else "Paris"
        call = {"name": "weather", "args": {"city": city}, "id": f"call-{len(state['messages'])}"}
        return {"messages": [AIMessage("Let me look that up.", tool_calls=[call])]}
    if isinstance(last, ToolMessage):
        if last.status == "error":
            return {"messages": [AIMessage("Understood, I won't look it up.")]}
        report = json.loads(str(last.content))
        text = f"It is {report['temp_c']} °C and {report['sky']} in {report['city']}."
        return {"messages": [AIMessage(text)]}
    return {"messages": [AIMessage("How can I help?")]}


def approve(state: MessagesState) -> Command[Any]:
    """Ask a human before any tool runs (the graph stops here until resumed)."""
    call = state["messages"][-1].tool_calls[0]  # type: ignore[attr-defined]
    if interrupt({"question": "run this tool?", "tool": call["name"], "args": call["args"]}):
        return Command(goto="tools")
    denied = ToolMessage("denied by the user", tool_call_id=call["id"], status="error")
    return Command(goto="model", update={"messages": [denied]})


def tools(state: MessagesState) -> dict[str, Any]:
    """The weather tool: a canned JSON report."""
    call = state["messages"][-1].tool_calls[0]  # type: ignore[attr-defined]
    report = {"city": call["args"]["city"], "temp_c": 18, "sky": "light rain"}
    return {"messages": [ToolMessage(json.dumps(report), tool_call_id=call["id"])]}


def route(state: MessagesState) -> str:
    last = state["messages"][-1]
    return "approve" if isinstance(last, AIMessage) and last.tool_calls else str(END)


def build(saver: CkptSaver) -> Any:
    graph = StateGraph(MessagesState)
    graph.add_node("model", fake_model)
    graph.add_node("approve", approve, destinations=("tools", "model"))
    graph.add_node("tools", tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route)
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=saver)


def last_reply(app: Any) -> str:
    return str(app.get_state(CONFIG).values["messages"][-1].content)


def show_log(repo: ckpt.Repository, title: str) -> None:
    job = repo.job(THREAD)
    print(f"\n{title}: branch {job.branch_name}, {len(job.log())} commits (newest first)")
    for commit in job.log(limit=6):
        print(f"  {commit.short_id}  {commit.message}")


def main(location: str | None = None) -> None:
    if location is None:  # a temporary store, gone when the example ends
        scratch = tempfile.mkdtemp(prefix="ckpt-langgraph-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        location = scratch + "/store"
    repo = ckpt.init(location)
    print(f"store: {location}")

    # 1. Run until the approval interrupt, then resume with a fresh saver.
    app = build(CkptSaver(repo))
    app.invoke({"messages": [HumanMessage("What is the weather in Paris?")]}, CONFIG)
    pending = app.get_state(CONFIG)
    print("interrupted at", pending.next, "asking", pending.interrupts[0].value)
    show_log(repo, "after the interrupt")

    app = build(CkptSaver(ckpt.open(location)))  # as another process would
    app.invoke(Command(resume=True), CONFIG)
    print("\nresumed, the agent says:", last_reply(app))

    # 2. Fork: travel back to the step that asked for approval, and deny this time.
    asked = next(s for s in app.get_state_history(CONFIG) if s.next == ("approve",))
    app.invoke(None, asked.config)  # replays from there: the approval is asked again
    app.invoke(Command(resume=False), CONFIG)
    job = repo.job(THREAD)
    print("\nforked: the agent now says:", last_reply(app))
    print("branches:", ", ".join(sorted(job.branches())), "- current:", job.branch_name)

    # 3. Back to main, rolled back to the approval step: the next invocation goes on there.
    job.switch("main")
    print("\nback on main, the agent says:", last_reply(app))
    asked_id = asked.config["configurable"]["checkpoint_id"]
    target = next(
        c
        for c in job.log()
        if c.meta["langgraph"]["id"] == asked_id and c.meta["langgraph"]["kind"] == "checkpoint"
    )
    rolled = job.checkout(target.id)
    print(
        f"rolled main back past {len(rolled.rolled_back)} commits; the graph waits at",
        app.get_state(CONFIG).next,
    )
    app.invoke(Command(resume=False), CONFIG)
    print("continued from there:", last_reply(app))
    show_log(repo, "after the rollback")

    # 4. Integrity and garbage collection.
    report = repo.verify()
    collected = repo.gc(grace=dt.timedelta(0))
    print(
        f"\nverify: {'ok' if report.ok else report.problems}; "
        f"gc deleted {collected.deleted} objects, kept {collected.reachable}"
    )
    history = list(app.get_state_history(CONFIG))
    print(
        f"after gc the thread still has {len(history)} checkpoints, verify:",
        "ok" if repo.verify().ok else "FAILED",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A LangGraph agent checkpointed by ckpt.")
    parser.add_argument("--store", help="where to create the store (default: a temp dir)")
    main(parser.parse_args().store)
