"""Files and directories as checkpoint values: ``ckpt.File`` and ``ckpt.Directory``.

A stage value may be, or hold (as a field of an attrs class or dataclass, a
value of a dict, an item of a list), a ``File`` naming a regular file or a
``Directory`` naming a directory tree.  Saving streams each file's bytes
into the store as a blob of its own, in constant memory
(:mod:`ckpt.objects.stream`); the stage value records, in canonical JSON::

    {"$ckpt": "file", "id": CONTENT-ID, "mode": 420, "name": "final.mp4", "size": 123}

    {"$ckpt": "directory", "mode": 493, "name": "scenes",
     "entries": [["a", 493], ["a/001.png", 420, 5120, CONTENT-ID], ...]}

where a directory's entries are its subdirectories (``[path, mode]``) and
files (``[path, mode, size, id]``) sorted by their '/'-separated relative
path, and modes are permission bits.  The content ids are also listed in
the stage's tree entry, which is how gc, verify and transfers reach them.

Loading gives back ``File`` and ``Directory`` objects bound to the store,
whose bytes are read only when asked for: ``open()`` streams them,
``path`` (or ``os.fspath``) writes them into a cache inside the store, and
``materialize(to=DIR)`` writes them under ``DIR``.  Names read from a store
are untrusted: see :mod:`ckpt.values.materialize`.

Reading a file someone gave has its own failure modes (missing, a special
file, changed while read): see :mod:`ckpt.values.filesource`.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs
import blake3

from ckpt.errors import CkptError, CorruptObjectError, FileValueError, SerializationError
from ckpt.objects.canonical import canonical_json
from ckpt.objects.ids import ObjectId, check_object_id
from ckpt.objects.stream import BLOCK_SIZE, BlobReader
from ckpt.values.filesource import (
    MODE_BITS,
    check_utf8,
    stat_source,
    walk_directory,
)
from ckpt.values.materialize import (
    TreeItem,
    cached,
    check_name,
    check_relpath,
    temporary_cache,
    write_file,
    write_tree,
)

if TYPE_CHECKING:
    from ckpt.objects.store import ObjectStore

MARKER = "$ckpt"
FILE_KIND = "file"
DIRECTORY_KIND = "directory"
_FILE_KEYS = frozenset({MARKER, "id", "mode", "name", "size"})
_DIRECTORY_KEYS = frozenset({MARKER, "entries", "mode", "name"})
#: The bytes every stored File or Directory value contains (a quick test before a walk).
MARKER_BYTES = b'"$ckpt"'


@attrs.frozen
class Entry:
    """One item of a directory: its '/'-separated path below the directory, its mode,
    and for a file its size and content id (both None for a directory)."""

    path: str
    mode: int
    size: int | None = None
    id: ObjectId | None = None

    @property
    def is_dir(self) -> bool:
        return self.size is None


class StoredContent:
    """Where the bytes of loaded files are: a store, and the cache they are written to."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @property
    def cache_root(self) -> Path:
        from ckpt.storage.local import LocalStorage

        storage = self.store.storage
        if isinstance(storage, LocalStorage):
            return Path(storage.root, "cache", "files")
        return temporary_cache()

    def reader(self, oid: ObjectId, size: int) -> BlobReader:
        """A checked reader of the blob, which must hold ``size`` bytes as its value says."""
        reader = BlobReader(self.store, oid)
        if reader.length != size:
            reader.close()
            raise CorruptObjectError(
                oid, "the file's content has another size than its value says",
                f"{size} bytes", f"{reader.length} bytes",
            )  # fmt: skip
        return reader

    def pieces(self, oid: ObjectId, size: int) -> Iterator[bytes]:
        """The blob's bytes, checked, in the pieces it is stored in."""
        with self.reader(oid, size) as reader:
            yield from reader.pieces()

    def open(self, oid: ObjectId, size: int) -> BinaryIO:
        return io.BufferedReader(self.reader(oid, size), buffer_size=BLOCK_SIZE)


