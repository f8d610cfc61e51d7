"""How the CLI writes: tables, colour, JSON, sizes, money, relative times, progress.

Colour and styles go through ``click.style`` and ``click.echo``; the root
command sets ``ctx.color`` (``--color``, ``NO_COLOR``), and click strips
styles when stdout is not a terminal.  Tables are aligned columns with a
header; on a terminal cells are cut to the terminal's width and the header
is bold, when piped nothing is cut or styled.  JSON goes out as one
document, two-space indented, keys in schema order (see
:mod:`ckpt.cli.schema`).

Only click and the standard library are imported here, and what only some
commands need (json, shutil) when they need it: every command module
imports this one, and the root command imports it for ``--color``, so it is
part of the start-up time of every ``ckpt`` command.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

STATUS_COLOURS = {
    "active": "yellow",
    "completed": "green",
    "failed": "red",
    "expired": "bright_black",
}


_PAGING = False


def paging(on: bool) -> None:
    """Tell :func:`is_terminal` that stdout is a pager writing to a terminal (or no more)."""
    global _PAGING
    _PAGING = on


def is_terminal(stream: Any = None) -> bool:
    """True if ``stream`` (default stdout) is an interactive terminal, or a pager that
    writes to one (see :mod:`ckpt.cli.pager`)."""
    if stream is None and _PAGING:
        return True
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def colour_setting(choice: str) -> bool | None:
    """``ctx.color`` for a ``--color`` choice: None lets click decide by the terminal.

    ``NO_COLOR`` (any non-empty value, see no-color.org) turns colour off
    unless ``--color always`` asks for it explicitly.
    """
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return None


def colour_enabled() -> bool:
    """Whether styles written now would reach the reader (for choosing symbols)."""
    ctx = click.get_current_context(silent=True)
    setting = None if ctx is None else ctx.color
    return is_terminal() if setting is None else setting


def style(text: str, **styles: Any) -> str:
    return click.style(text, **styles)


def status_text(status: str) -> str:
    return style(status, fg=STATUS_COLOURS.get(status))


def echo(text: str = "", *, err: bool = False) -> None:
    click.echo(text, err=err)


def emit_json(doc: object) -> None:
    """Write ``doc`` as one JSON document to stdout: valid JSON, so a NaN or an infinity
    in it is written as the string "NaN", "Infinity" or "-Infinity"."""
    from ckpt.objects.canonical import printable_json

    click.echo(printable_json(doc))


# -- numbers and times --------------------------------------------------------


def money(amount: float) -> str:
    """``$1.23``; amounts under a cent keep four decimals so that they do not read as zero."""
    if 0 < amount < 0.01:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def count(number: int) -> str:
    return f"{number:,}"


def size(nbytes: int | None) -> str:
    """``812 B``, ``1.2 KiB``, ``3.4 MiB``...; ``-`` for unknown."""
    if nbytes is None:
        return "-"
    if nbytes < 1024:
        return f"{nbytes} B"
    value = nbytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def relative_time(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """``just now``, ``5 minutes ago``, ``3 days ago``, ``in 2 hours``; ``-`` for None."""
    if when is None:
        return "-"
    now = now or dt.datetime.now(dt.UTC)
    seconds = (now - when).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 10:
        return "just now"
    steps = (
        (60, 1, "second"),
        (3600, 60, "minute"),
        (86400, 3600, "hour"),
        (14 * 86400, 86400, "day"),
        (60 * 86400, 7 * 86400, "week"),
        (365 * 86400, 30 * 86400, "month"),
    )
    unit_seconds, name = 365 * 86400, "year"
    for limit, step_seconds, step_name in steps:
        if seconds < limit:
            unit_seconds, name = step_seconds, step_name
            break
    amount = int(seconds // unit_seconds)
    text = f"{amount} {name}{'' if amount == 1 else 's'}"
    return f"in {text}" if future else f"{text} ago"


def timestamp(when: dt.datetime) -> str:
    """An absolute time in the reader's local zone, to the second."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def short(oid: str | None) -> str:
    return "-" if oid is None else oid[:12]


# -- tables -------------------------------------------------------------------


def _visible_len(text: str) -> int:
    # Most cells carry no colour: skip the regex for them (a long listing has many cells).
    return len(click.unstyle(text)) if "\x1b" in text else len(text)


def _cut(text: str, width: int) -> str:
    plain = click.unstyle(text)
    if len(plain) <= width:
        return text
    return plain[: max(1, width - 1)] + "…"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align_right: Sequence[int] = (),
    shrink: int | None = None,
) -> list[str]:
    """Aligned lines of a table.  On a terminal, column ``shrink`` is cut to fit its width."""
    widths = [len(h) for h in headers]
    lengths = [[_visible_len(cell) for cell in row] for row in rows]
    for row_lengths in lengths:
        for i, length in enumerate(row_lengths):
            if length > widths[i]:
                widths[i] = length
    terminal = is_terminal()
    if terminal and shrink is not None:
        total = sum(widths) + 2 * (len(widths) - 1)
        import shutil

        room = shutil.get_terminal_size((100, 24)).columns
        if total > room:
            widths[shrink] = max(len(headers[shrink]), widths[shrink] - (total - room))
            rows = [
                [_cut(cell, widths[shrink]) if i == shrink else cell for i, cell in enumerate(row)]
                for row in rows
            ]
            lengths = [[_visible_len(cell) for cell in row] for row in rows]
    right = set(align_right)

    def line(cells: Sequence[str], cell_lengths: Sequence[int]) -> str:
        parts = []
        last = len(cells) - 1
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - cell_lengths[i])
            if i in right:
                parts.append(pad + cell)
            else:
                parts.append(cell if i == last else cell + pad)
        return "  ".join(parts).rstrip()

    header = line(list(headers), [len(h) for h in headers])
    return [
        style(header, bold=True),
        *(line(row, row_lengths) for row, row_lengths in zip(rows, lengths, strict=True)),
    ]


def echo_lines(lines: Sequence[str]) -> None:
    for text in lines:
        click.echo(text)


def echo_paged(lines: Sequence[str]) -> None:
    """Print ``lines``; through a pager (``$PAGER``, else ``less``) when they do not fit
    on the terminal, in one write when piped."""
    text = "\n".join(lines)
    if not is_terminal(sys.stdout):
        click.echo(text)
        return
    import shutil

    if len(lines) > shutil.get_terminal_size().lines - 1:
        click.echo_via_pager(text + "\n")
    else:
        click.echo(text)


# -- progress -----------------------------------------------------------------


@contextmanager
def progress(label: str, length: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress display on stderr when it is a terminal; silent when piped.

    Yields ``advance(n)``.  With a known ``length`` a bar is drawn, without
    one a running count.
    """
    if not is_terminal(sys.stderr) or length == 0:
        yield lambda n: None
        return
    if length is not None:
        with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
            yield bar.update
        return
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if done % 256 == 0 or n > 1:
            click.echo(f"\r{label}: {done:,}", nl=False, err=True)

    try:
        yield advance
    finally:
        click.echo(f"\r{label}: {done:,}", err=True)
