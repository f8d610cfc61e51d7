"""Whole-store scans (verify --full, gc) over every backend: same verdicts as single reads."""

from __future__ import annotations

import time

import pytest

from ckpt.errors import CkptError, CorruptObjectError
from ckpt.objects import codec, scan
from ckpt.objects.ids import Kind, ObjectId, object_id
from ckpt.objects.scan import StoreScan
from ckpt.objects.store import ObjectStore, object_key
from ckpt.storage import Storage

from ._helpers import flip, word_text


def _problems(verdicts: dict[ObjectId, Kind | CkptError]) -> dict[ObjectId, CkptError]:
    return {oid: v for oid, v in verdicts.items() if isinstance(v, CkptError)}


def test_check_all_gives_every_object_its_kind(storage: Storage) -> None:
    store = ObjectStore(storage)
    big = word_text(1, 400_000)
    chunked = store.put(Kind.BLOB, big)
    grown = store.put(Kind.BLOB, big + b" and more", base=chunked)
    small_base = store.put(Kind.BLOB, word_text(2, 20_000))
    small_delta = store.put(Kind.BLOB, word_text(2, 20_000) + b" edited", base=small_base)
    with store.batch() as batch:
        tree = batch.put(Kind.TREE, b'{"stages":[],"v":1}')
        commit = batch.put(Kind.COMMIT, b'{"v":1,"x":"commit"}')
    loose_data = b"an object from before packs"
    loose = object_id(Kind.BLOB, loose_data)
    storage.put_if_absent(object_key(loose), codec.encode(Kind.BLOB, loose_data))

    listed = StoreScan(store)
    verdicts, kept = listed.check_all(keep={Kind.TREE, Kind.COMMIT})
    assert not _problems(verdicts)
    assert set(verdicts) == {item.id for item in store}
    assert len(listed) == len(verdicts)
    for oid in (chunked, grown, small_base, small_delta, loose):
        assert verdicts[oid] is Kind.BLOB
    assert verdicts[tree] is Kind.TREE and verdicts[commit] is Kind.COMMIT
    assert all(verdicts[cid] is Kind.CHUNK for cid in store.references(chunked))
    assert kept == {tree: b'{"stages":[],"v":1}', commit: b'{"v":1,"x":"commit"}'}


