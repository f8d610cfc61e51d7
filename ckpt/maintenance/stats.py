"""How much a store holds, and how much dedup and compression save.

Three sizes describe a store:

* **logical bytes**: what the checkpoints would take if each one were kept
  in full, the way a directory of state files per checkpoint keeps them:
  for every commit a job can reach, its commit and tree plus every stage
  value in its tree (and the files a value refers to).  Summed per job, so
  a forked job counts the history it shares with its parent again.
* **unique bytes**: the canonical (uncompressed) bytes of the objects
  actually stored, each once, reachable or not (a large value cut into
  chunks counts its distinct chunks; a value stored as a delta against an
  earlier version counts in full, its saving shows as compression).
* **stored bytes**: what the store's objects take on the backend: the size
  of every pack (its objects, header plus zstd frame each, and its index;
  an object written twice, or not yet collected by gc, counts where it
  lies) plus every loose object.  This is what ``du`` of the store's
  ``packs/`` and ``objects/`` shows on a local store.  **Object bytes** are
  the stored form of each object counted once, without the packs' indexes.

``dedup_ratio = logical / unique`` and ``compression_ratio = unique /
object bytes``.  A job's *size* is the stored bytes of every object it reaches;
its *exclusive* bytes are those no other job reaches, which is what deleting
the job and running gc would free.

Computing stats reads every object's header and every reachable commit and
tree; it never writes.  An object that cannot be read is counted in
``unreadable`` instead of failing the whole report (``ckpt verify`` says
what it breaks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from ckpt.errors import CkptError
from ckpt.history.repository import BaseRepository
from ckpt.maintenance.reachable import history_cut, job_roots
from ckpt.objects import codec
from ckpt.objects.ids import Kind, ObjectId
from ckpt.objects.model import Tree, decode_commit
from ckpt.objects.packset import OBJECTS_PREFIX
from ckpt.objects.stream import blob_length


@attrs.frozen
class JobReach:
    """What one job keeps alive: its commits, every object, and their logical size."""

    job: str
    commits: frozenset[ObjectId]
    objects: frozenset[ObjectId]
    logical_bytes: int
    unreadable: frozenset[ObjectId]


@attrs.frozen
class JobSize:
    """Sizes of one job (see the module docstring for what each means)."""

    job: str
    commits: int
    objects: int
    logical_bytes: int
    stored_bytes: int
    exclusive_bytes: int

    def to_json(self) -> dict[str, object]:
        return {
            "job": self.job,
            "commits": self.commits,
            "objects": self.objects,
            "logical_bytes": self.logical_bytes,
            "stored_bytes": self.stored_bytes,
            "exclusive_bytes": self.exclusive_bytes,
        }


@attrs.frozen
class StoreStats:
    """Object counts and sizes of a whole store, and per job."""

    objects: int
    objects_by_kind: dict[str, int]
    stored_bytes: int
    unique_bytes: int
    object_bytes: int
    packs: int
    logical_bytes: int
    unreachable_objects: int
    unreachable_bytes: int
    unreadable_objects: int
    jobs: tuple[JobSize, ...]

    @property
    def dedup_ratio(self) -> float | None:
        """logical / unique bytes; None for an empty store."""
        return None if not self.unique_bytes else self.logical_bytes / self.unique_bytes

    @property
    def compression_ratio(self) -> float | None:
        """unique / object bytes; None for an empty store."""
        return None if not self.object_bytes else self.unique_bytes / self.object_bytes

    def to_json(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "objects_by_kind": dict(self.objects_by_kind),
            "stored_bytes": self.stored_bytes,
            "object_bytes": self.object_bytes,
            "packs": self.packs,
            "unique_bytes": self.unique_bytes,
            "logical_bytes": self.logical_bytes,
            "dedup_ratio": _rounded(self.dedup_ratio),
            "compression_ratio": _rounded(self.compression_ratio),
            "unreachable_objects": self.unreachable_objects,
            "unreachable_bytes": self.unreachable_bytes,
            "unreadable_objects": self.unreadable_objects,
            "jobs": [job.to_json() for job in self.jobs],
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def job_reach(repo: BaseRepository, job: str) -> JobReach:
    """Every object ``job`` keeps alive (the set gc keeps for it) and its logical size.

    Unreadable commits and trees are skipped and listed in ``unreadable``;
    what they would have led to is then not counted.
    """
    cut = history_cut(repo.storage, job)
    stack: list[ObjectId] = list(job_roots(repo.storage, job))
    commits: set[ObjectId] = set()
    objects: set[ObjectId] = set()
    unreadable: set[ObjectId] = set()
    lengths: dict[ObjectId, int] = {}
    logical = 0
    while stack:
        oid = stack.pop()
        if oid in commits or oid in unreadable:
            continue
        try:
            commit_bytes = repo.objects.get(oid, Kind.COMMIT)
            commit = decode_commit(commit_bytes, oid)
        except CkptError:
            unreadable.add(oid)
            continue
        commits.add(oid)
        objects.add(oid)
        logical += len(commit_bytes)
        try:
            tree_bytes = repo.objects.get(commit.tree, Kind.TREE)
            tree = Tree.decode(tree_bytes, commit.tree)
        except CkptError:
            unreadable.add(commit.tree)
        else:
            objects.add(commit.tree)
            logical += len(tree_bytes)
            for entry in tree:
                objects.add(entry.id)
                logical += entry.size
                for file_id in entry.files:
                    objects.add(file_id)
                    if file_id not in lengths:
                        lengths[file_id] = _blob_length(repo, file_id, unreadable)
                    logical += lengths[file_id]
        if oid not in cut:
            stack.extend(commit.parents)
    _add_stored_references(repo, objects, unreadable)
    return JobReach(job, frozenset(commits), frozenset(objects), logical, frozenset(unreadable))


def _blob_length(repo: BaseRepository, oid: ObjectId, unreadable: set[ObjectId]) -> int:
    """The length of a file's content, from its stored header (0 if it cannot be read)."""
    try:
        return blob_length(repo.objects, oid)
    except CkptError:
        unreadable.add(oid)
        return 0


