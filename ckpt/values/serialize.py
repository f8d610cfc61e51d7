"""User values <-> canonical bytes, through one cattrs converter.

A value is first *unstructured* by :data:`converter` into JSON primitives
(dict, list, str, int, float, bool, None), then written as canonical JSON:
UTF-8, keys sorted, no whitespace, floats in Python's shortest round-trip
form.  Equal values therefore give equal bytes, which is what makes
content-addressed dedup work.

Types come from the caller: ``structure(data, SomeType)`` rebuilds a value
of ``SomeType``.  No type name read from a store is ever imported, and no
pickle is involved, so loading a store someone else wrote runs none of their
code.

Supported out of the box: attrs classes, dataclasses, enums, ``datetime``,
``date``, ``time``, ``timedelta``, ``UUID``, ``Path``, ``bytes``, ``Decimal``,
``ckpt.File`` and ``ckpt.Directory`` (see :mod:`ckpt.values.files`) and
``dict``/``list``/``tuple``/``set``/``frozenset`` of those.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import pathlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar, get_args, get_origin, is_typeddict

import cattrs
from cattrs.errors import BaseValidationError

from ckpt.errors import SerializationError
from ckpt.objects import fastjson
from ckpt.objects.canonical import JSONValue, key_text, parse_json, type_name
from ckpt.objects.canonical import canonical_json as _canonical_json
from ckpt.values import filehooks, files

T = TypeVar("T")


def _make_converter() -> cattrs.Converter:
    # Sets become lists sorted by their elements' canonical bytes: deterministic,
    # and elements that unstructure to dicts or lists (attrs classes, tuples) fit.
    conv = cattrs.Converter(unstruct_collection_overrides={AbstractSet: _sorted_elements})
    conv.register_unstructure_hook_factory(_is_mapping, lambda cl: _mapping_hook(conv, cl))
    conv.register_structure_hook(bool, lambda v, _: _structure_bool(v))
    conv.register_structure_hook_factory(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum),
        lambda _: _structure_enum,
    )

    conv.register_unstructure_hook(bytes, lambda b: base64.b64encode(b).decode("ascii"))
    conv.register_structure_hook(bytes, lambda v, _: _b64decode(v))
    conv.register_unstructure_hook(bytearray, lambda b: base64.b64encode(b).decode("ascii"))
    conv.register_structure_hook(bytearray, lambda v, _: bytearray(_b64decode(v)))

    conv.register_unstructure_hook(dt.datetime, lambda d: d.isoformat())
    conv.register_structure_hook(dt.datetime, lambda v, _: _parse(dt.datetime, v))
    conv.register_unstructure_hook(dt.date, lambda d: d.isoformat())
    conv.register_structure_hook(dt.date, lambda v, _: _parse(dt.date, v))
    conv.register_unstructure_hook(dt.time, lambda t: t.isoformat())
    conv.register_structure_hook(dt.time, lambda v, _: _parse(dt.time, v))
    conv.register_unstructure_hook(dt.timedelta, lambda d: [d.days, d.seconds, d.microseconds])
    conv.register_structure_hook(dt.timedelta, lambda v, _: dt.timedelta(*_triple(v)))

    conv.register_unstructure_hook(uuid.UUID, str)
    conv.register_structure_hook(uuid.UUID, lambda v, _: uuid.UUID(_expect_str(v)))
    conv.register_unstructure_hook(decimal.Decimal, str)
    conv.register_structure_hook(decimal.Decimal, lambda v, _: _structure_decimal(v))
    conv.register_unstructure_hook(pathlib.PurePath, str)
    for path_type in (
        pathlib.Path,
        pathlib.PurePath,
        pathlib.PurePosixPath,
        pathlib.PosixPath,
        pathlib.PureWindowsPath,
    ):
        conv.register_structure_hook(path_type, lambda v, t: t(_expect_str(v)))
    filehooks.register(conv)
    # A field or value typed ``object`` is unstructured by what it holds, as ``Any``
    # is (a ckpt.File in a ``dict[str, object]``, say), not passed through as is.
    conv.register_unstructure_hook_func(lambda t: t is object, lambda v: _by_class(conv, v))
    return conv


def _by_class(conv: cattrs.Converter, value: object) -> object:
    if type(value) is object:
        return value
    return conv.unstructure(value, unstructure_as=value.__class__)


def _sorted_elements(items: Iterable[object]) -> list[object]:
    return sorted(items, key=canonical_json)


def _is_mapping(value_type: Any) -> bool:
    origin = get_origin(value_type) or value_type
    return isinstance(origin, type) and issubclass(origin, Mapping) and not is_typeddict(origin)


def _mapping_hook(conv: cattrs.Converter, mapping_type: Any) -> Callable[[Any], Any]:
    """Unstructure a mapping, refusing keys that are not scalars (before they turn unhashable)."""
    args = get_args(mapping_type)
    key_hook = conv.get_unstructure_hook(args[0]) if len(args) == 2 else conv.unstructure

    def unstructure_key(key: object, _key_type: object = None) -> object:
        out = key_hook(key)
        if isinstance(out, (list, tuple, dict, set, frozenset)):
            raise SerializationError(f"cannot use a {type_name(type(key))} as a mapping key")
        return out

    return conv.gen_unstructure_mapping(mapping_type, key_handler=unstructure_key)


def _structure_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    # Mapping keys are stored as text: dict[bool, X] keys come back as "true"/"false".
    if value in ("true", "false"):
        return value == "true"
    raise TypeError(f"expected a boolean, got {value!r}")


def _structure_enum(value: object, enum_type: type[enum.Enum]) -> enum.Enum:
    try:
        return enum_type(value)
    except ValueError:
        # Mapping keys are stored as text: an enum with non-string values comes
        # back as the JSON text of its value (see _key_text).
        if isinstance(value, str):
            for member in enum_type:
                if not isinstance(member.value, str) and _key_text_or_none(member.value) == value:
                    return member
        raise


def _key_text_or_none(value: object) -> str | None:
    try:
        return key_text(value, "$")
    except SerializationError:
        return None


def _structure_decimal(value: object) -> decimal.Decimal:
    try:
        return decimal.Decimal(_expect_str(value))
    except decimal.InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None


def _expect_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _b64decode(value: object) -> bytes:
    return base64.b64decode(_expect_str(value), validate=True)


#: A UTC offset with seconds and a fraction, as isoformat() writes it.
_FINE_OFFSET = re.compile(r"([+-])(\d\d):(\d\d):(\d\d)\.(\d{6})\Z")


def _parse(kind: type[Any], value: object) -> Any:
    text = _expect_str(value)
    parsed = kind.fromisoformat(text)
    fine = _FINE_OFFSET.search(text)
    if fine is not None and getattr(parsed, "tzinfo", None) is not None:
        # Python 3.11's fromisoformat reads "+00:00:00.000001" as UTC: rebuild the offset.
        hours, minutes, seconds, micros = (int(part) for part in fine.groups()[1:])
        offset = dt.timedelta(hours=hours, minutes=minutes, seconds=seconds, microseconds=micros)
        parsed = parsed.replace(tzinfo=dt.timezone(-offset if fine[1] == "-" else offset))
    return parsed


def _triple(value: object) -> tuple[int, int, int]:
    if not (isinstance(value, list) and len(value) == 3 and all(type(v) is int for v in value)):
        raise TypeError("expected [days, seconds, microseconds]")
    return value[0], value[1], value[2]


converter: cattrs.Converter = _make_converter()


def canonical_json(value: object) -> bytes:
    """Canonical JSON of ``value``'s primitives (see :mod:`ckpt.objects.canonical`)."""
    return _canonical_json(value, converter.unstructure)


