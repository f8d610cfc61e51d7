"""The job record: what a job knows of itself beyond its commits.

Stored as canonical JSON at ``jobs/JOB/meta`` and changed only by
compare-and-swap (a read-modify-write loop that retries on conflict), so
concurrent updates from several processes never lose each other.

Fields: creation time, labels (the ``key=value`` tags of ``ckpt jobs --tag``),
a TTL and the time it expires, the checkpoint a job was forked from, a
``keep_last`` retention setting, and the history cut that retention made
(``cut``: commits whose parents are no longer kept; ``pruned_at``: reflog
entries older than this no longer keep commits alive).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import attrs

from ckpt.errors import ConflictError, CorruptRefError
from ckpt.history.refs import job_prefix, now
from ckpt.objects.ids import CommitId, check_object_id
from ckpt.storage.base import KeyNotFoundError, Storage

_MAX_RETRIES = 50


@attrs.frozen
class ForkPoint:
    """The checkpoint a job was forked from."""

    job: str
    commit: CommitId


@attrs.frozen
class JobRecord:
    created: dt.datetime | None = None
    labels: dict[str, str] = attrs.field(factory=dict)
    ttl_seconds: float | None = None
    expires_at: dt.datetime | None = None
    forked_from: ForkPoint | None = None
    keep_last: int | None = None
    cut: frozenset[CommitId] = frozenset()
    pruned_at: dt.datetime | None = None
    kept_below: dict[CommitId, CommitId] = attrs.field(factory=dict)

    def is_expired(self, at: dt.datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (at or now())

    def to_json(self) -> dict[str, object]:
        return {
            "created": _iso(self.created),
            "labels": dict(sorted(self.labels.items())),
            "ttl_seconds": self.ttl_seconds,
            "expires_at": _iso(self.expires_at),
            "forked_from": None
            if self.forked_from is None
            else {
                "job": self.forked_from.job,
                "commit": self.forked_from.commit,
            },
            "keep_last": self.keep_last,
            "cut": sorted(self.cut),
            "pruned_at": _iso(self.pruned_at),
            # Written only when there is one, so that records without stay as they were.
            **({"kept_below": dict(sorted(self.kept_below.items()))} if self.kept_below else {}),
        }

    @classmethod
    def from_json(cls, doc: object, where: str) -> JobRecord:
        try:
            if not isinstance(doc, dict):
                raise TypeError("not an object")
            labels = doc.get("labels") or {}
            if not isinstance(labels, dict):
                raise TypeError("labels")
            fork = doc.get("forked_from")
            keep_last = doc.get("keep_last")
            ttl = doc.get("ttl_seconds")
            kept_below = doc.get("kept_below") or {}
            if not isinstance(kept_below, dict):
                raise TypeError("kept_below")
            return cls(
                created=_parse_time(doc.get("created")),
                labels={str(k): str(v) for k, v in labels.items()},
                ttl_seconds=None if ttl is None else float(ttl),
                expires_at=_parse_time(doc.get("expires_at")),
                forked_from=None
                if fork is None
                else ForkPoint(str(fork["job"]), CommitId(check_object_id(fork["commit"]))),
                keep_last=None if keep_last is None else int(keep_last),
                cut=frozenset(CommitId(check_object_id(c)) for c in doc.get("cut") or []),
                pruned_at=_parse_time(doc.get("pruned_at")),
                kept_below={
                    CommitId(check_object_id(k)): CommitId(check_object_id(v))
                    for k, v in kept_below.items()
                },
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise CorruptRefError(f"{where} is garbled: {exc}") from None


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: object) -> dt.datetime | None:
    """An ISO 8601 time; one without a UTC offset (written by hand, or by another tool)
    is taken as UTC, so that every time compares with every other."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("time is not a string")
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def record_key(job: str) -> str:
    return f"{job_prefix(job)}meta"


def _encode(record: JobRecord) -> bytes:
    return json.dumps(record.to_json(), sort_keys=True, indent=1).encode() + b"\n"


def read_record(storage: Storage, job: str) -> JobRecord:
    return _parse(_read(storage, job), job)


def read_record_or_default(storage: Storage, job: str) -> JobRecord:
    """The job's record, or an empty one if it is garbled (verify reports it, repair
    rewrites it): a damaged record must not stop reading the job's history."""
    try:
        return read_record(storage, job)
    except CorruptRefError:
        return JobRecord()


def salvage_record(raw: bytes) -> JobRecord:
    """What can be read of a garbled record, field by field (the rest left empty)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return JobRecord(created=now())
    if not isinstance(doc, dict):
        return JobRecord(created=now())
    record = JobRecord(created=now())
    for field in ("created", "labels", "ttl_seconds", "expires_at", "forked_from", "keep_last"):
        try:
            one = JobRecord.from_json({field: doc.get(field)}, "field")
        except CorruptRefError:
            continue
        value = getattr(one, field)
        if value is not None and value != {}:
            record = attrs.evolve(record, **{field: value})
    return record


def rewrite_garbled(storage: Storage, job: str) -> bool:
    """If the job's record is garbled, replace it by what :func:`salvage_record` reads of
    it (the old bytes are kept at ``quarantine/meta-JOB``).  True if it was rewritten."""
    raw = _read(storage, job)
    if raw is None:
        return False
    try:
        _parse(raw, job)
        return False
    except CorruptRefError:
        pass
    storage.put_if_absent(f"quarantine/meta-{job}", raw)
    try:
        storage.compare_and_swap(record_key(job), raw, _encode(salvage_record(raw)))
    except ConflictError:
        return False  # changed meanwhile: the writer's record stands
    return True


def _parse(raw: bytes | None, job: str) -> JobRecord:
    if raw is None:
        return JobRecord()
    try:
        doc = json.loads(raw)
    except ValueError:
        raise CorruptRefError(f"job {job}: record {record_key(job)} is garbled") from None
    return JobRecord.from_json(doc, f"job {job}: record")


def _read(storage: Storage, job: str) -> bytes | None:
    try:
        return storage.get(record_key(job))
    except KeyNotFoundError:
        return None


def update_record(
    storage: Storage, job: str, change: Callable[[JobRecord], JobRecord]
) -> JobRecord:
    """Apply ``change`` to the job's record atomically, retrying if another writer won."""
    for _ in range(_MAX_RETRIES):
        raw = _read(storage, job)
        current = _parse(raw, job)
        if current.created is None:
            current = attrs.evolve(current, created=now())
        new = change(current)
        try:
            storage.compare_and_swap(record_key(job), raw, _encode(new))
        except ConflictError:
            continue
        return new
    raise ConflictError(f"job {job}: its record kept changing; try again")
