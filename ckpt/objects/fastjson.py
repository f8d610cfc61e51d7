"""Canonical JSON at C speed: orjson where it provably writes the same bytes.

:mod:`ckpt.objects.canonical` defines canonical JSON by its reference
encoder (a Python walk, then ``json.dumps``).  This module produces the very
same bytes for the values orjson can express identically, many times faster,
and says ``None`` for every other value, which the caller then encodes the
reference way.  Ids therefore never depend on which encoder ran.

:func:`dumps` accepts a value only when all of this holds:

- orjson encodes it with sorted keys without calling ``default``: only
  exact ``dict`` (string keys), ``list``, ``tuple``, ``str``, ``int`` (64
  bits), ``float``, ``bool`` and ``None``, plus enum and UUID values (caught
  below); subclasses, dataclasses, dates, sets, bytes and lone surrogates
  are refused;
- decoding the result gives back a value equal to the input: this rejects
  NaN and infinities (orjson writes ``null``), tuples, enum members and
  UUIDs, whose reference forms differ;
- no float in the result is one that orjson spells differently from
  Python's ``repr``.  The two agree on every finite float except those of
  magnitude below ``1e-4``: Python writes ``1e-05`` and ``1.5e-07`` where
  orjson writes ``0.00001`` and ``1.5e-7``.  A float token starting
  ``0.0000`` or with a one-digit negative exponent makes the value go the
  reference way (text that merely looks like one does too: that costs time,
  never correctness).

:func:`loads` is ``json.loads`` at C speed for canonical bytes: orjson
parses them, and the result counts only if orjson writes it back as exactly
the same bytes (an integer beyond 64 bits, which orjson reads as a float, or
a float spelled the reference way below ``1e-4``, does not come back the same;
``NaN`` and lone surrogates orjson refuses).  Otherwise the caller parses with
``json``.

orjson is imported on first use, so that commands that never encode a
value (``ckpt --help``, ``ckpt log``) do not pay for it.
"""

from __future__ import annotations

from typing import Any

#: Bytes of JSON below which :func:`loads` leaves parsing to ``json`` (no import, no gain).
LOADS_MIN = 2048

#: What stands before a number in compact JSON.
_TOKEN_START = frozenset(b":,[")
_MANTISSA = frozenset(b"0123456789.")
_DIGITS = frozenset(b"0123456789")

_orjson: Any = None
_OPTIONS = 0


def _load() -> Any:
    global _orjson, _OPTIONS
    if _orjson is None:
        import orjson

        _OPTIONS = (
            orjson.OPT_SORT_KEYS
            | orjson.OPT_PASSTHROUGH_DATACLASS
            | orjson.OPT_PASSTHROUGH_DATETIME
            | orjson.OPT_PASSTHROUGH_SUBCLASS
        )
        _orjson = orjson
    return _orjson


class _Refused(Exception):
    pass


def _refuse(value: object) -> object:
    raise _Refused


def _starts_token(out: bytes, at: int) -> bool:
    """True if a number may start at ``at`` (after an optional minus sign)."""
    if at > 0 and out[at - 1] == 0x2D:  # "-"
        at -= 1
    return at == 0 or out[at - 1] in _TOKEN_START


def _odd_float(out: bytes) -> bool:
    """True if ``out`` may hold a float that orjson spells unlike ``repr`` (see above)."""
    at = out.find(b"0.0000")
    while at != -1:
        if _starts_token(out, at):
            return True
        at = out.find(b"0.0000", at + 6)
    size = len(out)
    at = out.find(b"e-")
    while at != -1:
        # A one-digit exponent after a mantissa that starts a token.
        if (
            at + 2 < size
            and out[at + 2] in _DIGITS
            and (at + 3 == size or out[at + 3] not in _DIGITS)
        ):
            start = at
            while start > 0 and out[start - 1] in _MANTISSA:
                start -= 1
            if start < at and _starts_token(out, start):
                return True
        at = out.find(b"e-", at + 2)
    return False


#: The start of the last large output found free of odd floats (all of it but its last
#: :data:`_CLEAN_MARGIN` bytes).  An output that starts with the same bytes (a value that
#: grew at its end, as a checkpointed state does) is scanned only from just before their
#: end: whether a position starts an odd float depends on the bytes before it and on at
#: most 4 after it, so every position further back decides as it did before.
_clean_prefix = b""
_CLEAN_MARGIN = 64
_CLEAN_MIN = 64 << 10
_CLEAN_MAX = 64 << 20


def _odd_float_since_known(out: bytes) -> bool:
    """:func:`_odd_float`, scanning only what follows :data:`_clean_prefix` if ``out``
    starts with it (a float straddling the seam is judged as if it started a token:
    a false alarm costs time, never correctness)."""
    global _clean_prefix
    prefix = _clean_prefix
    if len(prefix) >= _CLEAN_MIN and out.startswith(prefix):
        odd = _odd_float(out[len(prefix) - _CLEAN_MARGIN :])
    else:
        odd = _odd_float(out)
    if not odd and _CLEAN_MIN <= len(out) <= _CLEAN_MAX:
        _clean_prefix = out[: len(out) - _CLEAN_MARGIN]
    return odd


def dumps(value: object) -> bytes | None:
    """Canonical JSON of ``value`` if it is plain JSON that orjson writes identically, else None."""
    orjson = _load()
    try:
        out: bytes = orjson.dumps(value, option=_OPTIONS, default=_refuse)
    except (orjson.JSONEncodeError, _Refused, TypeError, ValueError, RecursionError):
        return None
    if _odd_float_since_known(out):
        return None
    try:
        if orjson.loads(out) != value:
            return None
    except (orjson.JSONDecodeError, RecursionError):
        return None
    return out


def loads(data: bytes) -> tuple[bool, Any]:
    """``(True, value)`` parsed as ``json.loads`` would, or ``(False, None)`` when that needs
    ``json`` itself."""
    if len(data) < LOADS_MIN:
        return False, None
    orjson = _load()
    try:
        value = orjson.loads(data)
        if orjson.dumps(value, option=orjson.OPT_SORT_KEYS) != data:
            return False, None
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError):
        return False, None
    return True, value
