"""Values and damage shared by the object-store tests."""

from __future__ import annotations

import random

from ckpt.objects.ids import ObjectId
from ckpt.objects.store import ObjectStore
from ckpt.storage import Storage


def word_text(seed: int, size: int) -> bytes:
    """``size`` bytes of words from a 500-word vocabulary (compressible, reproducible)."""
    rng = random.Random(seed)
    words = [f"word{n}" for n in range(500)]
    return " ".join(rng.choices(words, k=size // 5)).encode()[:size]


def flip(storage: Storage, store: ObjectStore, oid: ObjectId, at: int = -1) -> None:
    """Damage one byte of ``oid``'s stored bytes in place (in its pack or loose value)."""
    where = store.locate(oid)
    assert where is not None
    data = bytearray(storage.get(where.key))
    position = (where.offset + where.length if where.packed else len(data)) + at
    data[position] ^= 0x55
    storage.delete(where.key)
    storage.put_if_absent(where.key, bytes(data))
