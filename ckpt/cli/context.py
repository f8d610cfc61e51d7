"""What every command needs from the root: the store it works on, and a job by name.

The store is found once per invocation, as the library finds it
(``--store``, then ``$CKPT_DIR``, then ``.ckpt`` in the current directory or
a parent), opened lazily on first use and closed when the command ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ckpt.history.job import Job
    from ckpt.repository import Repository


class Settings:
    """Root options, kept on ``ctx.obj`` for every subcommand, and the store once opened.

    A plain class rather than a dataclass: every ``ckpt`` command creates one,
    and importing dataclasses is a measurable part of ``ckpt --help``.
    """

    def __init__(
        self, store: str | None = None, debug: bool = False, repo: Repository | None = None
    ) -> None:
        self.store = store
        self.debug = debug
        self.repo = repo
        self.no_pager = False
        self.paging: object | None = None  # the running pager (ckpt.cli.pager), if any


def settings(ctx: click.Context | None = None) -> Settings:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def open_repo(ctx: click.Context | None = None) -> Repository:
    """The store of this invocation, opened on first use (raises StoreNotFoundError)."""
    ctx = ctx or click.get_current_context()
    state = settings(ctx)
    if state.repo is None:
        from ckpt.repository import open as open_store

        repo = open_store(state.store)
        state.repo = repo
        ctx.find_root().call_on_close(repo.close)
    return state.repo


def get_job(name: str, ctx: click.Context | None = None) -> Job:
    """Job ``name``, which must exist; the error suggests close names and ``ckpt jobs``."""
    from ckpt.errors import NotFoundError
    from ckpt.history.names import job_name

    repo = open_repo(ctx)
    job = repo.job(job_name(name))
    if not job.exists:
        # JOB left out, and the current job (ckpt.cli.currentjob) is gone: say where it was set.
        chosen = (ctx or click.get_current_context()).meta.get("current_job")
        if chosen is not None and chosen[0] == name:
            how = "unset CKPT_JOB" if chosen[1].startswith("$") else "`ckpt use --clear`"
            raise NotFoundError(
                f"the current job {name!r} (set by {chosen[1]}) is not in this store; "
                f"give a JOB, pick another with `ckpt use JOB`, or {how}"
            )
        import difflib

        known = repo.job_names()
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif known:
            hint = "`ckpt jobs` lists the jobs"
        else:
            hint = "the store has no jobs yet"
        raise NotFoundError(f"job {name!r} not found in {repo.location}; {hint}")
    return job


def command_line(*args: str, ctx: click.Context | None = None) -> str:
    """The ``ckpt ...`` command that does ``args`` on this invocation's store, shell-quoted."""
    import shlex

    store = settings(ctx).store
    words = ["ckpt", *(["--store", store] if store else []), *args]
    return " ".join(shlex.quote(word) for word in words)
