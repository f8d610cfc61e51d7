"""Finding a commit by id prefix in any job of a store, as ``git show PREFIX`` does.

``ckpt show ab12cd`` and ``ckpt cat ab12cd STAGE`` need no job name: the
prefix is matched against the ids of the commits stored (one listing of the
object store), and a job that still has the commit (its refs, reflog or
retention reach it) is the job it is shown in: the job that made it if that
one has it, else the first by name.  A commit no job has any more (waiting
for gc) is not found.  A prefix that matches several commits is an error
that lists them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ckpt.errors import CkptError, InvalidRevisionError, NotFoundError
from ckpt.history.job import Job
from ckpt.history.revisions import MIN_PREFIX
from ckpt.objects.ids import CommitId, Kind, is_id_prefix
from ckpt.objects.model import Commit

if TYPE_CHECKING:
    from ckpt.history.repository import BaseRepository

#: How many candidates an ambiguity error lists.
SHOWN_CANDIDATES = 8


@attrs.frozen
class FoundCommit:
    """A commit found by prefix, and the job it is shown in."""

    job: Job
    commit: Commit


def looks_like_commit(text: str) -> bool:
    """True if ``text`` can be a commit-id prefix (hex, at least :data:`MIN_PREFIX` digits)."""
    return len(text) >= MIN_PREFIX and is_id_prefix(text)


def find_commit(repo: BaseRepository, prefix: str) -> FoundCommit:
    """The commit whose id starts with ``prefix``, in whichever job has it.

    Raises NotFoundError if no job has such a commit, and InvalidRevisionError
    (listing the candidates: id, job and stage) if several commits match.
    """
    prefix = prefix.strip().lower()
    if not looks_like_commit(prefix):
        raise InvalidRevisionError(
            f"{prefix!r} is not a commit id prefix ({MIN_PREFIX} or more hex digits)"
        )
    candidates: list[Commit] = []
    for stored in repo.objects:
        if not stored.id.startswith(prefix):
            continue
        try:
            if repo.objects.kind_of(stored.id) is not Kind.COMMIT:
                continue
            candidates.append(repo.objects.get_commit(stored.id))
        except CkptError:
            continue  # a damaged object: `ckpt verify` reports it
    found: list[FoundCommit] = []
    names = repo.job_names() if candidates else []
    for commit in sorted(candidates, key=lambda c: c.id):
        job = _job_having(repo, commit, names)
        if job is not None:
            found.append(FoundCommit(job, commit))
    if not found:
        raise NotFoundError(f"no job of {repo.location} has a commit {prefix!r}")
    if len(found) > 1:
        listed = ", ".join(
            f"{f.commit.id[:12]} (job {f.job.name}, {f.commit.stage or f.commit.status})"
            for f in found[:SHOWN_CANDIDATES]
        )
        more = f" and {len(found) - SHOWN_CANDIDATES} more" if len(found) > SHOWN_CANDIDATES else ""
        raise InvalidRevisionError(
            f"commit prefix {prefix!r} is ambiguous: {listed}{more}; give more digits"
        )
    return found[0]


def _job_having(repo: BaseRepository, commit: Commit, names: list[str]) -> Job | None:
    """A job that still has ``commit``: the one that made it if it does, else the first by
    name (a fork, or a job the commit was pushed or imported into under another name)."""
    for name in sorted(names, key=lambda name: name != commit.job):
        job = repo.job(name)
        if CommitId(commit.id) in job.known_commits():
            return job
    return None
