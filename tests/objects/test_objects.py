"""The object database: ids, the stored form (header + zstd), Tree and Commit encodings.

The decoder is fed arbitrary and damaged bytes: it must raise CorruptObjectError
(a CkptError) and never another exception, and never return wrong data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import random
import struct
from typing import Any

import attrs
import blake3
import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ckpt.errors import (
    CkptError,
    CorruptObjectError,
    InvalidNameError,
    ObjectNotFoundError,
)
from ckpt.objects import codec
from ckpt.objects.ids import CommitId, Kind, ObjectId, check_object_id, object_id
from ckpt.objects.model import (
    ENCODINGS,
    Commit,
    Tree,
    TreeEntry,
    decode_commit,
    encode_commit,
)
from ckpt.objects.store import ObjectStore, object_key
from ckpt.storage.local import LocalStorage
from ckpt.storage.memory import MemoryStorage
from ckpt.values.serialize import canonical_json

#: No deadline and no speed health check: the suite runs on loaded CI machines,
#: where a slow example is not a failure (timings belong in bench/).
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

kinds = st.sampled_from(list(Kind))
payloads = st.binary(max_size=2048) | st.text(max_size=300).map(lambda t: t.encode() * 3)
hex_ids = st.text("0123456789abcdef", min_size=64, max_size=64).map(ObjectId)


def _stored(kind: Kind = Kind.BLOB, data: bytes = b"hello world " * 40) -> tuple[bytes, ObjectId]:
    return codec.encode(kind, data), object_id(kind, data)


# -- ids --------------------------------------------------------------------


def test_known_answer_id() -> None:
    expected = blake3.blake3(b"blob 5\0hello").hexdigest()
    assert object_id(Kind.BLOB, b"hello") == expected
    assert expected == "9db8039d1b509628ad5b125ea89780b69fcde5c272215d690a2e4dc69eac75ad"


def test_id_covers_kind_and_length() -> None:
    assert object_id(Kind.TREE, b"hello") == blake3.blake3(b"tree 5\0hello").hexdigest()
    assert object_id(Kind.COMMIT, b"") == blake3.blake3(b"commit 0\0").hexdigest()
    assert len({object_id(kind, b"hello") for kind in Kind}) == len(Kind)


@relaxed
@given(kinds, payloads)
def test_id_depends_only_on_kind_and_uncompressed_bytes(kind: Kind, data: bytes) -> None:
    oid = object_id(kind, data)
    assert len(oid) == 64
    assert check_object_id(oid) == oid
    stored = {level: codec.encode(kind, data, level=level) for level in (-5, 1, 3, 10, 19)}
    for blob in stored.values():
        assert codec.decode_verified(blob, oid) == (kind, data)
    assert object_id(kind, bytearray(data)) == oid
    assert object_id(kind, memoryview(data)) == oid


def test_compression_level_changes_stored_bytes_but_not_the_id() -> None:
    rnd = random.Random(7)
    words = [b"stage", b"value", b"chapter", b"outline", b"draft", b"cost", b"token"]
    data = b" ".join(rnd.choice(words) + str(rnd.randrange(1000)).encode() for _ in range(20000))
    fast, small = codec.encode(Kind.BLOB, data, level=-5), codec.encode(Kind.BLOB, data, level=19)
    assert fast != small
    oid = object_id(Kind.BLOB, data)
    assert (
        codec.decode_verified(fast, oid) == codec.decode_verified(small, oid) == (Kind.BLOB, data)
    )


@pytest.mark.parametrize(
    "bad", ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61, None, 12]
)
def test_check_object_id_refuses_non_ids(bad: Any) -> None:
    with pytest.raises(InvalidNameError, match="not an object id"):
        check_object_id(bad)


# -- stored form ------------------------------------------------------------


@relaxed
@given(kinds, payloads)
def test_encode_decode_round_trip(kind: Kind, data: bytes) -> None:
    stored = codec.encode(kind, data)
    oid = object_id(kind, data)
    assert stored[:4] == b"CKOB"
    assert codec.read_header(stored, oid) == (kind, len(data))
    assert codec.decode(stored, oid) == (kind, data)
    assert codec.decode_verified(stored, oid) == (kind, data)


def test_header_layout() -> None:
    stored = codec.encode(Kind.TREE, b"abc")
    assert stored[:16] == b"CKOB" + bytes([1, 2]) + b"\0\0" + (3).to_bytes(8, "big")
    assert zstandard.ZstdDecompressor().decompress(stored[16:]) == b"abc"


def test_decode_verified_names_expected_and_actual_hash() -> None:
    stored, oid = _stored()
    other = object_id(Kind.BLOB, b"something else")
    with pytest.raises(CorruptObjectError) as info:
        codec.decode_verified(stored, other)
    assert info.value.object_id == other
    assert info.value.expected == other
    assert info.value.actual == oid
    assert f"object {other} is corrupt: content does not match its id" in str(info.value)
    assert f"expected {other}, found {oid}" in str(info.value)


# -- the decoder fed arbitrary or damaged bytes -----------------------------


def _decode_or_corrupt(stored: bytes, oid: ObjectId) -> tuple[Kind, bytes] | None:
    """decode_verified's result, or None if it raised CorruptObjectError naming ``oid``.

    Any other exception fails the test.
    """
    try:
        result = codec.decode_verified(stored, oid)
    except CorruptObjectError as exc:
        assert exc.object_id == oid
        assert oid in str(exc)
        return None
    return result


@relaxed
@given(st.binary(max_size=512))
@example(b"")
@example(b"CKOB")
@example(b"CKOB\x01\x01\x00\x00" + bytes(8))
@example(b"CKOB\x01\x01\x00\x00" + bytes(7) + b"\x05")
def test_decoder_fed_arbitrary_bytes_raises_only_corrupt_object_error(data: bytes) -> None:
    oid = object_id(Kind.BLOB, b"anything")
    assert _decode_or_corrupt(data, oid) is None
    with contextlib.suppress(CorruptObjectError):
        codec.decode(data, oid)


@relaxed
@given(
    kinds,
    st.integers(0, 3),
    st.integers(0, 2**16 - 1) | st.sampled_from([0, 1, 2, 3]),
    st.integers(0, 2**64 - 1) | st.integers(0, 64),
    st.binary(max_size=256),
)
def test_decoder_fed_a_valid_header_and_garbage(
    kind: Kind, version: int, flags: int, length: int, frame: bytes
) -> None:
    stored = codec.HEADER.pack(codec.MAGIC, version, int(kind), flags, length) + frame
    oid = object_id(kind, b"")
    result = _decode_or_corrupt(stored, oid)
    # Only the one object this id names may come out of it.
    assert result in (None, (kind, b""))


stored_garbage = st.builds(
    lambda kind, version, flags, length, rest: (
        codec.HEADER.pack(codec.MAGIC, version, kind, flags, length) + rest
    ),
    st.sampled_from([1, 2, 3, 4]),
    st.sampled_from([1, 2]),
    st.sampled_from([0, 1, 2, 3]),
    st.integers(0, 300) | st.integers(0, 2**64 - 1),
    st.binary(max_size=300),
) | st.binary(max_size=64)


@relaxed
@given(stored_garbage)
def test_object_store_fed_arbitrary_stored_bytes_raises_only_ckpt_errors(stored: bytes) -> None:
    """Through the store, which also follows chunk lists and delta bases."""
    storage = MemoryStorage()
    objects = ObjectStore(storage)
    oid = object_id(Kind.BLOB, b"the real content")
    storage.put_if_absent(object_key(oid), stored)
    for read in (
        objects.get,
        objects.verify,
        objects.kind_of,
        objects.get_tree,
        objects.get_commit,
    ):
        try:
            read(oid)
        except (CorruptObjectError, ObjectNotFoundError) as exc:
            assert exc.object_id  # names an object: this one, a chunk or a base
        except CkptError as exc:  # pragma: no cover - reported with its class
            raise AssertionError(f"{read.__name__}: {type(exc).__name__}: {exc}") from exc


@relaxed
@given(payloads, st.data())
def test_byte_flips_never_give_wrong_data(data: bytes, draw: st.DataObject) -> None:
    stored, oid = codec.encode(Kind.BLOB, data), object_id(Kind.BLOB, data)
    position = draw.draw(st.integers(0, len(stored) - 1), label="position")
    mask = draw.draw(st.integers(1, 255), label="mask")
    damaged = bytearray(stored)
    damaged[position] ^= mask
    assert _decode_or_corrupt(bytes(damaged), oid) in (None, (Kind.BLOB, data))


def test_every_single_bit_flip_is_caught_or_harmless() -> None:
    data = b"a checkpoint value that is long enough to be compressed " * 8
    stored, oid = codec.encode(Kind.COMMIT, data), object_id(Kind.COMMIT, data)
    caught = 0
    for position in range(len(stored)):
        for bit in range(8):
            damaged = bytearray(stored)
            damaged[position] ^= 1 << bit
            result = _decode_or_corrupt(bytes(damaged), oid)
            assert result in (None, (Kind.COMMIT, data))
            caught += result is None
    # Every flip in the header, and nearly every flip in the frame, is refused.
    assert caught >= len(stored) * 8 * 0.9


@relaxed
@given(payloads, st.data())
def test_truncation_is_refused(data: bytes, draw: st.DataObject) -> None:
    stored, oid = codec.encode(Kind.TREE, data), object_id(Kind.TREE, data)
    cut = draw.draw(st.integers(0, len(stored) - 1), label="cut")
    result = _decode_or_corrupt(stored[:cut], oid)
    # An empty object's frame carries nothing, so only the header is essential then.
    if cut < codec.HEADER_SIZE or data:
        assert result is None


@relaxed
@given(payloads, st.binary(min_size=1, max_size=64))
@example(b"hello", b"\0")
@example(b"", b"\0")
@example(b"", codec.encode(Kind.BLOB, b"")[16:])
@example(b"hello", codec.encode(Kind.BLOB, b"hello")[16:])
def test_appended_garbage_is_refused(data: bytes, garbage: bytes) -> None:
    stored, oid = codec.encode(Kind.BLOB, data), object_id(Kind.BLOB, data)
    assert _decode_or_corrupt(stored + garbage, oid) is None


def _with_header(stored: bytes, **fields: int | bytes) -> bytes:
    magic, version, kind, flags, length = codec.HEADER.unpack_from(stored)
    values = {"magic": magic, "version": version, "kind": kind, "flags": flags, "length": length}
    values.update(fields)
    header = codec.HEADER.pack(
        values["magic"], values["version"], values["kind"], values["flags"], values["length"]
    )
    return header + stored[codec.HEADER_SIZE :]


@pytest.mark.parametrize(
    ("fields", "reason", "expected", "actual"),
    [
        ({"magic": b"CKOA"}, "bad magic", b"CKOB".hex(), b"CKOA".hex()),
        ({"magic": b"\x28\xb5\x2f\xfd"}, "bad magic", b"CKOB".hex(), "28b52ffd"),
        ({"version": 9}, "unknown object format version", "1", "9"),
        ({"version": 0}, "unknown object format version", "1", "0"),
        ({"kind": 0}, "unknown object kind", "1-", "0"),
        ({"kind": 99}, "unknown object kind", "1-", "99"),
        ({"kind": 255}, "unknown object kind", "1-", "255"),
        ({"flags": 1}, "unknown header flags", "0", "0x1"),
        ({"flags": 0x8000}, "unknown header flags", "0", "0x8000"),
        ({"length": 2**64 - 1}, "declared size is implausibly large", "", str(2**64 - 1)),
        ({"length": codec.MAX_OBJECT_SIZE + 1}, "implausibly large", "", ""),
        ({"length": 3}, "uncompressed size differs from the header", "3 bytes", " bytes"),
        ({"length": 10_000}, "uncompressed size differs from the header", "10000 bytes", "480"),
    ],
)
def test_damaged_header_is_refused(
    fields: dict[str, Any], reason: str, expected: str, actual: str
) -> None:
    stored, oid = _stored()
    with pytest.raises(CorruptObjectError) as info:
        codec.decode_verified(_with_header(stored, **fields), oid)
    assert info.value.object_id == oid
    assert reason in info.value.reason
    assert expected in info.value.expected
    assert actual in info.value.actual


def test_wrong_kind_in_header_fails_the_hash() -> None:
    stored, oid = _stored(Kind.BLOB)
    with pytest.raises(CorruptObjectError, match="content does not match its id"):
        codec.decode_verified(_with_header(stored, kind=int(Kind.TREE)), oid)


def test_short_stored_object_is_refused() -> None:
    stored, oid = _stored()
    with pytest.raises(CorruptObjectError, match="shorter than its header") as info:
        codec.decode(stored[:10], oid)
    assert info.value.actual == "10 bytes"


def _bomb(size: int, *, declare_size: bool) -> bytes:
    """A zstd frame of ``size`` zero bytes, compressed piece by piece."""
    out = io.BytesIO()
    compressor = zstandard.ZstdCompressor(level=3)
    chunk = bytes(1 << 20)
    with compressor.stream_writer(out, size=size if declare_size else -1, closefd=False) as writer:
        for _ in range(size // len(chunk)):
            writer.write(chunk)
    return out.getvalue()


@pytest.mark.parametrize("declare_size", [False, True], ids=["no-content-size", "content-size"])
def test_zstd_bomb_is_refused_without_inflating(declare_size: bool) -> None:
    frame = _bomb(100 * (1 << 20), declare_size=declare_size)
    assert len(frame) < 100_000
    stored = codec.HEADER.pack(codec.MAGIC, codec.FORMAT_VERSION, int(Kind.BLOB), 0, 10) + frame
    oid = object_id(Kind.BLOB, bytes(10))
    with pytest.raises(CorruptObjectError) as info:
        codec.decode_verified(stored, oid)
    assert info.value.object_id == oid
    assert "uncompressed size differs from the header" in info.value.reason
    assert info.value.expected == "10 bytes"
    # Refused on the size the frame announces, or by a reader that stopped right
    # past the declared length: either way 100 MB were never inflated.
    assert info.value.actual in ("more than 10 bytes", f"{100 * (1 << 20)} bytes")
    if not declare_size:
        assert info.value.actual == "more than 10 bytes"


def test_frame_smaller_than_declared_is_refused() -> None:
    frame = zstandard.ZstdCompressor().compress(b"short")
    stored = codec.HEADER.pack(codec.MAGIC, codec.FORMAT_VERSION, int(Kind.BLOB), 0, 1000) + frame
    with pytest.raises(CorruptObjectError) as info:
        codec.decode(stored, object_id(Kind.BLOB, b"short"))
    assert info.value.expected == "1000 bytes"
    assert info.value.actual == "5 bytes"


# -- Tree and Commit --------------------------------------------------------

stage_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,20}", fullmatch=True)
tree_entries = st.builds(
    TreeEntry,
    stage_names,
    hex_ids,
    st.text(max_size=40),
    st.integers(0, 2**53),
    st.sampled_from(ENCODINGS),
    st.lists(hex_ids, max_size=3).map(tuple),
)
trees = st.lists(tree_entries, max_size=8, unique_by=lambda entry: entry.name).map(
    lambda entries: Tree(tuple(entries))
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
money = st.floats(min_value=0, max_value=1e9, allow_nan=False)
counts = st.integers(0, 2**53)
commits = st.builds(
    Commit,
    id=st.just(CommitId(ObjectId("0" * 64))),
    tree=hex_ids,
    parents=st.lists(hex_ids.map(CommitId), max_size=2).map(tuple),
    job=stage_names,
    branch=stage_names,
    stage=st.none() | stage_names,
    time=st.datetimes(timezones=st.just(dt.UTC)) | st.datetimes(),
    seq=st.integers(1, 2**40),
    cost=money,
    tokens=counts,
    total_cost=money,
    total_tokens=counts,
    status=st.sampled_from(["active", "completed", "failed", "expired"]),
    message=st.text(max_size=50),
    meta=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)


@relaxed
@given(trees)
def test_tree_round_trip(tree: Tree) -> None:
    data = tree.encode()
    oid = object_id(Kind.TREE, data)
    assert Tree.decode(data, oid) == tree
    assert Tree.decode(data, oid).names == [entry.name for entry in tree]


def test_tree_entries_name_their_files_only_when_they_have_some() -> None:
    blob, first, second = ObjectId("a" * 64), ObjectId("b" * 64), ObjectId("c" * 64)
    plain = Tree((TreeEntry("s", blob, "dict", 7),))
    # Without files, an entry keeps the five elements (and the bytes) it always had.
    assert plain.encode() == b'{"stages":[["s","' + b"a" * 64 + b'","dict",7,"json"]],"v":1}'
    with_files = Tree((TreeEntry("s", blob, "dict", 7, "json", (second, first, second)),))
    assert with_files.entries[0].files == (first, second)
    assert with_files.entries[0].blobs == (blob, first, second)
    decoded = Tree.decode(with_files.encode(), ObjectId("d" * 64))
    assert decoded == with_files and decoded.entries[0].files == (first, second)


@relaxed
@given(trees, st.randoms())
def test_tree_encoding_keeps_stage_order(tree: Tree, rnd: Any) -> None:
    entries = list(tree.entries)
    rnd.shuffle(entries)
    shuffled = Tree(tuple(entries))
    assert (shuffled.encode() == tree.encode()) == (shuffled.names == tree.names)


@relaxed
@given(commits)
def test_commit_round_trip(commit: Commit) -> None:
    data = encode_commit(commit)
    oid = CommitId(object_id(Kind.COMMIT, data))
    decoded = decode_commit(data, oid)
    assert decoded.id == oid
    assert decoded == Commit(**{**_fields(commit), "id": oid})
    assert encode_commit(decoded) == data


def _fields(commit: Commit) -> dict[str, Any]:
    return attrs.asdict(commit, recurse=False)


def test_commit_id_does_not_include_itself() -> None:
    commit = Commit(
        id=CommitId(ObjectId("1" * 64)),
        tree=ObjectId("2" * 64),
        parents=(),
        job="j",
        branch="main",
        stage="s",
        time=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        seq=1,
    )
    other = Commit(**{**_fields(commit), "id": CommitId(ObjectId("3" * 64))})
    assert encode_commit(commit) == encode_commit(other)


@pytest.mark.parametrize("store", ["memory", "local"])
def test_object_store_round_trips_trees_and_commits(store: str, tmp_path: Any) -> None:
    storage = MemoryStorage() if store == "memory" else LocalStorage(tmp_path, durable=False)
    objects = ObjectStore(storage)
    blob = objects.put(Kind.BLOB, b'{"x":1}')
    tree = Tree((TreeEntry("outline", blob, "dict", 7),))
    tree_id = objects.put_tree(tree)
    assert objects.get_tree(tree_id) == tree
    commit = Commit(
        id=CommitId(ObjectId("0" * 64)),
        tree=tree_id,
        parents=(),
        job="novel",
        branch="main",
        stage="outline",
        time=dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
        seq=1,
        cost=0.5,
        tokens=12,
        total_cost=0.5,
        total_tokens=12,
        meta={"model": "x"},
    )
    commit_id = objects.put_commit(commit)
    assert objects.get_commit(commit_id) == Commit(**{**_fields(commit), "id": commit_id})
    assert objects.kind_of(commit_id) is Kind.COMMIT
    assert {stored.id for stored in objects} == {blob, tree_id, commit_id}
    with pytest.raises(CorruptObjectError, match="wrong kind") as info:
        objects.get_commit(CommitId(tree_id))
    assert info.value.expected == "commit"
    assert info.value.actual == "tree"


@pytest.mark.parametrize("store", ["memory", "local"])
def test_object_store_put_is_idempotent(store: str, tmp_path: Any) -> None:
    storage = MemoryStorage() if store == "memory" else LocalStorage(tmp_path, durable=False)
    objects = ObjectStore(storage)
    first = objects.put(Kind.BLOB, b"same")
    values = {info.key: storage.get(info.key) for info in storage.list("")}
    assert objects.put(Kind.BLOB, b"same") == first
    assert ObjectStore(storage).put(Kind.BLOB, b"same") == first
    assert {info.key: storage.get(info.key) for info in storage.list("")} == values
    assert [stored.id for stored in objects] == [first]
    assert objects.get(first, Kind.BLOB) == b"same"
    assert codec.decode_verified(objects.read_stored(first), first) == (Kind.BLOB, b"same")


def test_object_store_missing_object_names_the_id() -> None:
    objects = ObjectStore(MemoryStorage())
    oid = object_id(Kind.BLOB, b"never stored")
    with pytest.raises(ObjectNotFoundError) as info:
        objects.get(oid)
    assert info.value.object_id == oid
    assert str(info.value) == f"object {oid} not found in the store"
    with pytest.raises(InvalidNameError):
        objects.get(ObjectId("../../config"))


def test_object_store_refuses_a_stored_object_that_does_not_match_its_key(tmp_path: Any) -> None:
    storage = LocalStorage(tmp_path, durable=False)
    objects = ObjectStore(storage)
    good = objects.put(Kind.BLOB, b"good")
    other = object_id(Kind.BLOB, b"other")
    # A stored object filed under another id (a misdirected write).
    storage.put_if_absent(object_key(other), objects.read_stored(good))
    with pytest.raises(CorruptObjectError, match="content does not match its id") as info:
        objects.get(other)
    assert info.value.expected == other
    assert info.value.actual == good


# -- Tree.decode / decode_commit fed garbage --------------------------------


def _decode_both(data: bytes) -> None:
    oid = object_id(Kind.TREE, data)
    for decode in (Tree.decode, decode_commit):
        try:
            decode(data, oid)
        except CorruptObjectError as exc:
            assert exc.object_id == oid


@relaxed
@given(st.binary(max_size=300))
@example(b"")
@example(b"[" * 100_000)
@example(b'{"v": 1, "stages": [["a", "' + b"0" * 64 + b'", "t", -1, "json"]]}')
def test_model_decoders_fed_arbitrary_bytes(data: bytes) -> None:
    _decode_both(data)


@relaxed
@given(json_values)
def test_model_decoders_fed_arbitrary_json(value: Any) -> None:
    _decode_both(canonical_json(value))
    if isinstance(value, dict):
        _decode_both(canonical_json({**value, "v": 1}))


ZERO = b"0" * 64


def _valid_commit_doc() -> dict[str, Any]:
    commit = Commit(
        id=CommitId(ObjectId("0" * 64)),
        tree=ObjectId("a" * 64),
        parents=(CommitId(ObjectId("b" * 64)),),
        job="j",
        branch="main",
        stage="s",
        time=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        seq=2,
        cost=1.0,
        tokens=3,
        total_cost=2.0,
        total_tokens=5,
    )
    doc: dict[str, Any] = json.loads(encode_commit(commit))
    return doc


REQUIRED_COMMIT_FIELDS = [
    "v",
    "tree",
    "parents",
    "job",
    "branch",
    "time",
    "seq",
    "cost",
    "tokens",
    "total_cost",
    "total_tokens",
    "status",
    "message",
]


@pytest.mark.parametrize("field", REQUIRED_COMMIT_FIELDS)
def test_commit_without_a_required_field_is_corrupt(field: str) -> None:
    doc = _valid_commit_doc()
    decode_commit(canonical_json(doc), ObjectId("c" * 64))
    del doc[field]
    with pytest.raises(CorruptObjectError) as info:
        decode_commit(canonical_json(doc), ObjectId("c" * 64))
    assert info.value.object_id == "c" * 64


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("v", 2, "unknown commit encoding version"),
        ("tree", "not-an-id", "malformed object id"),
        ("parents", "b" * 64, "parents are not a list"),
        ("parents", ["B" * 64], "malformed object id"),
        ("parents", [None], "malformed object id"),
        ("time", "yesterday", "malformed commit"),
        ("time", 12, "'time' is missing or not a str"),
        ("seq", "2", "'seq' is missing or not a int"),
        ("seq", True, "'seq' is missing or not a int"),
        ("cost", "1.0", "'cost' is missing or not a number"),
        ("cost", False, "'cost' is missing or not a number"),
        ("stage", 5, "stage is not a string"),
        ("meta", [1], "metadata is not an object"),
        ("job", None, "'job' is missing or not a str"),
    ],
)
def test_commit_with_a_malformed_field_is_corrupt(field: str, value: Any, reason: str) -> None:
    doc = _valid_commit_doc()
    doc[field] = value
    with pytest.raises(CorruptObjectError, match=reason):
        decode_commit(canonical_json(doc), ObjectId("c" * 64))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "tree is not valid JSON"),
        (b"\xff\xfe", "tree is not valid JSON"),
        (b"[]", "tree is not a JSON object"),
        (b'{"v":1}', "tree has no stage list"),
        (b'{"v":2,"stages":[]}', "unknown tree encoding version"),
        (b'{"v":1,"stages":[["a"]]}', "malformed tree entry"),
        (b'{"v":1,"stages":["a"]}', "malformed tree entry"),
        (b'{"v":1,"stages":[["a","' + ZERO + b'","t",-1,"json"]]}', "malformed tree entry"),
        (b'{"v":1,"stages":[["a","' + ZERO + b'","t",true,"json"]]}', "malformed tree entry"),
        (b'{"v":1,"stages":[["a","' + ZERO + b'","t",1.5,"json"]]}', "malformed tree entry"),
        (b'{"v":1,"stages":[[1,"' + ZERO + b'","t",1,"json"]]}', "malformed tree entry"),
        (b'{"v":1,"stages":[["a","' + ZERO + b'",null,1,"json"]]}', "malformed tree entry"),
        (b'{"v":1,"stages":[["a","' + ZERO + b'","t",1,"zip"]]}', "malformed tree entry"),
        (b'{"v":1,"stages":[["a","zz","t",1,"json"]]}', "malformed object id"),
        (b'{"v":1,"stages":[["a",null,"t",1,"json"]]}', "malformed object id"),
        (b'{"v":1,"stages":[["a","' + ZERO + b'","t",1,"json",[]]]}', "malformed tree entry"),
        (b'{"v":1,"stages":[["a","' + ZERO + b'","t",1,"json","x"]]}', "malformed tree entry"),
        (b'{"v":1,"stages":[["a","' + ZERO + b'","t",1,"json",["x"]]]}', "malformed object id"),
        (b'{"v":1,"stages":{}}', "tree has no stage list"),
    ],
)
def test_garbled_tree_is_corrupt(data: bytes, reason: str) -> None:
    oid = ObjectId("d" * 64)
    with pytest.raises(CorruptObjectError, match=reason) as info:
        Tree.decode(data, oid)
    assert info.value.object_id == oid
    assert isinstance(info.value, CkptError)


def test_header_struct_is_sixteen_bytes() -> None:
    assert codec.HEADER_SIZE == 16 == struct.calcsize(">4sBBHQ")
