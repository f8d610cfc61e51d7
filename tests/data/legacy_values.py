"""The values saved in ``tests/data/store-v1``: a store written by ckpt 0.1's first encoder.

Every object id in that store must stay what it is: the canonical bytes of
these values (and of the trees and commits naming them) are part of the
format.  The values cover what canonical JSON spells in a particular way
(floats, big integers, non-ASCII and escaped text, lone surrogates, non-string
keys, sets, deep nesting) plus chunked, delta-encoded and raw values.  They
are built deterministically, so ``make_legacy_store.py`` and the test agree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import random
import uuid
from typing import Any

import attrs


class Colour(enum.Enum):
    RED = "red"
    TWO = 2


@attrs.frozen
class Outline:
    title: str
    chapters: list[str]
    weights: dict[str, float]
    created: dt.datetime


@dataclasses.dataclass(frozen=True)
class Shot:
    index: int
    duration: dt.timedelta
    tags: frozenset[str]
    ident: uuid.UUID


FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    0.1 + 0.2,
    1 / 3,
    1e16,
    1e15,
    1e-7,
    1e-5,
    123456789.123,
    1e21,
    1e22,
    1.7976931348623157e308,
    5e-324,
    2.2250738585072014e-308,
    2.5e-5,
    float("nan"),
    float("inf"),
    float("-inf"),
]
INTS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**70), 10**30, -(10**40)]
TEXTS = [
    "plain",
    "",
    "ünïcødé and ß",
    "日本語のテキスト",
    "emoji 😀 and 👩‍👩‍👧",
    "\x00\x01\x08\x0b\x0c\x1f controls",
    'quote " backslash \\ slash / ',
    "tab\tnewline\nreturn\r",
    "line seps \u2028 \u2029 and \x7f del and \u00a0 nbsp",
    "lone surrogate \ud800 here",
    "pair written apart \ud83d\ude00",
    "\ufeff bom and \uffff",
]


def _deep(levels: int) -> Any:
    value: Any = {"leaf": [1, 2.5, "x"]}
    for level in range(levels):
        value = {"level": level, "child": value} if level % 2 else [level, value]
    return value


def _messages(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "délta", "εψιλον", "zeta", "eta", "θ", "iota", "kappa"]
    out = []
    for n in range(count):
        text = " ".join(rng.choices(words, k=rng.randrange(20, 120)))
        out.append(
            {
                "role": "assistant" if n % 2 else "user",
                "n": n,
                "text": text,
                "score": rng.random(),
                "tokens": rng.randrange(1, 10**6),
            }
        )
    return out


def values() -> dict[str, Any]:
    """Name -> value, in the order they are saved."""
    text = " ".join(random.Random(3).choices(["word", "more", "text", "ckpt"], k=30000))
    return {
        "floats": FLOATS,
        "ints": INTS,
        "texts": TEXTS,
        "keys": {
            "z": 1,
            "a": 2,
            "é": 3,
            "A": 4,
            "aa": 5,
            "\u00e9\u0301": 6,
            "😀": 7,
            "": 8,
        },
        "int_keys": {3: "three", 1: "one", -2: "minus two", 10**20: "big"},
        "bool_keys": {True: "yes", False: "no"},
        "float_keys": {0.5: "half", 1.0: "one", float("inf"): "inf"},
        "enum_keys": {Colour.RED: 1, Colour.TWO: 2},
        "sets": {"ints": {5, 3, 1, 10, -7}, "strs": frozenset({"b", "a", "ä", "c"})},
        "tuples": (1, (2, 3), [4, (5,)]),
        "deep": _deep(60),
        "mixed": [None, True, False, 0, 0.0, "", [], {}, [[]], {"": {}}],
        "scalars": {
            "when": dt.datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=dt.UTC),
            "naive": dt.datetime(2020, 1, 2, 3, 4, 5),
            "day": dt.date(1999, 12, 31),
            "clock": dt.time(23, 59, 58, 999),
            "span": dt.timedelta(days=-3, seconds=17, microseconds=5),
            "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "money": decimal.Decimal("-12.3400"),
            "path": pathlib.PurePosixPath("/a/b/c.txt"),
            "colour": Colour.TWO,
            "blob": b"\x00\xffbytes inside json",
        },
        "outline": Outline(
            "A Title",
            ["one", "two", "drei"],
            {"x": 0.25, "y": 1e-9},
            dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        ),
        "shot": Shot(7, dt.timedelta(seconds=1.5), frozenset({"wide", "night"}), uuid.UUID(int=42)),
        "raw_small": b"raw bytes \x00\x01\x02 " * 10,
        "raw_large": random.Random(11).randbytes(100_000),
        "text_large": {"text": text},
        "messages": _messages(400, 5),
    }


#: Stages saved as typed values (type= at save, loaded back with it).
TYPES: dict[str, Any] = {"outline": Outline, "shot": Shot}

#: ``messages`` is saved several times, growing: a delta chain of chunked blobs.
GROWTH = (100, 200, 250, 300, 350, 400)
