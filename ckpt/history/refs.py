"""Per-job refs: branches, tags, HEAD and the reflog.

Storage keys of job ``J``::

    jobs/J/HEAD               "ref: refs/heads/BRANCH\\n"
    jobs/J/refs/heads/B       "COMMIT-ID\\n"   one per branch
    jobs/J/refs/tags/T        "COMMIT-ID\\n"   one per tag
    jobs/J/reflog             log: one JSON record per ref move
    jobs/J/meta               JSON job record (see ckpt.history.job)

A ref moves only by the backend's compare-and-swap, which is the commit
point of a save: a writer that lost a race gets ConflictError and nothing
changes.  After a successful move a reflog record (ref, old, new, time,
reason) is appended; a crash between the two leaves the ref moved and one
reflog record missing, never the reverse.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import attrs

from ckpt.errors import ConflictError, CorruptRefError
from ckpt.history.names import branch_name, job_name, tag_name
from ckpt.objects.ids import CommitId, check_object_id
from ckpt.storage.base import KeyNotFoundError, Storage

DEFAULT_BRANCH = "main"
JOBS_PREFIX = "jobs/"
HEADS = "refs/heads/"
TAGS = "refs/tags/"


@attrs.frozen
class ReflogEntry:
    """One move of a ref: which ref, from what to what, when and why."""

    ref: str
    old: CommitId | None
    new: CommitId | None
    time: dt.datetime
    reason: str

    def to_json(self) -> dict[str, str | None]:
        return {
            "ref": self.ref,
            "old": self.old,
            "new": self.new,
            "time": self.time.isoformat(),
            "reason": self.reason,
        }


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def job_prefix(job: str) -> str:
    return f"{JOBS_PREFIX}{job}/"


class RefStore:
    """The refs of one job over a storage backend."""

    def __init__(self, storage: Storage, job: str) -> None:
        self.storage = storage
        self.job = job_name(job)
        self.prefix = job_prefix(self.job)

    # -- HEAD ---------------------------------------------------------------

    @property
    def head_key(self) -> str:
        return f"{self.prefix}HEAD"

    def exists(self) -> bool:
        return self.storage.stat(self.head_key) is not None

    def create(self, branch: str = DEFAULT_BRANCH) -> bool:
        """Create the job's HEAD if absent; True if this call created it."""
        try:
            self.storage.compare_and_swap(self.head_key, None, _head_bytes(branch_name(branch)))
        except ConflictError:
            return False
        return True

    def current_branch(self) -> str:
        """The branch HEAD names (``main`` for a job not yet created)."""
        try:
            raw = self.storage.get(self.head_key)
        except KeyNotFoundError:
            return DEFAULT_BRANCH
        text = raw.decode("utf-8", "replace").strip()
        if not text.startswith("ref: " + HEADS):
            raise CorruptRefError(f"job {self.job}: HEAD is garbled ({text[:40]!r})")
        name = text[len("ref: " + HEADS) :]
        try:
            return branch_name(name)
        except ValueError:
            raise CorruptRefError(f"job {self.job}: HEAD names an invalid branch") from None

    def set_current_branch(self, branch: str) -> None:
        branch_name(branch)
        try:
            old: bytes | None = self.storage.get(self.head_key)
        except KeyNotFoundError:
            old = None
        self.storage.compare_and_swap(self.head_key, old, _head_bytes(branch))

    # -- refs ---------------------------------------------------------------

    def key(self, ref: str) -> str:
        return f"{self.prefix}{ref}"

    def read(self, ref: str) -> CommitId | None:
        """The commit a ref (``refs/heads/B`` or ``refs/tags/T``) points at, or None."""
        try:
            raw = self.storage.get(self.key(ref))
        except KeyNotFoundError:
            return None
        return self._parse(ref, raw)

    def _parse(self, ref: str, raw: bytes) -> CommitId:
        text = raw.decode("ascii", "replace").strip()
        try:
            return CommitId(check_object_id(text))
        except ValueError:
            kind, name = (
                ("tag", ref[len(TAGS) :])
                if ref.startswith(TAGS)
                else ("branch", ref.removeprefix(HEADS))
            )
            raise CorruptRefError(
                f"job {self.job}: ref {ref} is garbled ({text[:20]!r}); restore it from the "
                f"reflog with `ckpt repair`, or delete it with `ckpt {kind} {self.job} -d {name}`"
            ) from None

    def update(
        self,
        ref: str,
        old: CommitId | None,
        new: CommitId | None,
        reason: str,
        *,
        forward: bool = False,
    ) -> None:
        """Move ``ref`` from ``old`` to ``new`` atomically (None: absent), then log it.

        Raises ConflictError, changing nothing, if ``ref`` no longer holds ``old``.
        ``forward`` says that ``old`` is the parent of ``new`` (a save): its reflog
        line is then not synced on its own, since a machine crash that lost it
        would lose no commit (``new`` is in the ref, ``old`` is its parent); the
        next synced line makes it durable.
        """
        expected = None if old is None else f"{old}\n".encode()
        value = None if new is None else f"{new}\n".encode()
        try:
            self.storage.compare_and_swap(self.key(ref), expected, value)
        except ConflictError:
            current = self.read(ref)
            if current == old:
                raise  # not a move by someone else (e.g. a lock held too long): say so
            raise ConflictError(
                f"job {self.job}: {_pretty(ref)} moved to {_short(current)} while this "
                f"handle expected {_short(old)}; call job.refresh() and try again"
            ) from None
        self.log(ref, old, new, reason, sync=not forward)

    def log(
        self,
        ref: str,
        old: CommitId | None,
        new: CommitId | None,
        reason: str,
        *,
        sync: bool = True,
    ) -> None:
        entry = ReflogEntry(ref, old, new, now(), reason)
        record = json.dumps(entry.to_json(), sort_keys=True, separators=(",", ":"))
        self.storage.append(f"{self.prefix}reflog", record.encode(), sync=sync)

    def branch_ref(self, branch: str) -> str:
        return HEADS + branch_name(branch)

    def tag_ref(self, tag: str) -> str:
        return TAGS + tag_name(tag)

    def _list(self, kind: str) -> dict[str, CommitId]:
        """The refs of ``kind`` that hold a commit id.  A garbled one is left out, so
        that it locks no one out of the others (verify reports it, repair restores it)."""
        return {
            name[len(kind) :]: oid
            for name, oid in self.all_refs((kind,)).items()
            if oid is not None
        }

    def branches(self) -> dict[str, CommitId]:
        return self._list(HEADS)

    def tags(self) -> dict[str, CommitId]:
        return self._list(TAGS)

    def all_refs(self, kinds: tuple[str, ...] = (HEADS, TAGS)) -> dict[str, CommitId | None]:
        """Every ref name (of ``kinds``) mapped to its target; a garbled ref maps to None."""
        out: dict[str, CommitId | None] = {}
        for kind in kinds:
            prefix = self.key(kind)
            for info in self.storage.list(prefix):
                name = kind + info.key[len(prefix) :]
                try:
                    out[name] = self._parse(name, self.storage.get(info.key))
                except (CorruptRefError, KeyNotFoundError):
                    out[name] = None
        return out

    def reflog_or_refs(self) -> bool:
        """True if the job has any ref or reflog line (what makes a folder more than
        the leftovers of a deleted job, HEAD or not)."""
        for kind in (HEADS, TAGS):
            if next(iter(self.storage.list(self.key(kind))), None) is not None:
                return True
        return bool(self.storage.read_log(f"{self.prefix}reflog"))

    def remove_garbled(self, ref: str, reason: str) -> CommitId | None:
        """Delete ``ref``, which holds no commit id; return where the reflog last put it.

        Raises ConflictError if the ref changed meanwhile.
        """
        try:
            raw = self.storage.get(self.key(ref))
        except KeyNotFoundError:
            raise ConflictError(f"job {self.job}: {_pretty(ref)} changed concurrently") from None
        logged = self.logged_target(ref)
        self.storage.compare_and_swap(self.key(ref), raw, None)
        self.log(ref, None, None, reason)
        return logged

    def logged_target(self, ref: str) -> CommitId | None:
        """Where the newest reflog record of ``ref`` moved it (None: never, or deleted)."""
        for entry in self.reflog():
            if entry.ref == ref:
                return entry.new
        return None

    # -- reflog -------------------------------------------------------------

    def reflog(self) -> list[ReflogEntry]:
        """Reflog entries, newest first.  Garbled lines are skipped (see ``bad_reflog_lines``)."""
        entries = [e for e in self._reflog_records() if isinstance(e, ReflogEntry)]
        entries.reverse()
        return entries

    def bad_reflog_lines(self) -> list[int]:
        """1-based numbers of reflog lines that cannot be parsed."""
        records = enumerate(self._reflog_records(), 1)
        return [i for i, e in records if not isinstance(e, ReflogEntry)]

    def _reflog_records(self) -> Iterator[ReflogEntry | None]:
        for raw in self.storage.read_log(f"{self.prefix}reflog"):
            yield _parse_reflog(raw)


def _parse_reflog(raw: bytes) -> ReflogEntry | None:
    try:
        doc = json.loads(raw)
        old, new = doc["old"], doc["new"]
        return ReflogEntry(
            ref=str(doc["ref"]),
            old=None if old is None else CommitId(check_object_id(old)),
            new=None if new is None else CommitId(check_object_id(new)),
            time=dt.datetime.fromisoformat(doc["time"]),
            reason=str(doc["reason"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _head_bytes(branch: str) -> bytes:
    return f"ref: {HEADS}{branch}\n".encode()


def _short(oid: CommitId | None) -> str:
    return "nothing" if oid is None else oid[:12]


def _pretty(ref: str) -> str:
    if ref.startswith(HEADS):
        return f"branch {ref[len(HEADS) :]}"
    if ref.startswith(TAGS):
        return f"tag {ref[len(TAGS) :]}"
    return ref
