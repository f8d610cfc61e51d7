"""Parsing of revision strings: ``HEAD``, ``HEAD~2``, ``main^``, a tag, a stage, an id prefix.

The grammar is git's, reduced to what a job needs::

    rev     := base suffix*
    base    := "HEAD" | branch | tag | stage | commit-id-prefix (>= 6 hex digits)
    suffix  := "~" [N] | "^"

``~N`` walks N first parents (``~`` alone is ``~1``); ``^`` is ``~1``.  A
base is looked up in this order: HEAD, branch, tag, stage name (the newest
commit on the current branch that saved that stage), commit-id prefix.
"""

from __future__ import annotations

import re

import attrs

from ckpt.errors import InvalidRevisionError

_SUFFIX = re.compile(r"(~\d*|\^)\Z")
MIN_PREFIX = 6


@attrs.frozen
class Revision:
    base: str
    back: int


def parse_revision(text: object) -> Revision:
    """Split a revision into its base name and how many first parents to walk back."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRevisionError(f"invalid revision {text!r}")
    rest = text.strip()
    back = 0
    while True:
        match = _SUFFIX.search(rest)
        if not match:
            break
        token = match.group(1)
        if token == "^" or token == "~":
            back += 1
        elif len(token) > 10:
            raise InvalidRevisionError(f"invalid revision {text!r}: {token} is too far back")
        else:
            back += int(token[1:])
        rest = rest[: match.start()]
    if not rest:
        raise InvalidRevisionError(f"invalid revision {text!r}")
    return Revision(rest, back)
