"""The serializer of :class:`~ckpt.integrations.langgraph.CkptSaver`: LangGraph's format,
read back without running code named in the store.

LangGraph's ``JsonPlusSerializer`` writes a value that msgpack cannot hold as
such (a message, a dataclass, a pydantic model, a ``Send``) as its type's
module and name plus the arguments to build it with.  Its reader, by default,
imports whatever module a stored value names and calls what it finds there:
a store written by someone else can run code on the reader's machine
(``("os", "system", "rm -rf ~")`` is a valid stored value).

:class:`AllowListSerializer` writes exactly what ``JsonPlusSerializer`` writes
and reads it back building only

* the types LangGraph itself stores and LangChain's messages and documents
  (:data:`SAFE_TYPES`, which is LangGraph's own list of safe types), and
* the types and modules the user allows: a class (``Plan``), a ``(module,
  name)`` pair (``("myapp.models", "Plan")``), or a module name
  (``"myapp.models"``: the classes *defined* in that module or its
  submodules; a function, or a class that module merely imports, stays
  refused).

Anything else raises :class:`ForbiddenTypeError` naming the type and how to
allow it, before any module named by the value is imported.  Pickles are
never loaded.  LangGraph's older JSON form is read too, with the same rule
(LangChain's own JSON objects: messages only).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias

import ormsgpack

from ckpt.errors import CkptError, SerializationError

try:
    from langgraph.checkpoint.serde import jsonplus
    from langgraph.checkpoint.serde import types as serde_types
    from langgraph.checkpoint.serde.base import SerializerProtocol
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    raise ModuleNotFoundError(
        f"ckpt.integrations.langgraph needs {exc.name}: pip install 'ckpt[langgraph]'",
        name=exc.name,
    ) from exc

__all__ = ["SAFE_TYPES", "AllowListSerializer", "Allowed", "ForbiddenTypeError"]

#: An entry of an allow-list: a class, a ``(module, name)`` pair, or a module name.
Allowed: TypeAlias = type | tuple[str, str] | str


def _langgraph_safe_types() -> frozenset[tuple[str, str]]:
    try:
        from langgraph.checkpoint.serde._msgpack import SAFE_MSGPACK_TYPES
    except ImportError:  # an older langgraph-checkpoint: the list below is the whole of it
        return frozenset()
    return frozenset((t[0], t[1]) for t in SAFE_MSGPACK_TYPES if len(t) == 2)


#: LangChain's message classes (``{kind}Message`` and ``{kind}MessageChunk``) by module.
_MESSAGES: Final = {
    "Base": "base",
    "Human": "human",
    "AI": "ai",
    "System": "system",
    "Chat": "chat",
    "Tool": "tool",
    "Function": "function",
}

#: The types any saver may build: what LangGraph stores itself (``Send``,
#: ``Interrupt``, ``Command``, standard library values such as ``datetime``,
#: ``UUID``, ``Decimal``, ``set``) and LangChain's messages and documents.
SAFE_TYPES: Final[frozenset[tuple[str, str]]] = _langgraph_safe_types() | frozenset(
    {
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("uuid", "UUID"),
        ("decimal", "Decimal"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("collections", "deque"),
        ("pathlib", "Path"),
        ("pathlib", "PosixPath"),
        ("zoneinfo", "ZoneInfo"),
        ("langgraph.types", "Send"),
        ("langgraph.types", "Interrupt"),
        ("langgraph.types", "Command"),
        ("langchain_core.documents.base", "Document"),
        ("langchain_core.messages.modifier", "RemoveMessage"),
        *(
            (f"langchain_core.messages.{module}", f"{kind}Message{chunk}")
            for kind, module in _MESSAGES.items()
            for chunk in ("", "Chunk")
        ),
    }
)

# How JsonPlusSerializer tags what it writes (langgraph.checkpoint.serde.jsonplus).
_SINGLE_ARG = jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG
_POS_ARGS = jsonplus.EXT_CONSTRUCTOR_POS_ARGS
_KW_ARGS = jsonplus.EXT_CONSTRUCTOR_KW_ARGS
_METHOD = jsonplus.EXT_METHOD_SINGLE_ARG
_PYDANTIC_V1 = jsonplus.EXT_PYDANTIC_V1
_PYDANTIC_V2 = jsonplus.EXT_PYDANTIC_V2
_NUMPY = jsonplus.EXT_NUMPY_ARRAY
_DELTA: int | None = getattr(jsonplus, "EXT_DELTA_SNAPSHOT", None)
_DELTA_SNAPSHOT: Callable[[Any], Any] | None = getattr(serde_types, "_DeltaSnapshot", None)
#: The one method call a stored value may ask for (datetime and its subclasses).
_METHODS: Final = frozenset({"fromisoformat"})

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class ForbiddenTypeError(SerializationError):
    """A stored value asks to build something outside the saver's allow-list.

    ``module`` and ``name`` name it (a pickle: ``"pickle"`` and ``""``).
    Nothing named by the value was imported or called.
    """

    def __init__(self, module: str, name: str, detail: str = "") -> None:
        self.module = module
        self.name = name
        what = f"{module}.{name}" if name else module
        msg = detail or (
            f"refused to build {what} from the store: the LangGraph saver builds only "
            "LangGraph's and LangChain's own types and those it is allowed; if it is a class "
            f"of yours, allow it: CkptSaver(..., allow=[({module!r}, {name!r})]), or "
            f"allow=[{module!r}] for the classes that module defines"
        )
        super().__init__(msg)


def _entries(allow: Iterable[Allowed]) -> tuple[dict[tuple[str, str], Any], tuple[str, ...]]:
    """Split an allow-list into exact types (with the class where given) and modules."""
    exact: dict[tuple[str, str], Any] = {}
    modules: list[str] = []
    for entry in allow:
        if isinstance(entry, type):
            exact[entry.__module__, entry.__name__] = entry
        elif isinstance(entry, str) and _MODULE.match(entry):
            modules.append(entry)
        elif (
            isinstance(entry, tuple)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], str)
            and _MODULE.match(entry[0])
            and _NAME.match(entry[1])
        ):
            exact.setdefault((entry[0], entry[1]), None)
        else:
            raise CkptError(
                f"allow: {entry!r} is neither a class, a (module, name) pair nor a module name"
            )
    return exact, tuple(dict.fromkeys(modules))


class AllowListSerializer(SerializerProtocol):
    """LangGraph's serializer, reading back only :data:`SAFE_TYPES` and what ``allow`` names.

    ``allow`` takes classes, ``(module, name)`` pairs and module names (see
    the module docstring).  Safe to share between threads.
    """

    def __init__(self, allow: Iterable[Allowed] = ()) -> None:
        self._allow = tuple(allow)
        exact, self.modules = _entries(self._allow)
        self.types: frozenset[tuple[str, str]] = SAFE_TYPES | frozenset(exact)
        self._known: dict[tuple[str, str], Any] = {k: v for k, v in exact.items() if v}
        self._known_lock = threading.Lock()
        self._writer = jsonplus.JsonPlusSerializer(pickle_fallback=False)
        self._messages: Any = None

    def __repr__(self) -> str:
        return f"AllowListSerializer(allow={list(self._allow)!r})"

    def allowing(self, more: Iterable[Allowed]) -> AllowListSerializer:
        """A serializer that allows what this one does, and ``more``."""
        return AllowListSerializer((*self._allow, *more))

    def with_msgpack_allowlist(self, extra_allowlist: Iterable[Any]) -> AllowListSerializer:
        """LangGraph's name for :meth:`allowing` (used when it derives an allow-list from a
        graph's state schema, with ``LANGGRAPH_STRICT_MSGPACK`` set)."""
        pairs = [tuple(e) if isinstance(e, list) else e for e in extra_allowlist]
        return self.allowing(p for p in pairs if isinstance(p, type) or len(p) == 2)

    # -- the serializer protocol ---------------------------------------------

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return self._writer.dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        kind, payload = data
        if kind == "msgpack":
            return self._unpack_msgpack(payload)
        if kind == "null":
            return None
        if kind == "bytes":
            return payload
        if kind == "bytearray":
            return bytearray(payload)
        if kind == "json":
            try:
                return json.loads(payload, object_hook=self._revive_json)
            except ValueError as exc:
                raise SerializationError(f"a stored value is not valid JSON: {exc}") from None
        if kind == "pickle":
            raise ForbiddenTypeError(
                "pickle",
                "",
                "refused to load a pickle from the store: unpickling runs code the store "
                "chooses, and the LangGraph saver never does it",
            )
        raise SerializationError(f"a stored value has the unknown serialization type {kind!r}")

    # -- building allowed types ----------------------------------------------

    def _module_allowed(self, module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in self.modules)

    def resolve(self, module: Any, name: Any) -> Any:
        """The class (or, for a pair allowed exactly, the callable) ``module.name`` names,
        if allowed; raises ForbiddenTypeError before importing anything otherwise."""
        if not (isinstance(module, str) and isinstance(name, str)):
            raise ForbiddenTypeError(repr(module), repr(name))
        key = (module, name)
        found = self._known.get(key)
        if found is not None:
            return found
        if key in self.types:
            found = getattr(importlib.import_module(module), name, None)
            if found is None:
                raise SerializationError(f"cannot build {module}.{name}: there is no such type")
        elif self._module_allowed(module) and _MODULE.match(module) and _NAME.match(name):
            found = getattr(importlib.import_module(module), name, None)
            if not (isinstance(found, type) and found.__module__ == module):
                raise ForbiddenTypeError(
                    module,
                    name,
                    f"refused to build {module}.{name} from the store: module {module} is "
                    "allowed, but that name is not a class defined there",
                )
        else:
            raise ForbiddenTypeError(module, name)
        if isinstance(found, type) and issubclass(found, BaseException):
            raise ForbiddenTypeError(module, name)
        with self._known_lock:
            self._known[key] = found
        return found

    def _unpack_msgpack(self, payload: bytes) -> Any:
        failures: list[BaseException] = []

        def unpack(data: bytes) -> Any:
            return ormsgpack.unpackb(data, ext_hook=hook, option=ormsgpack.OPT_NON_STR_KEYS)

        def hook(code: int, data: bytes) -> Any:
            try:
                return self._build(code, data, unpack)
            except BaseException as exc:
                # ormsgpack replaces an ext hook's exception by its own ValueError.
                failures.append(exc)
                raise

        try:
            return unpack(payload)
        except ValueError as exc:
            if failures:
                first = failures[0]
                if isinstance(first, CkptError):
                    raise first from None
                raise SerializationError(f"a stored value cannot be read: {first}") from first
            raise SerializationError(f"a stored value is not valid msgpack: {exc}") from None

    def _build(self, code: int, data: bytes, unpack: Callable[[bytes], Any]) -> Any:
        """Decode one msgpack extension as JsonPlusSerializer does, within the allow-list."""
        if code == _DELTA and _DELTA_SNAPSHOT is not None:
            return _DELTA_SNAPSHOT(unpack(data))
        if code == _NUMPY:
            return _numpy_array(unpack(data))
        if code not in (_SINGLE_ARG, _POS_ARGS, _KW_ARGS, _METHOD, _PYDANTIC_V1, _PYDANTIC_V2):
            raise SerializationError(f"a stored value holds an unknown msgpack extension {code}")
        parts = unpack(data)
        if not isinstance(parts, (list, tuple)) or len(parts) < 3:
            raise SerializationError("a stored value holds a garbled msgpack extension")
        module, name, args = parts[0], parts[1], parts[2]
        cls = self.resolve(module, name)
        try:
            if code == _SINGLE_ARG:
                return cls(args)
            if code == _POS_ARGS:
                if (module, name) == ("langgraph.types", "Send"):
                    return cls(*args[:2]) if len(args) <= 2 else cls(args[0], args[1], args[2])
                return cls(*args)
            if code == _KW_ARGS:
                return cls(**args)
            if code == _METHOD:
                method = parts[3] if len(parts) > 3 else None
                if method not in _METHODS or not (
                    isinstance(cls, type) and issubclass(cls, (dt.date, dt.time))
                ):
                    raise ForbiddenTypeError(
                        module,
                        name,
                        f"refused to call {module}.{name}.{method} from the store: the "
                        "LangGraph saver calls only fromisoformat, on date and time types",
                    )
                return getattr(cls, method)(args)
            fallback = "construct" if code == _PYDANTIC_V1 else "model_construct"
            try:
                return cls(**args)
            except Exception:
                return getattr(cls, fallback)(**args)
        except CkptError:
            raise
        except Exception:
            # As LangGraph does: a value whose type no longer accepts its stored
            # arguments reads back as those arguments.
            return args

    def _revive_json(self, value: dict[str, Any]) -> Any:
        """``json.loads`` object hook for LangGraph's older JSON form."""
        ident = value.get("id")
        if not (
            value.get("lc") in (1, 2)
            and value.get("type") == "constructor"
            and isinstance(ident, list)
            and len(ident) >= 2
            and all(isinstance(part, str) for part in ident)
        ):
            return value
        module, name = ".".join(ident[:-1]), ident[-1]
        if value["lc"] == 1:
            return self._langchain_message(value, module, name)
        cls = self.resolve(module, name)
        args, kwargs = value.get("args") or [], value.get("kwargs") or {}
        try:
            return cls(*args, **kwargs)
        except Exception:
            return None  # as LangGraph does

    def _langchain_message(self, value: dict[str, Any], module: str, name: str) -> Any:
        if self._messages is None:
            from langchain_core.load.load import Reviver

            self._messages = Reviver(allowed_objects="messages")
        try:
            return self._messages(value)
        except ValueError:
            raise ForbiddenTypeError(
                module,
                name,
                f"refused to build {module}.{name} from the store: of LangChain's own "
                "objects the LangGraph saver builds messages only",
            ) from None


def _numpy_array(parts: Any) -> Any:
    """A numpy array as JsonPlusSerializer stores it (None if numpy is not installed)."""
    try:
        import numpy  # type: ignore[import-not-found, unused-ignore]

        dtype, shape, order, buffer = parts
        return numpy.frombuffer(buffer, dtype=numpy.dtype(dtype)).reshape(shape, order=order)
    except Exception:
        return None
