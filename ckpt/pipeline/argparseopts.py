"""Checkpoint flags for an argparse program: the equivalent of ``@ckpt.click_options``.

::

    parser = argparse.ArgumentParser()
    parser.add_argument("--input")
    ckpt.add_checkpoint_arguments(parser, pipeline)
    args = parser.parse_args()
    runner = ckpt.runner_from_args(parser, args, pipeline)
    result = runner.run(load_story(args.input) if args.input else None)

adds the flags of :mod:`ckpt.pipeline.runflags` (seed 001's
``--workflow-id``, ``--resume-from-step`` and ``--checkpoint-path``
included) in a group of their own.  ``runner_from_args`` checks them: a
contradiction is reported with ``parser.error`` (exit code 2), as argparse
reports its own usage errors; ``--list-checkpoints`` prints the job's
checkpoints and exits; another ckpt error prints one line and exits with
code 1.  The flags' values are kept under ``ckpt_*`` names in the
namespace, so they do not clash with the program's own.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ckpt.errors import CkptError
from ckpt.pipeline.runflags import FLAGS, FlagError, Flags, Runner, checkpoint_lines, make_runner
from ckpt.pipeline.runner import Pipeline


def _dest(flag: str) -> str:
    return "ckpt_" + flag.lstrip("-").replace("-", "_")


def _report(message: str) -> None:
    print(message, file=sys.stderr)


def add_checkpoint_arguments(
    parser: argparse.ArgumentParser, pipeline: Pipeline, *, default_store: str | None = None
) -> argparse._ArgumentGroup:
    """Add ckpt's checkpoint flags to ``parser`` (as a group named "checkpoints")."""
    group = parser.add_argument_group("checkpoints")
    for flag, aliases, metavar, help_text in FLAGS:
        if metavar is None:
            group.add_argument(
                flag, *aliases, dest=_dest(flag), action="store_true", help=help_text
            )
            continue
        extra: dict[str, Any] = {}
        if flag == "--resume-from":
            extra["choices"] = pipeline.stage_names
        if flag == "--store":
            store = os.environ.get("CKPT_DIR") or default_store or ".ckpt"
            extra["default"] = store
            help_text += f" [default: {store}]"
        group.add_argument(
            flag, *aliases, dest=_dest(flag), metavar=metavar, help=help_text, **extra
        )
    return group


def runner_from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, pipeline: Pipeline
) -> Runner:
    """The Runner the parsed flags ask for (exits the program as described above)."""
    values = {flag.lstrip("-").replace("-", "_"): getattr(args, _dest(flag)) for flag, *_ in FLAGS}
    flags = Flags(**values)
    try:
        runner = make_runner(pipeline, flags, _report)
        if flags.list_checkpoints:
            print("\n".join(checkpoint_lines(runner)))
            parser.exit(0)
    except FlagError as exc:
        parser.error(str(exc))
    except CkptError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    return runner


__all__ = ["add_checkpoint_arguments", "runner_from_args"]
