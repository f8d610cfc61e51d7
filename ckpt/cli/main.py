"""Entry point of the ``ckpt`` command: the root group, its options and the command table.

Commands live in modules grouped by idea and are imported only when used
(``ckpt log`` imports :mod:`ckpt.cli.history` and nothing of the other
command modules); command modules import the library inside their command
functions.  ``ckpt --help`` imports no command module at all: it lists each
command's short help from :mod:`ckpt.cli.summaries`, a table generated from
the commands (``python -m ckpt.cli.docgen --summaries``; a test fails when it
is stale).  Adding a module of commands is one line in :data:`COMMAND_MODULES`
and regenerating that table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from ckpt import __version__
from ckpt.cli.exits import EXIT_CODE_HELP, ExitCode, report

#: (module, section title in ``--help``, the commands it defines), in help order.
COMMAND_MODULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ckpt.cli.setup", "Getting started", ("init", "demo", "completion")),
    ("ckpt.cli.jobs", "Jobs", ("jobs", "use", "status", "watch")),
    ("ckpt.cli.history", "History", ("log", "show", "cat", "diff", "reflog")),
    ("ckpt.cli.refs", "Rolling back and branching", ("checkout", "branch", "switch", "tag")),
    ("ckpt.cli.maintenance", "Maintenance", ("verify", "repair", "gc", "stats", "rm")),
    ("ckpt.cli.transfer", "Moving jobs", ("export", "import")),
    ("ckpt.cli.remote", "Remotes", ("remote", "push", "pull", "clone")),
    ("ckpt.cli.ui", "Dashboard", ("ui",)),
    ("ckpt.cli.langgraph", "LangGraph", ("langgraph",)),
)

#: Longer than any first sentence: ``ckpt --help`` shows each command's summary whole.
SUMMARY_LIMIT = 1000

ENVIRONMENT_HELP: tuple[tuple[str, str], ...] = (
    ("CKPT_DIR", "the store to use when --store is not given"),
    ("CKPT_JOB", "the current job, for commands whose JOB is left out (see ckpt use)"),
    ("CKPT_PAGER", "the pager for long output on a terminal (then PAGER, then less -FRX)"),
    ("NO_COLOR", "set to anything to turn colour off (unless --color always)"),
    ("CKPT_DEBUG", "set to 1 to show tracebacks, like --debug"),
)


def find_command(module_name: str, name: str) -> click.Command:
    """The command called ``name`` defined in ``module_name``."""
    # __import__ rather than importlib.import_module: the same import, but one that
    # `python -X importtime` reports, so the start-up cost of a command is measurable.
    __import__(module_name)
    module = sys.modules[module_name]
    for value in vars(module).values():
        if isinstance(value, click.Command) and value.name == name:
            return value
    raise LookupError(f"{module_name} defines no command {name!r}")


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, listed by section in help,
    and whose errors all pass through :func:`ckpt.cli.exits.report`."""

    def __init__(
        self, *args: Any, modules: Sequence[tuple[str, str, tuple[str, ...]]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.modules = tuple(modules)
        self.module_of = {name: module for module, _, names in self.modules for name in names}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for _, _, names in self.modules for name in names]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in self.module_of:
            command = find_command(self.module_of[cmd_name], cmd_name)
            self.commands[cmd_name] = command
        return command

    def summary_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """A command whose short help is that of command ``name``: a stand-in built from
        :data:`ckpt.cli.summaries.SUMMARIES` (which spares importing the command's module),
        or the command itself when the table lacks it."""
        from ckpt.cli.summaries import SUMMARIES

        summary = SUMMARIES.get(name)
        if summary is None:
            return self.get_command(ctx, name)
        return click.Command(name, **summary)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for _, title, names in self.modules:
            rows = []
            for name in names:
                command = self.summary_command(ctx, name)
                if command is not None and not command.hidden:
                    # Never cut mid-phrase: a summary too long for the line wraps
                    # (tests/cli/test_main.py keeps every one on one line at 80 columns).
                    rows.append((name, command.get_short_help_str(limit=SUMMARY_LIMIT)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Exit status"):
            formatter.write_dl([(str(int(code)), text) for code, text in EXIT_CODE_HELP])
        with formatter.section("Environment"):
            formatter.write_dl(list(ENVIRONMENT_HELP))

    def invoke(self, ctx: click.Context) -> Any:
        from ckpt.cli.exits import warnings_as_lines

        try:
            with warnings_as_lines():
                return super().invoke(ctx)
        except BrokenPipeError:
            from ckpt.cli.context import settings

            if settings(ctx).paging is not None:
                raise click.exceptions.Exit(ExitCode.OK) from None  # the reader quit the pager
            raise  # click reports it itself: quietly, as in `ckpt log | head`
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click reports these itself
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            raise click.exceptions.Exit(ExitCode.INTERRUPTED) from None
        except Exception as exc:
            from ckpt.cli.context import settings

            raise click.exceptions.Exit(report(exc, debug=settings(ctx).debug)) from None


@click.group(
    cls=LazyGroup,
    modules=COMMAND_MODULES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--store",
    metavar="PATH",
    type=click.Path(file_okay=False),
    help="The store to use (default: $CKPT_DIR, then .ckpt here or in a parent).",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="CKPT_DEBUG",
    help="Show the traceback of an error.",
)
@click.option(
    "--no-pager",
    is_flag=True,
    help="Do not page long output (log, show, diff, cat, reflog) on a terminal.",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour output; auto colours a terminal unless NO_COLOR is set.",
)
@click.version_option(__version__, "--version", prog_name="ckpt", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, store: str | None, debug: bool, no_pager: bool, color: str) -> None:
    """ckpt: a content-addressed checkpoint store for long, expensive pipelines.

    A job saves one checkpoint per pipeline stage.  ckpt shows a job's
    history, rolls it back to any stage to re-run from there, branches it to
    try an alternative, verifies that nothing on disk is corrupt and
    collects garbage.

    The store is found from --store, then $CKPT_DIR, then a .ckpt directory
    in the current directory or a parent (`ckpt init` creates one).

    A REV is HEAD, HEAD~N (N checkpoints back), a branch, a tag, a stage
    name (the newest checkpoint that saved it) or a commit-id prefix of 6 or
    more hex digits.  A branch or tag wins over a stage of the same name,
    with a warning; stage:NAME (or branch:NAME, tag:NAME) names one kind
    only.  Try `ckpt demo` for a guided first minute.
    """
    # Imported here, not at the top: `ckpt --help` never gets this far.
    from ckpt.cli.context import settings
    from ckpt.cli.output import colour_setting

    state = settings(ctx)
    state.store = store
    state.debug = debug
    state.no_pager = no_pager
    ctx.color = colour_setting(color)


def main(args: Sequence[str] | None = None) -> None:
    """Run the ``ckpt`` command (console-script entry point); exits the process."""
    cli.main(args=None if args is None else list(args), prog_name="ckpt")


if __name__ == "__main__":
    main()
