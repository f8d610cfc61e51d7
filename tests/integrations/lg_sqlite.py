"""SqliteSaver files for the import and command-line tests: several threads with subgraph
namespaces, pending interrupts and resumes, forks from history and a ``__copy__``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

from .lg_world import Op, build, config, run_op

STORIES: dict[str, list[Op]] = {
    "alpha": [("invoke", 0, "sync"), ("resume", "yes", "sync")],
    "beta:2": [("invoke", 1, "sync"), ("update", 1, "__copy__", 0), ("replay", 3, "sync")],
    "gamma": [("invoke", 2, "exit"), ("resume", "no", "exit"), ("update", 1, "a", 5)],
}


def write_stories(saver: Any) -> None:
    app = build(saver)
    for thread, ops in STORIES.items():
        for op in ops:
            assert not isinstance(run_op(app, config(thread), op), Exception), (thread, op)


def make_sqlite_file(path: Path) -> Path:
    """A SqliteSaver database at ``path`` holding the threads of :data:`STORIES`."""
    conn = sqlite3.connect(path, check_same_thread=False)
    write_stories(SqliteSaver(conn))
    conn.close()
    return path


def sqlite_at(path: Path) -> Iterator[Any]:
    """A SqliteSaver on ``path`` (one iteration: ``for saver in sqlite_at(path)``)."""
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def everything(saver: Any, thread: str) -> list[Any]:
    """Every checkpoint tuple of a thread, exactly, in a saver-independent order."""
    found = list(saver.list({"configurable": {"thread_id": thread}}))
    rows = [(t.config, t.checkpoint, t.metadata, t.parent_config, t.pending_writes) for t in found]
    return sorted(
        rows,
        key=lambda r: (
            r[0]["configurable"]["checkpoint_ns"],
            r[0]["configurable"]["checkpoint_id"],
        ),
    )


def break_row(path: Path, table: str, thread: str) -> str:
    """Garble the value of one row of ``thread`` (its newest checkpoint); return its id."""
    conn = sqlite3.connect(path)
    (checkpoint_id,) = conn.execute(
        "SELECT max(checkpoint_id) FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''",
        (thread,),
    ).fetchone()
    column = "checkpoint" if table == "checkpoints" else "value"
    extra = " AND channel = '__interrupt__'" if table == "writes" else ""
    changed = conn.execute(
        f"UPDATE {table} SET {column} = x'c1c1c1' WHERE thread_id = ? AND checkpoint_id = ?{extra}",
        (thread, checkpoint_id),
    ).rowcount
    conn.commit()
    conn.close()
    assert changed >= 1
    return str(checkpoint_id)
