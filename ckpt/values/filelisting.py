"""Finding the files a value holds: listing them, comparing two values, writing them out.

``ckpt show`` lists the files of a stage with their sizes (:func:`stored_files`),
``ckpt diff`` says which changed (:func:`file_changes`), and ``ckpt cat --to
DIR`` writes them out (:func:`write_out`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import attrs

from ckpt.errors import FileValueError
from ckpt.objects.ids import ObjectId
from ckpt.values.files import DIRECTORY_KIND, FILE_KIND, MARKER, Directory, File, from_json


@attrs.frozen
class FileInfo:
    """A file held by a stored value: where it goes under ``cat --to`` (NAME, or
    NAME/PATH inside a directory), its size, mode and content id."""

    path: str
    size: int
    mode: int
    id: ObjectId


def stored_files(value: object) -> list[FileInfo]:
    """The files a stored value (plain JSON data) holds, in the order met.

    A malformed File or Directory raises SerializationError (or
    InvalidNameError for an unsafe name).
    """
    found: list[FileInfo] = []
    for item in _markers(value):
        if isinstance(item, File):
            assert item.id is not None
            found.append(FileInfo(item.name, item.size, item.mode, item.id))
        else:
            for entry in item.entries:
                if entry.id is not None and entry.size is not None:
                    found.append(
                        FileInfo(f"{item.name}/{entry.path}", entry.size, entry.mode, entry.id)
                    )
    return found


def _markers(value: object) -> Iterator[File | Directory]:
    if isinstance(value, dict):
        if MARKER in value and value[MARKER] in (FILE_KIND, DIRECTORY_KIND):
            yield from_json(value, None)
            return
        for item in value.values():
            yield from _markers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _markers(item)


@attrs.frozen
class FileChange:
    """A file added, changed or removed between two stored values."""

    path: str
    change: str  # "added" | "changed" | "removed"
    old: FileInfo | None
    new: FileInfo | None

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "change": self.change,
            "old": None if self.old is None else attrs.asdict(self.old),
            "new": None if self.new is None else attrs.asdict(self.new),
        }


def file_changes(old: object, new: object) -> list[FileChange]:
    """Which files differ (by content or mode) from ``old`` to ``new``, sorted by path."""
    before = {info.path: info for info in stored_files(old)}
    after = {info.path: info for info in stored_files(new)}
    changes = []
    for path in sorted(before.keys() | after.keys()):
        was, now = before.get(path), after.get(path)
        if was is None:
            changes.append(FileChange(path, "added", None, now))
        elif now is None:
            changes.append(FileChange(path, "removed", was, None))
        elif (was.id, was.mode) != (now.id, now.mode):
            changes.append(FileChange(path, "changed", was, now))
    return changes


def files_in(value: object) -> list[File | Directory]:
    """The File and Directory objects a (loaded) value holds, in the order met.

    Looks inside dicts, lists, tuples, sets, attrs classes and dataclasses.
    """
    found: list[File | Directory] = []
    _collect(value, found, set())
    return found


def _collect(value: object, found: list[File | Directory], seen: set[int]) -> None:
    if isinstance(value, (File, Directory)):
        found.append(value)
        return
    if id(value) in seen:
        return
    if isinstance(value, Mapping):
        seen.add(id(value))
        for item in value.values():
            _collect(item, found, seen)
    elif isinstance(value, (list, tuple, set, frozenset)):
        seen.add(id(value))
        for item in value:
            _collect(item, found, seen)
    elif attrs.has(type(value)):
        seen.add(id(value))
        for field in attrs.fields(cast(Any, type(value))):
            _collect(getattr(value, field.name), found, seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        seen.add(id(value))
        for field in dataclasses.fields(value):
            _collect(getattr(value, field.name), found, seen)


def write_out(value: object, to: str | os.PathLike[str]) -> list[Path]:
    """Write every file and directory ``value`` holds under ``to`` (each as ``to/NAME``).

    Raises FileValueError, before writing anything, if two of them share a
    name (they would overwrite each other), or if ``value`` holds none.
    """
    items = list(dict.fromkeys(files_in(value)))
    if not items:
        raise FileValueError("the value holds no ckpt.File or ckpt.Directory")
    names: dict[str, File | Directory] = {}
    for item in items:
        other = names.setdefault(item.name, item)
        if other is not item:
            raise FileValueError(
                f"two files of the value are named {item.name!r}; write them one at a time "
                "with materialize(to=...)"
            )
    return [item.materialize(to) for item in items]
