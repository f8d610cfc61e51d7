"""The storage protocol: the few byte-level operations every backend provides.

Keys are ``/``-separated strings of safe components (see :func:`check_key`).
The object database and refs are built on these operations alone, so a new
backend only has to implement this protocol and pass
``tests/storage/test_contract.py``.

Guarantees every backend MUST give:

* ``put_if_absent`` is atomic: a reader sees either no value or the whole value,
  and an existing value is never replaced.
* ``compare_and_swap`` is atomic and linearizable per key: it changes the key
  only if it still holds ``expected``; otherwise it raises ``ConflictError``.
* ``append`` adds one record to a log without losing records appended
  concurrently by other writers; ``read_log`` returns records in append order.
* ``touch`` and ``delete_if_older`` never race: a touched key is not deleted.
  A backend that cannot promise this (S3) says so with
  ``atomic_delete_if_older = False``; gc then collects in two phases
  (:mod:`ckpt.maintenance.gc_shared`).
* When the backend is durable, a call that returns has reached stable storage.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import attrs

from ckpt.errors import InvalidNameError, NotFoundError

#: Suffixes a backend may use for its own files next to a key (locks, logs,
#: temporary files); no key component may end in one.
RESERVED_SUFFIXES = (".lock", ".log", ".tmp")
_KEY_COMPONENT = re.compile(r"[A-Za-z0-9_@+=-][A-Za-z0-9._@+=-]*\Z")


class KeyNotFoundError(NotFoundError):
    """A storage key holds no value."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no value at key {key!r}")


@attrs.frozen
class KeyInfo:
    """What a listing says of one key: its name, size in bytes and modification time."""

    key: str
    size: int
    mtime: float


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is ``""`` or whole key components ending in ``/``, else raise."""
    if prefix and (not isinstance(prefix, str) or not prefix.endswith("/")):
        raise InvalidNameError(f"invalid storage key prefix {prefix!r} (must end in '/')")
    if prefix:
        check_key(prefix[:-1])
    return prefix


def is_key_component(name: str) -> bool:
    """True if ``name`` can be one component of a key (so not a log, lock or temporary file)."""
    return (
        _KEY_COMPONENT.match(name) is not None
        and ".." not in name
        and not name.endswith(RESERVED_SUFFIXES)
    )


def check_key(key: str) -> str:
    """Return ``key`` if every component is safe to map onto a path, else raise."""
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidNameError(f"invalid storage key {key!r}")
    for component in key.split("/"):
        if not is_key_component(component):
            raise InvalidNameError(f"invalid storage key {key!r}")
    return key


#: (inode, mtime in ns) of a folder, then of the folder inside it ((0, 0) if absent).
FolderStamp = tuple[int, int, int, int]


def stamp_time(stamp: FolderStamp) -> float:
    """When either folder of ``stamp`` last changed, in seconds since the epoch."""
    return max(stamp[1], stamp[3]) / 1e9


@runtime_checkable
class Storage(Protocol):
    """Byte storage under string keys.  See the module docstring for guarantees."""

    url: str
    durable: bool
    atomic_delete_if_older: bool
    """True if ``delete_if_older`` decides and deletes in one atomic step, so that a key
    touched before it decides is never deleted.  False where it checks the mtime and then
    deletes in two requests (S3): a ``touch`` landing in between is lost.  gc deletes in
    one pass where this is True and in two phases a grace period apart where it is False
    (see :mod:`ckpt.maintenance.gc_shared`)."""

    def get(self, key: str) -> bytes:
        """Return the bytes at ``key``; raise KeyNotFoundError if there are none."""
        ...

    def stat(self, key: str) -> KeyInfo | None:
        """Return size and mtime of ``key``, or None if it holds nothing."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store ``data`` at ``key`` unless the key exists; True if this call wrote it."""
        ...

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        """Set ``key`` to ``new`` (None deletes) if it holds ``expected`` (None: absent)."""
        ...

    def delete(self, key: str, *, sync: bool = True) -> bool:
        """Remove ``key``; True if it existed.  Deleting a missing key is not an error.

        ``sync=False`` allows a backend to skip making the removal durable: a
        crash of the machine soon after may bring the key back.  Only for
        removals that are harmless to undo (a pack merged into another).
        """
        ...

    def touch(self, key: str) -> bool:
        """Set ``key``'s mtime to now; False (and nothing created) if it holds nothing.

        Writers touch an object they dedup against, so that a concurrent gc
        does not take it for old garbage.
        """
        ...

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        """Delete ``key`` only if its mtime is before ``cutoff``; True if deleted.

        MUST be atomic against ``touch`` (a key touched before this call
        decides is never deleted: gc relies on it to spare objects that an
        in-flight save has just reused) unless the backend sets
        ``atomic_delete_if_older = False``.
        """
        ...

    def list(self, prefix: str = "") -> Iterator[KeyInfo]:
        """Every key that starts with ``prefix`` (a whole-component prefix or ``""``)."""
        ...

    def list_children(self, prefix: str = "", *, having: str | None = None) -> Iterator[str]:
        """The immediate children of ``prefix`` (``""`` or whole components ending in ``/``),
        sorted, each once: ``NAME`` for the key ``prefix + NAME``, ``NAME/`` for a *folder*,
        a name with keys below ``prefix + NAME/``.

        The cost is that of listing one level, not everything below it (except
        on Redis: see its module).  A folder that holds no key any more MAY
        still be listed (the local backend keeps the directories of deleted
        keys, S3 lists a folder holding only log records), so a caller that
        needs a key to exist asks with ``having``: then only the folders
        ``NAME/`` holding the key ``prefix + NAME/ + having`` are given, checked
        by the backend (``having`` is a relative key, e.g. ``"HEAD"``).  Logs,
        locks and temporary files are not keys and make no name.
        """
        ...

    def folder_stamps(self, prefix: str, inner: str) -> dict[str, FolderStamp] | None:
        """For each folder ``NAME/`` directly under ``prefix``, a stamp of the folders
        ``prefix + NAME/`` and ``prefix + NAME/ + inner``; None where the backend cannot
        tell cheaply (every backend but local files).

        A stamp changes whenever a key directly in either folder is created,
        replaced or removed, except that a change within the same tick of the
        file system's clock as the last one may leave it as it was: a caller
        trusts a stamp only once its time (:func:`stamp_time`) is a few
        seconds old.  Costs one listing plus two ``stat`` calls per folder.
        """
        ...

    def append(self, key: str, record: bytes, *, sync: bool = True) -> None:
        """Append one record (no newline bytes) to the log at ``key``.

        ``sync=False`` allows a backend to skip making the record durable: a
        crash of the machine soon after may lose it (and only it, or it with
        later unsynced records: a synced append makes the records before it
        durable too).  Only for records that are harmless to lose.
        """
        ...

    def read_log(self, key: str) -> builtins.list[bytes]:
        """All records of the log at ``key`` in append order; [] if there is none."""
        ...

    def delete_log(self, key: str) -> None:
        """Remove the whole log at ``key``."""
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...