def _path_text(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if not isinstance(text, str):
        raise FileValueError(f"give the path as text, not bytes: {text!r}")
    return text


def _local_pieces(path: str) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as source:
        while piece := source.read(BLOCK_SIZE):
            yield piece


def unbound_error(what: str) -> CkptError:
    return CkptError(
        f"this {what} was rebuilt from its stored form outside a load, so it is bound to no "
        "store: load it with Job.load to read its content"
    )


def _cache_key(doc: dict[str, Any]) -> str:
    return blake3.blake3(canonical_json(doc)).hexdigest()[:32]


class File(os.PathLike[str]):
    """A regular file as a checkpoint value.

    ``File(path)`` names a file to save (its name defaults to the path's last
    component); a loaded ``File`` reads its bytes from the store on demand.
    Either way it is a path-like object: ``open(file, "rb")`` works, and for
    a loaded file ``path`` writes it into the store's cache first.
    """

    __slots__ = ("_content", "_source", "id", "mode", "name", "size")

    name: str
    size: int
    mode: int
    #: The content id (None for a file that has not been saved and loaded back).
    id: ObjectId | None

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        source = _path_text(path)
        st = stat_source(source, want_dir=False)
        base = os.path.basename(os.path.abspath(source))
        check_utf8(base, source)
        self.name = check_name(base if name is None else name, "ckpt.File")
        self.size = st.st_size
        self.mode = stat.S_IMODE(st.st_mode) & MODE_BITS
        self.id = None
        self._source: str | None = source
        self._content: StoredContent | None = None

    @classmethod
    def _stored(
        cls, name: str, size: int, mode: int, oid: ObjectId, content: StoredContent | None
    ) -> File:
        value = cls.__new__(cls)
        value.name, value.size, value.mode, value.id = name, size, mode, oid
        value._source, value._content = None, content
        return value

    @property
    def stored(self) -> bool:
        """True for a file loaded from a store (its bytes are read from there)."""
        return self._source is None

    def _json(self) -> dict[str, Any]:
        return file_json(self.name, self.size, self.mode, self.id)

    def _bound(self) -> tuple[StoredContent, ObjectId]:
        if self._content is None or self.id is None:
            raise unbound_error("ckpt.File")
        return self._content, self.id

    def pieces(self) -> Iterator[bytes]:
        """The file's bytes, a block at a time (checked against the content id if stored)."""
        if self._source is not None:
            return _local_pieces(self._source)
        content, oid = self._bound()
        return content.pieces(oid, self.size)

    def open(self) -> BinaryIO:
        """The file's bytes as a binary stream (from the store, for a loaded file).

        A stored file's bytes are checked as they are read; damage raises
        CorruptObjectError from ``read``.
        """
        if self._source is not None:
            return open(self._source, "rb")
        content, oid = self._bound()
        return content.open(oid, self.size)

    def read_bytes(self) -> bytes:
        """The whole content in memory (prefer :meth:`open` for large files)."""
        with self.open() as stream:
            return stream.read()

    def materialize(self, to: str | os.PathLike[str] | None = None) -> Path:
        """Write the file as ``to/NAME`` (byte-identical, mode restored); return its path.

        Without ``to``, a loaded file goes to the cache inside its store (and
        stays there while unchanged); a file not yet saved is already a path.
        """
        if to is not None:
            return write_file(to, self.name, self.mode, self.pieces)
        if self._source is not None:
            return Path(self._source)
        content, _ = self._bound()
        return cached(
            content.cache_root,
            _cache_key(self._json()),
            self.name,
            lambda where: write_file(where, self.name, self.mode, self.pieces),
        )

    @property
    def path(self) -> Path:
        """A path to the file's bytes: its own, or (loaded) its copy in the store's cache."""
        return self.materialize()

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def _identity(self) -> tuple[object, ...]:
        if self.id is not None:
            return ("stored", self.name, self.size, self.mode, self.id)
        return ("local", self.name, os.path.abspath(self._source or ""))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, File):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        if self._source is not None:
            return f"ckpt.File({self._source!r}, name={self.name!r})"
        return f"ckpt.File(name={self.name!r}, size={self.size}, id={(self.id or '')[:12]!r})"


