"""Getting started: ``init``, ``demo`` and ``completion``."""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING

import click

from ckpt.cli import output as out
from ckpt.cli.context import command_line, open_repo, settings

if TYPE_CHECKING:
    from ckpt.cli.demo import StageRun

DEFAULT_STORE = ".ckpt"
DEMO_STORE = "ckpt-demo"
DEMO_JOB = "novel"


@click.command("init")
@click.argument("path", required=False, metavar="[PATH]", type=click.Path(file_okay=False))
def init(path: str | None) -> None:
    """Create an empty store (default: ./.ckpt).

    PATH defaults to --store, then $CKPT_DIR, then ./.ckpt.  Commands find
    a store named .ckpt in the current directory or a parent by themselves;
    a store anywhere else is used with --store or CKPT_DIR.
    """
    from ckpt.repository import init as init_store

    where = path or settings().store or os.environ.get("CKPT_DIR") or DEFAULT_STORE
    init_store(where).close()
    out.echo(f"Initialized empty ckpt store in {where}")
    if os.path.basename(os.path.normpath(where)) != DEFAULT_STORE and where != os.environ.get(
        "CKPT_DIR"
    ):
        out.echo(f"Use it with --store {where}, or: export CKPT_DIR={where}")


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    Completes commands, options, job names, branches, tags, revisions and
    stages.  To enable it:

    \b
      bash:  eval "$(ckpt completion bash)"   (add to ~/.bashrc)
      zsh:   eval "$(ckpt completion zsh)"    (add to ~/.zshrc)
      fish:  ckpt completion fish > ~/.config/fish/completions/ckpt.fish
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    if completer is None:  # click knows every choice above; kept for a future click
        raise click.UsageError(f"no completion support for {shell}")
    root = click.get_current_context().find_root().command
    click.echo(completer(root, {}, "ckpt", "_CKPT_COMPLETE").source())


def _heading(text: str) -> None:
    out.echo()
    out.echo(out.style(f"== {text}", bold=True))


def _shell(*args: str) -> None:
    out.echo(out.style("$ " + command_line(*args), fg="cyan"))


def _print_stage(run: StageRun) -> None:
    if run.skipped:
        out.echo(f"  = {run.stage:<11} loaded from its checkpoint, $0.00")
    else:
        mark = out.style("+", fg="green")
        out.echo(
            f"  {mark} {run.stage:<11} {out.money(run.cost):>6}  {out.count(run.tokens):>6} tokens"
            f"  saved as {run.commit[:12] if run.commit else '-'}"
        )


def _demo_path() -> str:
    """``.ckpt`` when no store is found from here (so that the demo's is then found by every
    command), else a free ``ckpt-demo`` path, so that the store in use is left alone."""
    from ckpt.errors import StoreNotFoundError
    from ckpt.repository import resolve_location

    try:
        resolve_location()
    except StoreNotFoundError:
        if not os.path.exists(DEFAULT_STORE):
            return DEFAULT_STORE
    return _free_demo_path()


def _free_demo_path() -> str:
    """``ckpt-demo``, or ``ckpt-demo-2``, ``-3``... if earlier demos left theirs."""
    candidate, number = DEMO_STORE, 1
    while os.path.exists(candidate):
        number += 1
        candidate = f"{DEMO_STORE}-{number}"
    return candidate


@click.command("demo")
@click.argument("path", required=False, metavar="[PATH]", type=click.Path(file_okay=False))
@click.pass_context
def demo(ctx: click.Context, path: str | None) -> None:
    """Run a guided demo: a pipeline fails, resumes and rolls back.

    The demo runs a small pipeline in a new store, then shows its log: a
    newcomer's first minute.  The store is PATH; by default ./.ckpt when no
    store is found here (so that `ckpt jobs` and the rest work right after),
    else ./ckpt-demo (or -2, -3... if taken), leaving your store alone.  The
    demo ends by saying how to use its store and how to remove it.
    """
    from ckpt.cli.demo import STAGES, run_novel
    from ckpt.cli.history import log
    from ckpt.cli.jobs import status_lines
    from ckpt.cli.refs import checkout, tag
    from ckpt.errors import StoreExistsError
    from ckpt.pipeline.listing import job_progress
    from ckpt.repository import init as init_store

    where = path or settings(ctx).store or _demo_path()
    try:
        init_store(where).close()
    except StoreExistsError:
        raise StoreExistsError(
            f"{where} already holds a ckpt store; remove it or give `ckpt demo` another PATH"
        ) from None
    # In ./.ckpt every command finds the store by itself: the commands shown need no --store.
    found_here = where == DEFAULT_STORE and not os.environ.get("CKPT_DIR")
    settings(ctx).store = None if found_here else where
    out.echo(f"Created a store in {where} with a job called {DEMO_JOB!r}: a pipeline of")
    out.echo(f"{len(STAGES)} stages ({', '.join(STAGES)}) that stand for paid model calls.")

    repo = open_repo(ctx)
    _heading("Run 1: the model API times out in stage 3")
    first = run_novel(repo, DEMO_JOB, crash_at="chapters", on_stage=_print_stage)
    out.echo(f"  {out.style('x', fg='red')} {first.failed_stage:<11}  {first.error}")
    out.echo(f"  The run failed after spending {out.money(first.cost)}; both stages are saved.")
    out.echo()
    _shell("status", DEMO_JOB)
    out.echo_lines(status_lines(job_progress(repo.job(DEMO_JOB)), ctx))

    _heading("Run 2: the same pipeline, started again, resumes where it stopped")
    second = run_novel(repo, DEMO_JOB, on_stage=_print_stage)
    out.echo(f"  Completed. This run paid {out.money(second.cost)}: nothing twice.")

    _heading("Roll back: keep this version under a tag, redo the edit in a terser style")
    _shell("tag", DEMO_JOB, "lyrical")
    ctx.invoke(tag, job=DEMO_JOB, name="lyrical")
    _shell("checkout", DEMO_JOB, "chapters")
    ctx.invoke(checkout, job=DEMO_JOB, rev="chapters", new_branch=None)
    out.echo()
    third = run_novel(repo, DEMO_JOB, style="terse", on_stage=_print_stage)
    out.echo(f"  Completed again for {out.money(third.cost)}: only edit and publish ran.")

    _heading("The history")
    _shell("log", DEMO_JOB, "--oneline", "--graph", "--all")
    ctx.invoke(log, job=DEMO_JOB, oneline=True, graph=True, all_refs=True)
    out.echo()
    out.echo("Explore it yourself:")
    for args in (
        ("log", DEMO_JOB),
        ("show", DEMO_JOB, "edit"),
        ("diff", DEMO_JOB, "lyrical", "HEAD", "edit"),
        ("reflog", DEMO_JOB),
        ("verify", "--full"),
    ):
        out.echo("  " + command_line(*args))
    out.echo()
    if found_here:
        out.echo(f"The demo's store is {where} in this directory: every ckpt command here uses it.")
    else:
        out.echo(
            f"The demo's store is {where}: use it with --store {where}, or: export CKPT_DIR={where}"
        )
    out.echo(f"Remove it with: rm -rf {shlex.quote(where)}")
