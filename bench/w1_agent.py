"""W1 agent run: N steps, each appends one ~1 KB message to a list and saves the whole state.

Reports the bytes ckpt stores (sum of its object storage values: loose
objects and packs) and occupies on disk (``du`` of the whole store, refs and
reflog included), against the zstd-compressed final state and against
baselines that keep every checkpoint: (a) one pickle file per checkpoint,
(b) one JSON file per checkpoint, (c) LangGraph's SqliteSaver.  Speed: the
whole run against (a); the latency of a save late in the run against one
early in it (how a save's cost grows with the state); loading the newest
state against ``pickle.load`` of the same state from a file.
"""

from __future__ import annotations

import json
import os
import pickle
import statistics
import time
from functools import partial
from typing import Any, TypedDict

import zstandard

import ckpt
from bench.common import (
    Ratio,
    Section,
    disk_usage,
    file_count,
    fsync_write,
    human_bytes,
    human_seconds,
    scratch,
    timed,
)
from bench.messages import messages
from ckpt.values.serialize import canonical_json

OBJECT_PREFIXES = ("objects/", "packs/")


class _GraphState(TypedDict):
    messages: list[dict[str, Any]]


def stored_bytes(repo: ckpt.Repository) -> int:
    """Sum of the sizes of every storage value that holds objects."""
    return sum(info.size for prefix in OBJECT_PREFIXES for info in repo.storage.list(prefix))


#: Saves around this step are the early ones the late saves are compared with.
EARLY_STEP = 10
#: Saves (or loads) timed together for a latency figure (their median).
LATENCY_WINDOW = 11


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _load_fresh(path: str) -> object:
    """Open the store afresh (nothing cached in the process) and load the newest state."""
    with ckpt.open(path) as repo:
        return repo.job("agent").load("messages")


