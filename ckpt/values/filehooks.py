"""How ``ckpt.File`` and ``ckpt.Directory`` travel through the converter.

* **Saving** (:func:`saving`): while a value is serialized, each file met
  is streamed into the store (:class:`FileSink`) and replaced by its stored
  form; the content ids are collected for the stage's tree entry.  Outside
  a save (``serialize.dumps`` on its own) the ids are computed without
  storing anything.  A loaded file saved again is not read: it is in the
  store already, or copied chunk by chunk from its own store.
* **Loading** (:func:`loading`): stored forms become ``File`` and
  ``Directory`` objects bound to the store; :func:`revive` does it for a
  value loaded without a type.
* **Normalizing** (:func:`keeping`, :func:`put_back`): a value turned into
  plain JSON data and back, its files kept as the objects they are.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ckpt.objects.ids import ObjectId
from ckpt.objects.stream import BlobSink, ContentDigest, ContentWriter
from ckpt.values.files import (
    DIRECTORY_KIND,
    FILE_KIND,
    MARKER,
    Directory,
    Entry,
    File,
    StoredContent,
    directory_from_json,
    directory_json,
    file_from_json,
    file_json,
    from_json,
    unbound_error,
)
from ckpt.values.filesource import MODE_BITS, stat_source, stream_file, walk_directory

if TYPE_CHECKING:
    import cattrs

    from ckpt.objects.store import ObjectStore


class FileSink:
    """Where the files of one value being saved go: into a store, or (without a writer)
    nowhere, their content ids only computed.  ``ids`` collects every content id."""

    def __init__(self, writer: ContentWriter | None) -> None:
        self.writer = writer
        self.ids: set[ObjectId] = set()
        self._blobs: BlobSink = writer if writer is not None else ContentDigest()

    def file(self, value: File) -> dict[str, Any]:
        if value._source is None:
            content, oid = value._bound()
            self._carry(content, oid)
            return file_json(value.name, value.size, value.mode, oid)
        facts = stream_file(value._source, self._blobs)
        self.ids.add(facts.id)
        return file_json(value.name, facts.size, facts.mode, facts.id)

    def directory(self, value: Directory) -> dict[str, Any]:
        if value._source is None:
            if value._content is None:
                raise unbound_error("ckpt.Directory")
            for entry in value.entries:
                if entry.id is not None:
                    self._carry(value._content, entry.id)
            return value._json()
        mode = stat.S_IMODE(stat_source(value._source, want_dir=True).st_mode) & MODE_BITS
        entries = []
        for local in walk_directory(value._source):
            if local.is_dir:
                entries.append(Entry(local.path, local.mode))
            else:
                facts = stream_file(local.source, self._blobs, follow=False)
                self.ids.add(facts.id)
                entries.append(Entry(local.path, facts.mode, facts.size, facts.id))
        return directory_json(value.name, mode, entries)

    def _carry(self, content: StoredContent, oid: ObjectId) -> None:
        """A loaded file saved again: it is in this store already, or copied from its own."""
        self.ids.add(oid)
        if self.writer is not None and not self.writer.has(oid):
            self.writer.copy_blob(content.store, oid)


_SAVING: ContextVar[FileSink | None] = ContextVar("ckpt_file_sink", default=None)
_LOADING: ContextVar[StoredContent | None] = ContextVar("ckpt_file_content", default=None)
_KEEPING: ContextVar[list[File | Directory] | None] = ContextVar("ckpt_file_keep", default=None)
_KEPT = "kept"


@contextlib.contextmanager
def saving(store: ObjectStore) -> Iterator[FileSink]:
    """Files met while serializing in this block are stored in ``store``.

    When the block ends normally their bytes are durable; when it raises,
    the packs written for them are removed (see
    :meth:`~ckpt.objects.stream.ContentWriter.abort`).
    """
    writer = ContentWriter(store)
    sink = FileSink(writer)
    token = _SAVING.set(sink)
    try:
        with writer:
            yield sink
    finally:
        _SAVING.reset(token)


@contextlib.contextmanager
def loading(store: ObjectStore) -> Iterator[None]:
    """Files rebuilt in this block read their bytes from ``store``."""
    token = _LOADING.set(StoredContent(store))
    try:
        yield
    finally:
        _LOADING.reset(token)


@contextlib.contextmanager
def keeping() -> Iterator[list[File | Directory]]:
    """Files met while unstructuring in this block are kept as they are (see :func:`put_back`)."""
    kept: list[File | Directory] = []
    token = _KEEPING.set(kept)
    try:
        yield kept
    finally:
        _KEEPING.reset(token)


def _unstructure(value: File | Directory) -> dict[str, Any]:
    kept = _KEEPING.get()
    if kept is not None:
        kept.append(value)
        return {MARKER: _KEPT, "n": len(kept) - 1}
    sink = _SAVING.get() or FileSink(None)
    if isinstance(value, Directory):
        return sink.directory(value)
    return sink.file(value)


def _structure_file(doc: object, _type: object) -> File:
    return file_from_json(doc, _LOADING.get())


def _structure_directory(doc: object, _type: object) -> Directory:
    return directory_from_json(doc, _LOADING.get())


def register(converter: cattrs.Converter) -> None:
    """Teach ``converter`` File and Directory (called once, where it is made)."""
    converter.register_unstructure_hook(File, _unstructure)
    converter.register_unstructure_hook(Directory, _unstructure)
    converter.register_structure_hook(File, _structure_file)
    converter.register_structure_hook(Directory, _structure_directory)


def revive(value: object) -> object:
    """``value`` (plain JSON data) with every stored File or Directory rebuilt as one."""
    if isinstance(value, dict):
        if MARKER in value and value[MARKER] in (FILE_KIND, DIRECTORY_KIND):
            return from_json(value, _LOADING.get())
        return {key: revive(item) for key, item in value.items()}
    if isinstance(value, list):
        return [revive(item) for item in value]
    return value


def put_back(value: object, kept: list[File | Directory]) -> object:
    """Plain JSON data with the placeholders :func:`keeping` left replaced by their objects."""
    if isinstance(value, dict):
        if value.get(MARKER) == _KEPT and set(value) == {MARKER, "n"}:
            return kept[value["n"]]
        return {key: put_back(item, kept) for key, item in value.items()}
    if isinstance(value, list):
        return [put_back(item, kept) for item in value]
    return value
