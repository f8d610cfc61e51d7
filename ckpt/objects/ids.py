"""Object ids: blake3-256 of an object's kind, length and canonical bytes."""

from __future__ import annotations

import re
from enum import IntEnum
from typing import NewType

import blake3

from ckpt.errors import InvalidNameError

ObjectId = NewType("ObjectId", str)
"""64 lowercase hex digits naming any object."""

CommitId = NewType("CommitId", ObjectId)
"""An ObjectId known to name a commit."""

ID_HEX_LENGTH = 64
_ID_RE = re.compile(r"[0-9a-f]{64}\Z")
_PREFIX_RE = re.compile(r"[0-9a-f]{1,64}\Z")


class Kind(IntEnum):
    """The kinds of object; the number is stored in the object header."""

    BLOB = 1
    TREE = 2
    COMMIT = 3
    #: A piece of a large blob (see :mod:`ckpt.objects.chunking`); only the
    #: object database refers to chunks.
    CHUNK = 4

    @property
    def label(self) -> str:
        return self.name.lower()


#: Inputs at least this large are hashed on every core (blake3 is parallel).
PARALLEL_HASH_SIZE = 1 << 22


def object_id(kind: Kind, data: bytes | memoryview) -> ObjectId:
    """The id of an object of ``kind`` whose canonical bytes are ``data``."""
    if len(data) >= PARALLEL_HASH_SIZE:
        hasher = blake3.blake3(
            f"{kind.label} {len(data)}\0".encode("ascii"), max_threads=blake3.blake3.AUTO
        )
    else:
        hasher = blake3.blake3(f"{kind.label} {len(data)}\0".encode("ascii"))
    hasher.update(data)
    return ObjectId(hasher.hexdigest())


def new_hasher(kind: Kind, length: int) -> blake3.blake3:
    """A hasher primed like :func:`object_id`, for data fed in pieces."""
    return blake3.blake3(f"{kind.label} {length}\0".encode("ascii"))


def check_object_id(value: object) -> ObjectId:
    """Return ``value`` as an ObjectId, or raise InvalidNameError before it touches a path."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InvalidNameError(f"not an object id: {value!r} (expected 64 lowercase hex digits)")
    return ObjectId(value)


def is_id_prefix(value: str) -> bool:
    """True if ``value`` could be the start of an object id."""
    return bool(_PREFIX_RE.match(value))
