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

from typing import TYPE_CHECKING

import attrs

from ckpt.errors import CkptError, InvalidRevisionError, NotFoundError
from ckpt.history.refs import HEADS, TAGS
from ckpt.objects.ids import ID_HEX_LENGTH, CommitId, ObjectId, is_id_prefix
from ckpt.objects.model import Commit

if TYPE_CHECKING:
    from ckpt.history.job import Job

_DIGITS = frozenset("0123456789")
MIN_PREFIX = 6
#: The longest revision string accepted (a name of 255 bytes and many a ``~N``).
MAX_REVISION = 1024


@attrs.frozen
class Revision:
    base: str
    back: int


def parse_revision(text: object) -> Revision:
    """Split a revision into its base name and how many first parents to walk back.

    One pass from the end, so the time is linear in the length, which is at
    most :data:`MAX_REVISION` characters.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidRevisionError(f"invalid revision {text!r}")
    if len(text) > MAX_REVISION:
        raise InvalidRevisionError(
            f"invalid revision {text[:20]!r}...: {len(text)} characters is too long "
            f"(at most {MAX_REVISION})"
        )
    rest = text.strip()
    back = 0
    end = len(rest)
    while end > 0:
        last = rest[end - 1]
        if last in "^~":
            back += 1
            end -= 1
            continue
        start = end
        while start > 0 and rest[start - 1] in _DIGITS:
            start -= 1
        if start == end or start == 0 or rest[start - 1] != "~":
            break  # the end of the base name
        if end - start > 9:
            raise InvalidRevisionError(
                f"invalid revision {text!r}: ~{rest[start:end]} is too far back"
            )
        back += int(rest[start:end])
        end = start - 1
    if end == 0:
        raise InvalidRevisionError(f"invalid revision {text!r}")
    return Revision(rest[:end], back)


def resolve_revision(job: Job, rev: str | None = None) -> Commit:
    """The commit ``rev`` names in ``job`` (HEAD when None)."""
    parsed = parse_revision("HEAD" if rev is None else rev)
    commit = _resolve_base(job, parsed.base)
    for _ in range(parsed.back):
        if commit.parent is None:
            raise InvalidRevisionError(
                f"job {job.name!r}: {rev!r} goes back past the first checkpoint "
                f"({commit.seq} in this history)"
            )
        commit = job.repo.objects.get_commit(commit.parent)
    return commit


def _resolve_base(job: Job, base: str) -> Commit:
    objects = job.repo.objects
    if base == "HEAD":
        head = job.head
        if head is None:
            if not job.exists:
                raise NotFoundError(f"job {job.name!r} not found (no checkpoints saved)")
            raise InvalidRevisionError(
                f"job {job.name!r}: branch {job.branch_name} has no checkpoints yet"
            )
        return head
    if not job.exists:
        raise NotFoundError(f"job {job.name!r} not found (no checkpoints saved)")
    for ref in (HEADS + base, TAGS + base):
        try:
            oid = job.refs.read(ref)
        except ValueError:
            oid = None
        if oid is not None:
            return objects.get_commit(oid)
    if len(base) == ID_HEX_LENGTH and is_id_prefix(base) and objects.has(ObjectId(base)):
        # A full id needs no search, and works when history is damaged.
        return objects.get_commit(ObjectId(base))
    try:
        head = job.head
        if head is not None:
            for commit in job.walk(head.id):
                if commit.stage == base:
                    return commit
    except CkptError:
        pass  # damaged history: fall back to ids known from refs and the reflog
    if len(base) >= MIN_PREFIX and is_id_prefix(base):
        matches = sorted({c for c in known_commits(job) if c.startswith(base)})
        if len(matches) == 1:
            return objects.get_commit(matches[0])
        if len(matches) > 1:
            shown = ", ".join(m[:12] for m in matches[:5])
            raise InvalidRevisionError(
                f"job {job.name!r}: commit prefix {base!r} is ambiguous "
                f"({len(matches)} matches: {shown}); give more digits"
            )
    raise InvalidRevisionError(
        f"job {job.name!r} has no revision {base!r} (not a branch, tag, stage or commit "
        "id); see `ckpt log " + job.name + "`"
    )


def known_commits(job: Job) -> set[CommitId]:
    """Every commit reachable from this job's refs, reflog and the checkpoints retention kept."""
    record = job.record
    cut = record.cut
    starts: set[CommitId] = {oid for oid in job.refs.all_refs().values() if oid}
    starts.update(record.kept_below.values())
    for entry in job.refs.reflog():
        starts.update(oid for oid in (entry.old, entry.new) if oid)
    seen: set[CommitId] = set()
    stack = list(starts)
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        try:
            commit = job.repo.objects.get_commit(oid)
        except CkptError:
            continue
        if oid not in cut:
            stack.extend(commit.parents)
    return seen