class Directory(os.PathLike[str]):
    """A directory tree (regular files and directories) as a checkpoint value.

    ``Directory(path)`` names a directory to save; a loaded ``Directory``
    lists its :attr:`entries` and reads each file's bytes from the store on
    demand.  ``path`` (loaded: the copy written into the store's cache) and
    ``materialize(to=DIR)`` give the whole tree, byte-identical, modes restored.
    """

    __slots__ = ("_content", "_entries", "_files", "_source", "mode", "name")

    name: str
    mode: int

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        source = _path_text(path)
        st = stat_source(source, want_dir=True)
        base = os.path.basename(os.path.abspath(source))
        check_utf8(base, source)
        self.name = check_name(base if name is None else name, "ckpt.Directory")
        self.mode = stat.S_IMODE(st.st_mode) & MODE_BITS
        self._source: str | None = source
        self._entries: tuple[Entry, ...] | None = None
        self._files: dict[str, Entry] | None = None
        self._content: StoredContent | None = None

    @classmethod
    def _stored(
        cls, name: str, mode: int, entries: tuple[Entry, ...], content: StoredContent | None
    ) -> Directory:
        value = cls.__new__(cls)
        value.name, value.mode = name, mode
        value._source, value._entries, value._content = None, entries, content
        value._files = None
        return value

    @property
    def stored(self) -> bool:
        """True for a directory loaded from a store."""
        return self._source is None

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Every file and subdirectory, sorted by path (a directory not yet saved is listed
        now, without content ids)."""
        if self._entries is not None:
            return self._entries
        assert self._source is not None
        return tuple(
            Entry(e.path, e.mode) if e.is_dir else Entry(e.path, e.mode, os.lstat(e.source).st_size)
            for e in walk_directory(self._source)
        )

    @property
    def size(self) -> int:
        """The total size of its files."""
        return sum(entry.size or 0 for entry in self.entries)

    def file(self, path: str) -> File:
        """The file at ``path`` ('/'-separated, relative) in this directory."""
        parts = check_relpath(path, "Directory.file")
        if self._source is not None:
            return File(os.path.join(self._source, *parts))
        if self._files is None:
            self._files = {entry.path: entry for entry in self.entries if not entry.is_dir}
        entry = self._files.get("/".join(parts))
        if entry is None or entry.id is None or entry.size is None:
            raise FileValueError(f"directory {self.name!r} holds no file {path!r}")
        return File._stored(parts[-1], entry.size, entry.mode, entry.id, self._content)

    def open(self, path: str) -> BinaryIO:
        """The bytes of the file at ``path`` in this directory, as a binary stream."""
        return self.file(path).open()

    def _json(self) -> dict[str, Any]:
        return directory_json(self.name, self.mode, self.entries)

    def materialize(self, to: str | os.PathLike[str] | None = None) -> Path:
        """Write the tree as ``to/NAME`` (modes restored, empty directories kept); return it.

        Without ``to``, a loaded directory goes to the cache inside its store;
        one not yet saved is already a path.
        """
        if to is None and self._source is not None:
            return Path(self._source)
        if self._source is not None:
            assert to is not None
            return write_tree(to, self.name, self.mode, self._items())
        if self._content is None:
            raise unbound_error("ckpt.Directory")
        if to is not None:
            return write_tree(to, self.name, self.mode, self._items())
        return cached(
            self._content.cache_root,
            _cache_key(self._json()),
            self.name,
            lambda where: write_tree(where, self.name, self.mode, self._items()),
        )

    def _items(self) -> Iterator[TreeItem]:
        for entry in self.entries:
            parts = check_relpath(entry.path)
            if entry.is_dir:
                yield TreeItem(parts, entry.mode, None)
            elif self._source is not None:
                yield TreeItem(parts, entry.mode, File(os.path.join(self._source, *parts)).pieces)
            else:
                assert entry.id is not None and entry.size is not None
                stored = File._stored(parts[-1], entry.size, entry.mode, entry.id, self._content)
                yield TreeItem(parts, entry.mode, stored.pieces)

    @property
    def path(self) -> Path:
        """A path to the tree: its own, or (loaded) its copy in the store's cache."""
        return self.materialize()

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def _identity(self) -> tuple[object, ...]:
        if self._source is None:
            return ("stored", self.name, self.mode, self.entries)
        return ("local", self.name, os.path.abspath(self._source))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Directory):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        if self._source is not None:
            return f"ckpt.Directory({self._source!r}, name={self.name!r})"
        files = sum(1 for entry in self.entries if not entry.is_dir)
        return f"ckpt.Directory(name={self.name!r}, files={files})"


