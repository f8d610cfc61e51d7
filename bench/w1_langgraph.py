"""W1 through LangGraph: one agent run of N steps, CkptSaver and SqliteSaver side by side.

The graph has one node that appends one ~1 KB chat message per step (prose,
code or JSON tool output, from :mod:`bench.messages`) to a ``MessagesState``
and loops until N messages are in the state, so LangGraph saves one
checkpoint per step holding the whole message list.  Each saver gets the
same calls (``durability="sync"``, so every ``put`` is timed where it
happens).  For each saver the bench reports:

* the bytes it stores (ckpt: its object values; SQLite: the database file
  with its WAL) and what the store occupies on disk (``du``);
* the latency of ``put`` and ``put_writes`` during the run, and of
  ``get_tuple`` afterwards (the latest checkpoint, and checkpoints picked at
  random from the history), as median and 10th-90th percentile.

Run ``python -m bench.w1_langgraph`` (``--steps 50`` for a quick run, ``--json``
for machine-readable rows).  Needs ``pip install 'ckpt[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

import ckpt
from bench.common import disk_usage, human_bytes, human_seconds, scratch
from bench.messages import messages
from ckpt.integrations.langgraph import CkptSaver

OBJECT_PREFIXES = ("objects/", "packs/")
GET_SAMPLES = 50


def chat_messages(raw: list[dict[str, Any]]) -> list[Any]:
    """``bench.messages`` dicts as LangChain messages, as an agent's state holds them."""

    out: list[Any] = []
    for msg in raw:
        if msg["role"] == "tool":
            out.append(
                ToolMessage(
                    msg["content"], id=msg["id"], tool_call_id=msg["tool_call_id"], name=msg["name"]
                )
            )
        elif msg["role"] == "user":
            out.append(HumanMessage(msg["content"], id=msg["id"]))
        else:
            out.append(AIMessage(msg["content"], id=msg["id"]))
    return out


def agent_graph(checkpointer: Any, msgs: list[Any]) -> Any:
    """A graph whose one node appends the next message of ``msgs`` until all are in."""

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [msgs[len(state["messages"])]]}

    def route(state: MessagesState) -> str:
        return str(END) if len(state["messages"]) >= len(msgs) else "agent"

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route)
    return graph.compile(checkpointer=checkpointer)


@contextmanager
def timing(saver: Any, names: tuple[str, ...]) -> Iterator[dict[str, list[Any]]]:
    """Record the wall time of every call of ``saver``'s methods ``names`` during the block,
    and under ``NAME:result`` what each call returned."""
    times: dict[str, list[Any]] = {name: [] for name in names}
    times.update({f"{name}:result": [] for name in names})

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = method(*args, **kwargs)
            finally:
                times[name].append(time.perf_counter() - start)
            times[f"{name}:result"].append(result)
            return result

        return timed

    for name in names:
        setattr(saver, name, wrap(name, getattr(saver, name)))
    try:
        yield times
    finally:
        for name in names:
            delattr(saver, name)


def run_saver(saver: Any, msgs: list[Any], thread: str = "agent") -> dict[str, Any]:
    """Run the agent graph on ``saver``; return the latencies and the run's wall time."""
    app = agent_graph(saver, msgs)
    config = {"configurable": {"thread_id": thread}, "recursion_limit": len(msgs) + 10}
    with timing(saver, ("put", "put_writes")) as times:
        start = time.perf_counter()
        app.invoke({"messages": []}, config, durability="sync")
        seconds = time.perf_counter() - start
    final = app.get_state(config).values["messages"]
    if len(final) != len(msgs) or final[-1].content != msgs[-1].content:
        raise RuntimeError(f"{type(saver).__name__}: the final state is not the one written")
    history = times["put:result"]  # the config of every checkpoint stored
    rng = random.Random(7)
    picks = [rng.choice(history) for _ in range(GET_SAMPLES)]
    latest: list[float] = []
    by_id: list[float] = []
    for pick in picks:
        start = time.perf_counter()
        saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        latest.append(time.perf_counter() - start)
        start = time.perf_counter()
        found = saver.get_tuple(pick)
        by_id.append(time.perf_counter() - start)
        if found is None:
            raise RuntimeError(f"{type(saver).__name__}: a listed checkpoint cannot be read")
    return {
        "seconds": seconds,
        "checkpoints": len(history),
        "put": times["put"],
        "put_writes": times["put_writes"],
        "get_latest": latest,
        "get_by_id": by_id,
    }


def stored_bytes(repo: ckpt.Repository) -> int:
    """Sum of the sizes of every storage value that holds objects."""
    return sum(info.size for prefix in OBJECT_PREFIXES for info in repo.storage.list(prefix))


