"""The object store over every backend: packs, chunked and delta objects, damage, quarantine.

gc's sweep is tested in test_scan.py.
"""

from __future__ import annotations

import os

import pytest

from ckpt.errors import CkptError, CorruptObjectError, ObjectNotFoundError
from ckpt.objects import chunking, codec
from ckpt.objects.ids import Kind, ObjectId, object_id
from ckpt.objects.packset import MERGE_COUNT
from ckpt.objects.store import ObjectStore, object_key
from ckpt.storage import Storage

from ._helpers import flip, word_text


def test_one_batch_is_one_pack(storage: Storage) -> None:
    store = ObjectStore(storage)
    with store.batch() as batch:
        ids = [batch.put(Kind.BLOB, f"value {n}".encode()) for n in range(10)]
    assert len(store.packs()) == 1
    assert [store.get(oid, Kind.BLOB) for oid in ids] == [f"value {n}".encode() for n in range(10)]
    assert ObjectStore(storage).get(ids[3]) == b"value 3"


def test_the_writer_is_imported_on_first_write_and_still_reachable_from_the_store() -> None:
    from ckpt.objects import store, writer

    assert store.ObjectBatch is writer.ObjectBatch  # imported lazily, as before by name
    with pytest.raises(AttributeError):
        _ = store.NoSuchThing


def test_nothing_is_written_when_the_batch_block_raises(storage: Storage) -> None:
    store = ObjectStore(storage)
    with pytest.raises(RuntimeError), store.batch() as batch:
        oid = batch.put(Kind.BLOB, b"never stored")
        raise RuntimeError("stage failed")
    assert not store.has(oid)
    assert store.packs() == []


def test_large_blob_is_chunked_and_deduplicated(storage: Storage) -> None:
    store = ObjectStore(storage)
    value = word_text(1, 600_000)
    oid = store.put(Kind.BLOB, value)
    assert oid == object_id(Kind.BLOB, value)
    assert codec.parse_header(store.read_stored(oid), oid).chunked
    chunks = store.references(oid)
    assert len(chunks) >= 600_000 // chunking.MAX_CHUNK
    # A value that grew at the end shares all but its last chunks.
    grown = value + b" and a little more"
    grown_id = store.put(Kind.BLOB, grown, base=oid)
    assert ObjectStore(storage).get(grown_id, Kind.BLOB) == grown
    shared = set(store.references(grown_id)) & set(chunks)
    assert len(shared) >= len(chunks) - 1


def test_delta_against_the_previous_version_is_small_and_reads_back(storage: Storage) -> None:
    store = ObjectStore(storage)
    versions = [word_text(2, 20_000)]
    for n in range(5):
        versions.append(versions[-1] + f" step {n}".encode() * 20)
    previous = None
    sizes = []
    ids = []
    for value in versions:
        previous = store.put(Kind.BLOB, value, base=previous)
        ids.append(previous)
        sizes.append(len(store.read_stored(previous)))
    assert max(sizes[1:]) < sizes[0] // 10
    fresh = ObjectStore(storage)
    assert [fresh.get(oid) for oid in ids] == versions
    header = codec.parse_header(fresh.read_stored(ids[-1]), ids[-1])
    assert header.base == ids[-2] and header.depth == 5


def test_delta_chains_stay_bounded(storage: Storage) -> None:
    from ckpt.objects.delta import MAX_CHAIN

    store = ObjectStore(storage)
    value = word_text(3, 8000)
    previous = None
    for n in range(MAX_CHAIN + 3):
        value += f" {n}".encode()
        previous = store.put(Kind.BLOB, value, base=previous)
    assert previous is not None
    assert codec.parse_header(store.read_stored(previous), previous).depth <= MAX_CHAIN
    assert ObjectStore(storage).get(previous) == value


def test_damaged_chunk_is_named(storage: Storage) -> None:
    store = ObjectStore(storage)
    value = word_text(4, 400_000)
    oid = store.put(Kind.BLOB, value)
    chunk = store.references(oid)[1]
    flip(storage, store, chunk, at=-8)
    fresh = ObjectStore(storage)
    with pytest.raises(CorruptObjectError) as caught:
        fresh.get(oid)
    assert caught.value.object_id == oid
    assert chunk in str(caught.value)
    with pytest.raises(CorruptObjectError) as direct:
        fresh.verify(chunk)
    assert direct.value.object_id == chunk


