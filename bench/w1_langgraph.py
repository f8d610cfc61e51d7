"""W1 through LangGraph: one real agent graph on CkptSaver and on LangGraph's own savers.

The graph has one node that appends one ~1 KB chat message per step (prose,
code or JSON tool output, from :mod:`bench.messages`) to a ``MessagesState``
and loops until N messages are in the state, so LangGraph saves one
checkpoint per step holding the whole message list, and one write per step
(the node's message).  The same graph runs, in one process and in
interleaved rounds, on

* ``CkptSaver`` over a new local store (durable: a returned ``put`` is on
  stable storage), ``SqliteSaver`` over a new database file and
  ``InMemorySaver``, with ``graph.invoke(..., durability="sync")``;
* ``CkptSaver`` and ``AsyncSqliteSaver`` with ``await graph.ainvoke(...)``.

Each row is a ratio against SqliteSaver (its async twin for the async row)
measured in the same round, the median over rounds: the whole run, the
latency of ``put`` at step 10 and at the last steps, ``graph.get_state``
warm (the saver that wrote the thread) and cold (a saver opened afresh on the
store, opening included), ``get_state_history`` over the whole thread.  Bytes
stored are against zstd -3 of the final state as LangGraph's serializer
writes it, and fsyncs per step are counted with ``strace`` (where it is
installed) as the difference between a long and a short run.

Run ``python -m bench.w1_langgraph`` (``--steps 50 --rounds 1`` for a quick
look); ``python -m bench --only W1`` runs it with the W1 agent workload.
Needs ``pip install 'ckpt[bench]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import zstandard
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

import ckpt
from bench.common import Ratio, Section, disk_usage, fmt, human_bytes, human_seconds, scratch
from bench.messages import messages
from ckpt.integrations.langgraph import CkptSaver

OBJECT_PREFIXES = ("objects/", "packs/")
THREAD = "agent"
#: Timed calls of get_state (warm) and of opening + get_state (cold) per round.
GET_REPEATS = 5
SYNC_SAVERS = ("ckpt", "sqlite", "memory")
ASYNC_SAVERS = ("ckpt", "sqlite")
NAMES = {"ckpt": "CkptSaver", "sqlite": "SqliteSaver", "memory": "InMemorySaver"}


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


def run_config(steps: int) -> Any:
    return {"configurable": {"thread_id": THREAD}, "recursion_limit": steps + 10}


@contextmanager
def timing(saver: Any, names: tuple[str, ...]) -> Iterator[dict[str, list[float]]]:
    """Record the wall time of every call of ``saver``'s methods ``names`` during the block
    (for a coroutine method, until it is done)."""
    times: dict[str, list[float]] = {name: [] for name in names}

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        if asyncio.iscoroutinefunction(method):

            async def atimed(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await method(*args, **kwargs)
                finally:
                    times[name].append(time.perf_counter() - start)

            return atimed

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                times[name].append(time.perf_counter() - start)

        return timed

    for name in names:
        setattr(saver, name, wrap(name, getattr(saver, name)))
    try:
        yield times
    finally:
        for name in names:
            delattr(saver, name)


# -- savers -----------------------------------------------------------------


def stored_bytes(repo: ckpt.Repository) -> int:
    """Sum of the sizes of every storage value that holds objects."""
    return sum(info.size for prefix in OBJECT_PREFIXES for info in repo.storage.list(prefix))


def _files(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


class Opened:
    """A saver of one kind over the store or database in ``path`` (created if absent)."""

    def __init__(self, kind: str, path: str, *, durable: bool = True) -> None:
        self.kind, self.path = kind, path
        self.repo: ckpt.Repository | None = None
        self.conn: sqlite3.Connection | None = None
        os.makedirs(path, exist_ok=True)
        if kind == "ckpt":
            where = os.path.join(path, "store")
            exists = os.path.exists(where)
            self.repo = ckpt.open(where) if exists else ckpt.init(where, durable=durable)
            self.saver: Any = CkptSaver(self.repo)
        elif kind == "sqlite":
            self.conn = sqlite3.connect(
                os.path.join(path, "checkpoints.sqlite"), check_same_thread=False
            )
            self.saver = SqliteSaver(self.conn)
            if not durable:  # neither does SQLite sync, then
                self.saver.setup()
                self.conn.execute("PRAGMA synchronous=OFF")
        else:
            self.saver = InMemorySaver()

    def stored(self) -> int:
        if self.repo is not None:
            return stored_bytes(self.repo)
        return _files(self.path)

    def close(self) -> None:
        if self.repo is not None:
            self.saver.close()
            self.repo.close()
        if self.conn is not None:
            self.conn.close()


def _check_final(app: Any, msgs: list[Any], who: str) -> Any:
    final = app.get_state(run_config(len(msgs))).values["messages"]
    if len(final) != len(msgs) or final[-1].content != msgs[-1].content:
        raise RuntimeError(f"{who}: the final state is not the one written")
    return final


def _median_time(call: Callable[[], object], repeats: int) -> float:
    found = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        found.append(time.perf_counter() - start)
    return statistics.median(found)


def sync_run(
    kind: str, path: str, msgs: list[Any], *, history: bool = True, durable: bool = True
) -> dict[str, Any]:
    """One run of the graph on a new saver of ``kind``; its timings and stored bytes."""
    opened = Opened(kind, path, durable=durable)
    cfg = run_config(len(msgs))
    try:
        app = agent_graph(opened.saver, msgs)
        with timing(opened.saver, ("put", "put_writes")) as times:
            start = time.perf_counter()
            app.invoke({"messages": []}, cfg, durability="sync")
            seconds = time.perf_counter() - start
        final = _check_final(app, msgs, NAMES[kind])
        warm = _median_time(lambda: app.get_state(cfg), GET_REPEATS)
        hist = 0.0
        if history:
            start = time.perf_counter()
            found = list(app.get_state_history(cfg))
            hist = time.perf_counter() - start
            if len(found) != len(times["put"]):
                raise RuntimeError(f"{NAMES[kind]}: the history misses checkpoints")
        stored = opened.stored()
    finally:
        opened.close()
    cold = 0.0
    if kind != "memory":

        def open_and_load() -> None:
            again = Opened(kind, path)
            try:
                agent_graph(again.saver, msgs).get_state(cfg)
            finally:
                again.close()

        cold = _median_time(open_and_load, GET_REPEATS)
    return {
        "seconds": seconds,
        "put": times["put"],
        "put_writes": times["put_writes"],
        "warm": warm,
        "cold": cold,
        "history": hist,
        "stored": stored,
        "du": disk_usage(path),
        "final": final,
    }


async def _async_run(kind: str, path: str, msgs: list[Any]) -> float:
    cfg = run_config(len(msgs))
    os.makedirs(path, exist_ok=True)
    if kind == "ckpt":
        repo = ckpt.init(os.path.join(path, "store"))
        async with CkptSaver(repo) as saver:
            app = agent_graph(saver, msgs)
            start = time.perf_counter()
            await app.ainvoke({"messages": []}, cfg, durability="sync")
            seconds = time.perf_counter() - start
            state = await app.aget_state(cfg)
        repo.close()
    else:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(
            os.path.join(path, "checkpoints.sqlite")
        ) as saver:
            app = agent_graph(saver, msgs)
            start = time.perf_counter()
            await app.ainvoke({"messages": []}, cfg, durability="sync")
            seconds = time.perf_counter() - start
            state = await app.aget_state(cfg)
    if len(state.values["messages"]) != len(msgs):
        raise RuntimeError(f"async {NAMES[kind]}: the final state is not the one written")
    return seconds


def async_run(kind: str, path: str, msgs: list[Any]) -> float:
    """Seconds of ``await graph.ainvoke(...)`` on a new async saver of ``kind``."""
    return asyncio.run(_async_run(kind, path, msgs))


def sqlite_saver_run(path: str, raw: list[dict[str, Any]]) -> dict[str, float]:
    """SqliteSaver's figures for ``bench.w1_agent``: stored bytes, ``du`` and seconds."""
    result = sync_run("sqlite", path, chat_messages(raw), history=False)
    return {"stored": result["stored"], "du": result["du"], "seconds": result["seconds"]}


