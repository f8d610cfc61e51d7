"""Exit codes of ``ckpt`` and the one place where errors become them.

Every command raises library errors (``ckpt.errors``) or click's usage
errors and lets them travel up; the root group calls :func:`report` once.
A user's mistake prints one line, ``Error: <what is wrong and what to do>``,
never a traceback (``--debug`` adds it).  ``ckpt --help`` lists the table
below.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from typing import Any

import click

from ckpt import errors


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    DAMAGED = 5
    NO_STORE = 6
    INTERRUPTED = 130


#: What each code means, in the order ``ckpt --help`` lists them.
EXIT_CODE_HELP: tuple[tuple[ExitCode, str], ...] = (
    (ExitCode.OK, "success"),
    (ExitCode.ERROR, "error (storage failure, malformed input, failed job in watch)"),
    (ExitCode.USAGE, "usage: bad command line, invalid name or duration"),
    (ExitCode.NOT_FOUND, "no such job, revision, stage, branch or tag"),
    (ExitCode.CONFLICT, "conflict: exists already, a ref moved meanwhile, or push/pull refused"),
    (ExitCode.DAMAGED, "damage: verify found problems, or a corrupt/missing object was read"),
    (ExitCode.NO_STORE, "no ckpt store found (run `ckpt init`, pass --store, set CKPT_DIR)"),
    (ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"),
)


class UserError(errors.CkptError):
    """A mistake on the command line that only the CLI can see (exit code 2)."""


class JobFailedError(errors.CkptError):
    """A watched job ended in failure (exit code 1)."""


class DamageFoundError(errors.CkptError):
    """``verify`` found problems (exit code 5); the report was printed before."""


# First match wins: subclasses before their bases.
_ERROR_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (errors.StoreNotFoundError, ExitCode.NO_STORE),
    (DamageFoundError, ExitCode.DAMAGED),
    (UserError, ExitCode.USAGE),
    (errors.ObjectNotFoundError, ExitCode.DAMAGED),
    (errors.CorruptObjectError, ExitCode.DAMAGED),
    (errors.CorruptRefError, ExitCode.DAMAGED),
    (errors.InvalidNameError, ExitCode.USAGE),
    (errors.NotFoundError, ExitCode.NOT_FOUND),
    (errors.StoreExistsError, ExitCode.CONFLICT),
    (errors.ConflictError, ExitCode.CONFLICT),
)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for an exception that reached the top of a command."""
    for error_class, code in _ERROR_CODES:
        if isinstance(exc, error_class):
            return code
    if isinstance(exc, ValueError) and isinstance(exc, errors.CkptError):
        # InvalidNameError, InvalidDurationError: the input is malformed.
        return ExitCode.USAGE
    return ExitCode.ERROR


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show each warning ckpt gives (:class:`ckpt.errors.CkptWarning`) as one
    ``warning: ...`` line on stderr, once per command, as git shows its warnings;
    other warnings are shown as Python shows them."""
    import warnings

    shown: set[str] = set()
    python_shows = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if not issubclass(category, errors.CkptWarning):
            python_shows(message, category, *args, **kwargs)
        elif str(message) not in shown:
            shown.add(str(message))
            click.echo(f"warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", errors.CkptWarning)
        warnings.showwarning = show
        yield


def report(exc: BaseException, *, debug: bool) -> ExitCode:
    """Print ``exc`` as one ``Error:`` line on stderr (after its traceback if ``debug``);
    return the exit code to leave with."""
    if debug:
        import traceback

        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
    if isinstance(exc, errors.CkptError):
        message = (str(exc) or exc.__class__.__name__).splitlines()[0]
        code = exit_code_for(exc)
    else:
        hint = "" if debug else " (run with --debug for the traceback, and please report it)"
        message = f"internal error: {exc.__class__.__name__}: {exc}{hint}"
        code = ExitCode.ERROR
    click.echo(f"Error: {message}", err=True)
    return code
