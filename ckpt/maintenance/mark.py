"""gc's mark phase: every object some job can still reach, and gc's report.

Both collectors (:mod:`ckpt.maintenance.gc` on stores with an atomic
``delete_if_older``, :mod:`ckpt.maintenance.gc_shared` on shared stores)
mark with :func:`mark` and report a :class:`GcReport`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

import attrs

from ckpt.errors import CkptError, CorruptObjectError
from ckpt.history.jobrecord import JobRecord
from ckpt.history.refcheck import job_folders
from ckpt.history.refs import RefStore
from ckpt.history.repository import BaseRepository
from ckpt.maintenance.reachable import REFLOG_EXPIRY, history_cut, job_roots, roots_from
from ckpt.objects.ids import CommitId, Kind, ObjectId, check_object_id
from ckpt.objects.progress import Meter
from ckpt.objects.scan import StoreScan


@attrs.frozen
class GcReport:
    """What gc found and did.  With ``dry_run`` nothing was deleted."""

    dry_run: bool
    reachable: int
    deleted: int
    deleted_bytes: int
    kept_by_grace: int
    candidates: tuple[ObjectId, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "reachable_objects": self.reachable,
            "deleted_objects": self.deleted,
            "deleted_bytes": self.deleted_bytes,
            "kept_by_grace": self.kept_by_grace,
        }


def mark(
    repo: BaseRepository,
    *,
    expiry: dt.timedelta = REFLOG_EXPIRY,
    scan: StoreScan | None = None,
    progress: Meter | None = None,
    plan: Mapping[str, JobRecord | None] | None = None,
) -> set[ObjectId]:
    """Every object reachable from any job's roots.  Raises CkptError on an unreadable object.

    Commits and trees are read in bulk (every one the store holds, checked
    against its id) from ``scan``, or from a new scan of the store;
    ``progress`` counts them.  ``plan`` marks as if retention had run: a job
    mapped to a record is marked with that record instead of its stored one,
    a job mapped to None as if it had been deleted (what a dry run counts).
    """
    graph = _Graph(repo, scan if scan is not None else StoreScan(repo.objects), progress)
    marked: set[ObjectId] = set()
    plan = plan or {}
    # Every job folder, HEAD or not: a job whose HEAD was lost still has refs.
    for job in job_folders(repo.storage):
        if job in plan and plan[job] is None:
            continue
        _mark_job(repo, job, marked, expiry, graph, plan.get(job))
    return marked


class _Graph:
    """Commits and trees by id, read in bulk once; anything else is read through the store."""

    def __init__(self, repo: BaseRepository, scan: StoreScan, progress: Meter | None) -> None:
        self.repo = repo
        self.objects, self.errors = scan.read_verified({Kind.COMMIT, Kind.TREE}, progress=progress)
        self.commits: dict[ObjectId, tuple[ObjectId, list[CommitId]]] = {}
        self.trees: dict[ObjectId, list[ObjectId]] = {}

    def _bytes(self, oid: ObjectId, kind: Kind) -> bytes:
        found = self.objects.get(oid)
        if found is None:
            error = self.errors.get(oid)
            if error is not None:
                raise error
            # Not in the scan (stored since it began): read it the usual way.
            return self.repo.objects.get(oid, kind)
        if found[0] is not kind:
            raise CorruptObjectError(oid, "object has the wrong kind", kind.label, found[0].label)
        return found[1]

    def commit(self, oid: ObjectId) -> tuple[ObjectId, list[CommitId]]:
        """The tree and parents of commit ``oid`` (all gc needs of it)."""
        links = self.commits.get(oid)
        if links is None:
            doc = _document(self._bytes(oid, Kind.COMMIT), oid, "commit")
            parents = doc.get("parents")
            if not isinstance(parents, list):
                raise CorruptObjectError(oid, "commit parents are not a list")
            links = self.commits[oid] = (
                _object_id(doc.get("tree"), oid),
                [CommitId(_object_id(parent, oid)) for parent in parents],
            )
        return links

    def blobs(self, tree: ObjectId) -> list[ObjectId]:
        """The blob ids of tree ``tree``: each stage's value, and the files it refers to."""
        ids = self.trees.get(tree)
        if ids is None:
            stages = _document(self._bytes(tree, Kind.TREE), tree, "tree").get("stages")
            if not isinstance(stages, list):
                raise CorruptObjectError(tree, "tree has no stage list")
            found = []
            for item in stages:
                if not (isinstance(item, list) and len(item) in (5, 6)):
                    raise CorruptObjectError(tree, "malformed tree entry")
                found.append(_object_id(item[1], tree))
                files = item[5] if len(item) == 6 else []
                if not isinstance(files, list):
                    raise CorruptObjectError(tree, "malformed tree entry")
                found.extend(_object_id(file_id, tree) for file_id in files)
            ids = self.trees[tree] = found
        return ids


def _document(data: bytes, oid: ObjectId, what: str) -> dict[str, object]:
    """A commit's or tree's JSON document (its bytes were checked against its id)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CorruptObjectError(oid, f"{what} is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise CorruptObjectError(oid, f"{what} is not a JSON object")
    return doc


def _object_id(value: object, oid: ObjectId) -> ObjectId:
    try:
        return check_object_id(value)
    except ValueError:
        raise CorruptObjectError(oid, f"malformed object id {value!r}") from None


def _mark_job(
    repo: BaseRepository,
    job: str,
    marked: set[ObjectId],
    expiry: dt.timedelta,
    graph: _Graph,
    record: JobRecord | None = None,
) -> None:
    # Walked per job: a commit shared by a fork may be cut in one job but not the other.
    if record is None:
        cut = history_cut(repo.storage, job)
        stack = list(job_roots(repo.storage, job, expiry=expiry))
    else:
        refs = RefStore(repo.storage, job)
        cut = record.cut
        stack = list(roots_from(refs.all_refs(), refs.reflog(), record, expiry=expiry))
    seen: set[ObjectId] = set()
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        marked.add(oid)
        try:
            tree, parents = graph.commit(oid)
            marked.add(tree)
            marked.update(graph.blobs(tree))
        except CkptError as exc:
            raise CkptError(
                f"gc stopped before deleting anything: {exc}. Run `ckpt verify` and repair first"
            ) from exc
        if oid not in cut:
            stack.extend(parents)