def test_a_range_of_a_chunked_blob_reads_only_the_chunks_it_overlaps(storage: Storage) -> None:
    store = ObjectStore(storage)
    value = word_text(6, 700_000)
    oid = store.put(Kind.BLOB, value)
    chunks = store.references(oid)
    fresh = ObjectStore(storage)
    for offset, length in [(0, 100), (65_000, 200_000), (699_990, 100), (0, 700_000), (5, 0)]:
        assert fresh.read_range(oid, offset, length) == value[offset : offset + length]
    assert fresh.read_range(oid, 800_000, 10) == b""
    small = store.put(Kind.BLOB, b"a small value")
    assert fresh.read_range(small, 2, 5) == b"small"
    # A damaged chunk far from the range is not read; one inside it is named.
    flip(storage, store, chunks[-1], at=-8)
    damaged = ObjectStore(storage)
    assert damaged.read_range(oid, 0, 1000) == value[:1000]
    with pytest.raises(CorruptObjectError) as caught:
        damaged.read_range(oid, 1000, len(value))
    assert caught.value.object_id == oid and chunks[-1] in str(caught.value)
    with pytest.raises(CkptError, match="invalid byte range"):
        damaged.read_range(oid, -1, 10)


def test_damaged_delta_base_is_named(storage: Storage) -> None:
    store = ObjectStore(storage)
    base = store.put(Kind.BLOB, word_text(5, 30_000))
    child = store.put(Kind.BLOB, word_text(5, 30_000) + b" more", base=base)
    flip(storage, store, base, at=-2)
    fresh = ObjectStore(storage)
    with pytest.raises(CorruptObjectError) as caught:
        fresh.get(child)
    assert caught.value.object_id == child and "delta base" in str(caught.value)
    with pytest.raises(CorruptObjectError) as direct:
        fresh.get(base)
    assert direct.value.object_id == base


def test_damaged_packed_object_is_named_with_expected_and_actual(storage: Storage) -> None:
    store = ObjectStore(storage)
    with store.batch() as batch:
        keep = batch.put(Kind.BLOB, b"intact neighbour")
        hurt = batch.put(Kind.COMMIT, b'{"a": "b"}' * 3)
    flip(storage, store, hurt, at=-1)
    fresh = ObjectStore(storage)
    with pytest.raises(CorruptObjectError) as caught:
        fresh.get(hurt)
    assert caught.value.object_id == hurt
    assert fresh.get(keep) == b"intact neighbour"


def test_a_loose_object_from_an_old_store_is_reused_not_written_again(storage: Storage) -> None:
    # Stores written before packs hold loose objects (objects/XX/ID); a save of the same
    # bytes, small or a chunk of a large value, reuses them.
    small = b"an object from before packs"
    big = word_text(7, 400_000)
    chunk = big[: chunking.cut_points(big)[0]]
    for data, kind in ((small, Kind.BLOB), (chunk, Kind.CHUNK)):
        storage.put_if_absent(object_key(object_id(kind, data)), codec.encode(kind, data))
    store = ObjectStore(storage)
    assert store.put(Kind.BLOB, small) == object_id(Kind.BLOB, small)
    assert store.packs() == []  # nothing written: the loose copy is reused
    store.put(Kind.BLOB, big)
    written = {oid for info in store.packs() for oid in _pack_ids(storage, info.key)}
    assert object_id(Kind.CHUNK, chunk) not in written
    assert ObjectStore(storage).get(object_id(Kind.BLOB, big)) == big


def _pack_ids(storage: Storage, key: str) -> list[ObjectId]:
    from ckpt.objects import pack

    data = storage.get(key)
    index = pack.PackIndex(key, len(data), data[-min(len(data), pack.TAIL_READ) :])
    return [ObjectId(entry.id) for entry in index.entries(pack.slicer(data))]


def test_missing_object(storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError):
        ObjectStore(storage).get(ObjectId("ab" * 32))


def test_small_packs_are_merged(storage: Storage) -> None:
    store = ObjectStore(storage)
    ids = [store.put(Kind.BLOB, f"value {n}".encode()) for n in range(MERGE_COUNT * 2)]
    assert len(store.packs()) < MERGE_COUNT
    fresh = ObjectStore(storage)
    assert [fresh.get(oid) for oid in ids] == [f"value {n}".encode() for n in range(len(ids))]
    assert sorted(o.id for o in fresh) == sorted(set(ids))


def test_quarantine_then_a_clean_copy(storage: Storage) -> None:
    store = ObjectStore(storage)
    with store.batch() as batch:
        hurt = batch.put(Kind.BLOB, b"precious value")
        other = batch.put(Kind.BLOB, b"bystander")
    flip(storage, store, hurt, at=-1)
    fresh = ObjectStore(storage)
    assert fresh.quarantine(hurt) is True
    assert not fresh.has(hurt) and fresh.get(other) == b"bystander"
    assert storage.get(f"quarantine/{hurt}")
    assert fresh.put(Kind.BLOB, b"precious value") == hurt
    assert ObjectStore(storage).get(hurt) == b"precious value"


def test_huge_value_round_trips_through_several_packs(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckpt.objects import writer as writer_module

    monkeypatch.setattr(writer_module, "PACK_LIMIT", 1 << 20)
    store = ObjectStore(storage)
    value = os.urandom(3 << 20)
    oid = store.put(Kind.BLOB, value)
    assert len(store.packs()) >= 3
    assert ObjectStore(storage).get(oid) == value
