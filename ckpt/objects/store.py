"""The object database: put, get and verify immutable, content-addressed objects.

Objects live at storage key ``objects/XX/REST`` where ``XX`` is the first two
hex digits of the id.  A put computes the id from the canonical bytes, skips
the write if the object is already stored (dedup), and otherwise writes the
encoded object with the backend's atomic ``put_if_absent``.  Every get
re-hashes the bytes and raises :class:`~ckpt.errors.CorruptObjectError`
naming the id if they do not match.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from ckpt.errors import CorruptObjectError, ObjectNotFoundError
from ckpt.objects import codec
from ckpt.objects.ids import CommitId, Kind, ObjectId, check_object_id, object_id
from ckpt.objects.model import Commit, Tree, decode_commit, encode_commit
from ckpt.storage.base import KeyInfo, KeyNotFoundError, Storage

OBJECTS_PREFIX = "objects/"
QUARANTINE_PREFIX = "quarantine/"


def object_key(oid: ObjectId) -> str:
    return f"{OBJECTS_PREFIX}{oid[:2]}/{oid[2:]}"


@attrs.frozen
class StoredObject:
    """An object as listed in the store: id, stored size and modification time."""

    id: ObjectId
    stored_size: int
    mtime: float


class ObjectStore:
    """Immutable objects over a :class:`~ckpt.storage.base.Storage` backend."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # -- writing ------------------------------------------------------------

    def put(self, kind: Kind, data: bytes) -> ObjectId:
        """Store an object; return its id.  Storing existing content writes nothing."""
        oid = object_id(kind, data)
        key = object_key(oid)
        # An existing copy is touched, not rewritten: the fresh mtime keeps a
        # concurrent gc from collecting it before our ref update lands.
        if not self.storage.touch(key):
            self.storage.put_if_absent(key, codec.encode(kind, data))
        return oid

    def put_tree(self, tree: Tree) -> ObjectId:
        return self.put(Kind.TREE, tree.encode())

    def put_commit(self, commit: Commit) -> CommitId:
        return CommitId(self.put(Kind.COMMIT, encode_commit(commit)))

    # -- reading ------------------------------------------------------------

    def read_stored(self, oid: ObjectId) -> bytes:
        """The raw stored bytes of ``oid`` (header and frame), unchecked."""
        check_object_id(oid)
        try:
            return self.storage.get(object_key(oid))
        except KeyNotFoundError:
            raise ObjectNotFoundError(oid) from None

    def get(self, oid: ObjectId, kind: Kind | None = None) -> bytes:
        """The canonical bytes of ``oid``, hash-checked; optionally check its kind."""
        found, data = codec.decode_verified(self.read_stored(oid), oid)
        if kind is not None and found != kind:
            raise CorruptObjectError(oid, "object has the wrong kind", kind.label, found.label)
        return data

    def kind_of(self, oid: ObjectId) -> Kind:
        stored = self.read_stored(oid)
        return codec.read_header(stored, oid)[0]

    def get_tree(self, oid: ObjectId) -> Tree:
        return Tree.decode(self.get(oid, Kind.TREE), oid)

    def get_commit(self, oid: ObjectId) -> Commit:
        return decode_commit(self.get(oid, Kind.COMMIT), oid)

    def has(self, oid: ObjectId) -> bool:
        return self.storage.stat(object_key(check_object_id(oid))) is not None

    def verify(self, oid: ObjectId) -> Kind:
        """Fully check one object; return its kind or raise Corrupt/NotFound errors."""
        stored = self.read_stored(oid)
        return codec.decode_verified(stored, oid)[0]

    def __iter__(self) -> Iterator[StoredObject]:
        for info in self.storage.list(OBJECTS_PREFIX):
            oid = _id_from_key(info)
            if oid is not None:
                yield StoredObject(oid, info.size, info.mtime)

    # -- removing -----------------------------------------------------------

    def delete(self, oid: ObjectId) -> bool:
        return self.storage.delete(object_key(check_object_id(oid)))

    def delete_if_older(self, oid: ObjectId, cutoff: float) -> bool:
        """Delete ``oid`` unless it was written or reused at or after ``cutoff``."""
        return self.storage.delete_if_older(object_key(check_object_id(oid)), cutoff)

    def quarantine(self, oid: ObjectId) -> bool:
        """Move a (corrupt) object aside to ``quarantine/ID`` so that a clean copy can be stored.

        Returns False if there was nothing to move.
        """
        try:
            stored = self.read_stored(oid)
        except ObjectNotFoundError:
            return False
        self.storage.put_if_absent(f"{QUARANTINE_PREFIX}{oid}", stored)
        return self.storage.delete(object_key(oid))


def _id_from_key(info: KeyInfo) -> ObjectId | None:
    parts = info.key.split("/")
    if len(parts) != 3:
        return None
    candidate = parts[1] + parts[2]
    try:
        return check_object_id(candidate)
    except ValueError:
        return None
