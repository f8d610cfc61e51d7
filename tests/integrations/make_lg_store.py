"""Write the test data of the migration test: a store written by today's LangGraph saver.

Run once, when the saver's layout is about to change, from the repository root::

    python -m tests.integrations.make_lg_store 0.2

It writes ``data/langgraph-store-VERSION.tar.gz`` (a local store) and
``data/langgraph-store-VERSION.json`` (what today's saver reads back from it).
The threads:

* the three threads of :data:`STORIES`, made by running the graph of
  :mod:`lg_world` through those operations (interrupts in a subgraph and at
  the end, resumes, replays from history, ``update_state`` on an older
  checkpoint, a ``__copy__``, durability ``sync``, ``async`` and ``exit``);
* ``imported``, begun on LangGraph's ``InMemorySaver`` and copied in with
  ``import_threads`` (string channel versions);
* ``chat``, :func:`lg_world.build_chat` run to 48 messages of about 1.2 KB, then
  to 52 with durability ``async``: a long message list that grows each step.

Never regenerate existing files: they stand for stores that exist.
"""

from __future__ import annotations

import json
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

import ckpt
from ckpt.integrations.langgraph import CkptSaver, import_threads

from .lg_world import Op, build, build_chat, config, plain, run_op, snapshot

DATA = Path(__file__).with_name("data")
STORIES: dict[str, list[Op]] = {
    "v2:1/é": [
        ("invoke", 0, "sync"),
        ("resume", "x", "async"),
        ("update", 2, "__copy__", 0),
        ("resume", "y", "sync"),
        ("replay", 4, "exit"),
        ("update", 6, "a", 4),
        ("replay", 0, "sync"),
    ],
    "v2-2": [("invoke", 1, "exit"), ("resume", "z", "async")],
    "v2-3": [("invoke", 2, "async"), ("resume", "q", "async"), ("update", None, None, 3)],
}
IMPORTED: list[Op] = [("invoke", 3, "sync"), ("resume", "w", "sync")]
CHAT_STEPS: list[tuple[int, str]] = [(48, "sync"), (52, "async")]


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(plain(value), ensure_ascii=False))


def chat_view(app: Any, cfg: Any) -> Any:
    """The chat thread as the test compares it: the state with every message, and each
    history entry without its values (the message lists would make the file large)."""
    state = app.get_state(cfg)
    history = [
        [s.config, s.parent_config, s.metadata, s.next, len(s.values.get("messages", []))]
        for s in app.get_state_history(cfg)
    ]
    return as_json([state, history])


def tuples_of(saver: Any, thread: str) -> Any:
    found = saver.list(config(thread))
    rows = [[t.config, t.parent_config, t.checkpoint, t.metadata, t.pending_writes] for t in found]
    return as_json(rows)


def write(version: str) -> None:
    name = f"langgraph-store-{version}"
    if (DATA / f"{name}.tar.gz").exists():
        raise SystemExit(f"{name} exists: test data is never regenerated")
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "store"
        repo = ckpt.init(where)
        saver = CkptSaver(repo)
        app = build(saver)
        for thread, ops in STORIES.items():
            for op in ops:
                run_op(app, config(thread), op)
        source = InMemorySaver()
        for op in IMPORTED:
            run_op(build(source), config("imported"), op)
        import_threads(source, saver)
        chat = build_chat(saver)
        for target, durability in CHAT_STEPS:
            chat.invoke({"target": target}, config("chat"), durability=durability)
        threads = [*STORIES, "imported"]
        expected = {
            "stories": {**STORIES, "imported": IMPORTED},
            "snapshots": {t: as_json(snapshot(app, config(t))) for t in threads},
            "tuples": {t: tuples_of(saver, t) for t in threads},
            "chat": {"steps": CHAT_STEPS, "view": chat_view(chat, config("chat"))},
        }
        assert repo.verify().ok
        repo.close()
        with tarfile.open(DATA / f"{name}.tar.gz", "w:gz") as archive:
            archive.add(where, "store", filter=lambda i: None if i.name.endswith(".lock") else i)
    (DATA / f"{name}.json").write_text(
        json.dumps(expected, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    write(sys.argv[1])
