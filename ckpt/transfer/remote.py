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
   The contents of files (``ckpt.File``) go first, streamed chunk by chunk;
   then blobs and trees, in parallel; then commits oldest first.
3. Move the destination's refs by compare-and-swap from the value read in
   step 1; a concurrent writer there makes that ref fail with a conflict
   (reported, nothing lost) instead of being overwritten.

Steps 1 and 2 go over every job first (the ``counting objects`` phase, then
``copying objects``, whose totals are known by then); step 3 follows for
each job.  A transfer killed halfway leaves the destination consistent (some
extra objects, refs untouched or moved whole) and the next run copies only
what is still missing.

A push to a location with no store creates one there (as ``clone`` creates
the local one); a location that holds something else is refused.  Where
retention cut a job's history, the walk stops at the cut, and the
destination's job record is cut at the same commits wherever it lacks the
history before them.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import attrs

from ckpt.errors import CkptError, ConflictError, NotFoundError, StoreNotFoundError
from ckpt.history.job import Job
from ckpt.history.jobrecord import read_record, record_key, update_record
from ckpt.history.refs import HEADS, TAGS
from ckpt.history.remotes import (
    DEFAULT_REMOTE,
    REMOTES_PREFIX,
    add_remote,
    remote_url,
    remotes,
    remove_remote,
)
from ckpt.history.tags import copy_annotation
from ckpt.objects.ids import CommitId, Kind, ObjectId
from ckpt.objects.model import Commit, Tree, decode_commit
from ckpt.objects.progress import Meter, ProgressFn
from ckpt.objects.reliance import doomed_objects
from ckpt.objects.stream import ContentWriter, blob_length
from ckpt.repository import Repository, init, open, open_or_init
from ckpt.storage import absolute_location
from ckpt.storage.base import KeyNotFoundError

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
    #: True if the receiving store was created by this transfer (a push to an
    #: empty location, or a clone).
    created_store: bool = False

    @property
    def rejected(self) -> list[RefUpdate]:
        return [u for u in self.updates if u.status in REFUSED]

    def to_json(self) -> dict[str, object]:
        return {
            "objects_copied": self.objects_copied,
            "bytes_copied": self.bytes_copied,
            "updates": [u.to_json() for u in self.updates],
            "created_store": self.created_store,
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
    """Send jobs (default: all) to ``remote`` (a remote name or a store URL).

    A location that holds no store yet gets one, as ``git push`` to a bare
    repository would need and ``clone`` does for the local side (the report
    says so: ``created_store``); a location that holds something else is
    refused (StoreNotFoundError) and left as it was.  ``progress`` receives
    the events of the ``counting objects`` and ``copying objects`` phases.
    """
    dest, created = open_or_init(remote_url(repo, remote))
    with dest:
        names = list(jobs) if jobs is not None else repo.job_names()
        report = _transfer(
            repo, dest, names, force=force, progress=progress, workers=workers, pulling=False
        )
    return attrs.evolve(report, created_store=created)


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
    report = pull(repo, DEFAULT_REMOTE, progress=progress, workers=workers)
    return repo, attrs.evolve(report, created_store=True)


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
    # Like git: count what every job needs, copy it all, then move the refs.
    copier = _Copier(source, dest, progress, workers)
    plans: list[tuple[Job, Job, list[RefUpdate]]] = []
    starts: list[tuple[CommitId, frozenset[CommitId]]] = []
    for name in names:
        src_job = source.job(name)
        if not src_job.exists:
            raise NotFoundError(f"job {name!r} not found in {source.location}")
        dst_job = dest.job(name)
        plan = _plan(src_job, dst_job, force, pulling)
        plans.append((src_job, dst_job, plan))
        # A pull fetches a diverged branch's checkpoints (to compare), without moving it.
        skip = ("rejected", "up-to-date") if pulling else ("rejected", "diverged", "up-to-date")
        moving = [u.new for u in plan if u.status not in skip]
        if moving:
            record = src_job.record
            # The checkpoints retention kept below a cut travel with the refs.
            starts.extend((tip, record.cut) for tip in [*moving, *record.kept_below.values()])
    copier.copy_history(starts)
    updates: list[RefUpdate] = []
    for src_job, dst_job, plan in plans:
        updates.extend(_apply(src_job, dst_job, plan))
        if any(u.status not in ("rejected", "up-to-date", "conflict") for u in plan):
            _carry_cut(src_job, dst_job)
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
        if update.ref.startswith(TAGS):
            # A tag's message goes first: a crash before the ref moves leaves a
            # message no tag shows (it names another commit, or no tag exists).
            copy_annotation(src, dst, update.ref[len(TAGS) :])
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


def _carry_cut(src: Job, dst: Job) -> None:
    """Where retention cut the source's history, cut the destination's too, wherever the
    destination lacks what came before (so that it holds no commit whose parent is missing).
    """
    record = src.record
    if not record.cut:
        return
    objects = dst.repo.objects
    lacking = {
        oid
        for oid in record.cut
        if objects.has(oid)
        and any(not objects.has(parent) for parent in objects.get_commit(oid).parents)
    }
    if not lacking:
        return
    below = {oid: record.kept_below[oid] for oid in lacking if oid in record.kept_below}
    update_record(
        dst.repo.storage,
        dst.name,
        lambda mine: attrs.evolve(
            mine, cut=mine.cut | lacking, kept_below={**mine.kept_below, **below}
        ),
    )


class _Copier:
    """Copies objects the destination lacks, verifying ids on both ends."""

    def __init__(
        self, source: Repository, dest: Repository, progress: ProgressFn | None, workers: int
    ) -> None:
        self.source = source
        self.dest = dest
        self.workers = max(1, workers)
        self.objects = 0
        self.bytes = 0
        self.counting = Meter(progress, "counting objects")
        self.copying = Meter(progress, "copying objects")
        self._doomed: frozenset[ObjectId] | None = None

    def _freshen(self, oid: ObjectId) -> bool:
        """The destination's :meth:`~ckpt.objects.store.ObjectStore.freshen`, with what its
        gc may delete read once per transfer, not once per object."""
        if self._doomed is None:
            self._doomed = doomed_objects(self.dest.storage)
        return self.dest.objects.freshen(oid, doomed=self._doomed)

    def copy_history(self, starts: list[tuple[CommitId, frozenset[CommitId]]]) -> None:
        """Copy every commit reachable from the ``starts`` (a tip, and the history cut of its
        job: commits whose parents are not followed) that the destination lacks, with what
        they name.  Counting comes first, so that the copying phase knows its totals."""
        commits = self._missing_commits(starts)
        leaves: dict[ObjectId, int] = {}  # trees and blobs -> canonical size
        contents: set[ObjectId] = set()  # the contents of files the stage values hold
        for commit, _ in commits:
            data = self.source.objects.get(commit.tree, Kind.TREE)
            leaves[commit.tree] = len(data)
            for entry in Tree.decode(data, commit.tree):
                leaves.setdefault(entry.id, entry.size)
                contents.update(entry.files)
        # File contents first, streamed (a file can be far larger than memory), so that
        # no value arrives before the files it names.
        self._copy_contents(sorted(contents - leaves.keys()))
        with ThreadPoolExecutor(self.workers) as pool:
            # Objects already there are freshened, so that a gc running on the
            # destination spares them until our refs make them reachable.
            wanted = sorted(leaves)
            present = list(pool.map(self._freshen, wanted))
            missing = [oid for oid, there in zip(wanted, present, strict=True) if not there]
            kinds = list(pool.map(self.source.objects.kind_of, missing))
            self.counting.advance(len(wanted))
            self.counting.finish()
            self.copying.set_total(
                len(missing) + len(commits),
                sum(leaves[oid] for oid in missing) + sum(size for _, size in commits),
            )
            # Blobs before trees, and all of them before any commit: a killed
            # transfer never leaves an object that names a missing one.
            order = sorted(zip(kinds, missing, strict=True), key=lambda item: item[0] != Kind.BLOB)
            self._copy_all(pool, [oid for _, oid in order])
            self._copy_all(pool, [c.id for c, _ in sorted(commits, key=lambda item: item[0].seq)])
            self.copying.finish()

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

    def _copy_contents(self, oids: list[ObjectId]) -> None:
        """Copy the files' contents the destination lacks, chunk by chunk, each id checked."""
        copied = size = 0
        with ContentWriter(self.dest.objects) as writer:
            for oid in oids:
                if writer.copy_blob(self.source.objects, oid):
                    copied += 1
                    size += blob_length(self.source.objects, oid)
        self._done(copied, size)

    def _done(self, objects: int, size: int) -> None:
        self.objects += objects
        self.bytes += size
        if objects:
            self.copying.advance(objects, size)

    def _read(self, oid: ObjectId) -> tuple[Kind, bytes]:
        kind = self.source.objects.kind_of(oid)
        return kind, self.source.objects.get(oid, kind)

    def _missing_commits(
        self, starts: list[tuple[CommitId, frozenset[CommitId]]]
    ) -> list[tuple[Commit, int]]:
        """The commits the destination lacks, each with its size, walking back from each
        start and not past its cut.  A commit the destination has ends the walk there:
        a store never holds a commit without the history below it."""
        found: dict[CommitId, tuple[Commit, int]] = {}
        expanded: set[CommitId] = set()
        stack = list(starts)
        while stack:
            oid, cut = stack.pop()
            if oid not in found:
                if self._freshen(oid):
                    continue
                data = self.source.objects.get(oid, Kind.COMMIT)
                found[oid] = (decode_commit(data, oid), len(data))
                self.counting.advance(1)
            if oid in cut or oid in expanded:
                continue
            expanded.add(oid)
            stack.extend((parent, cut) for parent in found[oid][0].parents)
        return list(found.values())
