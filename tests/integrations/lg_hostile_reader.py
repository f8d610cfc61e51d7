"""Run by test_langgraph_hostile.py in a fresh process: read a planted store every way there is.

    python lg_hostile_reader.py saver|control STORE MARKER CHECKPOINT_IDS_JSON

Prints one JSON line: what each read did, whether the marker file exists,
and which modules of the planted payload were imported.  ``control`` reads
one checkpoint with LangGraph's permissive serializer instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypedDict

EVIL_PREFIX = "ckpt_evil"


class State(TypedDict):
    messages: object
    n: int


def outcome(marker: str, **more: Any) -> None:
    modules = sorted(m for m in sys.modules if m.startswith(EVIL_PREFIX))
    print(json.dumps({"marker_exists": os.path.exists(marker), "modules": modules, **more}))


def at(checkpoint_id: str) -> Any:
    return {
        "configurable": {"thread_id": "victim", "checkpoint_ns": "", "checkpoint_id": checkpoint_id}
    }


def control(store: str, marker: str, ids: list[str]) -> None:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from ckpt.integrations.langgraph import CkptSaver

    saver = CkptSaver(store, serde=JsonPlusSerializer(allowed_msgpack_modules=True))
    saver.get_tuple(at(ids[0]))
    outcome(marker)


def saver_reads(store: str, marker: str, ids: list[str]) -> None:
    from click.testing import CliRunner
    from langgraph.graph import START, StateGraph

    import ckpt
    from ckpt.cli.main import cli
    from ckpt.integrations.langgraph import CkptSaver

    done: list[str] = []

    def attempt(name: str, call: Callable[[], Any]) -> None:
        try:
            call()
            done.append(f"{name}: ok")
        except Exception as exc:
            done.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0]}")

    builder = StateGraph(State)
    builder.add_node("step", lambda state: {"n": state["n"] + 1})
    builder.add_edge(START, "step")
    saver = CkptSaver(store)
    app = builder.compile(checkpointer=saver)
    cfg: Any = {"configurable": {"thread_id": "victim"}}

    async def alist() -> list[Any]:
        return [t async for t in saver.alist(cfg)]

    async def ahistory() -> list[Any]:
        return [s async for s in app.aget_state_history(cfg)]

    for cid in ids:
        attempt(f"get_tuple {cid}", lambda cid=cid: saver.get_tuple(at(cid)))
        attempt(f"aget_tuple {cid}", lambda cid=cid: asyncio.run(saver.aget_tuple(at(cid))))
        attempt(f"get_state {cid}", lambda cid=cid: app.get_state(at(cid)))
    attempt("get_tuple latest", lambda: saver.get_tuple(cfg))
    attempt("list all", lambda: list(saver.list(None)))
    attempt("list thread", lambda: list(saver.list(cfg)))
    attempt("alist thread", lambda: asyncio.run(alist()))
    attempt("get_state_history", lambda: list(app.get_state_history(cfg)))
    attempt("aget_state_history", lambda: asyncio.run(ahistory()))
    attempt("invoke", lambda: app.invoke(None, cfg))

    runner = CliRunner()
    job = ckpt.open(store).job("victim")
    export = os.path.join(os.path.dirname(store), "export.json")
    commands = [["log", "victim"], ["log", "victim", "--json"], ["verify", "--full"]]
    commands.append(["export", "victim", "-o", export])
    for commit in job.log():
        commands.append(["show", "victim", commit.id])
        for entry in job.tree(commit.id):
            commands.append(["cat", "victim", commit.id, entry.name])
            commands.append(["cat", "victim", commit.id, entry.name, "--raw"])
    for args in commands:
        result = runner.invoke(cli, ["--store", store, *args])
        raw = " --raw" if "--raw" in args else ""
        done.append(f"ckpt {args[0]}{raw}: exit {result.exit_code}")
    outcome(marker, done=done)


if __name__ == "__main__":
    mode, store_path, marker_path, listed = sys.argv[1:5]
    (control if mode == "control" else saver_reads)(store_path, marker_path, json.loads(listed))