def _add_stored_references(
    repo: BaseRepository, objects: set[ObjectId], unreadable: set[ObjectId]
) -> None:
    """Add the chunks and delta bases that the stored forms of ``objects`` need."""
    stack = list(objects)
    while stack:
        oid = stack.pop()
        try:
            needed = repo.objects.references(oid)
        except CkptError:
            unreadable.add(oid)
            continue
        for ref in needed:
            if ref not in objects:
                objects.add(ref)
                stack.append(ref)


def job_sizes(repo: BaseRepository, jobs: Iterable[str] | None = None) -> dict[str, JobSize]:
    """Sizes of ``jobs`` (default: every job), from one listing of the stored objects."""
    stored = {obj.id: obj.stored_size for obj in repo.objects}
    names = list(jobs) if jobs is not None else repo.job_names()
    reaches = [job_reach(repo, name) for name in names]
    return _sizes(reaches, stored, _owner_counts(repo, reaches, all_jobs=jobs is None))


def _owner_counts(
    repo: BaseRepository, reaches: list[JobReach], *, all_jobs: bool
) -> dict[ObjectId, int]:
    """How many jobs reach each object (every job of the store is walked when needed)."""
    counted = reaches
    if not all_jobs:
        walked = {reach.job for reach in reaches}
        counted = reaches + [job_reach(repo, n) for n in repo.job_names() if n not in walked]
    owners: dict[ObjectId, int] = {}
    for reach in counted:
        for oid in reach.objects:
            owners[oid] = owners.get(oid, 0) + 1
    return owners


def _sizes(
    reaches: list[JobReach], stored: dict[ObjectId, int], owners: dict[ObjectId, int]
) -> dict[str, JobSize]:
    out = {}
    for reach in reaches:
        present = [oid for oid in reach.objects if oid in stored]
        out[reach.job] = JobSize(
            job=reach.job,
            commits=len(reach.commits),
            objects=len(reach.objects),
            logical_bytes=reach.logical_bytes,
            stored_bytes=sum(stored[oid] for oid in present),
            exclusive_bytes=sum(stored[oid] for oid in present if owners.get(oid) == 1),
        )
    return out


def store_stats(
    repo: BaseRepository, *, progress: Callable[[int], None] | None = None
) -> StoreStats:
    """Counts and sizes of the whole store; ``progress(1)`` is called per object read."""
    stored: dict[ObjectId, int] = {}
    by_kind = {kind.label: 0 for kind in Kind}
    unique = 0
    unreadable: set[ObjectId] = set()
    for obj in repo.objects:
        stored[obj.id] = obj.stored_size
        try:
            header = codec.parse_header(repo.objects.read_stored(obj.id), obj.id)
        except CkptError:
            unreadable.add(obj.id)
        else:
            by_kind[header.kind.label] += 1
            # A chunked blob's content is counted in its chunks.
            unique += 0 if header.chunked else header.length
        if progress is not None:
            progress(1)
    reaches = [job_reach(repo, name) for name in repo.job_names()]
    sizes = _sizes(reaches, stored, _owner_counts(repo, reaches, all_jobs=True))
    reachable: set[ObjectId] = set()
    for reach in reaches:
        reachable.update(reach.objects)
        unreadable.update(oid for oid in reach.unreadable if oid in stored)
    unreachable = [oid for oid in stored if oid not in reachable]
    packs = repo.objects.packs()
    loose = repo.storage.list(OBJECTS_PREFIX)
    return StoreStats(
        objects=len(stored),
        objects_by_kind=by_kind,
        stored_bytes=sum(info.size for info in packs) + sum(info.size for info in loose),
        unique_bytes=unique,
        object_bytes=sum(stored.values()),
        packs=len(packs),
        logical_bytes=sum(reach.logical_bytes for reach in reaches),
        unreachable_objects=len(unreachable),
        unreachable_bytes=sum(stored[oid] for oid in unreachable),
        unreadable_objects=len(unreadable),
        jobs=tuple(sizes[reach.job] for reach in reaches),
    )
