"""Encodings of the object database: chunk lists, delta frames, packs, stored headers.

Round trips and determinism (hypothesis), the decoders fed arbitrary bytes
(they raise CorruptObjectError, nothing else), and ids that never depend on
how an object is stored.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckpt.errors import CorruptObjectError
from ckpt.objects import chunking, codec, delta, pack
from ckpt.objects.ids import Kind, ObjectId, object_id

ids = st.binary(min_size=32, max_size=32).map(lambda raw: ObjectId(raw.hex()))


@given(st.binary(max_size=3 * chunking.MAX_CHUNK))
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_cut_points_cover_the_value_within_size_bounds(data: bytes) -> None:
    cuts = chunking.cut_points(data)
    assert cuts == sorted(set(cuts))
    starts = [0, *cuts]
    for start, end in zip(starts, cuts, strict=False):
        assert chunking.MIN_CHUNK <= end - start <= chunking.MAX_CHUNK
    assert len(data) - (cuts[-1] if cuts else 0) <= chunking.MAX_CHUNK
    assert chunking.cut_points(data) == cuts


def test_cut_points_depend_on_content_not_position() -> None:
    data = os.urandom(1 << 20)
    cuts = set(chunking.cut_points(data))
    shifted = set(chunking.cut_points(os.urandom(1000) + data))
    # After the first few chunks the cut points line up again, 1000 bytes later.
    realigned = {c - 1000 for c in shifted} & cuts
    assert len(realigned) >= len(cuts) - 3


def _reference_cuts(data: bytes) -> list[int]:
    """The cut rule of the chunking module's docstring, applied to every candidate."""
    cuts: list[int] = []
    last = 0
    for candidate in chunking.candidates(data):
        while candidate - last > chunking.MAX_CHUNK:
            last += chunking.MAX_CHUNK
            cuts.append(last)
        if candidate - last >= chunking.MIN_CHUNK:
            cuts.append(candidate)
            last = candidate
    while len(data) - last > chunking.MAX_CHUNK:
        last += chunking.MAX_CHUNK
        cuts.append(last)
    return cuts


def _dense_candidates(rng: random.Random, size: int) -> bytes:
    """Bytes with a candidate every 14 to 40 bytes: a one-bit byte then zero-bit bytes."""
    one = chunking.BIT_TABLE.index(ord("1"))
    zero = chunking.BIT_TABLE.index(ord("0"))
    out = bytearray()
    while len(out) < size:
        out += bytes([one]) + bytes([zero]) * rng.randrange(chunking.WINDOW - 1, 40)
    return bytes(out[:size])


