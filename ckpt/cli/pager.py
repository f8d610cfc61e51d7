"""Paging long output on a terminal, as git does.

``ckpt log``, ``show``, ``diff``, ``cat`` and ``reflog`` send their output
through a pager when stdout is a terminal: ``$CKPT_PAGER``, else ``$PAGER``,
else ``less -FRX`` (``-F`` quits at once when the text fits on one screen,
``-R`` shows colours, ``-X`` leaves the text on the screen; not on a
``TERM=dumb`` terminal).  Piped output is
never paged; ``ckpt --no-pager`` turns paging off, and so does a pager set
to the empty string or ``cat``.

While a pager runs, ``sys.stdout`` is its input, and colour is decided by
the terminal the pager writes to.  Quitting the pager before the end (``q``
in less) ends the command quietly, with status 0.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING

import click

from ckpt.cli import output as out

if TYPE_CHECKING:
    import subprocess

DEFAULT_PAGER = "less -FRX"


def pager_command(environ: Mapping[str, str] | None = None) -> str | None:
    """The pager to run, or None for none: ``$CKPT_PAGER``, ``$PAGER``, then ``less -FRX``
    when less is installed and the terminal is not ``TERM=dumb`` (where less stops to warn
    that the terminal is not fully functional)."""
    import shutil

    env = os.environ if environ is None else environ
    for name in ("CKPT_PAGER", "PAGER"):
        if name in env:
            chosen = env[name].strip()
            return None if chosen in ("", "cat") else chosen
    if env.get("TERM") == "dumb" or not shutil.which("less"):
        return None
    return DEFAULT_PAGER


class _Paging:
    """A running pager and the stdout it replaced."""

    def __init__(self, process: subprocess.Popen[bytes], stdout: IO[str], pipe: IO[str]) -> None:
        self.process = process
        self.stdout = stdout
        self.pipe = pipe

    def finish(self) -> None:
        """Let the pager show the end of the text and wait for the reader to quit it."""
        try:
            self.pipe.close()
        except BrokenPipeError:
            pass  # the reader quit before the end: nothing more to show
        finally:
            sys.stdout = self.stdout
            out.paging(False)
            self.process.wait()


def page(ctx: click.Context | None = None) -> None:
    """Send the rest of this command's output through the pager, if stdout is a terminal
    and paging is on.  The pager is closed (and waited for) when the command ends."""
    from ckpt.cli.context import settings

    ctx = ctx or click.get_current_context()
    state = settings(ctx)
    if state.no_pager or state.paging is not None or not out.is_terminal(sys.stdout):
        return
    command = pager_command()
    if command is None:
        return
    import subprocess

    try:
        process = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE)
    except OSError:
        return  # no pager after all: write to the terminal
    assert process.stdin is not None
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    pipe = io.TextIOWrapper(process.stdin, encoding=encoding, errors="replace")
    paging = _Paging(process, sys.stdout, pipe)
    state.paging = paging
    if ctx.color is None:
        # The pager writes to the terminal: colour as for the terminal (less -R shows it).
        ctx.color = True
    sys.stdout = pipe
    out.paging(True)

    # state.paging stays set: a write that failed because the reader quit the pager is
    # then known for what it is (see ckpt.cli.main.LazyGroup.invoke).
    ctx.call_on_close(paging.finish)