def run_ckpt(path: str, msgs: list[dict[str, Any]]) -> dict[str, float]:
    repo = ckpt.init(path)
    job = repo.job("agent")
    state: list[dict[str, Any]] = []
    latencies: list[float] = []
    start = time.perf_counter()
    for step, msg in enumerate(msgs):
        state.append(msg)
        before = time.perf_counter()
        job.save("messages", state, cost=0.0021, tokens=310 + step % 97)
        latencies.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - start
    assert job.load("messages") == state
    window = min(LATENCY_WINDOW, max(1, len(msgs) // 4))
    early = max(0, min(EARLY_STEP - window // 2, len(msgs) - 2 * window))
    result = {
        "stored": stored_bytes(repo),
        "du": disk_usage(path),
        "files": file_count(path),
        "seconds": elapsed,
        "save_early": _median(latencies[early : early + window]),
        "save_late": _median(latencies[-window:]),
        "load": _median([timed(partial(_load_fresh, path)) for _ in range(LATENCY_WINDOW)]),
    }
    pickled = os.path.join(path, "state.pickle")
    fsync_write(pickled, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    def pickle_load() -> object:
        with open(pickled, "rb") as handle:
            return pickle.load(handle)

    result["pickle_load"] = _median([timed(pickle_load) for _ in range(LATENCY_WINDOW)])
    os.unlink(pickled)
    repo.close()
    return result


def run_files(path: str, msgs: list[dict[str, Any]], kind: str) -> dict[str, float]:
    """One file per checkpoint holding the whole state, fsynced (what the seed systems do)."""
    os.makedirs(path)
    state: list[dict[str, Any]] = []
    total = 0
    start = time.perf_counter()
    for step, msg in enumerate(msgs):
        state.append(msg)
        if kind == "pickle":
            data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            data = json.dumps(state).encode()
        fsync_write(os.path.join(path, f"step-{step:05d}.{kind}"), data)
        total += len(data)
    return {"stored": total, "du": disk_usage(path), "seconds": time.perf_counter() - start}


def sqlite_saver(path: str, msgs: list[dict[str, Any]]) -> dict[str, float] | None:
    """LangGraph SqliteSaver through the LangGraph worker's module, else a minimal graph."""
    try:
        from bench import w1_langgraph
    except ImportError:
        w1_langgraph = None
    runner = getattr(w1_langgraph, "sqlite_saver_run", None)
    if runner is not None:
        return dict(runner(path, msgs))
    return _sqlite_saver_minimal(path, msgs)


def _sqlite_saver_minimal(path: str, msgs: list[dict[str, Any]]) -> dict[str, float] | None:
    try:
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None

    def step(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [*state["messages"], msgs[len(state["messages"])]]}

    def route(state: dict[str, Any]) -> str:
        return str(END) if len(state["messages"]) >= len(msgs) else "step"

    os.makedirs(path)
    db = os.path.join(path, "checkpoints.sqlite")
    conn = sqlite3.connect(db, check_same_thread=False)
    graph = StateGraph(_GraphState)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", route)
    app = graph.compile(checkpointer=SqliteSaver(conn))
    start = time.perf_counter()
    app.invoke(
        {"messages": []},
        {"configurable": {"thread_id": "agent"}, "recursion_limit": len(msgs) + 10},
    )
    elapsed = time.perf_counter() - start
    conn.close()
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    return {"stored": size, "du": disk_usage(path), "seconds": elapsed}


def run(steps: int, repeats: int) -> Section:
    section = Section("W1", f"W1 agent run ({steps} steps, ~1 KB message per step)")
    stored: list[float] = []
    on_disk: list[float] = []
    vs: dict[str, list[float]] = {"pickle": [], "json": [], "sqlite": []}
    speed: dict[str, list[float]] = {"pickle": [], "json": [], "sqlite": []}
    latency: list[float] = []
    loading: list[float] = []
    facts: dict[str, float] = {}
    for rep in range(repeats):
        msgs = messages(seed=rep + 1, count=steps)
        final = canonical_json(msgs)
        zsize = len(zstandard.ZstdCompressor(level=3).compress(final))
        with scratch("w1") as tmp:
            mine = run_ckpt(os.path.join(tmp, "store"), msgs)
            stored.append(mine["stored"] / zsize)
            latency.append(mine["save_late"] / mine["save_early"])
            loading.append(mine["load"] / mine["pickle_load"])
            on_disk.append(mine["du"] / mine["stored"])
            for kind in ("pickle", "json"):
                other = run_files(os.path.join(tmp, kind), msgs, kind)
                vs[kind].append(mine["stored"] / other["stored"])
                speed[kind].append(mine["seconds"] / other["seconds"])
            if rep == 0:
                sq = sqlite_saver(os.path.join(tmp, "sqlite"), msgs)
                if sq is not None:
                    vs["sqlite"].append(mine["stored"] / sq["stored"])
                    speed["sqlite"].append(mine["seconds"] / sq["seconds"])
                    facts["sqlite"] = sq["stored"]
        if rep == 0:
            facts.update(
                final=len(final),
                zstd=zsize,
                stored=mine["stored"],
                du=mine["du"],
                files=mine["files"],
                seconds=mine["seconds"],
                save_early=mine["save_early"],
                save_late=mine["save_late"],
                load=mine["load"],
                pickle_load=mine["pickle_load"],
            )
    section.rows.append(
        Ratio(
            "W1",
            "bytes stored",
            "zstd(final state)",
            stored,
            target=4.0,
            absolute=f"{human_bytes(facts['stored'])} vs {human_bytes(facts['zstd'])}",
        )
    )
    section.rows.append(
        Ratio(
            "W1",
            "bytes on disk (du)",
            "bytes stored",
            on_disk,
            target=1.5,
            absolute=f"{human_bytes(facts['du'])} in {facts['files']:.0f} files",
        )
    )
    section.rows.append(Ratio("W1", "bytes stored", "(a) pickle file per step", vs["pickle"]))
    section.rows.append(Ratio("W1", "bytes stored", "(b) JSON file per step", vs["json"]))
    if vs["sqlite"]:
        section.rows.append(
            Ratio(
                "W1",
                "bytes stored",
                "(c) LangGraph SqliteSaver",
                vs["sqlite"],
                target=0.01,
                absolute=f"SqliteSaver: {human_bytes(facts['sqlite'])}",
            )
        )
    else:
        section.notes.append(
            "(c) SqliteSaver not measured: langgraph-checkpoint-sqlite is not installed."
        )
    section.rows.append(
        Ratio(
            "W1",
            "time of the whole run",
            "(a) pickle file per step",
            speed["pickle"],
            target=2.0,
            absolute=f"ckpt {human_seconds(facts['seconds'])}",
        )
    )
    section.rows.append(
        Ratio(
            "W1",
            f"save latency at step {steps}",
            f"save latency at step {EARLY_STEP}",
            latency,
            target=2.0,
            absolute=f"{human_seconds(facts['save_late'])} vs {human_seconds(facts['save_early'])}",
        )
    )
    section.rows.append(
        Ratio(
            "W1",
            f"load latest at step {steps}",
            "pickle.load of the same state (file)",
            loading,
            target=3.0,
            absolute=f"{human_seconds(facts['load'])} vs {human_seconds(facts['pickle_load'])}",
        )
    )
    section.rows.append(
        Ratio("W1", "time of the whole run", "(b) JSON file per step", speed["json"])
    )
    if speed["sqlite"]:
        section.rows.append(
            Ratio("W1", "time of the whole run", "(c) LangGraph SqliteSaver", speed["sqlite"])
        )
    section.notes.append(
        f"Final state: {human_bytes(facts['final'])} of canonical JSON, "
        f"{human_bytes(facts['zstd'])} with zstd -3; ratios below 1 mean ckpt is smaller/faster."
    )
    return section
