"""Streamed blobs (ckpt.objects.stream): the same ids and chunks as a value put whole,
constant-memory reads that check every chunk, copies between stores, and a writer
that leaves nothing behind when it is abandoned."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckpt.errors import CorruptObjectError
from ckpt.objects import chunking, codec, pack
from ckpt.objects.ids import Kind, ObjectId, object_id
from ckpt.objects.store import ObjectStore
from ckpt.objects.stream import (
    BlobReader,
    ContentDigest,
    ContentWriter,
    StreamLengthError,
    blob_length,
    compressible,
    encode_raw,
    raw_frame,
    verify_blob,
)
from ckpt.storage import Storage
from ckpt.storage.local import LocalStorage
from tests.objects._helpers import flip, word_text

relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=40)


def _store(path: Path) -> ObjectStore:
    path.mkdir(parents=True, exist_ok=True)
    return ObjectStore(LocalStorage(path))


def _stream(store: ObjectStore, data: bytes, block: int = 1 << 20) -> ObjectId:
    with ContentWriter(store) as writer:
        blob = writer.stream(len(data))
        for at in range(0, len(data), block):
            blob.write(data[at : at + block])
        return blob.finish()


def _patterned(seed: int, size: int) -> bytes:
    """Bytes with repeats and incompressible runs, so that chunking has something to find."""
    rng = random.Random(seed)
    parts = []
    while sum(map(len, parts)) < size:
        kind = rng.random()
        if kind < 0.4:
            parts.append(rng.randbytes(rng.randint(1, 300_000)))
        elif kind < 0.7:
            parts.append(word_text(rng.randint(0, 9), rng.randint(1, 200_000)))
        else:
            parts.append(bytes(rng.randint(1, 200_000)))
    return b"".join(parts)[:size]


@relaxed
@given(
    seed=st.integers(0, 2**32),
    size=st.one_of(st.integers(0, 70_000), st.integers(60_000, 1_500_000)),
    block=st.integers(1, 600_000),
)
def test_a_streamed_blob_is_the_blob_put_whole(
    tmp_path_factory: pytest.TempPathFactory, seed: int, size: int, block: int
) -> None:
    data = _patterned(seed, size)
    root = tmp_path_factory.mktemp("s")
    streamed, whole = _store(root / "a"), _store(root / "b")
    oid = _stream(streamed, data, block)
    assert oid == whole.put(Kind.BLOB, data) == object_id(Kind.BLOB, data)
    # Same chunks: a file and a bytes value of the same content share them.
    assert streamed.references(oid) == whole.references(oid)
    assert streamed.get(oid, Kind.BLOB) == data
    with BlobReader(streamed, oid) as reader:
        assert reader.read() == data
    verify_blob(streamed, oid)
    assert blob_length(streamed, oid) == len(data)


def test_cuts_of_a_stream_are_the_cuts_of_the_whole_value() -> None:
    data = _patterned(7, 3_000_000)
    whole = chunking.cut_points(data)
    cuts, start, pending = [], 0, b""
    for at in range(0, len(data), 100_003):
        buffer = pending + data[at : at + 100_003]
        local = chunking.cut_points(buffer)
        cuts.extend(start + cut for cut in local)
        if local:
            start += local[-1]
            pending = buffer[local[-1] :]
        else:
            pending = buffer
    assert cuts == whole


@pytest.mark.parametrize("size", [1, 100, 128 << 10, (128 << 10) + 1, 300_000])
def test_raw_frames_are_zstd_frames(size: int) -> None:
    data = os.urandom(size)
    frame = raw_frame(data)
    assert zstandard.frame_content_size(frame) == size
    assert zstandard.ZstdDecompressor().decompress(frame) == data
    assert codec.decode_verified(encode_raw(Kind.BLOB, data), object_id(Kind.BLOB, data)) == (
        Kind.BLOB,
        data,
    )


def test_incompressible_chunks_are_stored_raw_and_text_is_compressed(tmp_path: Path) -> None:
    assert not compressible(os.urandom(64 << 10))
    assert compressible(word_text(1, 64 << 10))
    store = _store(tmp_path / "s")
    noise, text = os.urandom(2 << 20), word_text(2, 2 << 20)
    with ContentWriter(store) as writer:
        blob = writer.stream(len(noise))
        blob.write(noise)
        blob.finish()
        noise_bytes = writer.new_bytes
        blob = writer.stream(len(text))
        blob.write(text)
        blob.finish()
        text_bytes = writer.new_bytes - noise_bytes
    assert len(noise) < noise_bytes < len(noise) * 1.01
    assert text_bytes < len(text) / 2


def test_a_stream_reuses_chunks_and_a_small_change_costs_a_few_chunks(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    data = bytearray(os.urandom(16 << 20))
    _stream(store, bytes(data))
    with ContentWriter(store) as writer:
        blob = writer.stream(len(data))
        blob.write(bytes(data))
        blob.finish()
    assert writer.new_objects == 0
    rng = random.Random(3)
    for _ in range(50):  # 1% of the bytes, in 50 places
        at = rng.randrange(len(data) - 4000)
        data[at : at + len(data) // 5000] = os.urandom(len(data) // 5000)
    with ContentWriter(store) as writer:
        blob = writer.stream(len(data))
        blob.write(bytes(data))
        oid = blob.finish()
    assert writer.new_bytes < 0.15 * len(data)
    assert store.get(oid) == bytes(data)


def test_a_stream_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    with ContentWriter(store) as writer:
        blob = writer.stream(10)
        with pytest.raises(StreamLengthError):
            blob.write(b"x" * 11)
        blob.write(b"x" * 5)
        with pytest.raises(StreamLengthError):
            blob.finish()
    digest = ContentDigest().stream(3)
    digest.write(b"abc")
    assert digest.finish() == object_id(Kind.BLOB, b"abc")


def test_an_aborted_writer_removes_the_packs_it_wrote(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    store.put(Kind.BLOB, b"already here")
    before = {info.key for info in store.packs()}
    data = os.urandom(40 << 20)
    with pytest.raises(RuntimeError), ContentWriter(store) as writer:
        blob = writer.stream(len(data) + 1)
        for at in range(0, len(data), 1 << 20):
            blob.write(data[at : at + (1 << 20)])
        # The first full pack was written before the third one was started.
        assert len(store.packs()) > len(before)
        raise RuntimeError("the source changed")
    assert {info.key for info in store.packs()} == before


def test_an_aborted_writer_keeps_a_pack_another_writer_reused(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    data = os.urandom(40 << 20)
    with pytest.raises(RuntimeError), ContentWriter(store) as writer:
        blob = writer.stream(len(data) + 1)
        for at in range(0, len(data), 1 << 20):
            blob.write(data[at : at + (1 << 20)])
        first = store.packs()[-1].key
        store.storage.touch(first)
        os.utime(tmp_path / "s" / first, (1e10, 1e10))  # touched later, by someone else
        raise RuntimeError("interrupted")
    assert [info.key for info in store.packs()] == [first]


def test_copying_a_blob_checks_it_and_writes_only_what_is_missing(
    storage: Storage, tmp_path: Path
) -> None:
    source = _store(tmp_path / "source")
    data = _patterned(11, 3 << 20)
    oid = _stream(source, data)
    dest = ObjectStore(storage)
    half = dest.put(Kind.BLOB, data[: len(data) // 2])
    with ContentWriter(dest) as writer:
        assert writer.copy_blob(source, oid)
        assert not writer.copy_blob(source, oid)
    assert dest.get(oid) == data and dest.get(half) == data[: len(data) // 2]
    assert writer.new_bytes < 0.7 * len(data)  # the first half's chunks were there
    with ContentWriter(dest) as writer:
        assert not writer.copy_blob(source, oid)


def test_a_damaged_chunk_fails_the_copy_and_the_read(tmp_path: Path) -> None:
    source = _store(tmp_path / "source")
    data = os.urandom(1 << 20)
    oid = _stream(source, data)
    chunk = source.references(oid)[3]
    flip(source.storage, source, chunk)
    dest = _store(tmp_path / "dest")
    with pytest.raises(CorruptObjectError, match=chunk), ContentWriter(dest) as writer:
        writer.copy_blob(source, oid)
    assert not dest.has(oid)
    with pytest.raises(CorruptObjectError, match=oid), BlobReader(source, oid) as reader:
        reader.read()
    with pytest.raises(CorruptObjectError):
        verify_blob(source, oid)


def test_a_pack_builder_writes_what_build_writes() -> None:
    entries = [
        (bytes.fromhex(object_id(Kind.CHUNK, piece)), codec.encode(Kind.CHUNK, piece))
        for piece in (b"a" * 100, b"b" * 3000, os.urandom(5000))
    ]
    builder = pack.PackBuilder(10)
    for raw, stored in [*entries, entries[0]]:
        builder.add(raw, [stored[:7], stored[7:]])
    assert builder.finish() == pack.build(entries)
    builder.reset()
    builder.add(*entries[1][:1], [entries[1][1]])
    assert builder.finish() == pack.build(entries[1:2])
