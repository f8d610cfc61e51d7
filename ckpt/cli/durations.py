"""Durations written the way people type them: ``30d``, ``12h``, ``90m``, ``1w``, ``1d12h``.

Units: ``s`` seconds, ``m`` minutes, ``h`` hours, ``d`` days, ``w`` weeks.
A duration is one or more ``NUMBER UNIT`` parts (the number may have a
decimal point); the parts add up.  A bare number is refused: ``30`` could
mean seconds or days, and guessing wrong deletes data.
"""

from __future__ import annotations

import datetime as dt
import re

from ckpt.errors import CkptError

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+\Z")


class InvalidDurationError(CkptError, ValueError):
    """A duration string is not of the form ``30d``, ``12h``, ``90m``, ``1w``."""


def parse_duration(text: str) -> dt.timedelta:
    """The timedelta ``text`` names; raises InvalidDurationError saying the accepted form."""
    cleaned = text.strip().lower().replace(" ", "") if isinstance(text, str) else ""
    if not cleaned or not _WHOLE.match(cleaned):
        raise InvalidDurationError(
            f"invalid duration {text!r}: use a number and a unit, "
            "like 30d, 12h, 90m, 45s or 1w (parts may combine: 1d12h)"
        )
    seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(cleaned))
    try:
        return dt.timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidDurationError(f"duration {text!r} is too long") from None


def format_duration(delta: dt.timedelta) -> str:
    """The shortest ``1d12h``-style text for ``delta`` (whole seconds; ``0s`` for zero).

    ``parse_duration(format_duration(d))`` gives ``d`` back for any
    non-negative whole-second duration.
    """
    total = int(delta.total_seconds())
    if total < 0:
        raise InvalidDurationError(f"negative duration {delta!r}")
    if total == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        count, total = divmod(total, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
