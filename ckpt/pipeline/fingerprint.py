"""Fingerprints of finished stages, and which stages are stale.

A stage's checkpoint is only valid for what produced it.  With every
finished stage the runner records a :class:`Fingerprint`:

* ``inputs``: the object id (shortened) of each value the stage received;
* ``version``: the stage's declared ``version=``, if any;
* ``code``: a digest of the stage function's code that ignores whitespace,
  comments and the docstring (the syntax tree, not the text);
* ``params``: the names of the parameters through which it received values.

On resume a stage is *stale* when its declared version changed, when its
parameters changed, when it declares no version and its code changed, when
one of its inputs is stale, or when the value of one of its inputs is not
the one it was computed from.  A stage that declares a version is not stale
when only its code changes: the version is the promise.  :func:`find_stale`
decides it; it needs the pipeline's code only for the version, code and
parameter checks, so that ``ckpt status`` can also judge the inputs from
the store alone.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import blake3

#: Hex digits kept of a digest or an object id: enough to tell two versions apart.
DIGEST_HEX = 16
_SKIPPED_FIELDS = frozenset({"ctx", "kind", "type_comment"})


@attrs.frozen
class Fingerprint:
    """What a finished stage was computed from (see the module docstring)."""

    code: str | None = None
    version: str | None = None
    params: tuple[str, ...] = ()
    inputs: Mapping[str, str] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "version": self.version,
            "params": list(self.params),
            "inputs": dict(self.inputs),
        }

    @classmethod
    def from_json(cls, doc: object) -> Fingerprint | None:
        """The fingerprint in ``doc``, or None if it is not one (garbled metadata)."""
        if not isinstance(doc, dict):
            return None
        code, version = doc.get("code"), doc.get("version")
        params, inputs = doc.get("params", []), doc.get("inputs", {})
        if not (code is None or isinstance(code, str)) or not (
            version is None or isinstance(version, str)
        ):
            return None
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return None
        if not isinstance(inputs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()
        ):
            return None
        return cls(code, version, tuple(params), dict(inputs))


@attrs.frozen
class StageShape:
    """The part of a fingerprint that the stage's definition alone decides."""

    name: str
    code: str
    version: str | None
    params: tuple[str, ...]


def short(object_id: str) -> str:
    return object_id[:DIGEST_HEX]


def digest(*parts: str | bytes) -> str:
    """A short blake3 digest of ``parts`` (each length-prefixed, so that no two lists collide)."""
    hasher = blake3.blake3()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        hasher.update(f"{len(data)}:".encode("ascii"))
        hasher.update(data)
    return hasher.hexdigest()[:DIGEST_HEX]


def code_digest(fn: Callable[..., Any]) -> str:
    """A digest of ``fn``'s code that whitespace, comments, docstrings, decorators and the
    function's own name do not change.

    Computed from the syntax tree of its source, written out without line
    numbers and without the fields a newer Python adds empty, so that the
    same code gives the same digest on every Python version that parses it
    alike.  A function without source (defined in a REPL or by ``exec``) is
    fingerprinted by its bytecode instead, which a Python upgrade may change.
    A ``functools.partial`` adds its bound arguments.
    """
    if isinstance(fn, functools.partial):
        bound = repr((fn.args, sorted(fn.keywords.items())))
        return digest("partial", code_digest(fn.func), bound)
    fn = inspect.unwrap(fn)
    node = _function_node(fn)
    if node is not None:
        return digest("ast", _canonical(node))
    code = getattr(fn, "__code__", None)
    if isinstance(code, types.CodeType):
        return digest("bytecode", _code_text(code))
    call = vars(type(fn)).get("__call__")
    if call is not None and not isinstance(fn, type) and callable(call):
        node = _function_node(call)
        if node is not None:
            return digest("ast", type(fn).__qualname__, _canonical(node))
    return digest("name", getattr(fn, "__module__", "") or "", getattr(fn, "__qualname__", ""))


def source_digest(source: str, name: str) -> str | None:
    """The digest :func:`code_digest` gives the function ``name`` defined in ``source`` (the
    first one, however nested); None if ``source`` does not parse or defines no such function.
    ``name`` ``"<lambda>"`` takes the first lambda."""
    node = _definition(textwrap.dedent(source), name)
    return None if node is None else digest("ast", _canonical(node))


