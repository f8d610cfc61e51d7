"""verify: check refs, reachability and object hashes, and say what damage breaks.

For every job, verify parses HEAD, each ref and each reflog line, then walks
every commit reachable from the job's roots.  A commit is *intact* when its
commit object, its tree and every blob of its tree (stage values, and the
contents of the files they refer to) are readable and (with ``full``) hash
to their ids.  Each problem names the object or ref, what was
expected and found, and the jobs and commits it breaks; for each branch the
report gives the newest intact commit, the one to check out to recover.

With ``full``, every stored object is hashed, reachable or not.  Without it,
commits and trees are still hashed (they must be read to walk history) but
blobs are only checked to exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from ckpt.errors import (
    CkptError,
    CorruptObjectError,
    CorruptRefError,
    ObjectNotFoundError,
    StorageError,
)
from ckpt.history.jobrecord import JobRecord, read_record
from ckpt.history.refcheck import job_folders, ref_damage
from ckpt.history.refs import HEADS, RefStore
from ckpt.history.repository import BaseRepository
from ckpt.maintenance.reachable import roots_from
from ckpt.objects.ids import CommitId, Kind, ObjectId
from ckpt.objects.model import Commit, Tree, decode_commit
from ckpt.objects.packcheck import PackDamage, damaged_packs
from ckpt.objects.progress import Meter
from ckpt.objects.progress import ProgressFn as EventFn
from ckpt.objects.salvage import salvage
from ckpt.objects.scan import StoreScan, Verdict
from ckpt.objects.stream import verify_blob
from ckpt.storage.base import KeyNotFoundError

ProgressFn = Callable[[int, int], None]


@attrs.frozen
class Problem:
    """One thing found wrong.  ``subject`` is an object id or a ref name."""

    # corrupt-object | missing-object | damaged-pack | bad-ref | missing-ref | bad-head
    # | missing-head | bad-reflog | bad-record
    kind: str
    subject: str
    message: str
    jobs: tuple[str, ...] = ()
    commits: tuple[CommitId, ...] = ()
    #: For a damaged pack: the missing objects it held (see :func:`_fold_damaged_packs`).
    objects: tuple[ObjectId, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "jobs": list(self.jobs),
            "commits": list(self.commits),
            "objects": list(self.objects),
        }


@attrs.frozen
class JobHealth:
    """Per job: broken commits and, per branch, the newest intact commit (None: none left)."""

    job: str
    broken_commits: tuple[CommitId, ...]
    last_good: dict[str, CommitId | None]

    @property
    def ok(self) -> bool:
        return not self.broken_commits

    def to_json(self) -> dict[str, object]:
        return {
            "job": self.job,
            "broken_commits": list(self.broken_commits),
            "last_good": dict(self.last_good),
        }


@attrs.frozen
class VerifyReport:
    problems: tuple[Problem, ...]
    jobs: dict[str, JobHealth]
    objects_checked: int
    bytes_checked: int
    full: bool

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "full": self.full,
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "problems": [p.to_json() for p in self.problems],
            "jobs": {name: health.to_json() for name, health in self.jobs.items()},
        }


class _Checker:
    """Checks each object once and remembers the verdict (dedup makes objects shared)."""

    def __init__(self, repo: BaseRepository, full: bool) -> None:
        self.repo = repo
        self.full = full
        self.errors: dict[ObjectId, CkptError] = {}
        self.ok: set[ObjectId] = set()
        self.commits: dict[CommitId, Commit] = {}
        self.kinds: dict[ObjectId, Kind] = {}
        self.decoded: dict[ObjectId, bytes] = {}
        self.objects_checked = 0
        self.bytes_checked = 0
        self.listed: list[ObjectId] = []
        #: Blobs still being checked by worker processes, and those of them the
        #: walk took for good meanwhile (see :meth:`settle`).
        self.pending: set[ObjectId] = set()
        self.assumed: set[ObjectId] = set()
        self._scan: StoreScan | None = None
        self._finish: Callable[[], dict[ObjectId, Verdict]] | None = None

    def check_all(self, progress: Meter | None = None) -> bool:
        """Check every stored object, on every core (the bulk of a full verify).

        Returns True if large values are still being checked by worker
        processes: the walk may go on meanwhile, and :meth:`settle` must be
        called after it (or :meth:`stop` if it fails).
        """
        scan = StoreScan(self.repo.objects)
        self.listed = list(scan.slots)
        self.decoded, finish = scan.start_checks(keep={Kind.COMMIT, Kind.TREE}, progress=progress)
        if not scan.checking:
            self._take(scan, finish())
            return False
        self._scan, self._finish = scan, finish
        so_far = scan.verdicts()
        self._take(scan, so_far)
        self.pending = {oid for oid in scan.slots if oid not in so_far}
        return True

    def settle(self) -> bool:
        """Wait for the checks :meth:`check_all` left running and take their verdicts.

        Returns True if a blob the walk took for good meanwhile turned out
        damaged, missing or of another kind: the walk must then be done again.
        """
        scan, finish = self._scan, self._finish
        if scan is None or finish is None:
            return False
        self._scan = self._finish = None
        self._take(scan, finish())
        self.pending = set()
        assumed, self.assumed = self.assumed, set()
        return any(
            oid not in self.ok or self.kinds.get(oid, Kind.BLOB) is not Kind.BLOB for oid in assumed
        )

    def stop(self) -> None:
        """Stop the checks :meth:`check_all` left running (verify is giving up)."""
        if self._scan is not None:
            self._scan.stop_checks()

    def _take(self, scan: StoreScan, verdicts: dict[ObjectId, Verdict]) -> None:
        for oid, slot in scan.slots.items():
            verdict = verdicts.get(oid)
            if verdict is None or oid in self.ok or oid in self.errors:
                continue  # checked by the walk, or by the sweep at the end of verify
            if isinstance(verdict, CkptError):
                self.errors[oid] = verdict
            else:
                self.ok.add(oid)
                self.kinds[oid] = verdict
                self.objects_checked += 1
                self.bytes_checked += slot.size
        self.listed = list(scan.slots)

    def check(self, oid: ObjectId, kind: Kind, *, streamed: bool = False) -> bool:
        if oid in self.ok:
            found = self.kinds.get(oid)
            if found is None or found is kind:
                return True
            self.ok.discard(oid)
            self.errors[oid] = CorruptObjectError(
                oid, "object has the wrong kind", kind.label, found.label
            )
            return False
        if oid in self.errors:
            return False
        if kind is Kind.BLOB and oid in self.pending:
            # Being checked by a worker: taken for good until it has its verdict.
            self.assumed.add(oid)
            return True
        try:
            if kind is Kind.BLOB and not self.full:
                if not self.repo.objects.has(oid):
                    raise ObjectNotFoundError(oid)
            elif streamed:
                # A file's content: checked chunk by chunk, never whole in memory.
                stored = self.repo.objects.read_stored(oid)
                self.bytes_checked += len(stored)
                verify_blob(self.repo.objects, oid)
            else:
                stored = self.repo.objects.read_stored(oid)
                self.bytes_checked += len(stored)
                found = self.repo.objects.verify(oid)
                if found is not kind:
                    raise CorruptObjectError(
                        oid, "object has the wrong kind", kind.label, found.label
                    )
            self.objects_checked += 1
        except CkptError as exc:
            self.errors[oid] = exc
            return False
        self.ok.add(oid)
        return True

    def commit(self, oid: CommitId) -> Commit | None:
        if oid in self.commits:
            return self.commits[oid]
        if not self.check(oid, Kind.COMMIT):
            return None
        try:
            data = self.decoded.pop(oid, None)
            commit = self.repo.objects.get_commit(oid) if data is None else decode_commit(data, oid)
        except CkptError as exc:
            self.ok.discard(oid)
            self.errors[oid] = exc
            return None
        self.commits[oid] = commit
        return commit

    def broken_by(self, commit: Commit) -> list[ObjectId]:
        """Objects whose damage breaks ``commit`` (empty if it is intact)."""
        if not self.check(commit.tree, Kind.TREE):
            return [commit.tree]
        data = self.decoded.get(commit.tree)
        tree = (
            self.repo.objects.get_tree(commit.tree)
            if data is None
            else Tree.decode(data, commit.tree)
        )
        broken = [entry.id for entry in tree if not self.check(entry.id, Kind.BLOB)]
        broken.extend(
            oid
            for entry in tree
            for oid in entry.files
            if not self.check(oid, Kind.BLOB, streamed=True)
        )
        return broken


def verify(
    repo: BaseRepository,
    *,
    full: bool = True,
    jobs: Iterable[str] | None = None,
    progress: ProgressFn | None = None,
    events: EventFn | None = None,
) -> VerifyReport:
    """Check the store; return every problem found.  Raises only if the store can't be read.

    ``progress(done, total)`` is called after each job; ``events`` receives the
    events of the phases: ``checking objects`` (every stored object, with
    ``full`` and no ``jobs``) and ``checking jobs``.
    """
    checker = _Checker(repo, full)
    problems: list[Problem] = []
    # object id -> (jobs, commits) it breaks
    damage: dict[ObjectId, tuple[set[str], set[CommitId]]] = {}
    healths: dict[str, JobHealth] = {}
    names = list(jobs) if jobs is not None else _job_names(repo)
    packs_damaged: list[PackDamage] | None = None  # else looked for if objects are missing
    checking: Meter | None = None
    try:
        if full and jobs is None:
            checking = Meter(events, "checking objects")
            if not checker.check_all(checking):
                checking.finish()
                checking = None
            packs_damaged = damaged_packs(repo.objects)
            problems.extend(
                Problem("damaged-pack", bad.key, f"{bad.error}; {_PACK_FIX}")
                for bad in packs_damaged
                if bad.index_whole
            )
        # Large values may still be checked by worker processes while the jobs
        # are walked: the walk takes them for good, and is done again in the
        # rare case that one of them is not.
        walked = len(problems)
        walking = Meter(events, "checking jobs", unit="jobs", total=len(names))
        for index, name in enumerate(names, 1):
            before = checker.bytes_checked
            healths[name] = _verify_job(repo, name, checker, problems, damage)
            walking.advance(1, checker.bytes_checked - before)
            if progress is not None:
                progress(index, len(names))
        walking.finish()
    except BaseException:
        checker.stop()
        raise
    if checker.settle():
        del problems[walked:]
        damage.clear()
        for name in names:
            healths[name] = _verify_job(repo, name, checker, problems, damage)
    if checking is not None:
        checking.finish()
    if full and jobs is None:
        for oid in checker.listed:
            if oid not in checker.ok and oid not in checker.errors:
                try:
                    kind = repo.objects.kind_of(oid)
                except CkptError:
                    kind = Kind.BLOB
                checker.check(oid, kind)
    for oid, exc in sorted(checker.errors.items()):
        affected_jobs, affected_commits = damage.get(oid, (set(), set()))
        label = "missing-object" if isinstance(exc, ObjectNotFoundError) else "corrupt-object"
        problems.append(
            Problem(
                label, oid, str(exc), tuple(sorted(affected_jobs)), tuple(sorted(affected_commits))
            )
        )
    problems = _fold_damaged_packs(repo, problems, packs_damaged)
    return VerifyReport(
        tuple(problems), healths, checker.objects_checked, checker.bytes_checked, full
    )


_PACK_FIX = "its objects read fine; `ckpt repair` rewrites the pack"
_LOST_PACK_FIX = (
    "`ckpt repair` moves it to quarantine/ (add --from REMOTE to copy its objects back)"
)


def _fold_damaged_packs(
    repo: BaseRepository, problems: list[Problem], found: list[PackDamage] | None
) -> list[Problem]:
    """One ``damaged-pack`` problem for each pack whose index is lost, naming the missing
    objects it held (and what they break) in place of a ``missing-object`` problem each.

    Which missing objects a pack held is read from its entries (see
    :mod:`ckpt.objects.salvage`); when only one pack is damaged, the missing
    objects no entry accounts for are its too, up to the entries it lost.
    """
    missing = {p.subject: p for p in problems if p.kind == "missing-object"}
    if found is None:
        found = damaged_packs(repo.objects) if missing else []
    lost = [bad for bad in found if not bad.index_whole]
    if not lost:
        return problems
    unclaimed = set(missing)
    held: dict[str, set[str]] = {}
    counts: dict[str, tuple[int, int | None]] = {}
    for bad in lost:
        try:
            data = repo.storage.get(bad.key)
        except (KeyNotFoundError, StorageError):
            data = b""
        salvaged = salvage(data)
        held[bad.key] = unclaimed & set(salvaged.ids)
        unclaimed -= held[bad.key]
        counts[bad.key] = (len(data), salvaged.declared)
        if len(lost) == 1:
            extra = sorted(unclaimed)
            if salvaged.lost is not None:
                extra = extra[: salvaged.lost]
            held[bad.key] |= set(extra)
    claimed = {oid for oids in held.values() for oid in oids}
    folded = []
    for bad in lost:
        size, declared = counts[bad.key]
        objects = sorted(held[bad.key])
        counted = (
            f"it held {declared} object{'' if declared == 1 else 's'} (its header says), "
            "none of them readable through it now"
            if declared is not None
            else "its header is unreadable too"
        )
        folded.append(
            Problem(
                "damaged-pack",
                bad.key,
                f"pack {bad.key} ({size:,} bytes) is damaged: {bad.error.reason}; {counted}; "
                + _LOST_PACK_FIX,
                tuple(sorted({job for oid in objects for job in missing[oid].jobs})),
                tuple(sorted({c for oid in objects for c in missing[oid].commits})),
                tuple(ObjectId(oid) for oid in objects),
            )
        )
    kept = [p for p in problems if not (p.kind == "missing-object" and p.subject in claimed)]
    return folded + kept


def _job_names(repo: BaseRepository) -> list[str]:
    """Every job, and every job folder that lost its HEAD but still has refs or a reflog."""
    names = set(repo.job_names())
    for name in job_folders(repo.storage):
        if name not in names and RefStore(repo.storage, name).reflog_or_refs():
            names.add(name)
    return sorted(names)


def _verify_job(
    repo: BaseRepository,
    name: str,
    checker: _Checker,
    problems: list[Problem],
    damage: dict[ObjectId, tuple[set[str], set[CommitId]]],
) -> JobHealth:
    refs = RefStore(repo.storage, name)
    try:
        refs.current_branch()
    except CorruptRefError as exc:
        problems.append(Problem("bad-head", f"{name}:HEAD", str(exc), (name,)))
    targets = refs.all_refs()
    # The reflog is parsed once: for damaged refs, garbled lines, roots and last-good
    # candidates.
    records = list(refs._reflog_records())
    reflog = [entry for entry in reversed(records) if entry is not None]
    for bad_ref in ref_damage(repo.storage, name, reflog):
        problems.append(Problem(bad_ref.kind, f"{name}:{bad_ref.ref}", bad_ref.message, (name,)))
    try:
        record = read_record(repo.storage, name)
    except CorruptRefError as exc:
        record = JobRecord()  # walked without its cut: everything below one is checked too
        problems.append(
            Problem(
                "bad-record",
                f"{name}:meta",
                f"{exc}; `ckpt repair` rewrites it, keeping the fields that can be read",
                (name,),
            )
        )
    bad_lines = [number for number, entry in enumerate(records, 1) if entry is None]
    for line in bad_lines:
        problems.append(
            Problem(
                "bad-reflog",
                f"{name}:reflog:{line}",
                f"job {name}: reflog line {line} is garbled",
                (name,),
            )
        )

    broken: set[CommitId] = set()
    cut = record.cut
    stack = list(roots_from(targets, reflog, record))
    seen: set[CommitId] = set()
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        commit = checker.commit(oid)
        bad = [oid] if commit is None else checker.broken_by(commit)
        if bad:
            broken.add(oid)
            for bad_oid in bad:
                entry = damage.setdefault(bad_oid, (set(), set()))
                entry[0].add(name)
                entry[1].add(oid)
        if commit is not None and oid not in cut:
            stack.extend(commit.parents)

    last_good: dict[str, CommitId | None] = {}
    for ref, head in targets.items():
        if not ref.startswith(HEADS):
            continue
        candidates: list[CommitId] = []
        step: CommitId | None = head
        while step is not None:
            candidates.append(step)
            commit = checker.commits.get(step)
            step = commit.parent if commit is not None and commit.id not in cut else None
        candidates.extend(e.new for e in reflog if e.ref == ref and e.new is not None)
        last_good[ref[len(HEADS) :]] = next(
            (c for c in candidates if c not in broken and c in checker.commits), None
        )
    return JobHealth(name, tuple(sorted(broken)), last_good)
