"""The text graph of ``ckpt log --graph``, drawn the way ``git log --graph`` draws it.

Commits come newest first, children before their parents.  Each column of
the graph is a line of history waiting for its next commit.  A commit takes
the column that waits for it (or opens a new one), its row shows ``*``
there and ``|`` in the other columns; its first parent then waits in its
column.  When two columns wait for the same commit (two branches forked
there), the right one joins the left with a ``/`` row; lines it has to pass
are crossed with ``_``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ckpt.objects.model import Commit


@attrs.frozen
class GraphRow:
    """Where one commit sits: the prefix of its first line, of its other lines, and the
    connector rows to print after it."""

    commit: Commit
    node: str
    padding: str
    after: tuple[str, ...]


def _bars(count: int) -> str:
    return "| " * count


def layout(
    commits: Sequence[Commit], parents_of: Callable[[Commit], Sequence[str]]
) -> list[GraphRow]:
    """Graph rows for ``commits`` (already in :func:`ckpt.history.documents.topological` order).

    ``parents_of`` gives the parents to draw (none where history stops, as
    after a retention cut).
    """
    columns: list[str] = []
    rows: list[GraphRow] = []
    for commit in commits:
        if commit.id not in columns:
            columns.append(commit.id)
        col = columns.index(commit.id)
        node = _bars(col) + "* " + _bars(len(columns) - col - 1)
        after: list[str] = []
        parents = list(parents_of(commit))
        # Lines below the commit's first: its own column goes on only if it has a parent.
        padding = _bars(col) + ("| " if parents else "  ") + _bars(len(columns) - col - 1)
        if parents:
            columns[col] = parents[0]
            for extra in parents[1:]:
                columns.insert(col + 1, extra)
                after.append(_bars(col + 1)[:-1] + "\\ " + _bars(len(columns) - col - 2))
        else:
            del columns[col]
            if col < len(columns):
                after.append(_bars(col) + " /" * (len(columns) - col))
        after.extend(_collapse(columns))
        rows.append(
            GraphRow(commit, node.rstrip(), padding.rstrip(), tuple(r.rstrip() for r in after))
        )
    return rows


def _collapse(columns: list[str]) -> list[str]:
    """Join columns waiting for the same commit; return the connector rows drawn."""
    drawn: list[str] = []
    while True:
        pair = _first_duplicate(columns)
        if pair is None:
            return drawn
        left, right = pair
        chars = [" "] * (2 * len(columns))
        for k in range(right):
            chars[2 * k] = "|"
        for k in range(left + 1, right):
            chars[2 * k - 1] = "_"
        chars[2 * right - 1] = "/"
        for k in range(right + 1, len(columns)):
            chars[2 * k - 1] = "/"
        drawn.append("".join(chars))
        del columns[right]


def _first_duplicate(columns: list[str]) -> tuple[int, int] | None:
    seen: dict[str, int] = {}
    for index, oid in enumerate(columns):
        if oid in seen:
            return seen[oid], index
        seen[oid] = index
    return None
