"""import_threads and ``ckpt langgraph import/export``: threads move between any two savers.

The source is a real SqliteSaver file with several threads (subgraph
namespaces, pending interrupts and resumes, forks from history, a
``__copy__``), or a CkptSaver store with forks.  A copy must hold every
checkpoint tuple exactly as the source does, and go on as the source goes
on; an import run again copies only what is new; a broken row stops the
import before anything of its thread is written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

import ckpt
from ckpt.integrations.langgraph import CkptSaver, ThreadImportError, import_threads

from .lg_sqlite import STORIES, break_row, everything, sqlite_at, write_stories
from .lg_world import Labels, Op, build, canon, config, run_op, snapshot
from .test_langgraph_differential import answers_of, assert_same

pytest.importorskip("langgraph.checkpoint.sqlite")
from langgraph.checkpoint.sqlite import SqliteSaver

GOING_ON: list[Op] = [("resume", "later", "sync"), ("replay", 2, "sync"), ("resume", "x", "sync")]


def test_sqlite_to_ckpt_to_sqlite_gives_an_equal_history(sqlite_file: Path, tmp_path: Path) -> None:
    source_conn = sqlite3.connect(sqlite_file, check_same_thread=False)
    source = SqliteSaver(source_conn)
    repo = ckpt.init(tmp_path / "store")
    middle = CkptSaver(repo)
    report = import_threads(source, middle)
    total = sum(len(everything(source, t)) for t in STORIES)
    assert (report.threads, report.checkpoints, report.skipped) == (3, total, 0)
    assert report.writes > 0
    back_conn = sqlite3.connect(tmp_path / "back.sqlite", check_same_thread=False)
    back = SqliteSaver(back_conn)
    import_threads(middle, back)
    for thread in STORIES:
        expected = everything(source, thread)
        assert any(row[0]["configurable"]["checkpoint_ns"] for row in expected)  # subgraphs
        assert any(row[4] for row in expected)  # pending writes
        assert everything(middle, thread) == expected, thread
        assert everything(back, thread) == expected, thread
    assert repo.verify().ok
    # And the copies go on as the source does.
    for thread in STORIES:
        assert_same(answers_of(source, GOING_ON, thread), answers_of(middle, GOING_ON, thread))
    source_conn.close()
    back_conn.close()


def test_a_ckpt_thread_with_forks_goes_on_in_in_memory_saver(tmp_path: Path) -> None:
    """CkptSaver numbers versions per fork; the copy in a saver that keys values by version
    must still hold each fork's own values."""
    saver = CkptSaver(ckpt.init(tmp_path / "store"))
    write_stories(saver)
    copy = InMemorySaver()
    import_threads(saver, copy, thread_ids=["beta:2", "gamma"])
    for thread in ("beta:2", "gamma"):
        assert canon(snapshot(build(copy), config(thread)), Labels()) == canon(
            snapshot(build(saver), config(thread)), Labels()
        )
        assert_same(answers_of(saver, GOING_ON, thread), answers_of(copy, GOING_ON, thread))
    assert list(copy.storage) == ["beta:2", "gamma"]


def heads(repo: ckpt.Repository) -> dict[str, dict[str, str]]:
    return {name: dict(repo.job(name).branches()) for name in repo.job_names()}


def test_running_an_import_again_copies_only_what_is_new(sqlite_file: Path, tmp_path: Path) -> None:
    repo = ckpt.init(tmp_path / "store")
    saver = CkptSaver(repo)
    for source in sqlite_at(sqlite_file):
        first = import_threads(source, saver)
        before = heads(repo)
        again = import_threads(source, saver)
        assert (again.checkpoints, again.writes, again.skipped) == (0, 0, first.checkpoints)
        assert heads(repo) == before  # nothing written at all
        # The source goes on; the next import brings just that.
        had = len(everything(saver, "alpha"))
        run_op(build(source), config("alpha"), ("resume", "later", "sync"))
        grown = len(everything(source, "alpha"))
        third = import_threads(source, saver, thread_ids=["alpha"])
        assert (third.checkpoints, third.skipped) == (grown - had, had)
        assert grown > had
        assert everything(saver, "alpha") == everything(source, "alpha")
    assert repo.verify().ok


@pytest.mark.parametrize("table", ["checkpoints", "writes"])
def test_a_broken_row_stops_before_its_thread_is_written(
    sqlite_file: Path, tmp_path: Path, table: str
) -> None:
    broken = break_row(sqlite_file, table, "beta:2")
    repo = ckpt.init(tmp_path / "store")
    saver = CkptSaver(repo)
    for source in sqlite_at(sqlite_file):
        with pytest.raises(ThreadImportError) as stopped:
            import_threads(source, saver)
        error = stopped.value
        assert (error.thread_id, error.checkpoint_id) == ("beta:2", broken)
        assert str(error).startswith(f"thread 'beta:2': checkpoint {broken} cannot be read")
        assert str(error).endswith("nothing of this thread was imported")
        # alpha (before it) is complete; beta:2 and what follows are not there at all.
        assert everything(saver, "alpha") == everything(source, "alpha")
        assert everything(saver, "beta:2") == [] and everything(saver, "gamma") == []
        # The other threads can still be brought over.
        import_threads(source, saver, thread_ids=["gamma"])
        assert everything(saver, "gamma") == everything(source, "gamma")