def _function_node(fn: Any) -> ast.AST | None:
    """The syntax tree of ``fn``'s definition, stripped of what must not count; None if its
    source cannot be read."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    return _definition(source, getattr(fn, "__name__", ""))


def _definition(source: str, name: str) -> ast.AST | None:
    try:
        module = ast.parse(source)
    except SyntaxError:
        # A lambda in the middle of a line: its source is the whole line, maybe not parsable.
        return None
    for node in ast.walk(module):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            node.decorator_list = []
            node.name = ""
            return node
        if isinstance(node, ast.Lambda) and name == "<lambda>":
            return node
    return None


def _canonical(node: object) -> str:
    """``node`` written out like ``ast.dump`` without attributes, context markers and empty
    fields (so that a field a newer Python adds with an empty default changes nothing), and
    without statements that are a bare constant (docstrings: they do nothing)."""
    if isinstance(node, ast.AST):
        fields = []
        for field in node._fields:
            if field in _SKIPPED_FIELDS:
                continue
            value = getattr(node, field, None)
            if value is None or value == []:
                continue
            fields.append(f"{field}={_canonical(value)}")
        return f"{type(node).__name__}({','.join(fields)})"
    if isinstance(node, list):
        kept = [item for item in node if not _is_inert(item)]
        return "[" + ",".join(_canonical(item) for item in kept) + "]"
    return f"{type(node).__name__}:{node!r}"


def _is_inert(node: object) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


def _code_text(code: types.CodeType) -> str:
    consts = [
        _code_text(const) if isinstance(const, types.CodeType) else repr(const)
        for const in code.co_consts
        if not (const is code.co_consts[0] and isinstance(const, str))  # the docstring
    ]
    return f"{code.co_code.hex()}|{consts}|{code.co_names}|{code.co_varnames}"


# -- which stages are stale ----------------------------------------------------------


def find_stale(
    order: Iterable[str],
    done: Iterable[str],
    recorded: Mapping[str, Fingerprint],
    current_ids: Mapping[str, str],
    shapes: Mapping[str, StageShape] | None = None,
) -> dict[str, str]:
    """The stale stages among ``done``, in ``order``, each with the reason.

    ``recorded`` holds the fingerprint each done stage was saved with (a
    stage without one, saved by an older ckpt, is taken as fresh);
    ``current_ids`` the object id of each value stored now (the input and
    every stage output).  With ``shapes`` (the current definitions) a
    changed version, code or parameter list makes a stage stale too;
    without them only changed or stale inputs are found, as from the store
    alone.  The stages after a stale one that take its output are stale
    because of it.
    """
    finished = set(done)
    stale: dict[str, str] = {}
    for name in order:
        if name not in finished:
            continue
        old = recorded.get(name)
        if old is None:
            continue
        shape = None if shapes is None else shapes.get(name)
        reason = _shape_change(name, old, shape)
        params = old.params if shape is None else shape.params
        if reason is None:
            reason = _input_change(params, old, stale, current_ids)
        if reason is not None:
            stale[name] = reason
    return stale


def _shape_change(name: str, old: Fingerprint, shape: StageShape | None) -> str | None:
    if shape is None:
        return None
    if old.version != shape.version:
        return f"version of {name!r} changed ({old.version!r} -> {shape.version!r})"
    if old.params != shape.params:
        added = [p for p in shape.params if p not in old.params]
        gone = [p for p in old.params if p not in shape.params]
        what = [f"now takes {', '.join(repr(p) for p in added)}"] if added else []
        what += [f"no longer takes {', '.join(repr(p) for p in gone)}"] if gone else []
        return f"parameters of {name!r} changed ({'; '.join(what) or 'reordered'})"
    if shape.version is None and old.code is not None and old.code != shape.code:
        return f"code of {name!r} changed"
    return None


def _input_change(
    params: Iterable[str],
    old: Fingerprint,
    stale: Mapping[str, str],
    current_ids: Mapping[str, str],
) -> str | None:
    for param in params:
        if param in stale:
            return f"input {param!r} is stale"
        now = current_ids.get(param)
        if now is None:
            return f"input {param!r} is not done"
        was = old.inputs.get(param)
        if was is not None and short(now) != was:
            return f"input {param!r} changed"
    return None


__all__ = [
    "Fingerprint",
    "StageShape",
    "code_digest",
    "digest",
    "find_stale",
    "short",
    "source_digest",
]