# -- fsyncs -----------------------------------------------------------------

_STRACE_TOTAL = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?total\s*$", re.M)


def _fsyncs(kind: str, steps: int) -> int | None:
    """fsync and fdatasync calls of a child process running the graph for ``steps`` steps."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="ckpt-bench-fsync-") as tmp:
        out = os.path.join(tmp, "strace.txt")
        command = [
            strace, "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", out,
            sys.executable, "-m", "bench.w1_langgraph", "--child", kind, str(steps),
            os.path.join(tmp, "run"),
        ]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            return None
        with open(out, encoding="utf-8") as handle:
            text = handle.read()
    found = _STRACE_TOTAL.search(text)
    return int(found.group(1)) if found else 0


def fsyncs_per_step(kind: str, short: int, long: int) -> float | None:
    """fsyncs per step: the calls of a run of ``long`` steps minus those of ``short`` steps
    (opening, creating and closing cost the same in both), over the steps between."""
    few, many = _fsyncs(kind, short), _fsyncs(kind, long)
    if few is None or many is None:
        return None
    return (many - few) / (long - short)


def _child(kind: str, steps: int, path: str) -> None:
    msgs = chat_messages(messages(seed=1, count=steps))
    opened = Opened(kind, path)
    try:
        agent_graph(opened.saver, msgs).invoke(
            {"messages": []}, run_config(steps), durability="sync"
        )
    finally:
        opened.close()


# -- the workload -----------------------------------------------------------


def final_size(final: list[Any]) -> int:
    """zstd -3 of the final message list as LangGraph's serializer writes it."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    _kind, data = JsonPlusSerializer().dumps_typed(final)
    return len(zstandard.ZstdCompressor(level=3).compress(data))