# -- stored form ---------------------------------------------------------------


def file_json(name: str, size: int, mode: int, oid: ObjectId | None) -> dict[str, Any]:
    return {MARKER: FILE_KIND, "id": oid, "mode": mode, "name": name, "size": size}


def directory_json(name: str, mode: int, entries: Iterable[Entry]) -> dict[str, Any]:
    return {
        MARKER: DIRECTORY_KIND,
        "entries": [
            [e.path, e.mode] if e.is_dir else [e.path, e.mode, e.size, e.id] for e in entries
        ],
        "mode": mode,
        "name": name,
    }


def _mode(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value <= MODE_BITS:
        raise SerializationError(f"{where}: a mode must be permission bits (0-0o777)")
    return value


def _size(value: object, where: str) -> int:
    if type(value) is not int or value < 0:
        raise SerializationError(f"{where}: a size must be an integer >= 0")
    return value


def _oid(value: object, where: str) -> ObjectId:
    try:
        return check_object_id(value)
    except CkptError:
        raise SerializationError(f"{where}: {value!r} is not a content id") from None


def file_from_json(doc: object, content: StoredContent | None) -> File:
    """A stored File from its JSON form; raise SerializationError or InvalidNameError."""
    if not isinstance(doc, dict) or doc.get(MARKER) != FILE_KIND or set(doc) != _FILE_KEYS:
        raise SerializationError("not a stored ckpt.File")
    where = "stored ckpt.File"
    name = check_name(doc["name"], where)
    return File._stored(
        name,
        _size(doc["size"], where),
        _mode(doc["mode"], where),
        _oid(doc["id"], where),
        content,
    )


def directory_from_json(doc: object, content: StoredContent | None) -> Directory:
    """A stored Directory from its JSON form; every path is checked before use."""
    if (
        not isinstance(doc, dict)
        or doc.get(MARKER) != DIRECTORY_KIND
        or set(doc) != _DIRECTORY_KEYS
        or not isinstance(doc["entries"], list)
    ):
        raise SerializationError("not a stored ckpt.Directory")
    where = "stored ckpt.Directory"
    name = check_name(doc["name"], where)
    entries: list[tuple[tuple[str, ...], Entry]] = []
    for item in doc["entries"]:
        if not isinstance(item, list) or len(item) not in (2, 4):
            raise SerializationError(f"{where}: malformed entry {item!r}")
        parts = check_relpath(item[0], where)
        path = "/".join(parts)
        mode = _mode(item[1], where)
        if len(item) == 2:
            entries.append((parts, Entry(path, mode)))
        else:
            entries.append((parts, Entry(path, mode, _size(item[2], where), _oid(item[3], where))))
    entries.sort(key=lambda item: item[0])
    files: set[tuple[str, ...]] = set()
    seen: set[tuple[str, ...]] = set()
    for parts, entry in entries:
        if parts in seen:
            raise SerializationError(f"{where}: the path {entry.path!r} is listed twice")
        if any(parts[:depth] in files for depth in range(1, len(parts))):
            raise SerializationError(f"{where}: {entry.path!r} is listed below a file")
        seen.add(parts)
        if not entry.is_dir:
            files.add(parts)
    return Directory._stored(name, _mode(doc["mode"], where), tuple(e for _, e in entries), content)


def from_json(doc: Mapping[str, object], content: StoredContent | None) -> File | Directory:
    """A stored File or Directory from a JSON object carrying the marker."""
    if doc.get(MARKER) == DIRECTORY_KIND:
        return directory_from_json(doc, content)
    return file_from_json(doc, content)


# The public names (``ckpt.File``), which trees record as the type of a stage value.
File.__module__ = Directory.__module__ = "ckpt"
