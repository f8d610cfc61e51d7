"""A growing value is cut and hashed only past its previous version's last cut.

The cut points found that way must be exactly those of cutting the whole
value, or dedup across stores (and runs) would suffer; ids never depend on
cut points, but the chunk list a blob stores does.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckpt.objects import chunking, codec
from ckpt.objects.ids import Kind
from ckpt.objects.store import ObjectStore
from ckpt.storage.memory import MemoryStorage
from tests.objects._helpers import word_text


@given(st.integers(0, 2**32), st.integers(1, 400_000), st.integers(0, 300_000))
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_cutting_from_a_known_cut_gives_the_cuts_of_the_whole(
    seed: int, size: int, extra: int
) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(size) if seed % 2 else word_text(seed, size)
    longer = data + rng.randbytes(extra)
    cuts = chunking.cut_points(data)
    for start in [0, *cuts]:
        known = [cut for cut in cuts if cut <= start]
        assert known + chunking.cut_points_from(longer, start) == chunking.cut_points(longer)


def _chunk_list(store: ObjectStore, oid: str) -> bytes:
    stored = store.read_stored(oid)  # type: ignore[arg-type]
    header = codec.parse_header(stored, oid)
    assert header.chunked
    return store._payload(oid, stored, header)  # type: ignore[arg-type]


def test_a_growing_value_stores_the_chunk_list_a_fresh_store_would() -> None:
    growing = ObjectStore(MemoryStorage())
    value = word_text(5, 300_000)
    previous = None
    for step in range(6):
        value += f" step {step} ".encode() + os.urandom(20_000)
        oid = growing.put(Kind.BLOB, value, base=previous)
        fresh = ObjectStore(MemoryStorage())
        assert fresh.put(Kind.BLOB, value) == oid
        assert _chunk_list(growing, oid) == _chunk_list(fresh, oid)
        assert growing.get(oid) == value
        previous = oid


def test_a_value_edited_before_the_last_cut_is_cut_afresh() -> None:
    store = ObjectStore(MemoryStorage())
    value = word_text(9, 400_000)
    first = store.put(Kind.BLOB, value)
    edited = value[:1000] + b"EDIT" + value[1004:] + b" more"
    second = store.put(Kind.BLOB, edited, base=first)
    fresh = ObjectStore(MemoryStorage())
    assert fresh.put(Kind.BLOB, edited) == second
    assert _chunk_list(store, second) == _chunk_list(fresh, second)
