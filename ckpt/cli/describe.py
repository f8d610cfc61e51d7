"""How a commit is told to a person: what it recorded, whether it is internal, its metadata.

Two writers above the history layer leave commits of their own in a job:

* the pipeline runner (``meta["pipeline"]``): partial checkpoints of a stage
  in flight (stage ``NAME.partial``), fan-out items (``NAME.item.KEY``) and
  the ``[failed]`` status commit of a run that was later resumed;
* LangGraph's saver (``meta["langgraph"]``): one commit per checkpoint, whose
  stage is a channel name, and one per batch of pending writes (stages
  ``lg.w.<hash>``).

``ckpt log`` folds the internal ones (see :func:`internal_kind`) and names a
LangGraph checkpoint by the graph node that produced it and its step
(:func:`label`), read from the metadata the saver writes; ``ckpt show`` keeps
the runner's and the saver's bookkeeping for ``--json`` and shows a person
what it means (:func:`meta_fields`).

The metadata keys and stage suffixes are repeated here, not imported: the
modules that define them (``ckpt.pipeline``, ``ckpt.integrations``) import
cattrs, which ``ckpt log`` does not need.  tests/cli/test_describe.py checks
that both sides agree.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ckpt.objects.model import Commit

#: ``ckpt.pipeline.progress.META_KEY``: the runner's bookkeeping in each of its commits.
PIPELINE_KEY = "pipeline"
#: ``ckpt.pipeline.stages.PARTIAL_SUFFIX``: the state a stage saved while in flight.
PARTIAL_SUFFIX = ".partial"
#: Fan-out items of a stage are saved as ``STAGE.item.KEY``.
ITEM_INFIX = ".item."
#: ``ckpt.integrations.langgraph_layout.META_KEY`` and the kinds of commit the saver writes.
LANGGRAPH_KEY = "langgraph"
LANGGRAPH_CHECKPOINT = "checkpoint"
LANGGRAPH_WRITES = "writes"
#: What ``Job.fail`` records about the failure.
FAILURE_KEYS = ("error_type", "error", "failed_stage")
#: Metadata ckpt itself writes, shown by ``ckpt show`` in words rather than as data.
OWN_KEYS = frozenset({PIPELINE_KEY, LANGGRAPH_KEY, *FAILURE_KEYS, "cost_limit"})

#: Kinds of internal commit, as ``ckpt log`` counts them: kind -> (singular, plural).
INTERNAL_KINDS = {
    "partial": ("partial checkpoint", "partial checkpoints"),
    "items": ("fan-out item checkpoint", "fan-out item checkpoints"),
    "failed": ("failed attempt", "failed attempts"),
    "writes": ("LangGraph writes commit", "LangGraph writes commits"),
}


def _langgraph(commit: Commit) -> Mapping[str, Any] | None:
    doc = commit.meta.get(LANGGRAPH_KEY)
    return doc if isinstance(doc, dict) else None


def internal_kind(commit: Commit) -> str | None:
    """The kind of bookkeeping ``commit`` is (a key of :data:`INTERNAL_KINDS`), or None for a
    checkpoint a person asked for.  ``ckpt log`` folds these unless a ref points at them."""
    stage = commit.stage
    if stage is not None and stage.endswith(PARTIAL_SUFFIX):
        return "partial"
    if stage is not None and ITEM_INFIX in stage:
        return "items"
    if stage is None and commit.status == "failed":
        return "failed"
    lg = _langgraph(commit)
    if lg is not None and lg.get("kind") == LANGGRAPH_WRITES:
        return "writes"
    return None


def node_of(commit: Commit) -> str | None:
    """The graph node whose task wrote a LangGraph writes commit (None for the writes
    LangGraph makes itself, such as a resume value)."""
    lg = _langgraph(commit)
    if lg is None or lg.get("kind") != LANGGRAPH_WRITES:
        return None
    return _task_node(lg.get("task_path"))


def _task_node(path: object) -> str | None:
    """The node a LangGraph task path ends with (``~__pregel_pull, draft``: ``draft``)."""
    if not isinstance(path, str) or not path:
        return None
    node = path.rsplit(",", 1)[-1].strip()
    return node or None


def langgraph_nodes(commit: Commit, parent: Callable[[str], Commit | None]) -> list[str]:
    """The nodes that produced LangGraph checkpoint ``commit``: the tasks whose pending writes
    it carries, and those whose writes lie between it and the checkpoint before it (its
    first parents, while they are writes put on that checkpoint).  ``parent`` reads a
    commit by id (None: unknown)."""
    lg = _langgraph(commit)
    if lg is None or lg.get("kind") != LANGGRAPH_CHECKPOINT:
        return []
    before = lg.get("parent_id")
    nodes: list[str] = []
    # Writes the checkpoint carries itself ([task id, task path, ...] each): the usual case.
    carries = lg.get("carries")
    for carried in carries if isinstance(carries, list) else ():
        carried_node = _task_node(carried[1]) if isinstance(carried, list) and carried[1:] else None
        if carried_node is not None and carried_node not in nodes:
            nodes.append(carried_node)
    # Writes stored in commits of their own below it (a thread written before checkpoints
    # carried their writes, or writes put without a checkpoint following at once).
    own: list[str] = []
    below = commit.parent
    while below is not None:
        found = parent(below)
        if found is None:
            break
        doc = _langgraph(found)
        if doc is None or doc.get("kind") != LANGGRAPH_WRITES or doc.get("id") != before:
            break
        node = node_of(found)
        if node is not None and node not in own and node not in nodes:
            own.append(node)
        below = found.parent
    own.reverse()  # in the order they wrote
    return [*own, *nodes]


def label(commit: Commit, nodes: Iterable[str] = ()) -> str:
    """What ``commit`` recorded, in a word or three: its stage; its status for a status-only
    commit (``[completed]``); for a LangGraph checkpoint, the node(s) that produced it and
    its step (``model (step 3)``; else how it came about: ``input (step -1)``,
    ``fork (step 2)``)."""
    lg = _langgraph(commit)
    if lg is not None:
        summary = lg.get("metadata")
        summary = summary if isinstance(summary, dict) else {}
        step = summary.get("step")
        if lg.get("kind") == LANGGRAPH_CHECKPOINT and isinstance(step, int):
            source = str(summary.get("source") or "checkpoint")
            # A "loop" checkpoint is what its nodes wrote; "input", "fork" and "update" say
            # how the checkpoint came about better than the writes below it.
            who = ", ".join(nodes) if source == "loop" and nodes else source
            return f"{who} (step {step})"
        if lg.get("kind") == LANGGRAPH_WRITES:
            node = node_of(commit)
            return f"writes of {node}" if node else "writes"
    if commit.stage is not None:
        return commit.stage
    return f"[{commit.status}]"


def meta_fields(commit: Commit) -> list[tuple[str, str]]:
    """``ckpt show``'s lines for the metadata ckpt itself wrote (run, failure, LangGraph),
    as (field, text)."""
    fields: list[tuple[str, str]] = []
    run = commit.meta.get(PIPELINE_KEY)
    if isinstance(run, dict):
        stages, done = run.get("stages"), run.get("done")
        text = str(run.get("run") or "?")
        if isinstance(stages, list) and isinstance(done, list):
            text += f", {len(done)} of {len(stages)} stages done"
        partial, items = run.get("partial"), run.get("items")
        if partial:
            text += f", inside stage {partial}"
            if isinstance(items, list) and len(items) == 2 and items[0] is not None:
                text += f" ({items[0]} of {items[1] if items[1] is not None else '?'} items)"
        fields.append(("Run", text))
    if commit.meta.get("error") is not None:
        kind = commit.meta.get("error_type")
        text = f"{kind}: {commit.meta['error']}" if kind else str(commit.meta["error"])
        stage = commit.meta.get("failed_stage")
        fields.append(("Error", f"{text} (in stage {stage})" if stage else text))
    lg = _langgraph(commit)
    if lg is not None:
        summary = lg.get("metadata")
        summary = summary if isinstance(summary, dict) else {}
        where = f"thread {lg.get('thread_id')}"
        if lg.get("checkpoint_ns"):
            where += f", namespace {lg['checkpoint_ns']}"
        if lg.get("kind") == LANGGRAPH_WRITES:
            text = f"pending writes on checkpoint {lg.get('id')}, {where}"
        else:
            step = summary.get("step")
            source = summary.get("source")
            what = ", ".join(
                str(p) for p in (f"step {step}" if step is not None else None, source) if p
            )
            text = f"checkpoint {lg.get('id')}" + (f" ({what})" if what else "") + f", {where}"
        fields.append(("LangGraph", text))
    return fields


def user_meta(commit: Commit) -> dict[str, Any]:
    """The metadata the caller of ``save`` passed, without what ckpt wrote itself."""
    return {key: value for key, value in commit.meta.items() if key not in OWN_KEYS}


class Folded:
    """Commits as ``ckpt log`` shows them: internal ones (see :func:`internal_kind`) folded
    away unless a ref points at them, and each shown commit's parents drawn to the nearest
    shown ancestor (through the folded ones, by first parents)."""

    def __init__(
        self, commits: Sequence[Commit], keep: Collection[str] = (), *, fold: bool = True
    ) -> None:
        self.all: dict[str, Commit] = {commit.id: commit for commit in commits}
        kinds = {
            commit.id: kind
            for commit in (commits if fold else ())
            if commit.id not in keep and (kind := internal_kind(commit)) is not None
        }
        self.hidden = frozenset(kinds)
        self.shown = [commit for commit in commits if commit.id not in self.hidden]
        self.counts: dict[str, int] = {}
        for kind in kinds.values():
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def shown_parent(self, oid: str) -> str | None:
        """``oid``, or its nearest first-parent ancestor that is not folded (None: none known)."""
        seen = 0
        current: str | None = oid
        while current is not None and current in self.hidden and seen <= len(self.hidden):
            current = self.all[current].parent
            seen += 1
        return current

    def note(self) -> str:
        """``(3 internal commits not shown: 2 partial checkpoints, 1 failed attempt; ...)``."""
        total = sum(self.counts.values())
        if not total:
            return ""
        parts = [
            f"{count} {INTERNAL_KINDS[kind][count != 1]}"
            for kind, count in sorted(self.counts.items(), key=lambda item: -item[1])
        ]
        noun = "commit" if total == 1 else "commits"
        return f"({total} internal {noun} not shown: {', '.join(parts)}; --all-commits shows them)"