#: Types under which cattrs leaves a plain JSON value as it is.
_PLAIN_TYPES: frozenset[Any] = frozenset({None, Any, object, dict, list, str, int, float, bool})


def _plain_type(as_type: Any) -> bool:
    """True if unstructuring a plain JSON value as ``as_type`` returns it unchanged."""
    if as_type in _PLAIN_TYPES:
        return True
    origin = get_origin(as_type)
    if origin is dict:
        key, item = get_args(as_type) or (str, Any)
        return key is str and _plain_type(item)
    if origin is list:
        return all(_plain_type(arg) for arg in get_args(as_type))
    return False


def dumps(value: object, *, as_type: Any = None) -> bytes:
    """Serialize ``value`` to canonical bytes; raise SerializationError naming the type.

    A value that is plain JSON already (and typed as such, or not at all) skips
    cattrs: :mod:`ckpt.objects.fastjson` writes its canonical bytes directly.
    """
    if _plain_type(as_type):
        fast = fastjson.dumps(value)
        if fast is not None:
            return fast
    try:
        primitive = converter.unstructure(value, unstructure_as=as_type)
    except SerializationError:
        raise
    except (BaseValidationError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise SerializationError(
            f"cannot serialize a value of type {type_name(type(value))}: {exc}"
        ) from exc
    return canonical_json(primitive)


def loads(data: bytes, as_type: type[T] | Any = None) -> Any:
    """Parse canonical bytes; rebuild ``as_type`` if given, else return primitives
    (with any stored ``ckpt.File`` or ``ckpt.Directory`` rebuilt as one)."""
    primitive = parse_json(data)
    if as_type is None:
        if files.MARKER_BYTES in data:
            try:
                return filehooks.revive(primitive)
            except ValueError as exc:  # InvalidNameError: an unsafe stored file name
                raise SerializationError(f"stored value holds a bad file: {exc}") from exc
        return primitive
    return structure(primitive, as_type)


def normalize(value: object) -> Any:
    """``value`` as it comes back from the store untyped (plain JSON data), except that
    any ``ckpt.File`` or ``ckpt.Directory`` is kept as it is (nothing is read or stored)."""
    with filehooks.keeping() as kept:
        primitive = converter.unstructure(value)
    return filehooks.put_back(parse_json(canonical_json(primitive)), kept)


def structure(primitive: object, as_type: type[T] | Any) -> Any:
    """Rebuild a value of ``as_type`` from primitives, with a readable error."""
    try:
        return converter.structure(primitive, as_type)
    except BaseValidationError as exc:
        details = "; ".join(cattrs.transform_error(exc))
        raise SerializationError(
            f"stored value does not fit {type_name(as_type)}: {details}"
        ) from exc
    except (
        TypeError,
        ValueError,
        KeyError,
        AttributeError,
        ArithmeticError,  # OverflowError: an int too large for a timedelta or a float
        RecursionError,
    ) as exc:
        raise SerializationError(f"stored value does not fit {type_name(as_type)}: {exc}") from exc


__all__ = [
    "JSONValue",
    "canonical_json",
    "converter",
    "dumps",
    "loads",
    "normalize",
    "parse_json",
    "structure",
    "type_name",
]
