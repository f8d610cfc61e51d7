"""Shell completion of job names, branches, tags, revisions and stages.

Each function is a click ``shell_complete`` callback.  They run while the
shell waits, on a half-typed command line: they open the store the command
would use, and on any error offer nothing rather than print.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from ckpt.history.job import Job
    from ckpt.repository import Repository

# click.shell_completion is imported when completing, not by every command using these.
Completer = Callable[[click.Context, click.Parameter, str], "list[CompletionItem]"]


def _repo(ctx: click.Context) -> Repository:
    from ckpt.repository import open as open_store

    store = ctx.find_root().params.get("store")
    return open_store(store if isinstance(store, str) else None)


def _job_word(ctx: click.Context) -> str | None:
    """The JOB argument of the command line being completed.

    click leaves ``ctx.params`` empty while completing the value of an option
    such as ``-d``, so the words the shell passed are read directly.
    """
    name = ctx.params.get("job")
    if isinstance(name, str):
        return name
    from click.shell_completion import split_arg_string

    words = split_arg_string(os.environ.get("COMP_WORDS", ""))
    if ctx.info_name not in words:
        return None
    for word in words[words.index(ctx.info_name) + 1 :]:
        if not word.startswith("-"):
            return word
    return None


def _job(ctx: click.Context, repo: Repository) -> Job | None:
    name = _job_word(ctx)
    if name is None:
        return None
    job = repo.job(name)
    return job if job.exists else None


def _items(names: Iterable[str], incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(name) for name in sorted(set(names)) if name.startswith(incomplete)]


def _safely(find: Callable[[click.Context], Iterable[str]]) -> Completer:
    def complete(
        ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        try:
            return _items(find(ctx), incomplete)
        except Exception:  # completion must never break the user's shell
            return []

    return complete


def _job_names(ctx: click.Context) -> list[str]:
    with _repo(ctx) as repo:
        return repo.job_names()


def _branches(ctx: click.Context) -> list[str]:
    with _repo(ctx) as repo:
        job = _job(ctx, repo)
        return [] if job is None else list(job.branches())


def _tags(ctx: click.Context) -> list[str]:
    with _repo(ctx) as repo:
        job = _job(ctx, repo)
        return [] if job is None else list(job.tags())


def _revisions(ctx: click.Context) -> list[str]:
    with _repo(ctx) as repo:
        job = _job(ctx, repo)
        if job is None:
            return []
        return ["HEAD", *job.branches(), *job.tags(), *job.stages()]


def _stages(ctx: click.Context) -> list[str]:
    with _repo(ctx) as repo:
        job = _job(ctx, repo)
        return [] if job is None else job.stages()


complete_jobs = _safely(_job_names)
complete_branches = _safely(_branches)
complete_tags = _safely(_tags)
complete_revisions = _safely(_revisions)
complete_stages = _safely(_stages)
