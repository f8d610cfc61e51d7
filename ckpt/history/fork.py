"""Forking a job: a new job whose history starts at another job's checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ckpt.errors import ConflictError
from ckpt.history.jobrecord import ForkPoint, update_record
from ckpt.history.refs import DEFAULT_BRANCH, HEADS, now
from ckpt.objects.ids import CommitId, ObjectId
from ckpt.objects.model import STATUS_ACTIVE

if TYPE_CHECKING:
    from ckpt.history.job import Job


def fork_job(job: Job, new_job: str, *, at: str | None = None, message: str = "") -> Job:
    """Start job ``new_job`` from checkpoint ``at`` of this job (default HEAD).

    The new job's first commit has the checkpoint as parent, so it has
    all of its stages and history; its record names the fork point.
    """
    source = job.resolve(at)
    target = job.repo.job(new_job)
    if target.exists:
        raise ConflictError(f"job {new_job!r} already exists")
    commit = attrs.evolve(
        source,
        id=CommitId(ObjectId("0" * 64)),
        parents=(source.id,),
        job=target.name,
        branch=DEFAULT_BRANCH,
        stage=None,
        time=now(),
        seq=source.seq + 1,
        cost=0.0,
        tokens=0,
        status=STATUS_ACTIVE,
        message=message or f"fork of {job.name} at {source.short_id}",
        meta={"forked_from_job": job.name, "forked_from_commit": source.id},
    )
    commit = attrs.evolve(commit, id=job.repo.objects.put_commit(commit))
    if not target.refs.create(DEFAULT_BRANCH):
        raise ConflictError(f"job {new_job!r} already exists")
    target.refs.update(
        HEADS + DEFAULT_BRANCH, None, commit.id, f"fork: from {job.name} at {source.short_id}"
    )
    update_record(
        job.repo.storage,
        target.name,
        lambda record: attrs.evolve(record, forked_from=ForkPoint(job.name, source.id)),
    )
    return target