def test_a_corrupt_frame_in_the_middle_of_a_pack_is_found(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several tasks share the pack's bytes: the damaged entry is found whichever checks it.
    monkeypatch.setattr(scan, "ENTRIES_PER_TASK", 3)
    store = ObjectStore(storage)
    with store.batch() as batch:
        ids = [batch.put(Kind.BLOB, f"value number {n}".encode() * 20) for n in range(24)]
    assert len(store.packs()) == 1
    hurt = sorted(ids)[12]
    flip(storage, store, hurt, at=-3)
    verdicts, _ = StoreScan(store, workers=4).check_all()
    problems = _problems(verdicts)
    assert set(problems) == {hurt}
    assert isinstance(problems[hurt], CorruptObjectError)
    assert problems[hurt].object_id == hurt
    assert all(verdicts[oid] is Kind.BLOB for oid in ids if oid != hurt)


def test_a_damaged_chunk_is_reported_for_itself_and_every_blob_using_it(storage: Storage) -> None:
    store = ObjectStore(storage)
    value = word_text(3, 500_000)
    first = store.put(Kind.BLOB, value)
    # Same chunks, another tail: a second blob sharing the damaged chunk.
    second = store.put(Kind.BLOB, value + b" with another ending")
    chunks = store.references(first)
    middle = chunks[len(chunks) // 2]
    assert middle in store.references(second)
    flip(storage, store, middle, at=-10)
    verdicts, _ = StoreScan(store).check_all()
    problems = _problems(verdicts)
    assert set(problems) == {middle, first, second}
    assert problems[middle].object_id == middle  # type: ignore[attr-defined]
    for blob in (first, second):
        assert problems[blob].object_id == blob  # type: ignore[attr-defined]
        assert "chunk" in str(problems[blob]) and middle in str(problems[blob])
    assert all(verdicts[cid] is Kind.CHUNK for cid in chunks if cid != middle)


@pytest.mark.parametrize("shared_bytes", [0, 1 << 30])
@pytest.mark.parametrize("joined_size", [0, 1 << 30])
def test_shared_chunks_and_hashing_paths_give_the_same_verdicts(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, shared_bytes: int, joined_size: int
) -> None:
    # Kept or decoded again, hashed joined or streamed: same verdicts, damage found either way.
    monkeypatch.setattr(scan, "SHARED_CHUNK_BYTES", shared_bytes)
    monkeypatch.setattr(scan, "JOINED_HASH_SIZE", joined_size)
    store = ObjectStore(storage)
    value = word_text(10, 400_000)
    blobs = [store.put(Kind.BLOB, value + f" ending {n}".encode()) for n in range(3)]
    chunks = store.references(blobs[0])
    assert all(store.references(blob)[:-1] == chunks[:-1] for blob in blobs)
    verdicts, _ = StoreScan(store).check_all()
    assert not _problems(verdicts) and all(verdicts[blob] is Kind.BLOB for blob in blobs)
    flip(storage, store, chunks[0], at=-6)
    verdicts, _ = StoreScan(store).check_all()
    assert set(_problems(verdicts)) == {chunks[0], *blobs}


def test_a_missing_delta_base_is_reported(storage: Storage) -> None:
    store = ObjectStore(storage)
    base = store.put(Kind.BLOB, word_text(4, 30_000))
    child = store.put(Kind.BLOB, word_text(4, 30_000) + b" more", base=base)
    assert codec.parse_header(store.read_stored(child), child).base == base
    assert store.delete(base)
    verdicts, _ = StoreScan(store).check_all()
    assert base not in verdicts
    error = verdicts[child]
    assert isinstance(error, CorruptObjectError) and error.object_id == child
    assert "delta base" in str(error) and "missing" in str(error) and base in str(error)


def test_a_missing_chunk_is_reported_for_its_blob(storage: Storage) -> None:
    store = ObjectStore(storage)
    blob = store.put(Kind.BLOB, word_text(5, 300_000))
    chunk = store.references(blob)[0]
    assert store.delete(chunk)
    verdicts, _ = StoreScan(store).check_all()
    assert chunk not in verdicts
    error = verdicts[blob]
    assert isinstance(error, CorruptObjectError) and error.object_id == blob
    assert "missing" in str(error) and chunk in str(error)


def test_a_damaged_delta_base_is_blamed(storage: Storage) -> None:
    store = ObjectStore(storage)
    base = store.put(Kind.BLOB, word_text(6, 30_000))
    child = store.put(Kind.BLOB, word_text(6, 30_000) + b" more", base=base)
    flip(storage, store, base, at=-2)
    verdicts, _ = StoreScan(store).check_all()
    problems = _problems(verdicts)
    assert set(problems) == {base, child}
    assert "delta base" in str(problems[child])


def test_read_verified_gives_commits_and_trees_and_their_damage(storage: Storage) -> None:
    store = ObjectStore(storage)
    with store.batch() as batch:
        tree = batch.put(Kind.TREE, b'{"stages":[],"v":1}')
        commit = batch.put(Kind.COMMIT, b'{"v":1,"x":"commit"}')
        hurt = batch.put(Kind.COMMIT, b'{"v":1,"x":"damaged"}')
        blob = batch.put(Kind.BLOB, b"not asked for")
    flip(storage, store, hurt)
    good, bad = StoreScan(store).read_verified({Kind.COMMIT, Kind.TREE})
    assert good == {
        tree: (Kind.TREE, b'{"stages":[],"v":1}'),
        commit: (Kind.COMMIT, b'{"v":1,"x":"commit"}'),
    }
    assert set(bad) == {hurt} and blob not in good


def test_sweep_keeps_live_objects_their_chunks_and_bases(storage: Storage) -> None:
    store = ObjectStore(storage)
    base = store.put(Kind.BLOB, word_text(7, 200_000))
    live = store.put(Kind.BLOB, word_text(7, 200_000) + b" grown", base=base)
    dead = store.put(Kind.BLOB, b"garbage")
    with store.batch() as batch:
        mixed_live = batch.put(Kind.TREE, b"kept")
        mixed_dead = batch.put(Kind.TREE, b"dropped")
    time.sleep(0.05)
    cutoff = time.time() + 1
    dry = StoreScan(store).sweep({live, mixed_live}, cutoff, dry_run=True)
    assert set(dry.candidates) == {dead, mixed_dead}
    assert store.get(dead) == b"garbage"
    done = StoreScan(store).sweep({live, mixed_live}, cutoff)
    assert done.deleted == 2
    fresh = ObjectStore(storage)
    assert not fresh.has(dead) and not fresh.has(mixed_dead)
    assert fresh.get(live).endswith(b" grown")
    assert fresh.get(mixed_live) == b"kept"
    assert fresh.has(base)
    assert all(fresh.has(cid) for cid in fresh.references(live))


def test_sweep_spares_young_objects_and_what_they_need(storage: Storage) -> None:
    store = ObjectStore(storage)
    base = store.put(Kind.BLOB, word_text(8, 30_000))
    made = StoreScan(store)  # made before the next write: the sweep lists the packs again
    time.sleep(1.05)  # coarser than every backend's modification times
    young = store.put(Kind.BLOB, word_text(8, 30_000) + b" young", base=base)
    where = store.locate(young)
    assert where is not None
    young_time = next(info.mtime for info in store.packs() if info.key == where.key)
    result = made.sweep(set(), young_time)
    assert result.deleted == 0 and set(result.candidates) == set()
    assert result.kept_by_grace == 2  # the young delta and the old base it needs
    assert store.get(young).endswith(b" young")
    gone = StoreScan(store).sweep(set(), time.time() + 1)
    assert set(gone.candidates) == {base, young} and gone.deleted == 2


def test_sweep_stops_before_deleting_if_a_live_chunk_list_is_damaged(storage: Storage) -> None:
    store = ObjectStore(storage)
    blob = store.put(Kind.BLOB, word_text(9, 300_000))
    dead = store.put(Kind.BLOB, b"garbage")
    flip(storage, store, blob, at=-4)
    with pytest.raises(CkptError, match="gc stopped before deleting anything"):
        StoreScan(store).sweep({blob}, time.time() + 1)
    assert store.has(dead)