@pytest.mark.parametrize("scan_block", [chunking._SCAN_BLOCK, 40_000, 4096])
def test_cut_points_follow_the_rule_across_scan_blocks(
    scan_block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dense candidates put some exactly MIN_CHUNK after a cut; zeros have none (cuts at
    # MAX_CHUNK); small scan blocks put seams everywhere.
    rng = random.Random(scan_block)
    data = _dense_candidates(rng, 600_000) + os.urandom(400_000) + bytes(300_000)
    data += _dense_candidates(rng, 200_000)
    assert next(chunking.candidates(data), None) is not None
    monkeypatch.setattr(chunking, "_SCAN_BLOCK", scan_block)
    assert chunking.cut_points(data) == _reference_cuts(data)
    assert chunking.cut_points(memoryview(data)[123:]) == _reference_cuts(data[123:])


def test_all_zero_data_is_cut_at_the_maximum() -> None:
    cuts = chunking.cut_points(bytes(5 * chunking.MAX_CHUNK + 7))
    assert cuts == [chunking.MAX_CHUNK * i for i in range(1, 6)]


@given(st.lists(st.tuples(ids, st.integers(1, chunking.MAX_CHUNK)), max_size=20), st.binary())
def test_chunk_list_round_trips(chunks: list[tuple[ObjectId, int]], tail: bytes) -> None:
    payload = chunking.encode_list(chunks, tail)
    length = sum(size for _, size in chunks) + len(tail)
    found, found_tail = chunking.decode_list(payload, length, "x")
    assert found == chunks and bytes(found_tail) == tail
    assert chunking.encode_list(found, found_tail) == payload


@given(st.binary(max_size=300), st.integers(0, 1 << 20))
def test_chunk_list_decoder_refuses_garbage_cleanly(payload: bytes, length: int) -> None:
    try:
        chunking.decode_list(payload, length, "x")
    except CorruptObjectError as exc:
        assert exc.object_id == "x"


@given(st.binary(max_size=5000), st.binary(max_size=5000))
@settings(max_examples=50)
def test_delta_round_trips_and_is_deterministic(base: bytes, data: bytes) -> None:
    frame = delta.compress(data, base)
    assert delta.compress(data, base) == frame
    assert delta.decompress(frame, len(data), base, "x") == data


def test_delta_against_a_similar_base_is_small() -> None:
    base = os.urandom(50_000)
    data = base + b"one more line\n"
    assert len(delta.compress(data, base)) < 200


def test_delta_with_the_wrong_base_is_caught() -> None:
    base = os.urandom(9000)
    data = base[:8000] + b"and a tail"
    frame = delta.compress(data, base)
    with pytest.raises(CorruptObjectError) as caught:
        delta.decompress(frame, len(data), os.urandom(9000), "x")
    assert caught.value.object_id == "x"


entries = st.dictionaries(st.binary(min_size=32, max_size=32), st.binary(max_size=400), max_size=40)


@given(entries)
@settings(max_examples=60)
def test_pack_round_trips(objects: dict[bytes, bytes]) -> None:
    stored = {raw: codec.encode(Kind.BLOB, data) for raw, data in objects.items()}
    data = pack.build(list(stored.items()))
    assert pack.build(sorted(stored.items())) == pack.build(sorted(stored.items()))
    index = pack.PackIndex("p", len(data), data[-min(len(data), pack.TAIL_READ) :])
    read = pack.slicer(data)
    found = {entry.raw_id: data[entry.offset : entry.offset + entry.length] for entry in
             index.entries(read)}  # fmt: skip
    assert found == stored
    for raw in stored:
        entry = index.find(raw, read)
        assert entry is not None and entry.kind == Kind.BLOB
    assert index.find(b"\xff" * 32, read) is None or b"\xff" * 32 in stored


def test_large_pack_index_is_read_in_ranges() -> None:
    items = [(os.urandom(32), codec.encode(Kind.CHUNK, os.urandom(20))) for _ in range(3000)]
    data = pack.build(items)
    reads: list[tuple[int, int]] = []

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return data[offset : offset + length]

    index = pack.PackIndex.load("p", len(data), read)
    assert index.records is None
    for raw, stored in items[:50]:
        entry = index.find(raw, read)
        assert entry is not None
        assert data[entry.offset : entry.offset + entry.length] == stored
    assert max(length for _, length in reads[1:]) < 2000
    assert sum(1 for _ in index.entries(read)) == 3000


@given(st.binary(max_size=2000))
@settings(max_examples=200)
def test_pack_index_refuses_garbage_cleanly(data: bytes) -> None:
    try:
        index = pack.PackIndex("p", len(data), data)
        for _ in index.entries(pack.slicer(data)):
            pass
        index.find(b"\0" * 32, pack.slicer(data))
    except CorruptObjectError as exc:
        assert exc.object_id == "p"


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_header_parser_refuses_garbage_cleanly(data: bytes) -> None:
    for stored in (data, codec.MAGIC + data, codec.MAGIC + b"\x02" + data):
        try:
            header = codec.parse_header(stored, "x")
            codec.decompress_plain(stored, header, "x") if not header.delta else None
        except CorruptObjectError as exc:
            assert exc.object_id == "x"


@given(st.sampled_from(list(Kind)), st.binary(max_size=10_000))
def test_plain_encoding_round_trips_with_stable_ids(kind: Kind, data: bytes) -> None:
    stored = codec.encode_entry(kind, len(data), data)
    oid = object_id(kind, data)
    assert codec.decode_verified(stored, oid) == (kind, data)
    # The id is the hash of the canonical bytes whatever the compression.
    assert codec.decode_verified(codec.encode(kind, data, level=19), oid) == (kind, data)


def test_object_ids_are_stable() -> None:
    # Fixed forever: blake3("<kind> <length>\0" + canonical bytes), also on the
    # multi-threaded path taken for large inputs.
    assert object_id(Kind.BLOB, b"") == (
        "4a0b6603381c7c38c557e9ceb3cba8876f0a7863146e7309801352e80b073b65"
    )
    assert object_id(Kind.TREE, b'{"stages":[],"v":1}') == (
        "70ccca9034a35ef1497fdb46085118d8e345a4874e163c617d5910914d976187"
    )
    assert object_id(Kind.CHUNK, b"abc") == (
        "cd97928fd080765a0b24ed9af21be363108b7e7428d4c646280e561d5d1f8fcb"
    )
    big = bytes(range(256)) * 40_000
    assert object_id(Kind.BLOB, big) == (
        "6216d326a063a70253cdcff1b5a4ea68786a65fe2496c2497785413a7b652d08"
    )
