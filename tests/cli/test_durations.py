"""Durations like 30d, 12h, 90m, 1w."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckpt.cli.durations import InvalidDurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", dt.timedelta(days=30)),
        ("12h", dt.timedelta(hours=12)),
        ("90m", dt.timedelta(minutes=90)),
        ("45s", dt.timedelta(seconds=45)),
        ("1w", dt.timedelta(weeks=1)),
        ("1d12h", dt.timedelta(days=1, hours=12)),
        ("0.5h", dt.timedelta(minutes=30)),
        (" 2H ", dt.timedelta(hours=2)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_parse(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "1y", "-1d", "1d 2", "one day", "1.d", "1e3s"])
def test_refused(text: str) -> None:
    with pytest.raises(InvalidDurationError) as refused:
        parse_duration(text)
    assert str(refused.value) == (
        f"invalid duration {text!r}: use a number and a unit, like 30d, 12h, 90m, 45s or 1w "
        "(parts may combine: 1d12h)"
    )


def test_too_long() -> None:
    with pytest.raises(InvalidDurationError, match="too long"):
        parse_duration("99999999999w")


def test_format() -> None:
    assert format_duration(dt.timedelta(days=1, hours=12)) == "1d12h"
    assert format_duration(dt.timedelta(weeks=2, seconds=5)) == "2w5s"
    assert format_duration(dt.timedelta(0)) == "0s"
    with pytest.raises(InvalidDurationError):
        format_duration(dt.timedelta(seconds=-1))


@given(st.integers(min_value=0, max_value=10**9))
def test_round_trip(seconds: int) -> None:
    delta = dt.timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta
