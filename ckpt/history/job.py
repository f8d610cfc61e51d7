"""A job: one pipeline run's checkpoints, branches, tags and reflog.

``Job`` is the handle users save and load through.  A save writes the
stage's blob, a tree (the parent's tree plus this stage) and a commit, then
moves the branch by compare-and-swap: that ref update is the commit point.
A crash before it loses only the stage in flight; once ``save`` returns, the
checkpoint is on stable storage (unless the store was opened with
``durable=False``).

Reads always see the current head.  A handle remembers the head it last saw
on each branch (by reading or saving) and saves on top of it: if another
writer moved the branch in between, ``save`` raises ``ConflictError`` instead
of silently dropping either update.  Read the head again (or call
``refresh()``) to build on the new one, or save with ``retry=True``.

Why this module is long: ``Job`` is the one handle users save, load and move
refs through, so its public methods stay together; the work behind the
longer ones lives elsewhere (revisions, forks, refs, job records).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs

from ckpt.errors import (
    CkptError,
    ConflictError,
    CorruptObjectError,
    CorruptRefError,
    NotFoundError,
    ObjectNotFoundError,
    SerializationError,
    StorageError,
    in_context,
)
from ckpt.history import names
from ckpt.history.fork import fork_job
from ckpt.history.jobrecord import JobRecord, read_record_or_default, update_record
from ckpt.history.refs import DEFAULT_BRANCH, HEADS, TAGS, ReflogEntry, RefStore, now
from ckpt.history.retained import retained_history
from ckpt.history.revisions import known_commits, resolve_revision
from ckpt.objects.canonical import JSONValue, canonical_json, parse_json, type_name
from ckpt.objects.ids import CommitId, Kind, ObjectId
from ckpt.objects.model import (
    ENCODING_JSON,
    ENCODING_RAW,
    STATUS_ACTIVE,
    STATUS_COMPLETED,
    STATUS_EXPIRED,
    STATUS_FAILED,
    STATUSES,
    Commit,
    Tree,
    TreeEntry,
    commit_fields_valid,
)

if TYPE_CHECKING:
    from ckpt.history.repository import BaseRepository

# ckpt.values.serialize (cattrs) is imported where a value is encoded or decoded,
# so that commands that only read history (`ckpt log`) start without it.

T = TypeVar("T")
_RETRIES = 20
_UNSET: Any = object()


@attrs.frozen
class StageBlob:
    """A stage value ready to store: its stage, bytes, type name and encoding, and the
    content ids of the files it holds (already stored)."""

    stage: str
    data: bytes
    type: str
    encoding: str
    files: tuple[ObjectId, ...] = ()


@attrs.frozen
class CheckoutResult:
    """What a checkout did: the branch, where it was, where it is now, and what was rolled back."""

    branch: str
    old: CommitId | None
    new: CommitId
    rolled_back: tuple[Commit, ...]
    created_branch: bool = False


class Job:
    """Checkpoints of one job in a repository.  Created on first save."""

    def __init__(self, repo: BaseRepository, name: str) -> None:
        self.repo = repo
        self.name = names.job_name(name)
        self.refs = RefStore(repo.storage, self.name)
        self._seen: dict[str, CommitId | None] = {}
        # The last commit this handle wrote, with its tree: the next save builds on it
        # without reading them back (objects are immutable, so the copy cannot be stale).
        self._wrote: tuple[Commit, Tree] | None = None

    def __repr__(self) -> str:
        return f"Job({self.name!r})"

    # -- state --------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.refs.exists()

    @property
    def branch_name(self) -> str:
        """The branch HEAD names: saves go there."""
        return self.refs.current_branch()

    def _head_id(self, branch: str, *, fresh: bool = True) -> CommitId | None:
        """The head of ``branch``: read now (``fresh``), or the one this handle last saw.

        Reads are always fresh and remember what they saw; saves and
        checkouts build on what was last seen, so that a branch moved by
        someone else in between is a conflict, not a silent overwrite.
        """
        if fresh or branch not in self._seen:
            self._seen[branch] = self.refs.read(HEADS + branch)
        return self._seen[branch]

    @property
    def head(self) -> Commit | None:
        """The newest commit on the current branch, or None before the first save."""
        oid = self._head_id(self.branch_name)
        return None if oid is None else self.repo.objects.get_commit(oid)

    def refresh(self) -> None:
        """Forget the heads this handle has seen, so the next save builds on the current ones.

        Reading ``head`` (or anything at HEAD) has the same effect for the
        current branch.
        """
        self._seen.clear()

    # -- saving -------------------------------------------------------------

    def save(
        self,
        stage: str,
        value: object,
        *,
        type: Any = None,
        cost: float = 0.0,
        tokens: int = 0,
        message: str = "",
        meta: Mapping[str, JSONValue] | None = None,
        status: str = STATUS_ACTIVE,
        retry: bool = False,
    ) -> Commit:
        """Checkpoint ``value`` as ``stage``; return the new commit.

        ``type`` tells how to serialize (default: the value's own class).
        ``cost`` and ``tokens`` are this stage's; the commit also records the
        running totals of the branch.  Raises SerializationError (naming the
        stage and type) before anything is written if the value cannot be
        serialized, and ConflictError if the branch moved since this handle
        last read it.  With ``retry=True`` a save that lost such a race is
        rebuilt on top of the new head instead (safe when concurrent writers
        save different stages, or when the last save should win).
        """
        blob = self._encode(stage, value, type)
        return self._commit(
            stage=stage,
            blobs=(blob,),
            cost=cost,
            tokens=tokens,
            message=message,
            meta=meta,
            status=status,
            reason=f"save: {stage}",
            retry=retry,
        )

    def save_many(
        self,
        values: Mapping[str, object],
        *,
        types: Mapping[str, Any] | None = None,
        drop: Iterable[str] = (),
        stage: str | None = None,
        cost: float = 0.0,
        tokens: int = 0,
        message: str = "",
        meta: Mapping[str, JSONValue] | None = None,
        status: str = STATUS_ACTIVE,
        retry: bool = False,
    ) -> Commit:
        """Checkpoint several stage values (and remove ``drop``) in one commit.

        ``stage`` names the commit's stage (default: the last key of
        ``values``).  Every value is serialized before anything is written.
        """
        blobs = tuple(
            self._encode(name, value, (types or {}).get(name)) for name, value in values.items()
        )
        dropped = tuple(names.stage_name(name) for name in drop)
        label = stage if stage is not None else (blobs[-1].stage if blobs else None)
        if label is not None:
            names.stage_name(label)
        return self._commit(
            stage=label,
            blobs=blobs,
            drop=dropped,
            cost=cost,
            tokens=tokens,
            message=message,
            meta=meta,
            status=status,
            reason=f"save: {', '.join(b.stage for b in blobs) or 'no stage'}",
            retry=retry,
        )

    def _encode(self, stage: str, value: object, type: Any) -> StageBlob:
        names.stage_name(stage)
        if isinstance(value, (bytes, bytearray, memoryview)) and type in (None, bytes, bytearray):
            return StageBlob(stage, bytes(value), "bytes", ENCODING_RAW)
        try:
            # Imported here: `ckpt log` and plain loads never need the cattrs converter.
            from ckpt.values import filehooks, serialize

            # The bytes of any ckpt.File in the value are stored (durably) as it is serialized.
            with filehooks.saving(self.repo.objects) as stored:
                data = serialize.dumps(value, as_type=type)
        except SerializationError as exc:
            # Same class (a FileValueError stays one), with the stage named.
            raise exc.__class__(f"stage {stage!r} of job {self.name!r}: {exc}") from exc
        value_type = type if type is not None else value.__class__
        return StageBlob(stage, data, type_name(value_type), ENCODING_JSON, tuple(stored.ids))

    def _commit(
        self,
        *,
        stage: str | None,
        blobs: Sequence[StageBlob] = (),
        drop: Sequence[str] = (),
        cost: float,
        tokens: int,
        message: str,
        meta: Mapping[str, JSONValue] | None,
        status: str,
        reason: str,
        retry: bool = False,
    ) -> Commit:
        commit_fields_valid(cost, tokens)
        if status not in STATUSES:
            raise CkptError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        meta_dict = dict(meta or {})
        try:
            canonical_json(meta_dict)
        except SerializationError as exc:
            raise SerializationError(f"metadata of stage {stage!r}: {exc}") from exc
        if not isinstance(message, str):
            raise SerializationError("message must be a string")
        for attempt in range(_RETRIES if retry else 1):
            try:
                return self._try_commit(
                    stage, blobs, drop, cost, tokens, message, meta_dict, status, reason
                )
            except ConflictError:
                if attempt + 1 >= (_RETRIES if retry else 1):
                    raise
                import random

                time.sleep(min(0.001 * 2**attempt, 0.1) * random.random())
        raise AssertionError("unreachable")  # pragma: no cover

    def _try_commit(
        self,
        stage: str | None,
        blobs: Sequence[StageBlob],
        drop: Sequence[str],
        cost: float,
        tokens: int,
        message: str,
        meta: dict[str, JSONValue],
        status: str,
        reason: str,
    ) -> Commit:
        what = f"stage {stage!r}" if stage else "status"
        branch = DEFAULT_BRANCH
        try:
            branch = self.branch_name
            parent_id = self._head_id(branch, fresh=False)
            objects = self.repo.objects
            wrote = self._wrote
            if parent_id is None:
                _refuse_lost_branch(self.refs, branch)
                parent, tree = None, Tree()
            elif wrote is not None and wrote[0].id == parent_id:
                parent, tree = wrote
            else:
                parent = objects.get_commit(parent_id)
                tree = objects.get_tree(parent.tree)
            for name in drop:
                tree = tree.without(name)
            # One batch: the save's objects are written as one pack when the
            # block ends, before the ref moves; the ref move makes both durable
            # (one fsync on a local store).  Each blob may be stored as a delta
            # against the stage's previous value.
            with objects.batch(sealed_by_ref=True) as batch:
                for blob in blobs:
                    previous = tree.get(blob.stage)
                    blob_id = batch.put(
                        Kind.BLOB, blob.data, base=None if previous is None else previous.id
                    )
                    entry = TreeEntry(
                        blob.stage, blob_id, blob.type, len(blob.data), blob.encoding, blob.files
                    )
                    tree = tree.with_entry(entry)
                tree_id = batch.put_tree(tree)
                commit = Commit(
                    id=CommitId(ObjectId("0" * 64)),
                    tree=tree_id,
                    parents=() if parent_id is None else (parent_id,),
                    job=self.name,
                    branch=branch,
                    stage=stage,
                    time=now(),
                    seq=1 if parent is None else parent.seq + 1,
                    cost=float(cost),
                    tokens=int(tokens),
                    total_cost=round(
                        (0.0 if parent is None else parent.total_cost) + float(cost), 9
                    ),
                    total_tokens=(0 if parent is None else parent.total_tokens) + int(tokens),
                    status=status,
                    message=message,
                    meta=meta,
                )
                commit = attrs.evolve(commit, id=batch.put_commit(commit))
            self.repo.check_present()
            if parent_id is None and self.refs.create(branch):
                update_record(self.repo.storage, self.name, lambda record: record)
            self.refs.update(HEADS + branch, parent_id, commit.id, reason, forward=True)
        except ConflictError:
            self._seen.pop(branch, None)
            raise
        except StorageError as exc:
            # The ref may or may not have moved: re-read it before the next save.
            self._seen.pop(branch, None)
            raise StorageError(
                exc.errno or 0, f"saving {what} of job {self.name!r}: {exc}"
            ) from exc
        self._seen[branch] = commit.id
        self._wrote = (commit, tree)
        self.repo.objects.settle()
        return commit

    def complete(self, message: str = "", meta: Mapping[str, JSONValue] | None = None) -> Commit:
        """Mark the job completed with a commit that saves no stage."""
        return self._status_commit(STATUS_COMPLETED, message, meta, "complete")

    def fail(
        self,
        error: BaseException | str,
        *,
        stage: str | None = None,
        meta: Mapping[str, JSONValue] | None = None,
    ) -> Commit:
        """Record a failure (error type and message, and the stage that failed)."""
        info: dict[str, JSONValue] = dict(meta or {})
        if isinstance(error, BaseException):
            info["error_type"] = error.__class__.__name__
            info["error"] = str(error)
        else:
            info["error"] = str(error)
        if stage is not None:
            info["failed_stage"] = names.stage_name(stage)
        message = f"failed: {info.get('error', '')}"[:500]
        return self._status_commit(STATUS_FAILED, message, info, "fail")

    def _status_commit(
        self, status: str, message: str, meta: Mapping[str, JSONValue] | None, reason: str
    ) -> Commit:
        """A commit that saves no stage and records ``status`` (complete, fail, expire)."""
        return self._commit(
            stage=None,
            cost=0.0,
            tokens=0,
            message=message,
            meta=meta,
            status=status,
            reason=reason,
        )

    # -- loading ------------------------------------------------------------

    @overload
    def load(self, stage: str, type: type[T], *, at: str | None = None) -> T: ...

    @overload
    def load(self, stage: str, type: None = None, *, at: str | None = None) -> Any: ...

    def load(self, stage: str, type: Any = None, *, at: str | None = None) -> Any:
        """The value of ``stage`` at revision ``at`` (default HEAD).

        With ``type`` the value is rebuilt as that type; without, it comes back
        as plain JSON data.  Raises NotFoundError if the stage was not saved by
        then, CorruptObjectError if its bytes are damaged.
        """
        names.stage_name(stage)
        commit = self.resolve(at)
        with self._naming_damage(commit.id, stage):
            entry = self.repo.objects.get_tree(commit.tree).get(stage)
        if entry is None:
            raise NotFoundError(
                f"job {self.name!r} has no stage {stage!r} at {commit.short_id} "
                f"(stages: {', '.join(self.stages(commit.id)) or 'none'})"
            )
        with self._naming_damage(commit.id, stage):
            data = self.repo.objects.get(entry.id, Kind.BLOB)
        if entry.encoding == ENCODING_RAW:
            if type is None or type is bytes:
                return data
            if type is bytearray:
                return bytearray(data)
            raise SerializationError(
                f"stage {stage!r} of job {self.name!r} holds bytes, not {type_name(type)}"
            )
        try:
            if type is None and b'"$ckpt"' not in data:
                return parse_json(data)  # plain data (no ckpt.File in it): no converter needed
            from ckpt.values import filehooks, serialize

            with filehooks.loading(self.repo.objects):
                return serialize.loads(data, type)
        except SerializationError as exc:
            raise SerializationError(f"stage {stage!r} of job {self.name!r}: {exc}") from exc

    def load_raw(self, stage: str, *, at: str | None = None) -> bytes:
        """The canonical bytes of ``stage`` at ``at``."""
        commit = self.resolve(at)
        with self._naming_damage(commit.id, stage):
            entry = self.repo.objects.get_tree(commit.tree).get(names.stage_name(stage))
        if entry is None:
            raise NotFoundError(f"job {self.name!r} has no stage {stage!r} at {commit.short_id}")
        with self._naming_damage(commit.id, stage):
            return self.repo.objects.get(entry.id, Kind.BLOB)

    def tree(self, at: str | None = None) -> Tree:
        commit = self.resolve(at)
        with self._naming_damage(commit.id, None):
            return self.repo.objects.get_tree(commit.tree)

    @contextlib.contextmanager
    def _naming_damage(self, commit: CommitId, stage: str | None) -> Iterator[None]:
        """Let a damaged or missing object read for ``stage`` of ``commit`` name them too."""
        try:
            yield
        except (CorruptObjectError, ObjectNotFoundError) as exc:
            if exc.job is not None:
                raise
            raise in_context(exc, job=self.name, commit=commit, stage=stage) from exc

    def stages(self, at: str | None = None) -> list[str]:
        """Names of the stages saved at ``at`` (default HEAD), in the order first saved."""
        if at is None and self.head is None:
            return []
        return self.tree(at).names

    def has_stage(self, stage: str, at: str | None = None) -> bool:
        return stage in self.stages(at)

    # -- history ------------------------------------------------------------

    def walk(self, start: CommitId | None) -> Iterator[Commit]:
        """Commits from ``start`` back along first parents, stopping where retention cut."""
        cut = self.record.cut
        oid = start
        while oid is not None:
            commit = self.repo.objects.get_commit(oid)
            yield commit
            oid = None if commit.id in cut else commit.parent

    def is_cut(self, commit: Commit) -> bool:
        """True if retention removed the history before ``commit``."""
        return commit.id in self.record.cut and commit.parent is not None

    def log(self, rev: str | None = None, *, limit: int | None = None) -> list[Commit]:
        """Commits from ``rev`` (default HEAD) back to the first, newest first.

        Where retention cut the history, the log goes on with the older
        checkpoints it kept (``--keep-daily`` and the like), if any.
        """
        if rev is None and self.head is None:
            _refuse_lost_branch(self.refs, self.branch_name)
            return []
        out: list[Commit] = []
        for commit in retained_history(self, self.resolve(rev).id):
            if limit is not None and len(out) >= limit:
                break
            out.append(commit)
        return out

    def reflog(self) -> list[ReflogEntry]:
        """Every recorded ref move of this job, newest first."""
        return self.refs.reflog()

    # -- revisions ----------------------------------------------------------

    def resolve(self, rev: str | None = None) -> Commit:
        """The commit a revision names (see :mod:`ckpt.history.revisions`)."""
        return resolve_revision(self, rev)

    def known_commits(self) -> set[CommitId]:
        """Every commit reachable from this job's refs and reflog."""
        return known_commits(self)

    # -- moving refs --------------------------------------------------------

    def checkout(self, rev: str, *, new_branch: str | None = None) -> CheckoutResult:
        """Roll the current branch back (or forward) to ``rev``; or start ``new_branch`` there.

        The commits rolled past stay reachable through the reflog until gc
        expires it, so the move can be undone with ``checkout(old_id)``.
        """
        target = self.resolve(rev)
        if new_branch is not None:
            self.branch(new_branch, at=target.id)
            self.switch(new_branch)
            return CheckoutResult(new_branch, None, target.id, (), created_branch=True)
        branch = self.branch_name
        old = self._head_id(branch, fresh=False)
        rolled: list[Commit] = []
        if old is not None and old != target.id:
            try:
                for commit in self.walk(old):
                    if commit.id == target.id:
                        break
                    rolled.append(commit)
                else:
                    rolled = []
            except CkptError:
                rolled = []  # the old head is damaged (recovering from it): nothing to list
        self.refs.update(HEADS + branch, old, target.id, f"checkout: {branch} to {target.short_id}")
        self._seen[branch] = target.id
        return CheckoutResult(branch, old, target.id, tuple(rolled))

    def branch(self, name: str, *, at: str | None = None) -> Commit:
        """Create branch ``name`` at ``at`` (default HEAD); refuse if it exists."""
        names.branch_name(name)
        target = self.resolve(at)
        ref = HEADS + name
        if self.refs.read(ref) is not None:
            raise ConflictError(f"job {self.name!r}: branch {name!r} already exists")
        _check_nesting(self.name, "branch", name, self.branches())
        self.refs.update(ref, None, target.id, f"branch: created at {target.short_id}")
        self._seen[name] = target.id
        return target

    def branches(self) -> dict[str, CommitId]:
        return self.refs.branches()

    def switch(self, name: str) -> None:
        """Make ``name`` the current branch (it must exist).

        Like git's ``HEAD`` reflog, the move is recorded: a reflog entry on ref
        ``HEAD`` from the old branch's head to the new one's, with the reason
        ``switch: moving from OLD to NEW``.
        """
        names.branch_name(name)
        target = self.refs.read(HEADS + name)
        if target is None:
            raise NotFoundError(
                f"job {self.name!r} has no branch {name!r} "
                f"(branches: {', '.join(sorted(self.branches())) or 'none'})"
            )
        try:
            previous: str | None = self.branch_name
        except CorruptRefError:
            previous = None  # a garbled HEAD: switching repairs it
        if previous == name:
            return
        old = None if previous is None else self.refs.read(HEADS + previous)
        self.refs.set_current_branch(name)
        moving = f"from {previous} to {name}" if previous is not None else f"to {name}"
        self.refs.log("HEAD", old, target, f"switch: moving {moving}")

    def delete_branch(self, name: str) -> CommitId | None:
        """Delete branch ``name``; return the commit it named.  A garbled branch can be
        deleted too: the return is then where the reflog last put it (None if nowhere)."""
        names.branch_name(name)
        if name == self.branch_name:
            raise ConflictError(
                f"job {self.name!r}: cannot delete the current branch {name!r}; switch first"
            )
        try:
            oid = self.refs.read(HEADS + name)
        except CorruptRefError:
            return self.refs.remove_garbled(HEADS + name, "branch: deleted (garbled)")
        if oid is None:
            raise NotFoundError(f"job {self.name!r} has no branch {name!r}")
        self.refs.update(HEADS + name, oid, None, "branch: deleted")
        self._seen.pop(name, None)
        return oid

    def tag(self, name: str, rev: str | None = None, *, message: str | None = None) -> Commit:
        """Tag the commit ``rev`` (default HEAD) as ``name``; refuse if the tag exists.

        With ``message`` the tag is annotated, as ``git tag -m`` (see
        :mod:`ckpt.history.tags`): ``tag_annotation`` and ``ckpt show`` give it back.
        """
        names.tag_name(name)
        target = self.resolve(rev)
        ref = TAGS + name
        if self.refs.read(ref) is not None:
            raise ConflictError(f"job {self.name!r}: tag {name!r} already exists")
        _check_nesting(self.name, "tag", name, self.tags())
        from ckpt.history.tags import prepare_tag

        prepare_tag(self, name, target.id, message)
        self.refs.update(ref, None, target.id, f"tag: {name}")
        return target

    def tags(self) -> dict[str, CommitId]:
        return self.refs.tags()

    def delete_tag(self, name: str) -> CommitId | None:
        """Delete tag ``name``; return the commit it named (for a garbled tag: where the
        reflog last put it, or None)."""
        names.tag_name(name)
        try:
            oid = self.refs.read(TAGS + name)
        except CorruptRefError:
            return self.refs.remove_garbled(TAGS + name, "tag: deleted (garbled)")
        if oid is None:
            raise NotFoundError(f"job {self.name!r} has no tag {name!r}")
        self.refs.update(TAGS + name, oid, None, "tag: deleted")
        from ckpt.history.tags import forget_tag

        forget_tag(self, name)
        return oid

    # -- lifecycle ----------------------------------------------------------

    @property
    def record(self) -> JobRecord:
        """Labels, TTL, fork point and retention state (see :mod:`ckpt.history.jobrecord`).

        An empty record if the stored one is garbled (``verify`` reports it, ``ckpt
        repair`` rewrites it), so that the job's history can still be read.
        """
        return read_record_or_default(self.repo.storage, self.name)

    def _update_record(self, change: Any) -> JobRecord:
        if not self.exists:
            raise NotFoundError(f"job {self.name!r} not found (no checkpoints saved)")
        return update_record(self.repo.storage, self.name, change)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.record.labels)

    def set_labels(self, labels: Mapping[str, str] | None = None, /, **more: str) -> JobRecord:
        """Add or change ``key=value`` labels (the job tags that ``ckpt jobs --tag`` filters)."""
        new = {**(labels or {}), **more}
        for key, value in new.items():
            names.validate_name("label", key)
            if not isinstance(value, str) or "\n" in value or len(value) > 1024:
                raise CkptError(f"label {key!r}: value must be a one-line string")
        return self._update_record(
            lambda record: attrs.evolve(record, labels={**record.labels, **new})
        )

    def remove_labels(self, *keys: str) -> JobRecord:
        return self._update_record(
            lambda record: attrs.evolve(
                record, labels={k: v for k, v in record.labels.items() if k not in keys}
            )
        )

    def set_ttl(self, ttl: float | dt.timedelta | None) -> JobRecord:
        """Expire the job ``ttl`` from now (seconds or timedelta); None removes the TTL."""
        if ttl is None:
            return self._update_record(
                lambda record: attrs.evolve(record, ttl_seconds=None, expires_at=None)
            )
        seconds = ttl.total_seconds() if isinstance(ttl, dt.timedelta) else float(ttl)
        if not seconds > 0:
            raise CkptError(f"TTL must be positive, not {ttl!r}")
        expires = now() + dt.timedelta(seconds=seconds)
        return self._update_record(
            lambda record: attrs.evolve(record, ttl_seconds=seconds, expires_at=expires)
        )

    @property
    def is_expired(self) -> bool:
        """True if the job's TTL has passed (whether or not ``expire()`` has marked it)."""
        return self.record.is_expired() or self.status == STATUS_EXPIRED

    def expire(self, message: str = "TTL exceeded") -> Commit:
        """Mark the job expired with a status commit; gc ``--expired`` then removes it."""
        return self._status_commit(STATUS_EXPIRED, message, None, "expire")

    def fork(self, new_job: str, *, at: str | None = None, message: str = "") -> Job:
        """Start job ``new_job`` from checkpoint ``at`` of this job (default HEAD).

        The new job's first commit has the checkpoint as parent, so it has
        all of its stages and history; its record names the fork point.
        """
        return fork_job(self, new_job, at=at, message=message)

    # -- summary ------------------------------------------------------------

    @property
    def status(self) -> str:
        """active, completed, failed or expired.

        A job whose TTL has passed shows as expired whatever its last status,
        since it is due for collection (``gc --expired``).
        """
        head = self.head
        status = STATUS_ACTIVE if head is None else head.status
        if head is not None and self.record.is_expired():
            return STATUS_EXPIRED
        return status

    @property
    def updated(self) -> dt.datetime | None:
        head = self.head
        return None if head is None else head.time


def _refuse_lost_branch(refs: RefStore, branch: str) -> None:
    """Raise if ``branch`` is missing although the reflog says it has history: a save
    would start a new root and orphan that history, and a log would show nothing."""
    logged = refs.logged_target(HEADS + branch)
    if logged is not None:
        from ckpt.history.refcheck import missing_ref_message

        raise CorruptRefError(missing_ref_message(refs.job, HEADS + branch, logged))


def _check_nesting(job: str, kind: str, name: str, existing: Iterable[str]) -> None:
    """Refuse ``a/b`` beside ``a`` (and the reverse): like git, a ref name cannot
    also be a folder of ref names."""
    for other in existing:
        if other.startswith(name + "/") or name.startswith(other + "/"):
            raise ConflictError(
                f"job {job!r}: cannot create {kind} {name!r} while {kind} {other!r} exists "
                "(a name cannot also be a folder of names)"
            )
