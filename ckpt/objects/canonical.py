"""Canonical JSON: the deterministic byte form of JSON primitives.

Equal values give equal bytes: UTF-8, object keys sorted, no insignificant
whitespace, floats in Python's shortest round-trip form, sets sorted by their
elements' canonical bytes, non-string mapping keys (ints, enums, UUIDs,
dates...) rendered as strings.  This module imports no third-party code, so
that reading commits and trees stays cheap (``ckpt log`` needs no cattrs).

The walk and ``json.dumps`` below are the reference definition.  Values that
are already plain JSON take a C-speed path (:mod:`ckpt.objects.fastjson`)
that gives the same bytes or declines.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import pathlib
import sys
import uuid
from collections.abc import Callable, Mapping
from typing import Any, get_origin

from ckpt.errors import SerializationError
from ckpt.objects import fastjson

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]

Unstructure = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def type_name(value_type: type[Any]) -> str:
    """A readable name for a type, stored beside a blob for people (never imported)."""
    if get_origin(value_type) is not None:
        return repr(value_type).replace("typing.", "")
    module = getattr(value_type, "__module__", "")
    qualname = getattr(value_type, "__qualname__", repr(value_type))
    return qualname if module in ("builtins", "") else f"{module}.{qualname}"


def _canonical(value: object, path: str, unstructure: Unstructure = _identity) -> object:
    """Check ``value`` is a JSON primitive tree; normalise keys to strings."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{path}[{i}]", unstructure) for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [_canonical(unstructure(item), f"{path}{{}}", unstructure) for item in value]
        return sorted(items, key=_sort_key)
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            text = key_text(key, path)
            if text in out:
                raise SerializationError(f"{path}: two keys both render as {text!r}")
            out[text] = _canonical(item, f"{path}.{text}", unstructure)
        return out
    raise SerializationError(f"{path}: cannot serialize a value of type {type_name(type(value))}")


def _is_decimal(value: object) -> bool:
    # A Decimal exists only once its module is imported: no need to import it here.
    decimal = sys.modules.get("decimal")
    return decimal is not None and isinstance(value, decimal.Decimal)


def key_text(key: object, path: str) -> str:
    """The string a mapping key is written as; SerializationError if it has none."""
    if isinstance(key, str):
        return key
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, (int, float)):
        return json.dumps(key)
    if isinstance(key, (uuid.UUID, pathlib.PurePath)) or _is_decimal(key):
        return str(key)
    if isinstance(key, (dt.date, dt.datetime, dt.time)):
        return key.isoformat()
    raise SerializationError(f"{path}: cannot use a {type_name(type(key))} as a mapping key")


def _encode(value: object) -> bytes:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=True,
    ).encode("utf-8", "surrogatepass")


def _sort_key(value: object) -> bytes:
    return _encode(value)


def reference_json(value: object, unstructure: Unstructure = _identity) -> bytes:
    """Canonical JSON by the reference walk alone (what :func:`canonical_json` must equal)."""
    try:
        return _encode(_canonical(value, "$", unstructure))
    except SerializationError:
        raise
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"cannot encode value: {exc}") from exc


#: How :func:`strict_json` writes the floats JSON has no literal for.
NON_FINITE_TEXT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def strict_json(value: object) -> object:
    """``value`` (JSON primitives) with every NaN, Infinity and -Infinity float replaced by
    the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, as protobuf's JSON mapping
    writes them: what ckpt prints is then valid JSON (RFC 8259 has no such literals),
    while the stored canonical bytes keep the floats themselves."""
    if isinstance(value, float):
        return value if math.isfinite(value) else NON_FINITE_TEXT[repr(value)]
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    return value


def printable_json(value: object, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``value`` as JSON text for people and scripts: non-ASCII kept, non-finite floats
    written as strings (see :func:`strict_json`)."""
    try:
        return json.dumps(
            value, indent=indent, sort_keys=sort_keys, ensure_ascii=False, allow_nan=False
        )
    except ValueError:  # a NaN or an infinity somewhere: the slow path only then
        return json.dumps(
            strict_json(value), indent=indent, sort_keys=sort_keys, ensure_ascii=False
        )


def reference_parse(data: bytes) -> JSONValue:
    """``data`` parsed by ``json`` alone (what :func:`parse_json` must equal)."""
    try:
        result: JSONValue = json.loads(data.decode("utf-8", "surrogatepass"))
        return result
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"stored value is not valid JSON: {exc}") from exc


def canonical_json(value: object, unstructure: Unstructure = _identity) -> bytes:
    """Canonical UTF-8 JSON of a primitive tree: sorted keys, no spaces.

    Sets and frozensets become lists sorted by their elements' canonical bytes
    (each element first passed through ``unstructure``).
    """
    fast = fastjson.dumps(value)
    if fast is not None:
        return fast
    return reference_json(value, unstructure)


def parse_json(data: bytes) -> JSONValue:
    """Parse canonical (or any) JSON bytes into primitives."""
    parsed, result = fastjson.loads(data)
    if parsed:
        return result  # type: ignore[no-any-return]
    return reference_parse(data)
