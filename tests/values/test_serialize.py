"""The serializer: user values <-> canonical bytes (ckpt.values.serialize).

Round trips with the type given, determinism (equal values give equal
bytes), plain JSON data without a type, and SerializationError (never a
cattrs or other error) for values that cannot be written or bytes that do
not fit the requested type.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import enum
import json
import pathlib
import socket
import subprocess
import sys
import uuid
from typing import Any, Optional

import attrs
import cattrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from ckpt.errors import CkptError, SerializationError
from ckpt.values.serialize import canonical_json, dumps, loads

#: No deadline and no speed health check: the suite runs on loaded CI machines,
#: where a slow example is not a failure (timings belong in bench/).
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- user types -------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Point:
    x: int
    y: float
    label: str = ""


@attrs.define
class Chapter:
    title: str
    words: int
    written: dt.datetime
    draft: bytes
    tags: frozenset[str]
    color: Color


@dataclasses.dataclass(frozen=True)
class Cell:
    row: int
    col: int


@dataclasses.dataclass
class Book:
    id: uuid.UUID
    price: decimal.Decimal
    published: dt.date
    path: pathlib.Path
    chapters: list[Chapter]
    cells: set[Cell]
    by_level: dict[Level, list[Point]]
    note: Optional[str] = None  # noqa: UP045 - the typing spelling is what users write too


# -- strategies: (value strategy, type, hashable) ---------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
fixed_offsets = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59)
    ),
)
naive_datetimes = st.datetimes()
aware_datetimes = st.datetimes(timezones=st.just(dt.UTC) | fixed_offsets)
finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)
path_parts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1, max_size=8
)
paths = st.lists(path_parts, min_size=1, max_size=4).map(lambda parts: pathlib.Path(*parts))

points = st.builds(Point, st.integers(), finite_floats, st.text(max_size=10))
chapters = st.builds(
    Chapter,
    st.text(max_size=20),
    st.integers(min_value=0),
    naive_datetimes | aware_datetimes,
    st.binary(max_size=20),
    st.frozensets(st.text(max_size=5), max_size=4),
    st.sampled_from(Color),
)
cells = st.builds(Cell, st.integers(), st.integers())
books = st.builds(
    Book,
    st.uuids(),
    finite_decimals,
    st.dates(),
    paths,
    st.lists(chapters, max_size=2),
    st.sets(cells, max_size=3),
    st.dictionaries(st.sampled_from(Level), st.lists(points, max_size=2), max_size=2),
    st.none() | st.text(max_size=10),
)

Case = tuple[SearchStrategy[Any], Any, bool]

SCALARS: list[Case] = [
    (st.integers(), int, True),
    (finite_floats, float, True),
    (st.text(), str, True),
    (st.booleans(), bool, True),
    (st.binary(), bytes, True),
    (naive_datetimes, dt.datetime, True),
    (aware_datetimes, dt.datetime, True),
    (st.dates(), dt.date, True),
    (st.times(), dt.time, True),
    (st.timedeltas(), dt.timedelta, True),
    (st.uuids(), uuid.UUID, True),
    (paths, pathlib.Path, True),
    (finite_decimals, decimal.Decimal, True),
    (st.sampled_from(Color), Color, True),
    (st.sampled_from(Level), Level, True),
    (points, Point, True),
    (cells, Cell, True),
    (chapters, Chapter, False),
    (books, Book, False),
]

#: Types usable as mapping keys, and how to draw them.
KEYS: list[tuple[SearchStrategy[Any], Any]] = [
    (st.text(), str),
    (st.integers(), int),
    (finite_floats, float),
    (st.booleans(), bool),
    (st.binary(max_size=8), bytes),
    (st.uuids(), uuid.UUID),
    (st.dates(), dt.date),
    (naive_datetimes, dt.datetime),
    (aware_datetimes, dt.datetime),
    (finite_decimals, decimal.Decimal),
    (paths, pathlib.Path),
    (st.sampled_from(Color), Color),
    (st.sampled_from(Level), Level),
]


def _containers(children: SearchStrategy[Case]) -> SearchStrategy[Case]:
    def as_list(case: Case) -> Case:
        values, kind, _ = case
        return st.lists(values, max_size=4), list[kind], False

    def as_tuple(case: Case) -> Case:
        values, kind, hashable = case
        return st.lists(values, max_size=4).map(tuple), tuple[kind, ...], hashable

    def as_pair(cases: tuple[Case, Case]) -> Case:
        (va, ka, ha), (vb, kb, hb) = cases
        return st.tuples(va, vb), tuple[ka, kb], ha and hb

    def as_set(case: Case) -> Case:
        values, kind, _ = case
        return st.sets(values, max_size=4), set[kind], False

    def as_frozenset(case: Case) -> Case:
        values, kind, _ = case
        return st.frozensets(values, max_size=4), frozenset[kind], True

    def as_dict(pair: tuple[tuple[SearchStrategy[Any], Any], Case]) -> Case:
        (keys, key_type), (values, kind, _) = pair
        return st.dictionaries(keys, values, max_size=4), dict[key_type, kind], False

    hashable = children.filter(lambda case: case[2])
    return st.one_of(
        children.map(as_list),
        children.map(as_tuple),
        st.tuples(children, children).map(as_pair),
        hashable.map(as_set),
        hashable.map(as_frozenset),
        st.tuples(st.sampled_from(KEYS), children).map(as_dict),
    )


cases: SearchStrategy[Case] = st.recursive(st.sampled_from(SCALARS), _containers, max_leaves=4)


# -- round trips ------------------------------------------------------------


@relaxed
@given(st.data())
def test_round_trip_with_type(data: st.DataObject) -> None:
    values, kind, _ = data.draw(cases, label="case")
    value = data.draw(values, label="value")
    stored = dumps(value, as_type=kind)
    back = loads(stored, kind)
    assert back == value
    # Nothing is lost that equality ignores (time zones, Decimal exponents, -0.0):
    assert dumps(back, as_type=kind) == stored


@relaxed
@given(st.data())
def test_round_trip_of_each_scalar_keeps_its_class(data: st.DataObject) -> None:
    values, kind, _ = data.draw(st.sampled_from(SCALARS), label="case")
    value = data.draw(values, label="value")
    back = loads(dumps(value, as_type=kind), kind)
    assert back == value
    assert isinstance(back, kind)


@relaxed
@given(aware_datetimes)
@example(dt.datetime(2000, 1, 1, tzinfo=dt.timezone(dt.timedelta(microseconds=1))))
@example(dt.datetime(2000, 1, 1, tzinfo=dt.timezone(-dt.timedelta(seconds=1, microseconds=5))))
def test_aware_datetime_keeps_its_offset(value: dt.datetime) -> None:
    back = loads(dumps(value), dt.datetime)
    assert back == value
    assert back.utcoffset() == value.utcoffset()


@relaxed
@given(st.times(timezones=st.just(dt.UTC) | fixed_offsets))
@example(dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(microseconds=1))))
def test_aware_time_keeps_its_offset(value: dt.time) -> None:
    back = loads(dumps(value), dt.time)
    assert back == value
    assert back.utcoffset() == value.utcoffset()


@relaxed
@given(naive_datetimes)
def test_naive_datetime_stays_naive(value: dt.datetime) -> None:
    back = loads(dumps(value), dt.datetime)
    assert back == value
    assert back.tzinfo is None


@relaxed
@given(finite_decimals)
def test_decimal_keeps_its_exact_digits(value: decimal.Decimal) -> None:
    back = loads(dumps(value), decimal.Decimal)
    assert str(back) == str(value)


@relaxed
@given(books)
def test_round_trip_without_as_type_uses_the_runtime_class(value: Book) -> None:
    assert loads(dumps(value), Book) == value


def test_known_encodings() -> None:
    assert dumps({"b": 1, "a": [1.5, None, True]}) == b'{"a":[1.5,null,true],"b":1}'
    assert dumps(b"\x00\xff") == b'"AP8="'
    assert dumps(uuid.UUID(int=1)) == b'"00000000-0000-0000-0000-000000000001"'
    assert dumps(dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)) == b'"2024-05-01T12:00:00+00:00"'
    assert dumps(decimal.Decimal("1.10")) == b'"1.10"'
    assert dumps(Color.RED) == b'"red"'
    assert dumps({Level.HIGH: 1}) == b'{"2":1}'
    assert dumps("é") == '"é"'.encode()


# -- mapping keys and sets that used to break -------------------------------


def test_set_of_attrs_instances_round_trips() -> None:
    value = {Point(1, 2.0), Point(0, 1.0, "a")}
    stored = dumps(value, as_type=set[Point])
    assert stored == b'[{"label":"","x":1,"y":2.0},{"label":"a","x":0,"y":1.0}]'
    assert loads(stored, set[Point]) == value
    assert dumps(value) == stored


def test_set_of_frozen_dataclasses_and_tuples_without_type() -> None:
    assert loads(dumps({Cell(1, 2), Cell(0, 0)})) == [{"col": 0, "row": 0}, {"col": 2, "row": 1}]
    assert loads(dumps({(2, "b"), (1, "a")})) == [[1, "a"], [2, "b"]]


def test_bool_keys_round_trip() -> None:
    value = {True: "yes", False: "no"}
    stored = dumps(value, as_type=dict[bool, str])
    assert stored == b'{"false":"no","true":"yes"}'
    assert loads(stored, dict[bool, str]) == value


def test_enum_with_int_values_as_keys_round_trips() -> None:
    value = {Level.LOW: 1.5, Level.HIGH: 2.5}
    assert loads(dumps(value), dict[Level, float]) == value


# -- determinism ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite_floats | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@relaxed
@given(st.dictionaries(st.text(), json_values, max_size=8))
def test_dict_insertion_order_does_not_change_bytes(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert dumps(reordered) == dumps(value)
    assert dumps(reordered, as_type=dict[str, Any]) == dumps(value, as_type=dict[str, Any])


@relaxed
@given(st.lists(st.integers() | st.text(max_size=6), unique=True, max_size=12), st.randoms())
def test_set_order_does_not_change_bytes(items: list[Any], rnd: Any) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert dumps(set(items)) == dumps(set(shuffled))
    assert dumps(frozenset(items)) == dumps(frozenset(reversed(items)))


@relaxed
@given(st.lists(points, unique=True, max_size=6), st.randoms())
def test_set_of_attrs_order_does_not_change_bytes(items: list[Point], rnd: Any) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert dumps(set(items), as_type=set[Point]) == dumps(set(shuffled), as_type=set[Point])


@relaxed
@given(st.data())
def test_equal_values_give_equal_bytes(data: st.DataObject) -> None:
    values, kind, _ = data.draw(cases, label="case")
    value = data.draw(values, label="value")
    copy = loads(dumps(value, as_type=kind), kind)
    assert dumps(copy, as_type=kind) == dumps(value, as_type=kind)


def test_bytes_do_not_depend_on_the_hash_seed() -> None:
    """Sets of strings iterate in an order that depends on PYTHONHASHSEED."""
    program = (
        "import sys; from ckpt.values.serialize import dumps; "
        "sys.stdout.buffer.write(dumps({'s': {'alpha', 'beta', 'gamma', 'delta', 'eps'}, "
        "'f': frozenset({'x1', 'x2', 'x3'})}))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={"PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert outputs == {b'{"f":["x1","x2","x3"],"s":["alpha","beta","delta","eps","gamma"]}'}


# -- without a type: plain JSON data ----------------------------------------


def _is_plain_json(value: object) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_is_plain_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_json(v) for k, v in value.items())
    return False


@relaxed
@given(st.data())
def test_load_without_type_returns_plain_json(data: st.DataObject) -> None:
    values, kind, _ = data.draw(cases, label="case")
    value = data.draw(values, label="value")
    stored = dumps(value, as_type=kind)
    plain = loads(stored)
    assert _is_plain_json(plain)
    assert plain == json.loads(stored)


def test_load_without_type_gives_the_primitive_form() -> None:
    chapter = Chapter(
        title="One",
        words=3,
        written=dt.datetime(2024, 1, 2, 3, 4, 5),
        draft=b"hi",
        tags=frozenset({"b", "a"}),
        color=Color.GREEN,
    )
    assert loads(dumps(chapter)) == {
        "title": "One",
        "words": 3,
        "written": "2024-01-02T03:04:05",
        "draft": "aGk=",
        "tags": ["a", "b"],
        "color": "green",
    }


# -- values that cannot be serialized ---------------------------------------


class _Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "type_text"),
    [
        (object(), "of type object"),
        (lambda: 1, "of type function"),
        (_Opaque(), f"of type {__name__}._Opaque"),
        (complex(1, 2), "of type complex"),
        ({"a": [1, object()]}, "of type object"),
        ({(1, 2): "pair"}, "cannot use a tuple as a mapping key"),
        ({frozenset({1}): "set"}, "cannot use a frozenset as a mapping key"),
        ({1, _Opaque()}, f"of type {__name__}._Opaque"),
        ((x for x in range(3)), "of type generator"),
    ],
    ids=["object", "lambda", "class", "complex", "nested", "tuple-key", "set-key", "in-set", "gen"],
)
def test_unserializable_value_names_the_type(value: object, type_text: str) -> None:
    with pytest.raises(SerializationError) as info:
        dumps(value)
    assert type(info.value) is SerializationError
    assert type_text in str(info.value)


def test_socket_cannot_be_serialized() -> None:
    with socket.socket() as sock, pytest.raises(SerializationError, match=r"socket\.socket"):
        dumps({"conn": sock})


def test_nested_bad_value_names_where_it_is() -> None:
    with pytest.raises(SerializationError, match=r"\$\.a\[1\]: cannot serialize a value of type"):
        dumps({"a": [1, object()]})


def test_tuple_keys_refused_with_type_given() -> None:
    with pytest.raises(SerializationError, match="cannot use a tuple as a mapping key"):
        dumps({(1, 2): 3}, as_type=dict[tuple[int, int], int])


def test_keys_that_collide_are_refused() -> None:
    with pytest.raises(SerializationError, match="two keys both render as '1'"):
        dumps({1: "int", "1": "str"})


def test_serialization_error_is_a_ckpt_error() -> None:
    with pytest.raises(CkptError):
        dumps(object())


# -- stored values that do not fit the requested type -----------------------


@pytest.mark.parametrize(
    ("stored", "kind", "text"),
    [
        (b'{"x": 1}', Point, f"does not fit {__name__}.Point"),
        (b'{"x": "one", "y": 1.0}', Point, "expected int @ $.x"),
        (b'"purple"', Color, f"does not fit {__name__}.Color"),
        (b"7", Level, f"does not fit {__name__}.Level"),
        (b'"not-a-uuid"', uuid.UUID, "does not fit uuid.UUID"),
        (b'"yesterday"', dt.datetime, "does not fit datetime.datetime"),
        (b'"2024-13-01"', dt.date, "does not fit datetime.date"),
        (b'"x"', decimal.Decimal, "does not fit decimal.Decimal"),
        (b'["x"]', list[decimal.Decimal], "does not fit list[decimal.Decimal]"),
        (b'"not base64!"', bytes, "does not fit bytes"),
        (b"[1, 2]", tuple[int, str, int], "does not fit tuple[int, str, int]"),
        (b'{"a": 1}', dict[int, int], "does not fit dict[int, int]"),
        (b"[1, 2, 3]", pathlib.Path, "does not fit pathlib.Path"),
        (b'"maybe"', bool, "does not fit bool"),
        (b"[99999999999, 0, 0]", dt.timedelta, "does not fit datetime.timedelta"),
        (b"1e400", int, "does not fit int"),
        (b"[1, 2]", Book, f"does not fit {__name__}.Book"),
    ],
)
def test_value_that_does_not_fit_raises_serialization_error(
    stored: bytes, kind: Any, text: str
) -> None:
    with pytest.raises(SerializationError) as info:
        loads(stored, kind)
    assert type(info.value) is SerializationError
    assert not isinstance(info.value, cattrs.BaseValidationError)
    assert text in str(info.value)


def test_invalid_json_raises_serialization_error() -> None:
    with pytest.raises(SerializationError, match="not valid JSON"):
        loads(b"{not json")
    with pytest.raises(SerializationError, match="not valid JSON"):
        loads(b"\xff\xfe", int)


LOAD_TYPES: list[Any] = [
    int,
    float,
    str,
    bool,
    bytes,
    dt.datetime,
    dt.date,
    dt.time,
    dt.timedelta,
    uuid.UUID,
    decimal.Decimal,
    pathlib.Path,
    Color,
    Level,
    Point,
    Chapter,
    Book,
    list[int],
    tuple[int, str],
    set[Cell],
    dict[Level, float],
    dict[bool, int],
    Optional[int],  # noqa: UP045
]

hostile_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(["red", "2", "true", "AAAA", "2024-01-01", "1.5", "sNaN", "Infinity"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=3) | st.sampled_from(["x", "y", "title", "row", "col", "id", "price"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=16,
)


@relaxed
@given(st.sampled_from(LOAD_TYPES), hostile_json)
def test_loading_any_json_as_any_type_raises_only_serialization_error(
    kind: Any, value: object
) -> None:
    stored = canonical_json(value)
    with contextlib.suppress(SerializationError):
        loads(stored, kind)


@relaxed
@given(st.sampled_from(LOAD_TYPES), st.binary(max_size=64))
def test_loading_arbitrary_bytes_raises_only_serialization_error(kind: Any, data: bytes) -> None:
    with contextlib.suppress(SerializationError):
        loads(data, kind)
