"""Validation of names that come from users: jobs, branches, tags and stages.

Names become parts of storage keys (and so of file paths), so they are
untrusted input.  The rules are git's ``check-ref-format`` made stricter: a
name is 1-255 bytes of ASCII letters, digits and ``. _ - @ + =``; it starts
with a letter, digit or ``_``; it holds no ``..``, does not end in ``.``, and
does not end in ``.lock``, ``.log`` or ``.tmp`` (suffixes that storage backends
use for their own files).  Branch and tag names may also use ``/`` between
such components, each at most 200 bytes (a component becomes a file name, to
which backends append a suffix, and file names are limited to 255 bytes).
"""

from __future__ import annotations

import re

from ckpt.errors import InvalidNameError
from ckpt.storage.base import RESERVED_SUFFIXES

MAX_NAME_BYTES = 255
MAX_COMPONENT_BYTES = 200
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+=-]*\Z")
_RESERVED = frozenset({"HEAD", "FETCH_HEAD", "ORIG_HEAD"})


def _describe(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_component(kind: str, name: str, component: str, *, allow_slash: bool) -> None:
    if not _COMPONENT.match(component):
        if allow_slash:
            where = "; '/' may separate parts (as in fix/ending), each part following that rule"
        elif "/" in name:
            where = f"; '/' is allowed only in branch and tag names, not in a {kind} name"
        else:
            where = ""
        raise InvalidNameError(
            f"invalid {kind} name {_describe(name)}: use letters, digits and . _ - @ + = "
            f"(starting with a letter, digit or _){where}"
        )
    if ".." in component or component.endswith((".", *RESERVED_SUFFIXES)):
        raise InvalidNameError(
            f"invalid {kind} name {_describe(name)}: no '..', and no trailing "
            f"'.', {', '.join(repr(s) for s in RESERVED_SUFFIXES)}"
        )


def validate_name(kind: str, name: object, *, allow_slash: bool = False) -> str:
    """Return ``name`` if it is a valid ``kind`` name, else raise InvalidNameError.

    Nothing is created for a refused name: callers validate before any key
    or path is built from it.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"{kind} name must be a string, not {type(name).__name__}")
    if not name:
        raise InvalidNameError(f"{kind} name must not be empty")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidNameError(f"{kind} name is longer than {MAX_NAME_BYTES} bytes")
    components = name.split("/") if allow_slash else [name]
    for component in components:
        if not component:
            raise InvalidNameError(
                f"invalid {kind} name {_describe(name)}: an empty part between '/' "
                "(no leading, trailing or doubled '/')"
            )
        if allow_slash and len(component) > MAX_COMPONENT_BYTES:
            raise InvalidNameError(
                f"invalid {kind} name {_describe(name)}: a part between '/' is longer than "
                f"{MAX_COMPONENT_BYTES} bytes"
            )
        _check_component(kind, name, component, allow_slash=allow_slash)
    if name in _RESERVED:
        raise InvalidNameError(f"{kind} name {name!r} is reserved")
    return name


def job_name(name: object) -> str:
    return validate_name("job", name)


def branch_name(name: object) -> str:
    return validate_name("branch", name, allow_slash=True)


def tag_name(name: object) -> str:
    return validate_name("tag", name, allow_slash=True)


def stage_name(name: object) -> str:
    return validate_name("stage", name)
