"""LangGraph threads in and out of SqliteSaver files: what ``ckpt langgraph import`` and
``ckpt langgraph export`` do.

Both copy with :func:`~ckpt.integrations.langgraph_import.import_threads`, so
they share its guarantees: every checkpoint, namespace and pending write; a
thread the source cannot read is not written at all; a run again copies only
what is new.  They need LangGraph's SQLite saver
(``pip install 'ckpt[langgraph]'``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from ckpt.errors import CkptError, NotFoundError
from ckpt.integrations.langgraph_import import (
    ImportReport,
    Saver,
    import_threads,
    list_threads,
    sqlite_connection,
)
from ckpt.repository import Repository

__all__ = ["SqliteImport", "count_checkpoints", "export_sqlite", "import_sqlite", "sqlite_saver"]


def count_checkpoints(saver: Saver, threads: Iterable[Any]) -> int | None:
    """How many checkpoints ``threads`` have in ``saver``, where it can tell without reading
    them (None otherwise)."""
    conn = sqlite_connection(saver)
    if conn is None:
        return None
    total = 0
    for thread in threads:
        row = conn.execute(
            "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (str(thread),)
        ).fetchone()
        total += int(row[0])
    return total


@attrs.frozen
class SqliteImport:
    """What importing a SqliteSaver file did, and the sizes before and after."""

    path: str
    report: ImportReport
    file_bytes: int  # the database file, with its write-ahead log
    store_bytes_before: int
    store_bytes_after: int

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.path,
            **self.report.to_json(),
            "file_bytes": self.file_bytes,
            "store_bytes_before": self.store_bytes_before,
            "store_bytes_after": self.store_bytes_after,
        }


@contextlib.contextmanager
def sqlite_saver(path: str | os.PathLike[str], *, create: bool = False) -> Iterator[Saver]:
    """LangGraph's SqliteSaver on the database file ``path``: read-only, or (with
    ``create``) writable and created if absent.  Closes the connection after the block."""
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver
    except ModuleNotFoundError:
        raise CkptError(
            "reading SqliteSaver files needs LangGraph's SQLite saver: "
            "pip install 'ckpt[langgraph]'"
        ) from None
    where = os.fspath(path)
    if not create and not os.path.isfile(where):
        raise NotFoundError(f"{where}: no such file")
    uri = f"file:{urllib.parse.quote(os.path.abspath(where))}" + ("" if create else "?mode=ro")
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise CkptError(f"{where}: cannot open it as a SQLite database: {exc}") from None
    try:
        try:
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:
            raise CkptError(f"{where} is not a SQLite database ({exc})") from None
        if not create and not {"checkpoints", "writes"} <= tables:
            raise CkptError(
                f"{where} is not a LangGraph SqliteSaver database: it has no checkpoints "
                "and writes tables"
            )
        saver = SqliteSaver(conn)
        if create:
            saver.setup()
        yield saver
    finally:
        conn.close()


def _file_bytes(path: str) -> int:
    return sum(
        os.path.getsize(path + suffix) for suffix in ("", "-wal") if os.path.isfile(path + suffix)
    )


def _store_bytes(repo: Repository) -> int:
    return sum(found.stored_size for found in repo.objects)


def import_sqlite(
    path: str | os.PathLike[str],
    repo: Repository,
    *,
    thread_ids: Iterable[Any] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> SqliteImport:
    """Import the threads of a SqliteSaver file into ``repo`` (see :func:`import_threads`).

    The file is opened read-only.  ``progress(done, total)`` is called after
    each checkpoint (``total``: the checkpoints to go through).
    """
    from ckpt.integrations.langgraph import CkptSaver

    where = os.fspath(path)
    before = _store_bytes(repo)
    with sqlite_saver(where) as source:
        threads = list_threads(source) if thread_ids is None else list(thread_ids)
        total = count_checkpoints(source, threads)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        with CkptSaver(repo) as dest:
            report = import_threads(source, dest, thread_ids=threads, progress=advance)
    return SqliteImport(where, report, _file_bytes(where), before, _store_bytes(repo))


def export_sqlite(
    repo: Repository,
    path: str | os.PathLike[str],
    *,
    thread_ids: Iterable[Any] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> ImportReport:
    """Copy the LangGraph threads of ``repo`` into a SqliteSaver file (created if absent);
    what is there already is kept.  ``progress`` as for :func:`import_sqlite` (no total)."""
    from ckpt.integrations.langgraph import CkptSaver

    with CkptSaver(repo) as source, sqlite_saver(path, create=True) as dest:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, None)

        return import_threads(source, dest, thread_ids=thread_ids, progress=advance)
