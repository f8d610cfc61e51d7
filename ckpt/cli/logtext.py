"""The text of ``ckpt log``: which commits it shows, and how each is written.

:func:`log_commits` picks the commits (one history or every branch and tag,
internal commits folded, see :mod:`ckpt.cli.describe`); :func:`log_lines`
writes them, one block or one line each, with the graph of
:mod:`ckpt.cli.graph` on the left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ckpt.cli import output as out

if TYPE_CHECKING:
    from ckpt.cli.describe import Folded
    from ckpt.cli.graph import GraphRow
    from ckpt.history.job import Job
    from ckpt.objects.model import Commit

CUT_NOTE = "(history before this checkpoint was removed by retention)"


def decoration_text(refs: Sequence[str]) -> str:
    if not refs:
        return ""
    parts = []
    for ref in refs:
        if ref.startswith("HEAD -> "):
            parts.append(
                out.style("HEAD -> ", fg="cyan", bold=True)
                + out.style(ref[8:], fg="green", bold=True)
            )
        elif ref.startswith("tag: "):
            parts.append(out.style(ref, fg="yellow", bold=True))
        else:
            parts.append(out.style(ref, fg="green", bold=True))
    return "(" + ", ".join(parts) + ")"


def what(commit: Commit) -> str:
    """What a commit recorded: its stage, its status for a status-only commit, or a LangGraph
    checkpoint's step (see :func:`ckpt.cli.describe.label`)."""
    from ckpt.cli.describe import label

    return label(commit)


def cost_line(commit: Commit) -> str:
    return (
        f"{out.money(commit.cost)}, {out.count(commit.tokens)} tokens "
        f"(total {out.money(commit.total_cost)}, {out.count(commit.total_tokens)} tokens)"
    )


def _commit_block(commit: Commit, refs: Sequence[str], label: str) -> list[str]:
    head = out.style(f"commit {commit.short_id}", fg="yellow")
    decoration = decoration_text(refs)
    lines = [f"{head} {decoration}".rstrip()]
    lines.append(f"Stage:  {label}")
    lines.append(f"Date:   {out.timestamp(commit.time)} ({out.relative_time(commit.time)})")
    lines.append(f"Cost:   {cost_line(commit)}")
    if commit.status != "active":
        lines.append(f"Status: {out.status_text(commit.status)}")
    if commit.message:
        lines.append("")
        lines.extend(f"    {line}" for line in commit.message.splitlines())
    return lines


def _oneline(commit: Commit, refs: Sequence[str], label: str, stage_width: int) -> str:
    parts = [
        out.style(commit.short_id, fg="yellow"),
        label.ljust(stage_width),
        out.money(commit.cost).rjust(9),
        out.relative_time(commit.time).ljust(15),
    ]
    decoration = decoration_text(refs)
    if decoration:
        parts.append(decoration)
    if commit.message:
        parts.append(commit.message.splitlines()[0])
    return " ".join(parts).rstrip()


def log_commits(
    job: Job,
    rev: str | None,
    *,
    all_refs: bool,
    limit: int | None,
    stages: Sequence[str] = (),
    fold: bool = False,
) -> Folded:
    """The commits ``ckpt log`` shows, newest first (children before parents): those of
    :func:`ckpt.history.documents.log_commits` (``stages`` filters them).

    With ``fold``, internal commits (see :func:`ckpt.cli.describe.internal_kind`) are
    folded away unless a ref points at them, and ``limit`` counts the commits shown.
    """
    from ckpt.cli.describe import Folded, internal_kind
    from ckpt.history import documents
    from ckpt.history.retained import retained_history

    if not fold:
        return Folded(
            documents.log_commits(job, rev, all_refs=all_refs, limit=limit, stages=stages),
            fold=False,
        )
    keep: set[str] = set(documents.decorations(job))
    if all_refs or stages:
        folded = Folded(documents.log_commits(job, rev, all_refs=all_refs, stages=stages), keep)
        if limit is not None:
            folded.shown = folded.shown[:limit]
        return folded
    if rev is None and job.head is None:
        return Folded(job.log())  # a lost branch is refused there, with the fix
    walked: list[Commit] = []
    shown = 0
    for commit in retained_history(job, job.resolve(rev).id):
        walked.append(commit)
        if commit.id in keep or internal_kind(commit) is None:
            shown += 1
            if limit is not None and shown >= limit:
                break
    return Folded(walked, keep)


def log_lines(
    job: Job,
    commits: Sequence[Commit] | Folded,
    *,
    oneline: bool = False,
    graph: bool = False,
) -> list[str]:
    """The text of ``ckpt log`` for ``commits`` (from :func:`log_commits`), ending with a
    note of the internal commits folded away, if any."""
    from ckpt.cli.describe import Folded, label, langgraph_nodes
    from ckpt.errors import CkptError
    from ckpt.history import documents

    folded = commits if isinstance(commits, Folded) else Folded(commits, fold=False)
    shown_commits = folded.shown
    refs = documents.decorations(job)
    shown = {c.id for c in shown_commits}
    cut = job.record.cut

    def read(oid: str) -> Commit | None:
        if oid in folded.all:
            return folded.all[oid]
        try:
            return job.repo.objects.get_commit(oid)  # type: ignore[arg-type]
        except CkptError:
            return None

    labels = {c.id: label(c, langgraph_nodes(c, read)) for c in shown_commits}
    width = max((len(text) for text in labels.values()), default=0)

    def is_cut(commit: Commit) -> bool:
        return commit.id in cut and commit.parent is not None

    def parents_of(commit: Commit) -> list[str]:
        if is_cut(commit):
            return []
        drawn = (folded.shown_parent(p) for p in commit.parents)
        return list(dict.fromkeys(p for p in drawn if p is not None and p in shown))

    rows: list[GraphRow] | None = None
    if graph:
        from ckpt.cli.graph import layout

        rows = layout(shown_commits, parents_of)
    # Every row's text starts in one column: the graph is as wide as its widest row.
    graph_width = max((len(row.node) for row in rows), default=0) if rows else 0
    lines: list[str] = []
    for index, commit in enumerate(shown_commits):
        node = padding = ""
        after: tuple[str, ...] = ()
        if rows is not None:
            row = rows[index]
            width_here = graph_width if oneline else len(row.node)
            node = row.node.ljust(width_here) + " "
            padding = row.padding.ljust(width_here) + " "
            after = row.after
        decorated = refs.get(commit.id, [])
        if oneline:
            lines.append(node + _oneline(commit, decorated, labels[commit.id], width))
        else:
            block = _commit_block(commit, decorated, labels[commit.id])
            lines.append(node + block[0])
            lines.extend((padding + line).rstrip() for line in block[1:])
        if is_cut(commit):
            lines.append(padding + out.style(CUT_NOTE, fg="bright_black"))
        if not oneline and index < len(shown_commits) - 1:
            lines.append(padding.rstrip())
        lines.extend(after)
    note = folded.note()
    if note:
        if not oneline and lines:
            lines.append("")
        lines.append(out.style(note, fg="bright_black"))
    return lines
