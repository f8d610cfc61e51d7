"""Remotes: push and pull jobs between stores, git-style.

A remote is another store (any backend URL or path) registered under a name
(``remotes/NAME`` in the local store; see :mod:`ckpt.history.remotes`).
``push`` and ``pull`` transfer a job's branches and tags:

1. For each ref, refuse a **non-fast-forward** (the destination's commit is
   not an ancestor of the source's) unless ``force``.
2. Copy only the objects the destination lacks: walk back from the source
   tips and stop at commits the destination already has (a store never holds
   a commit without the objects below it, because objects are always written
   before anything that names them).  Every object is read through the
   hash-checking reader on the way out and its id is checked again on arrival.
   Blobs and trees go first, in parallel; then commits oldest first.
3. Move the destination's refs by compare-and-swap from the value read in
   step 1; a concurrent writer there makes that ref fail with a conflict
   (reported, nothing lost) instead of being overwritten.

A transfer killed halfway leaves the destination consistent (some extra
objects, refs untouched or moved whole) and the next run copies only what is
still missing.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import attrs

from ckpt.errors import CkptError, ConflictError, NotFoundError, StoreNotFoundError
from ckpt.history.job import Job
from ckpt.history.jobrecord import read_record, record_key
from ckpt.history.refs import HEADS, TAGS
from ckpt.history.remotes import (
    DEFAULT_REMOTE,
    REMOTES_PREFIX,
    add_remote,
    remote_url,
    remotes,
    remove_remote,
)
from ckpt.objects.ids import CommitId, Kind, ObjectId
from ckpt.objects.model import Commit
from ckpt.repository import Repository, init, open
from ckpt.storage import absolute_location
from ckpt.storage.base import KeyNotFoundError

ProgressFn = Callable[[int], None]
#: A transfer writes a pack (and reports progress) every this many objects or bytes.
_FLUSH_OBJECTS = 16
_FLUSH_BYTES = 16 << 20


#: The statuses of refs a transfer did not move.
REFUSED = ("rejected", "diverged", "conflict")


@attrs.frozen
class RefUpdate:
    job: str
    ref: str
    old: CommitId | None
    new: CommitId
    #: "created" | "fast-forward" | "forced" | "up-to-date" | "rejected" | "diverged" |
    #: "conflict".  "diverged": each side has checkpoints on the branch that the other
    #: lacks (refused without force, like "rejected").
    status: str
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return attrs.asdict(self)


@attrs.frozen
class TransferReport:
    objects_copied: int
    bytes_copied: int
    updates: tuple[RefUpdate, ...]

    @property
    def rejected(self) -> list[RefUpdate]:
        return [u for u in self.updates if u.status in REFUSED]

    def to_json(self) -> dict[str, object]:
        return {
            "objects_copied": self.objects_copied,
            "bytes_copied": self.bytes_copied,
            "updates": [u.to_json() for u in self.updates],
        }


__all__ = [
    "DEFAULT_REMOTE",
    "REMOTES_PREFIX",
    "RefUpdate",
    "TransferReport",
    "add_remote",
    "clone",
    "pull",
    "push",
    "remote_url",
    "remotes",
    "remove_remote",
]


# -- transfer -----------------------------------------------------------------


def push(
    repo: Repository,
    remote: str = DEFAULT_REMOTE,
    jobs: Iterable[str] | None = None,
    *,
    force: bool = False,
    progress: ProgressFn | None = None,
    workers: int = 8,
) -> TransferReport:
    """Send jobs (default: all) to ``remote`` (a remote name or a store URL)."""
    with _open_remote(repo, remote) as dest:
        names = list(jobs) if jobs is not None else repo.job_names()
        return _transfer(
            repo, dest, names, force=force, progress=progress, workers=workers, pulling=False
        )


def pull(
    repo: Repository,
    remote: str = DEFAULT_REMOTE,
    jobs: Iterable[str] | None = None,
    *,
    force: bool = False,
    progress: ProgressFn | None = None,
    workers: int = 8,
) -> TransferReport:
    """Fetch jobs (default: all the remote has) from ``remote`` into this store.

    The checkpoints of a branch that has diverged (each side has some the other lacks)
    are fetched too, though the branch is not moved without ``force``: they can be
    compared, or kept as a branch, by their commit id.
    """
    with _open_remote(repo, remote) as source:
        names = list(jobs) if jobs is not None else source.job_names()
        return _transfer(
            source, repo, names, force=force, progress=progress, workers=workers, pulling=True
        )


def _open_remote(repo: Repository, remote: str) -> Repository:
    """The store ``remote`` names; StoreNotFoundError naming the remote if it has none."""
    url = remote_url(repo, remote)
    try:
        return open(url)
    except StoreNotFoundError:
        named = f"remote {remote!r} ({url})" if url != remote else url
        raise StoreNotFoundError(
            f"{named} holds no ckpt store: create an empty one there with "
            f"`ckpt init {shlex.quote(url)}`, then run this again"
        ) from None


def clone(
    url: str, path: str, *, progress: ProgressFn | None = None, workers: int = 8
) -> tuple[Repository, TransferReport]:
    """Create a store at ``path`` with remote ``origin`` = ``url`` and every job of it.
    A relative path in ``url`` is kept absolute (see :func:`ckpt.storage.absolute_location`)."""
    url = absolute_location(url)
    with open(url):
        pass  # fail before creating anything if the source is not a store
    repo = init(path)
    add_remote(repo, DEFAULT_REMOTE, url)
    return repo, pull(repo, DEFAULT_REMOTE, progress=progress, workers=workers)


def _transfer(
    source: Repository,
    dest: Repository,
    names: list[str],
    *,
    force: bool,
    progress: ProgressFn | None,
    workers: int,
    pulling: bool,
) -> TransferReport:
    copier = _Copier(source, dest, progress, workers)
    updates: list[RefUpdate] = []
    for name in names:
        src_job = source.job(name)
        if not src_job.exists:
            raise NotFoundError(f"job {name!r} not found in {source.location}")
        dst_job = dest.job(name)
        plan = _plan(src_job, dst_job, force, pulling)
        # A pull fetches a diverged branch's checkpoints (to compare), without moving it.
        skip = ("rejected", "up-to-date") if pulling else ("rejected", "diverged", "up-to-date")
        wanted = [u.new for u in plan if u.status not in skip]
        copier.copy_history(wanted)
        updates.extend(_apply(src_job, dst_job, plan))
    return TransferReport(copier.objects, copier.bytes, tuple(updates))


def _plan(src: Job, dst: Job, force: bool, pulling: bool) -> list[RefUpdate]:
    plan = []
    dst_refs = dst.refs.all_refs() if dst.exists else {}
    for kind, refs in ((HEADS, src.branches()), (TAGS, src.tags())):
        for name, new in sorted(refs.items()):
            ref = kind + name
            old = dst_refs.get(ref)
            if old == new:
                plan.append(RefUpdate(src.name, ref, old, new, "up-to-date"))
            elif old is None:
                plan.append(RefUpdate(src.name, ref, None, new, "created"))
            elif kind == HEADS and _is_ancestor(src, old, new):
                plan.append(RefUpdate(src.name, ref, old, new, "fast-forward"))
            elif kind == HEADS and not force and _is_ancestor(dst, new, old):
                # The destination already has this and more.
                if pulling:
                    plan.append(RefUpdate(src.name, ref, old, old, "up-to-date"))
                else:
                    why = "the remote has newer checkpoints; pull first (or use --force)"
                    plan.append(RefUpdate(src.name, ref, old, new, "rejected", why))
            elif force:
                plan.append(RefUpdate(src.name, ref, old, new, "forced"))
            elif kind == HEADS:
                why = "both sides have checkpoints the other lacks"
                plan.append(RefUpdate(src.name, ref, old, new, "diverged", why))
            else:
                why = "tag exists with another target; use --force to overwrite"
                plan.append(RefUpdate(src.name, ref, old, new, "rejected", why))
    return plan


def _is_ancestor(job: Job, ancestor: CommitId, tip: CommitId) -> bool:
    stack, seen = [tip], set()
    while stack:
        oid = stack.pop()
        if oid == ancestor:
            return True
        if oid in seen:
            continue
        seen.add(oid)
        try:
            stack.extend(job.repo.objects.get_commit(oid).parents)
        except CkptError:
            continue
    return False


def _apply(src: Job, dst: Job, plan: list[RefUpdate]) -> list[RefUpdate]:
    if not dst.exists and any(u.status not in ("rejected", "diverged") for u in plan):
        dst.refs.create(src.branch_name)
    _copy_record(src, dst)
    done = []
    for update in plan:
        if update.status in ("rejected", "diverged", "up-to-date"):
            done.append(update)
            continue
        try:
            dst.refs.update(update.ref, update.old, update.new, f"transfer: {update.status}")
            done.append(update)
        except ConflictError as exc:
            done.append(attrs.evolve(update, status="conflict", reason=str(exc)))
    return done


def _copy_record(src: Job, dst: Job) -> None:
    storage = dst.repo.storage
    if storage.stat(record_key(dst.name)) is not None:
        return
    try:
        raw = src.repo.storage.get(record_key(src.name))
    except KeyNotFoundError:
        return
    read_record(src.repo.storage, src.name)  # refuse to spread a garbled record
    with contextlib.suppress(ConflictError):  # created meanwhile: theirs stands
        storage.compare_and_swap(record_key(dst.name), None, raw)


class _Copier:
    """Copies objects the destination lacks, verifying ids on both ends."""

    def __init__(
        self, source: Repository, dest: Repository, progress: ProgressFn | None, workers: int
    ) -> None:
        self.source = source
        self.dest = dest
        self.progress = progress
        self.workers = max(1, workers)
        self.objects = 0
        self.bytes = 0

    def copy_history(self, tips: list[CommitId]) -> None:
        commits = self._missing_commits(tips)
        leaves: set[ObjectId] = set()
        for commit in commits:
            leaves.add(commit.tree)
            leaves.update(entry.id for entry in self.source.objects.get_tree(commit.tree))
        with ThreadPoolExecutor(self.workers) as pool:
            # Objects already there are freshened, so that a gc running on the
            # destination spares them until our refs make them reachable.
            wanted = sorted(leaves)
            present = list(pool.map(self.dest.objects.freshen, wanted))
            missing = [oid for oid, there in zip(wanted, present, strict=True) if not there]
            kinds = list(pool.map(self.source.objects.kind_of, missing))
            # Blobs before trees, and all of them before any commit: a killed
            # transfer never leaves an object that names a missing one.
            order = sorted(zip(kinds, missing, strict=True), key=lambda item: item[0] != Kind.BLOB)
            self._copy_all(pool, [oid for _, oid in order])
            self._copy_all(pool, [c.id for c in sorted(commits, key=lambda c: c.seq)])

    def _copy_all(self, pool: ThreadPoolExecutor, oids: list[ObjectId]) -> None:
        """Copy ``oids`` in order: read (and hash-check) in parallel, write in packs.

        Progress is reported as packs become durable, so a transfer killed
        after reporting N objects resumes without copying them again.
        """
        with self.dest.objects.batch() as batch:
            pending = pending_bytes = 0
            for oid, (kind, data) in zip(oids, pool.map(self._read, oids), strict=True):
                written = batch.put(kind, data)
                if written != oid:
                    raise CkptError(f"object {oid} arrived as {written}; transfer aborted")
                pending += 1
                pending_bytes += len(data)
                if pending >= _FLUSH_OBJECTS or pending_bytes >= _FLUSH_BYTES:
                    batch.flush()
                    self._done(pending, pending_bytes)
                    pending = pending_bytes = 0
            batch.flush()
            self._done(pending, pending_bytes)

    def _done(self, objects: int, size: int) -> None:
        self.objects += objects
        self.bytes += size
        if objects and self.progress is not None:
            self.progress(objects)

    def _read(self, oid: ObjectId) -> tuple[Kind, bytes]:
        kind = self.source.objects.kind_of(oid)
        return kind, self.source.objects.get(oid, kind)

    def _missing_commits(self, tips: list[CommitId]) -> list[Commit]:
        found: dict[CommitId, Commit] = {}
        stack = list(tips)
        while stack:
            oid = stack.pop()
            if oid in found or self.dest.objects.freshen(oid):
                continue
            commit = self.source.objects.get_commit(oid)
            found[oid] = commit
            stack.extend(commit.parents)
        return list(found.values())
