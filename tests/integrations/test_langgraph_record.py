"""The record format of the LangGraph saver: round trips, msgpack arrays, seal points."""

from __future__ import annotations

import ormsgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckpt.integrations.langgraph_record import (
    SEAL_AT,
    Array,
    InBlob,
    Inline,
    Record,
    RecordError,
    Slice,
    array_parts,
    decode_record,
    encode_record,
    find_slice,
    seal_point,
)
from ckpt.objects import chunking

names = st.text(min_size=1, max_size=12)
blobs = st.binary(max_size=64)
entries = st.one_of(
    st.builds(Inline, names, blobs),
    st.builds(InBlob, names, names),
    st.builds(Array, blobs, blobs, st.none() | names),
)
values = st.one_of(
    st.builds(Inline, names, blobs),
    st.builds(Slice, names, st.integers(0, 2**40), st.integers(0, 2**20), blobs),
)
records = st.builds(
    Record,
    names,
    blobs,
    st.dictionaries(names, entries, max_size=5),
    st.dictionaries(names, values, max_size=5),
)


@given(records)
def test_a_record_reads_back_as_written(record: Record) -> None:
    data = encode_record(record)
    assert decode_record(data) == record
    assert encode_record(decode_record(data)) == data  # deterministic


@given(st.binary(max_size=200))
def test_garbage_is_refused_with_a_record_error(data: bytes) -> None:
    try:
        found = decode_record(data)
    except RecordError:
        return
    assert isinstance(found, Record)


@pytest.mark.parametrize(
    "doc",
    [
        {"v": 2, "h": ["msgpack", b""], "c": {}},
        {"v": 1, "h": ["msgpack"], "c": {}},
        {"v": 1, "h": ["msgpack", b""], "c": {"x": ["a", b"", b""]}},  # no sealed field
        {"v": 1, "h": ["msgpack", b""], "c": {"x": ["s", "y", 0, 1, b""]}},  # slice as a value
        {"v": 1, "h": ["msgpack", b""], "c": {}, "w": {"k": ["s", "y", -1, 1, b""]}},
        {"v": 1, "h": ["msgpack", b""], "c": {}, "w": {"k": ["a", b"", b"", None]}},
        [1, 2],
    ],
)
def test_a_malformed_record_is_refused(doc: object) -> None:
    with pytest.raises(RecordError):
        decode_record(ormsgpack.packb(doc))


@given(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=40), st.binary())))
def test_array_parts_split_a_msgpack_list_into_its_header_and_elements(items: list[object]) -> None:
    data = ormsgpack.packb(items)
    parts = array_parts(data)
    assert parts is not None
    head, body = parts
    assert head + bytes(body) == data
    # The elements' bytes do not depend on how many there are: a longer list starts alike.
    longer = ormsgpack.packb([*items, "more"])
    more = array_parts(longer)
    assert more is not None and bytes(more[1]).startswith(bytes(body))


@pytest.mark.parametrize("value", [{}, "text", 3, None, b"raw"])
def test_array_parts_of_anything_else_is_none(value: object) -> None:
    assert array_parts(ormsgpack.packb(value)) is None
    assert array_parts(b"") is None


def test_seal_points_are_the_chunkers_cut_points() -> None:
    import random

    rng = random.Random(5)
    body = bytes(rng.getrandbits(8) for _ in range(400_000))
    assert seal_point(body[: SEAL_AT - 1], 0) == 0  # too little to seal
    sealed = 0
    for end in range(SEAL_AT, len(body), 7_000):
        sealed = seal_point(body[:end], sealed)
    cuts = chunking.cut_points(body)
    assert sealed in cuts  # the same cut however the body grew
    # So the sealed prefix is cut where the chunker cuts it: no bytes after its last chunk.
    assert chunking.cut_points(body[:sealed])[-1] == sealed


def test_find_slice_looks_from_the_new_elements_on() -> None:
    body = b"aaaa" + b"bbbb" + b"aaaa"
    assert find_slice(body, b"aaaa", 4) == 8
    assert find_slice(body, b"aaaa", 0) == 0
    assert find_slice(body, b"cc", 0) is None
    assert find_slice(body, b"", 0) is None
