"""Differences between two checkpoints: which stages changed, and how a value changed.

``diff_commits`` compares the trees of two commits stage by stage (by blob
id, so an unchanged value costs no read).  ``value_diff`` renders a stage's
two values as pretty JSON (keys sorted, two-space indent) and returns a
unified diff of those texts, so a change deep inside a large value shows as
a few lines; a string value is diffed as text, line by line.  Raw ``bytes``
values are compared by size and id only.  ``file_diff`` says which files
(``ckpt.File``, ``ckpt.Directory``) a stage's value added, changed or
removed; ``stage_files`` lists them.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import TYPE_CHECKING

import attrs

from ckpt.history.job import Job
from ckpt.objects.canonical import parse_json, printable_json
from ckpt.objects.ids import Kind
from ckpt.objects.model import ENCODING_RAW, Commit, Tree, TreeEntry

if TYPE_CHECKING:
    # Imported when a value holds files only: `ckpt log` never needs them.
    from ckpt.values.filelisting import FileChange, FileInfo

ADDED = "added"
CHANGED = "changed"
REMOVED = "removed"


@attrs.frozen
class StageChange:
    """One stage that differs: ``old`` is None when added, ``new`` None when removed."""

    stage: str
    change: str
    old: TreeEntry | None
    new: TreeEntry | None

    def to_json(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "change": self.change,
            "old": _entry_json(self.old),
            "new": _entry_json(self.new),
        }


def _entry_json(entry: TreeEntry | None) -> dict[str, object] | None:
    if entry is None:
        return None
    return {"id": entry.id, "type": entry.type, "size": entry.size, "encoding": entry.encoding}


@attrs.frozen
class CommitDiff:
    """The stages that differ from ``old`` to ``new``, in ``new``'s stage order."""

    old: Commit
    new: Commit
    changes: tuple[StageChange, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "old": self.old.id,
            "new": self.new.id,
            "changes": [change.to_json() for change in self.changes],
        }


def diff_trees(old: Tree, new: Tree) -> tuple[StageChange, ...]:
    """Stages added, changed or removed from ``old`` to ``new``."""
    changes = []
    for entry in new:
        before = old.get(entry.name)
        if before is None:
            changes.append(StageChange(entry.name, ADDED, None, entry))
        elif before.id != entry.id or before.encoding != entry.encoding:
            changes.append(StageChange(entry.name, CHANGED, before, entry))
    changes.extend(StageChange(e.name, REMOVED, e, None) for e in old if e.name not in new)
    return tuple(changes)


def changes_stage(job: Job, commit: Commit, stages: Collection[str]) -> bool:
    """True if ``commit`` added, changed or removed one of ``stages`` (``git log -- PATH``).

    Compared with the first parent; a first checkpoint, or one whose history
    retention cut, counts as adding every stage it has.
    """
    objects = job.repo.objects
    tree = objects.get_tree(commit.tree)
    if commit.parent is None or job.is_cut(commit):
        return any(stage in tree for stage in stages)
    before = objects.get_tree(objects.get_commit(commit.parent).tree)
    for stage in stages:
        old, new = before.get(stage), tree.get(stage)
        if (old is None) != (new is None):
            return True
        if old is not None and new is not None and (old.id, old.encoding) != (new.id, new.encoding):
            return True
    return False


def diff_commits(
    job: Job, old_rev: str, new_rev: str | None = None, *, new_job: Job | None = None
) -> CommitDiff:
    """Compare revision ``old_rev`` with ``new_rev`` (default HEAD) of ``job``, or with
    ``new_rev`` of ``new_job`` (two jobs of one store: ``ckpt diff JOB1:REV1 JOB2:REV2``)."""
    old = job.resolve(old_rev)
    new = (new_job or job).resolve(new_rev)
    objects = job.repo.objects
    return CommitDiff(old, new, diff_trees(objects.get_tree(old.tree), objects.get_tree(new.tree)))


def value_text(job: Job, entry: TreeEntry, *, text: bool = False) -> str:
    """A stage value as people read it: pretty JSON, or a one-line note for raw bytes.

    With ``text``, a string value is the string itself (ending in a newline), so that a
    chapter reads, and diffs, line by line instead of as one escaped JSON string.
    """
    data = job.repo.objects.get(entry.id, Kind.BLOB)
    if entry.encoding == ENCODING_RAW:
        return f"<{len(data)} bytes of binary data, object {entry.id[:12]}>\n"
    value = parse_json(data)
    if text and isinstance(value, str):
        return value if value.endswith("\n") else value + "\n"
    return printable_json(value, sort_keys=True) + "\n"


def value_diff(job: Job, change: StageChange, *, context: int = 3, text: bool = True) -> list[str]:
    """Unified-diff lines (no trailing newlines) from the old to the new value of a stage.

    With ``text`` (the default), string values are compared as text, line by line (see
    :func:`value_text`); without it, as JSON.
    """
    old_text = "" if change.old is None else value_text(job, change.old, text=text)
    new_text = "" if change.new is None else value_text(job, change.new, text=text)
    old_name = "/dev/null" if change.old is None else f"a/{change.stage}"
    new_name = "/dev/null" if change.new is None else f"b/{change.stage}"
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
            n=context,
        )
    ]


def stage_files(job: Job, entry: TreeEntry) -> list[FileInfo]:
    """The files a stage's value holds (none for a value that refers to no file)."""
    if entry.encoding == ENCODING_RAW or not entry.files:
        return []
    from ckpt.values.filelisting import stored_files

    return stored_files(parse_json(job.repo.objects.get(entry.id, Kind.BLOB)))


def file_diff(job: Job, change: StageChange) -> list[FileChange]:
    """The files added, changed (content or mode) or removed by a stage's change."""
    if not ((change.old and change.old.files) or (change.new and change.new.files)):
        return []
    values: list[object] = []
    for entry in (change.old, change.new):
        if entry is None or entry.encoding == ENCODING_RAW:
            values.append(None)
        else:
            values.append(parse_json(job.repo.objects.get(entry.id, Kind.BLOB)))
    from ckpt.values.filelisting import file_changes

    return file_changes(values[0], values[1])
