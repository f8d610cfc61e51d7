"""A job's history as retention left it: recent checkpoints, then older ones it kept.

Retention that keeps one checkpoint per day, week or month (``ckpt gc
--keep-daily 7``) lets go of the checkpoints in between, so a kept
checkpoint's parent may be gone.  The job record says where: ``cut`` holds
the commits whose parents are no longer kept, ``kept_below`` maps such a
commit to the next older checkpoint that was kept (see
:mod:`ckpt.history.jobrecord`).  :func:`retained_history` walks first parents
as :meth:`Job.walk <ckpt.history.job.Job.walk>` does, and at a cut goes on
to that older checkpoint instead of stopping.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ckpt.objects.ids import CommitId
from ckpt.objects.model import Commit

if TYPE_CHECKING:
    from ckpt.history.job import Job


def retained_history(job: Job, start: CommitId | None) -> Iterator[Commit]:
    """Commits from ``start`` back along first parents, and across each retention cut to
    the next older checkpoint retention kept; newest first."""
    record = job.record
    seen: set[CommitId] = set()
    oid = start
    while oid is not None and oid not in seen:
        seen.add(oid)
        commit = job.repo.objects.get_commit(oid)
        yield commit
        oid = record.kept_below.get(commit.id) if commit.id in record.cut else commit.parent