def _sqlite_files(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def ckpt_run(
    path: str, msgs: list[Any], *, location: str | None = None, durable: bool = True
) -> dict[str, Any]:
    """The agent run on a CkptSaver over a new store at ``location`` (default: in ``path``)."""
    os.makedirs(path, exist_ok=True)
    repo = ckpt.init(location or os.path.join(path, "store"), durable=durable)
    with CkptSaver(repo) as saver:
        result = run_saver(saver, msgs)
    result["stored"] = stored_bytes(repo)
    result["du"] = disk_usage(path)
    repo.close()
    return result


def sqlite_run(path: str, msgs: list[Any]) -> dict[str, Any]:
    """The agent run on LangGraph's SqliteSaver over a new database in ``path``."""
    os.makedirs(path, exist_ok=True)
    conn = sqlite3.connect(os.path.join(path, "checkpoints.sqlite"), check_same_thread=False)
    try:
        result = run_saver(SqliteSaver(conn), msgs)
    finally:
        conn.close()
    result["stored"] = _sqlite_files(path)
    result["du"] = disk_usage(path)
    return result


def sqlite_saver_run(path: str, raw: list[dict[str, Any]]) -> dict[str, float]:
    """SqliteSaver's figures for ``bench.w1_agent``: stored bytes, ``du`` and seconds."""
    result = sqlite_run(path, chat_messages(raw))
    return {"stored": result["stored"], "du": result["du"], "seconds": result["seconds"]}


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"median": 0.0, "p10": 0.0, "p90": 0.0}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"median": statistics.median(ordered), "p10": at(0.1), "p90": at(0.9)}


def rows(steps: int = 1000, seed: int = 1, *, sqlite_backend: bool = False) -> list[dict[str, Any]]:
    """One row per saver: storage and put/put_writes/get latencies (seconds) of a W1 run.

    ckpt runs twice on a local store: durable (the default: every save
    fsynced) and ``durable=False``; with ``sqlite_backend`` also on a
    ``sqlite://`` store.
    """
    msgs = chat_messages(messages(seed=seed, count=steps))
    runs: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
        ("CkptSaver (local store)", lambda tmp: ckpt_run(tmp, msgs)),
        ("CkptSaver (local, durable=False)", lambda tmp: ckpt_run(tmp, msgs, durable=False)),
        ("SqliteSaver", lambda tmp: sqlite_run(tmp, msgs)),
    ]
    if sqlite_backend:
        runs.append(
            (
                "CkptSaver (sqlite:// store)",
                lambda tmp: ckpt_run(tmp, msgs, location=f"sqlite://{tmp}/store.db"),
            )
        )
    out = []
    for name, run in runs:
        with scratch("w1-langgraph") as tmp:
            result = run(os.path.join(tmp, "run"))
        out.append(
            {
                "saver": name,
                "steps": steps,
                "checkpoints": result["checkpoints"],
                "stored_bytes": result["stored"],
                "disk_bytes": result["du"],
                "run_seconds": result["seconds"],
                **{
                    f"{what}_{stat}": value
                    for what in ("put", "put_writes", "get_latest", "get_by_id")
                    for stat, value in _stats(result[what]).items()
                },
            }
        )
    return out


def table(found: list[dict[str, Any]]) -> str:
    """The rows as a text table (latencies as median and 10th-90th percentile)."""

    def lat(row: dict[str, Any], what: str) -> str:
        return (
            f"{human_seconds(row[what + '_median'])} "
            f"({human_seconds(row[what + '_p10'])}-{human_seconds(row[what + '_p90'])})"
        )

    head = ["saver", "stored", "on disk", "run", "put", "put_writes", "get latest", "get by id"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for row in found:
        cells = [
            row["saver"],
            human_bytes(row["stored_bytes"]),
            human_bytes(row["disk_bytes"]),
            human_seconds(row["run_seconds"]),
            lat(row, "put"),
            lat(row, "put_writes"),
            lat(row, "get_latest"),
            lat(row, "get_by_id"),
        ]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=1000, help="messages in the run")
    parser.add_argument("--seed", type=int, default=1, help="message generator seed")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument(
        "--sqlite-store", action="store_true", help="also run CkptSaver on a sqlite:// store"
    )
    args = parser.parse_args(argv)
    found = rows(args.steps, args.seed, sqlite_backend=args.sqlite_store)
    if args.json:
        print(json.dumps(found, indent=1))
        return
    print(f"W1 through LangGraph: {args.steps} steps, one ~1 KB message each, durability=sync")
    print(table(found))
    base = next(r for r in found if r["saver"] == "SqliteSaver")
    for row in found:
        if row is not base:
            share = row["stored_bytes"] / base["stored_bytes"]
            print(f"{row['saver']}: stores {share:.3f}x of SqliteSaver's bytes")


if __name__ == "__main__":
    main()