def _around(values: list[float], at: int, width: int = 10) -> float:
    """Median of the ``width`` values around index ``at`` (clamped to the list)."""
    start = max(0, min(at - width // 2, len(values) - width))
    return statistics.median(values[start : start + width])


def run(steps: int, rounds: int, *, fsync_steps: tuple[int, int] | None = None) -> Section:
    """The LangGraph rows of W1 (see the module docstring)."""
    section = Section(
        "W1-langgraph",
        f"W1 through LangGraph ({steps} steps, one ~1 KB message per step)",
    )
    msgs = chat_messages(messages(seed=1, count=steps))
    ratios: dict[str, list[float]] = {}
    facts: dict[str, Any] = {}

    def add(key: str, value: float) -> None:
        ratios.setdefault(key, []).append(value)

    for number in range(rounds):
        found: dict[str, dict[str, Any]] = {}
        order = list(SYNC_SAVERS[number % 3 :] + SYNC_SAVERS[: number % 3])
        for kind in order:
            with scratch(f"w1-lg-{kind}") as tmp:
                path = os.path.join(tmp, "run")
                found[kind] = sync_run(kind, path, msgs, history=kind != "memory")
        quick: dict[str, float] = {}
        for kind in ("ckpt", "sqlite") if number % 2 == 0 else ("sqlite", "ckpt"):
            with scratch(f"w1-lg-nosync-{kind}") as tmp:
                path = os.path.join(tmp, "run")
                quick[kind] = sync_run(kind, path, msgs, history=False, durable=False)["seconds"]
        seconds: dict[str, float] = {}
        for kind in ASYNC_SAVERS if number % 2 == 0 else ASYNC_SAVERS[::-1]:
            with scratch(f"w1-lg-async-{kind}") as tmp:
                seconds[kind] = async_run(kind, os.path.join(tmp, "run"), msgs)
        mine, base = found["ckpt"], found["sqlite"]
        add("run", mine["seconds"] / base["seconds"])
        add("memory", found["memory"]["seconds"] / base["seconds"])
        early = min(10, len(mine["put"]) - 1)
        add("put early", _around(mine["put"], early) / _around(base["put"], early))
        last = len(mine["put"]) - 1
        add("put late", _around(mine["put"], last) / _around(base["put"], last))
        add("warm", mine["warm"] / base["warm"])
        add("cold", mine["cold"] / base["cold"])
        add("history", mine["history"] / base["history"])
        zsize = final_size(mine["final"])
        add("bytes", mine["stored"] / zsize)
        add("bytes vs sqlite", mine["stored"] / base["stored"])
        add("async", seconds["ckpt"] / seconds["sqlite"])
        add("no sync", quick["ckpt"] / quick["sqlite"])
        if number == 0:
            facts = {"ckpt": mine, "sqlite": base, "zstd": zsize, "async": seconds}
    mine, base = facts["ckpt"], facts["sqlite"]

    def pair(what: str) -> str:
        return f"ckpt {human_seconds(mine[what])}, SqliteSaver {human_seconds(base[what])}"

    def put_pair(at: int) -> str:
        return (
            f"ckpt {human_seconds(_around(mine['put'], at))}, "
            f"SqliteSaver {human_seconds(_around(base['put'], at))}"
        )

    rows = [
        ("whole run, graph.invoke (sync)", "run", "SqliteSaver", 1.0, pair("seconds")),
        (
            f"put latency at step {min(10, steps)}",
            "put early",
            "SqliteSaver",
            1.0,
            put_pair(min(10, len(mine["put"]) - 1)),
        ),
        (
            f"put latency at step {steps}",
            "put late",
            "SqliteSaver",
            1.0,
            put_pair(len(mine["put"]) - 1),
        ),
        ("get_state, warm", "warm", "SqliteSaver", 1.0, pair("warm")),
        ("get_state, cold (open + load)", "cold", "SqliteSaver", 1.0, pair("cold")),
        ("get_state_history, whole thread", "history", "SqliteSaver", 1.0, pair("history")),
        (
            "bytes stored",
            "bytes",
            "zstd -3 of the final state",
            4.0,
            f"{human_bytes(mine['stored'])} vs {human_bytes(facts['zstd'])}",
        ),
        (
            "bytes stored (against SqliteSaver's)",
            "bytes vs sqlite",
            "SqliteSaver",
            None,
            f"SqliteSaver {human_bytes(base['stored'])}",
        ),
        (
            "whole run, await graph.ainvoke",
            "async",
            "AsyncSqliteSaver",
            1.0,
            f"ckpt {human_seconds(facts['async']['ckpt'])}, "
            f"AsyncSqliteSaver {human_seconds(facts['async']['sqlite'])}",
        ),
        ("whole run, InMemorySaver", "memory", "SqliteSaver", None, ""),
        (
            "whole run, neither syncing",
            "no sync",
            "SqliteSaver, synchronous=OFF",
            None,
            "CkptSaver with durable=False",
        ),
    ]
    for what, key, baseline, target, absolute in rows:
        section.rows.append(
            Ratio(
                "W1",
                f"LangGraph: {what}",
                baseline,
                ratios[key],
                target=target,
                absolute=absolute,
            )
        )
    if fsync_steps is not None:
        short, long = fsync_steps
        counted = {kind: fsyncs_per_step(kind, short, long) for kind in ("ckpt", "sqlite")}
        if counted["ckpt"] is not None and counted["sqlite"] is not None:
            section.rows.append(
                Ratio(
                    "W1",
                    "LangGraph: fsyncs per step (count)",
                    "-",
                    [counted["ckpt"]],
                    target=2.0,
                    absolute=f"SqliteSaver {fmt(counted['sqlite'])}",
                )
            )
            section.notes.append(
                f"fsyncs counted with strace: runs of {long} and {short} steps, the "
                "difference over the steps between."
            )
        else:
            section.notes.append("fsyncs per step not measured: strace is not available.")
    section.notes.append(
        f"{rounds} round(s); latencies are medians of 10 calls around the step named; "
        f"get_state is the median of {GET_REPEATS} calls; put latency includes the writes "
        "of the step before (CkptSaver stores them with the checkpoint, in one durable step)."
    )
    return section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=1000, help="messages in the run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--no-fsyncs", action="store_true", help="do not count fsyncs")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, steps, path = args.child
        _child(kind, int(steps), path)
        return
    fsync_steps = None if args.no_fsyncs else (20, 20 + min(args.steps, 200))
    section = run(args.steps, args.rounds, fsync_steps=fsync_steps)
    print(section.title)
    for row in section.rows:
        target = "-" if row.target is None else fmt(row.target)
        met = "" if row.met is None else ("met" if row.met else "NOT met")
        print(
            f"{row.what:48} vs {row.baseline:27} {fmt(row.median):>8} (target {target}) "
            f"{met:7} {row.absolute}"
        )
    for note in section.notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
