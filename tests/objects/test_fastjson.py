"""The C-speed canonical JSON (ckpt.objects.fastjson) gives the reference encoder's bytes.

Ids are hashes of canonical bytes, so the fast path must write exactly what
the reference walk plus ``json.dumps`` writes, or decline.  hypothesis
compares both over generated values: floats of every magnitude (including
the ones orjson spells differently), NaN and infinities, integers past 64
bits, text with escapes, non-ASCII and lone surrogates, deep nesting.
Parsing is compared the same way.
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ckpt.errors import SerializationError
from ckpt.objects import fastjson
from ckpt.objects.canonical import canonical_json, parse_json, reference_json, reference_parse
from ckpt.values import serialize

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.floats(min_value=-1e20, max_value=1e20),
    st.integers(-(10**17), 10**17).map(lambda n: n / 10 ** (n % 23)),
)
ints = st.one_of(st.integers(), st.integers(-(2**70), 2**70), st.sampled_from([2**63, 2**64]))
# Every code point, lone surrogates included, and text that looks like a number.
texts = st.one_of(
    st.text(st.characters(exclude_categories=())),
    st.from_regex(r"[:,\[]-?(0\.0000[1-9]|[1-9]e-[1-9])", fullmatch=True),
    st.sampled_from(['\\"', "\u2028", "\x7f", "\x00", "😀", "\ud83d", "e-5", ",0.00001"]),
)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(texts, inner, max_size=6),
        st.tuples(inner, inner),
    ),
    max_leaves=40,
)


def _same(a: bytes | None, b: bytes) -> None:
    assert a == b, (a, b)


def _reference_or_error(value: object) -> bytes | type[SerializationError]:
    try:
        return reference_json(value)
    except SerializationError:
        return SerializationError


@given(json_values)
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@example([1e-5, 1.5e-7, 1e-10, 9.999e-5, 1e-4, 1e16, 1e-323, -0.0, 2.5e-05])
@example({"a": [float("nan"), float("inf"), None]})
@example([2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1])
@example({"text": ",1e-5 and :0.00001 and [2e-3"})
@example(("a", ["b"]))
def test_canonical_json_equals_the_reference(value: Any) -> None:
    expected = _reference_or_error(value)
    if expected is SerializationError:
        with pytest.raises(SerializationError):
            canonical_json(value)
        assert fastjson.dumps(value) is None
        return
    assert isinstance(expected, bytes)
    _same(canonical_json(value), expected)
    fast = fastjson.dumps(value)
    assert fast is None or fast == expected


_GROWN_BASE = [{"step": n, "text": "word " * 40, "score": n / 7} for n in range(600)]


@given(st.lists(json_values, min_size=1, max_size=3), st.sampled_from([0, 1, 2, 5, 30]))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@example([[1e-5]], 0)
@example([[1.5e-7, "x"]], 1)
@example([{"z": 2.5e-05}], 2)
def test_a_value_grown_at_its_end_equals_the_reference(added: list[Any], cut: int) -> None:
    """A large value saved again with elements appended (a growing state) is scanned
    for odd floats only past what the previous save's bytes already cleared: whatever
    the new end holds, the bytes are the reference's (or the fast path declines)."""
    base = _GROWN_BASE[: len(_GROWN_BASE) - cut]
    first = fastjson.dumps(base)
    assert first == reference_json(base)  # large and clean: its start is remembered
    grown = [*base, *added]
    expected = _reference_or_error(grown)
    fast = fastjson.dumps(grown)
    if expected is SerializationError:
        assert fast is None
    else:
        assert fast is None or fast == expected


@given(json_values)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@example([2**64, -(2**63) - 1, 10**30, 1e-5, 1.5e-7, "x" * 3000])
def test_parse_json_equals_the_reference(value: Any) -> None:
    try:
        data = reference_json(value)
    except SerializationError:
        return
    # Long documents go the fast way: pad the value past the threshold.
    for doc in (data, reference_json([value, "x" * fastjson.LOADS_MIN])):
        # NaN != NaN: compare what the two parses encode to.
        assert reference_json(parse_json(doc)) == reference_json(reference_parse(doc))


def test_plain_values_take_the_fast_path() -> None:
    value = {
        "messages": [
            {"role": "user", "text": "héllo 😀 " * 50, "n": n, "score": n / 7, "tags": [None, True]}
            for n in range(200)
        ]
    }
    fast = fastjson.dumps(value)
    assert fast is not None
    assert fast == reference_json(value)
    assert fastjson.loads(fast) == (True, json.loads(fast))


class Colour(enum.Enum):
    RED = "red"


class Label(enum.StrEnum):
    A = "a"


class Level(enum.IntEnum):
    HIGH = 3


def test_str_and_int_enums_give_the_reference_bytes() -> None:
    for value in ([Label.A], {"k": Level.HIGH}):
        assert canonical_json(value) == reference_json(value)
        assert serialize.dumps(value) == reference_json(serialize.converter.unstructure(value))


@pytest.mark.parametrize(
    "value",
    [
        [float("nan")],
        {"x": float("-inf")},
        [1e-5],
        [-3.5e-7],
        [2**64],
        [-(2**63) - 1],
        {"k": "\ud800"},
        {1: "int key"},
        (1, 2),
        [Colour.RED],
        [uuid.UUID(int=7)],
        {"s": {1, 2}},
    ],
    ids=repr,
)
def test_values_the_fast_path_declines(value: Any) -> None:
    assert fastjson.dumps(value) is None


def test_deep_nesting_behaves_like_the_reference() -> None:
    for depth in (10, 500, 5000):
        value: Any = []
        for _ in range(depth):
            value = [value]
        try:
            expected = reference_json(value)
        except SerializationError:
            with pytest.raises(SerializationError):
                canonical_json(value)
            continue
        assert canonical_json(value) == expected
        assert reference_json(parse_json(expected)) == expected


@given(json_values)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_serialize_dumps_with_plain_types_equals_cattrs_path(value: Any) -> None:
    try:
        reference = reference_json(
            serialize.converter.unstructure(value), serialize.converter.unstructure
        )
    except SerializationError:
        return
    types: list[Any] = [None, Any]
    if isinstance(value, list):
        types.append(list[Any])
    if isinstance(value, dict):
        types.append(dict[str, Any])
    for as_type in types:
        assert serialize.dumps(value, as_type=as_type) == reference


def test_floats_agree_with_repr_outside_the_declined_range() -> None:
    # The fast path's float rule: orjson and repr agree on every finite float of
    # magnitude 1e-4 or more; below that the fast path declines.
    for exponent in range(-12, 25):
        for mantissa in (1.0, 1.5, 9.999999999999998, 3.141592653589793):
            value = math.copysign(mantissa * 10.0**exponent, -1 if exponent % 2 else 1)
            fast = fastjson.dumps([value])
            assert fast is None or fast == json.dumps([value]).encode()
            if abs(value) >= 1e-4:
                assert fast is not None
