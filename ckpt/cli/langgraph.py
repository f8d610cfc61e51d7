"""LangGraph threads in and out of a store: ``langgraph import`` and ``langgraph export``.

Both call one function of :mod:`ckpt.integrations.langgraph_sqlite`, which
imports LangGraph only when a command runs (``ckpt --help`` never does).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import click

from ckpt.cli import output as out
from ckpt.cli.context import open_repo, settings
from ckpt.cli.history import json_option

if TYPE_CHECKING:
    from ckpt.integrations.langgraph_import import ImportReport
    from ckpt.repository import Repository

DEFAULT_STORE = ".ckpt"  # as `ckpt init`

_thread_option = click.option(
    "--thread",
    "threads",
    metavar="ID",
    multiple=True,
    help="Only this thread (repeatable; default: every thread).",
)


def _plural(number: int, word: str) -> str:
    return f"{out.count(number)} {word}{'' if number == 1 else 's'}"


@contextlib.contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A ``progress(done, total)`` callback drawing a bar on a terminal once the total is
    known (a running count without one); silent when stderr is not a terminal."""
    with contextlib.ExitStack() as stack:
        advance: Callable[[int], None] | None = None

        def progress(done: int, total: int | None) -> None:
            nonlocal advance
            if advance is None:
                advance = stack.enter_context(out.progress(label, total))
            advance(1)

        yield progress


def _store_for_import() -> Repository:
    """The store of this invocation; created (and said so) if there is none yet."""
    from ckpt.errors import StoreNotFoundError
    from ckpt.repository import init as init_store

    try:
        return open_repo()
    except StoreNotFoundError:
        pass
    state = settings()
    where = state.store or os.environ.get("CKPT_DIR") or DEFAULT_STORE
    repo = init_store(where)
    state.repo = repo
    click.get_current_context().find_root().call_on_close(repo.close)
    out.echo(f"Initialized empty ckpt store in {where}", err=True)
    return repo


def _report_line(report: ImportReport) -> str:
    parts = [
        _plural(report.checkpoints, "checkpoint"),
        _plural(report.writes, "pending write"),
    ]
    line = f"{_plural(report.threads, 'thread')}: " + " and ".join(parts) + " copied"
    if report.skipped:
        line += f", {_plural(report.skipped, 'checkpoint')} already there"
    return line


def _langgraph_subcommands() -> list[click.Command]:
    """``langgraph import`` and ``langgraph export`` (built here so that the module's
    top-level commands are exactly the ones listed in the command table)."""

    @click.command("import")
    @click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
    @_thread_option
    @json_option
    def import_(file: str, threads: tuple[str, ...], as_json: bool) -> None:
        """Copy the threads of the SqliteSaver database FILE into the store.

        Every checkpoint of every namespace is copied with its metadata, its
        parent and its pending writes: a graph compiled with CkptSaver goes on
        where the SqliteSaver left it.  FILE is opened read-only.  The store is
        created if there is none.  Running it again copies only what is new; a
        checkpoint FILE cannot read stops the import with an error naming its
        thread, before anything of that thread is written (the threads copied
        before it are complete).
        """
        from ckpt.integrations.langgraph_sqlite import import_sqlite

        repo = _store_for_import()
        with _progress_bar("Importing checkpoints") as progress:
            done = import_sqlite(file, repo, thread_ids=threads or None, progress=progress)
        if as_json:
            out.emit_json({**done.to_json(), "store": repo.location})
            return
        out.echo(f"Imported {_report_line(done.report)}.")
        grown = done.store_bytes_after - done.store_bytes_before
        out.echo(
            f"{file}: {out.size(done.file_bytes)}; the store grew by {out.size(grown)} "
            f"(now {out.size(done.store_bytes_after)})."
        )

    @click.command("export")
    @click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
    @_thread_option
    @json_option
    def export(file: str, threads: tuple[str, ...], as_json: bool) -> None:
        """Copy the store's LangGraph threads into the SqliteSaver database FILE.

        FILE is created if absent; what it holds already is kept, and running
        the command again copies only what is new.  A graph compiled with
        LangGraph's SqliteSaver on FILE goes on where CkptSaver left it.
        """
        from ckpt.integrations.langgraph_sqlite import export_sqlite

        repo = open_repo()
        with _progress_bar("Exporting checkpoints") as progress:
            report = export_sqlite(repo, file, thread_ids=threads or None, progress=progress)
        if as_json:
            out.emit_json({"file": file, **report.to_json()})
            return
        out.echo(f"Exported {_report_line(report)} to {file}.")

    return [import_, export]


@click.group("langgraph", commands=_langgraph_subcommands())
def langgraph() -> None:
    """Import or export LangGraph threads as a SqliteSaver file.

    \b
      ckpt langgraph import FILE   copy the threads of a SqliteSaver database into the store
      ckpt langgraph export FILE   copy the store's threads into a SqliteSaver database

    Needs pip install 'ckpt[langgraph]'.  In
    Python, ckpt.integrations.langgraph.import_threads copies threads
    between any two LangGraph savers.
    """
