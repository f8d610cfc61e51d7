"""Checkpoint flags for a user's own click command: ``@ckpt.click_options(pipeline)``.

::

    @click.command()
    @click.option("--input", "story", type=click.Path(exists=True))
    @ckpt.click_options(pipeline)
    def main(story: str | None, runner: ckpt.Runner) -> None:
        result = runner.run(load_story(story) if story else None)

adds ``--job-id``, ``--resume``, ``--resume-from STAGE``, ``--at REV``,
``--branch NAME``, ``--restart``, ``--list-checkpoints``, ``--no-checkpoint``,
``--store PATH`` (default ``$CKPT_DIR``, else the ``default_store`` given
here, else ``.ckpt``) and ``--wait``, with seed 001's names as aliases
(``--workflow-id``, ``--resume-from-step``, ``--checkpoint-path``; see
:mod:`ckpt.pipeline.runflags`), and hands the command a :class:`Runner`
configured from them.  ``--list-checkpoints`` prints the job's checkpoints
and exits without calling the command.  Errors from ckpt become one-line
click errors (exit code 1), contradicting flags usage errors (exit code 2).

This module and :mod:`ckpt.pipeline.argparseopts` are the library modules
that print: they speak for the user's program.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ckpt.errors import CkptError
from ckpt.pipeline.runflags import FLAGS, FlagError, Flags, Runner, checkpoint_lines, make_runner
from ckpt.pipeline.runner import Pipeline

F = TypeVar("F", bound=Callable[..., Any])


def _param(flag: str) -> str:
    return "ckpt_" + flag.lstrip("-").replace("-", "_")


def _report(message: str) -> None:
    click.echo(message, err=True)


def click_options(
    pipeline: Pipeline, *, default_store: str | None = None, param: str = "runner"
) -> Callable[[F], F]:
    """Decorator adding ckpt's checkpoint flags to a click command; the command receives a
    :class:`Runner` as keyword argument ``param``."""
    options = []
    for flag, aliases, metavar, help_text in FLAGS:
        extra: dict[str, Any] = {}
        if metavar is None:
            extra["is_flag"] = True
        else:
            extra["metavar"] = metavar
        if flag == "--resume-from":
            extra["type"] = click.Choice(pipeline.stage_names)
        if flag == "--store":
            extra.update(envvar="CKPT_DIR", default=default_store or ".ckpt", show_default=True)
        options.append(click.option(flag, *aliases, _param(flag), help=help_text, **extra))
    keys = [_param(flag) for flag, *_ in FLAGS]

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {key: kwargs.pop(key) for key in keys}
            flags = Flags(**{key.removeprefix("ckpt_"): value for key, value in given.items()})
            try:
                runner = make_runner(pipeline, flags, _report)
                if flags.list_checkpoints:
                    for line in checkpoint_lines(runner):
                        click.echo(line)
                    click.get_current_context().exit(0)
                kwargs[param] = runner
                return fn(*args, **kwargs)
            except FlagError as exc:
                raise click.UsageError(str(exc)) from exc
            except CkptError as exc:
                raise click.ClickException(str(exc)) from exc

        command: Any = wrapper
        for option in reversed(options):
            command = option(command)
        result: F = command
        return result

    return decorate


__all__ = ["Runner", "click_options"]
