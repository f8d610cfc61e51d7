"""Parsing of revision strings: ``HEAD``, ``HEAD~2``, ``main^``, a tag, a stage, an id prefix.

The grammar is git's, reduced to what a job needs::

    rev     := base suffix*
    base    := "HEAD" | branch | tag | stage | commit-id-prefix (>= 6 hex digits)
             | "branch:" branch | "tag:" tag | "stage:" stage
    suffix  := "~" [N] | "^"

``~N`` walks N first parents (``~`` alone is ``~1``); ``^`` is ``~1``.  A
base is looked up in this order: HEAD, branch, tag, stage name (the newest
commit on the current branch that saved that stage), commit-id prefix.  So a
branch or tag wins over a stage of the same name, everywhere a revision is
read; the lookup then warns (:class:`~ckpt.errors.AmbiguousRevisionWarning`),
as git warns of an ambiguous refname.  ``stage:NAME``, ``branch:NAME`` and
``tag:NAME`` name one kind only, and never warn.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import attrs

from ckpt.errors import (
    AmbiguousRevisionWarning,
    CkptError,
    InvalidRevisionError,
    NotFoundError,
)
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
    cut = job.record.cut if parsed.back else frozenset()
    for step in range(parsed.back):
        if commit.parent is None or commit.id in cut:
            raise InvalidRevisionError(
                _too_far(job, parsed, rev or "HEAD", step, cut=commit.parent is not None)
            )
        commit = job.repo.objects.get_commit(commit.parent)
    return commit


def _too_far(job: Job, parsed: Revision, rev: str, steps: int, *, cut: bool) -> str:
    """What is wrong with ``rev``: it walked ``steps`` back and found no more checkpoints."""
    count = steps + 1
    noun = "checkpoint" if count == 1 else "checkpoints"
    if parsed.base == "HEAD":
        where = f"branch {job.branch_name} has only {count} {noun}"
    else:
        where = f"there {'is' if count == 1 else 'are'} only {count} {noun} up to {parsed.base}"
    first = parsed.base if steps == 0 else f"{parsed.base}~{steps}"
    why = " (retention removed the older ones)" if cut else ""
    return f"{rev}: {where}{why}; the first is {first}"


#: ``KIND:NAME`` forms of a base, which look a name up as that kind only.
KINDS = ("branch", "tag", "stage")


def _resolve_base(job: Job, base: str) -> Commit:
    kind, colon, name = base.partition(":")
    if colon and kind in KINDS:
        return _resolve_kind(job, kind, name, base)
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
    found = {
        kind: _read_ref(job, prefix + base) for kind, prefix in (("branch", HEADS), ("tag", TAGS))
    }
    for kind, oid in found.items():
        if oid is not None:
            _warn_if_ambiguous(job, base, kind, found)
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


def _read_ref(job: Job, ref: str) -> CommitId | None:
    try:
        return job.refs.read(ref)
    except ValueError:  # not a valid ref name: then it names no ref
        return None


def _resolve_kind(job: Job, kind: str, name: str, base: str) -> Commit:
    """``branch:NAME``, ``tag:NAME`` or ``stage:NAME``: ``name`` looked up as ``kind`` only."""
    if not job.exists:
        raise NotFoundError(f"job {job.name!r} not found (no checkpoints saved)")
    if kind == "stage":
        head = job.head
        if head is not None:
            for commit in job.walk(head.id):
                if commit.stage == name:
                    return commit
        listed = ", ".join(job.stages()) or "none"
        raise InvalidRevisionError(
            f"{base}: no checkpoint of job {job.name!r} saved stage {name!r} (stages: {listed})"
        )
    oid = _read_ref(job, (HEADS if kind == "branch" else TAGS) + name)
    if oid is None:
        listed = ", ".join(sorted(job.branches() if kind == "branch" else job.tags())) or "none"
        plural = "branches" if kind == "branch" else "tags"
        raise InvalidRevisionError(
            f"{base}: job {job.name!r} has no {kind} {name!r} ({plural}: {listed})"
        )
    return job.repo.objects.get_commit(oid)


def _warn_if_ambiguous(job: Job, base: str, used: str, refs: dict[str, CommitId | None]) -> None:
    """Warn when ``base``, found as a ``used`` ref, also names another ref or a stage."""
    others = [kind for kind, oid in refs.items() if oid is not None and kind != used]
    try:
        head = job.head
        if head is not None and base in job.repo.objects.get_tree(head.tree):
            others.append("stage")
    except CkptError:
        pass  # damaged history: the warning is a courtesy, never a new failure
    if not others:
        return
    both = " and a ".join([used, *others])
    ways = " or ".join(f"{kind}:{base}" for kind in others)
    warnings.warn(
        AmbiguousRevisionWarning(
            f"{base!r} names both a {both} of job {job.name!r}: using the {used}; "
            f"write {ways} for the other"
        ),
        stacklevel=5,
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
