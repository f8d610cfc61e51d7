"""Stages: named functions a pipeline runs in order, typed from their annotations.

A stage is a plain or ``async`` function.  Its parameters say what it
needs, by name: the job input (``input`` unless the pipeline says
otherwise), the output of an earlier stage (the parameter is named after
that stage), and optionally a :class:`~ckpt.pipeline.runner.StageContext` (a
parameter named ``ctx`` or annotated with it).  Its return annotation is
the type its output is saved and loaded as; ``StageResult[T]`` means "a T,
plus the cost and tokens it took".
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import attrs

from ckpt.errors import CkptError, InvalidNameError
from ckpt.history import names
from ckpt.pipeline.fingerprint import code_digest
from ckpt.values import serialize

T = TypeVar("T")

PARTIAL_SUFFIX = ".partial"
#: Tree entries ``STAGE.item.KEY`` hold the results of a stage's fan-out items.
ITEM_INFIX = ".item."
CONTEXT_PARAM = "ctx"


def is_internal_entry(name: str) -> bool:
    """True for the runner's own tree entries (partial state, fan-out items), not stages."""
    return name.endswith(PARTIAL_SUFFIX) or ITEM_INFIX in name


def item_entry(stage: str, key: str) -> str:
    """The tree entry holding the result of fan-out item ``key`` of ``stage``."""
    return f"{stage}{ITEM_INFIX}{key}"


def item_prefix(stage: str) -> str:
    return f"{stage}{ITEM_INFIX}"


@attrs.frozen
class StageResult(Generic[T]):
    """A stage's output together with what producing it cost.

    Return ``StageResult(value, cost=0.42, tokens=1800)`` from a stage
    annotated ``-> StageResult[Outline]``: ``value`` is saved as an
    ``Outline``, and the commit records the cost and tokens.
    """

    value: T
    cost: float = 0.0
    tokens: int = 0


def split_result(result: Any) -> tuple[Any, float, int]:
    """``(value, cost, tokens)`` of what a stage or fan-out function returned."""
    if isinstance(result, StageResult):
        return result.value, float(result.cost), int(result.tokens)
    return result, 0.0, 0


def output_type_of(fn: Callable[..., Any]) -> Any:
    """The type ``fn``'s results are saved as: its return annotation, ``T`` of
    ``StageResult[T]``; None if it has none (or it cannot be resolved)."""
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        return None
    output = hints.get("return")
    if typing.get_origin(output) is StageResult or output is StageResult:
        args = typing.get_args(output)
        output = args[0] if args else None
    return None if output is Any else output


def as_plain(value: Any, type: Any) -> Any:
    """An unannotated result as it will come back from the store (plain JSON data), so that
    a fresh run and a resumed one hand later code the same form; annotated ones unchanged."""
    if type is not None:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)  # saved raw, loaded as bytes
    return serialize.normalize(value)


@attrs.frozen
class Param:
    """One parameter of a stage function: its name, annotation and whether it has a default."""

    name: str
    annotation: Any = None
    has_default: bool = False


@attrs.frozen
class Stage:
    """A named step of a pipeline.  Build one with :func:`stage` or ``Pipeline.stage``.

    ``partial_every`` / ``partial_interval`` set how often the stage's own
    ``ctx.checkpoint(...)`` calls really save (every N calls, or T seconds
    since the last save); None leaves the pipeline's default.  ``version``
    is the stage's declared version: when given, a change of it (and not of
    the code) makes the stage's checkpoint stale; ``code`` is the digest of
    the function's code used when no version is given.
    """

    name: str
    fn: Callable[..., Any]
    output_type: Any = None
    params: tuple[Param, ...] = ()
    is_async: bool = False
    wants_context: str | None = None
    partial_every: int | None = None
    partial_interval: float | None = None
    version: str | None = None
    code: str = ""

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        partial_every: int | None = None,
        partial_interval: float | None = None,
        version: str | int | None = None,
    ) -> Stage:
        """Describe ``fn`` as a stage; raise CkptError if its annotations cannot be resolved."""
        stage_name = name if name is not None else getattr(fn, "__name__", None)
        if not isinstance(stage_name, str) or stage_name == "<lambda>":
            raise InvalidNameError("a stage needs a name: pass name= for lambdas and callables")
        names.stage_name(stage_name)
        if is_internal_entry(stage_name):
            raise InvalidNameError(
                f"stage name {stage_name!r} must not end in {PARTIAL_SUFFIX!r} nor contain "
                f"{ITEM_INFIX!r} (reserved for checkpoints inside a stage)"
            )
        if version is not None and not isinstance(version, (str, int)):
            raise CkptError(f"stage {stage_name!r}: version must be a string or an integer")
        if partial_every is not None and partial_every < 1:
            raise CkptError(f"stage {stage_name!r}: partial_every must be at least 1")
        try:
            hints = typing.get_type_hints(fn)
        except (NameError, TypeError) as exc:
            raise CkptError(
                f"stage {stage_name!r}: cannot resolve its annotations ({exc}); define the "
                "types at module level"
            ) from exc
        output = hints.get("return")
        if typing.get_origin(output) is StageResult or output is StageResult:
            args = typing.get_args(output)
            output = args[0] if args else None
        if output is Any:
            output = None
        params: list[Param] = []
        context: str | None = None
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise CkptError(f"stage {stage_name!r}: *args and **kwargs are not supported")
            annotation = hints.get(param.name)
            if param.name == CONTEXT_PARAM or _is_context(annotation):
                context = param.name
                continue
            params.append(Param(param.name, annotation, param.default is not param.empty))
        return cls(
            name=stage_name,
            fn=fn,
            output_type=output,
            params=tuple(params),
            is_async=inspect.iscoroutinefunction(fn),
            wants_context=context,
            partial_every=partial_every,
            partial_interval=partial_interval,
            version=None if version is None else str(version),
            code=code_digest(fn),
        )


def _is_context(annotation: Any) -> bool:
    return getattr(annotation, "__name__", None) == "StageContext" and getattr(
        annotation, "__module__", ""
    ).startswith("ckpt.")


@overload
def stage(fn: Callable[..., Any], /) -> Stage: ...


@overload
def stage(
    *,
    name: str | None = None,
    partial_every: int | None = None,
    partial_interval: float | None = None,
    version: str | int | None = None,
) -> Callable[[Callable[..., Any]], Stage]: ...


def stage(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    partial_every: int | None = None,
    partial_interval: float | None = None,
    version: str | int | None = None,
) -> Stage | Callable[[Callable[..., Any]], Stage]:
    """Make a :class:`Stage` of a function; usable as ``@stage`` or ``@stage(name=...)``."""

    def make(func: Callable[..., Any]) -> Stage:
        return Stage.from_function(
            func,
            name=name,
            partial_every=partial_every,
            partial_interval=partial_interval,
            version=version,
        )

    return make if fn is None else make(fn)


def as_stage(item: Stage | Callable[..., Any] | tuple[str, Callable[..., Any]]) -> Stage:
    """Accept a Stage, a function, or a ``(name, function)`` pair."""
    if isinstance(item, Stage):
        return item
    if isinstance(item, tuple):
        label, fn = item
        return Stage.from_function(fn, name=label)
    if callable(item):
        return Stage.from_function(item)
    raise CkptError(f"not a stage: {item!r}")
