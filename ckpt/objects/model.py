"""Tree and commit objects and their canonical encodings.

A *blob* is a stage value's canonical bytes and needs no model.  A *tree*
maps stage names, in the order they were first saved, to the blob holding
each one's value.  A *commit* records one checkpoint: its tree, its
parent(s), which job, branch and stage, when, the cost and tokens of the
stage and the running totals, the status and free metadata.

Encodings are canonical JSON (see :mod:`ckpt.values.serialize`) with a format field
``"v"``; decoding validates every field and raises CorruptObjectError naming
the object rather than returning something half-formed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from ckpt.errors import CorruptObjectError, SerializationError
from ckpt.objects.canonical import JSONValue, canonical_json, parse_json
from ckpt.objects.ids import CommitId, ObjectId, check_object_id

ENCODING_VERSION = 1

STATUS_ACTIVE = "active"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_EXPIRED = "expired"
STATUSES = (STATUS_ACTIVE, STATUS_COMPLETED, STATUS_FAILED, STATUS_EXPIRED)


#: How a blob's bytes encode a stage value: canonical JSON (the default), or
#: the raw bytes of a ``bytes`` value (no base64, so large binary values can be
#: written and read without inflating them).
ENCODING_JSON = "json"
ENCODING_RAW = "raw"
ENCODINGS = (ENCODING_JSON, ENCODING_RAW)


def _sorted_ids(ids: Iterable[ObjectId]) -> tuple[ObjectId, ...]:
    return tuple(sorted(set(ids)))


@attrs.frozen
class TreeEntry:
    """One stage in a tree: its blob, the value's type name, size and encoding, and the
    blobs holding the contents of the files the value refers to (``ckpt.File``)."""

    name: str
    id: ObjectId
    type: str
    size: int
    encoding: str = ENCODING_JSON
    files: tuple[ObjectId, ...] = attrs.field(default=(), converter=_sorted_ids)

    @property
    def blobs(self) -> tuple[ObjectId, ...]:
        """Every blob the stage needs: its value's, then its files'."""
        return (self.id, *self.files)


@attrs.frozen
class Tree:
    """Stage name -> entry, in the order stages were first saved."""

    entries: tuple[TreeEntry, ...] = ()

    def __iter__(self) -> Iterator[TreeEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return any(entry.name == name for entry in self.entries)

    def get(self, name: str) -> TreeEntry | None:
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def with_entry(self, new: TreeEntry) -> Tree:
        """This tree with ``new`` replacing the entry of the same name, or appended."""
        if new.name in self:
            return Tree(tuple(new if e.name == new.name else e for e in self.entries))
        return Tree((*self.entries, new))

    def without(self, name: str) -> Tree:
        return Tree(tuple(e for e in self.entries if e.name != name))

    def encode(self) -> bytes:
        return canonical_json(
            {
                "v": ENCODING_VERSION,
                "stages": [
                    [e.name, e.id, e.type, e.size, e.encoding, list(e.files)]
                    if e.files
                    else [e.name, e.id, e.type, e.size, e.encoding]
                    for e in self.entries
                ],
            }
        )

    @classmethod
    def decode(cls, data: bytes, oid: str) -> Tree:
        doc = _parse_doc(data, oid, "tree")
        stages = doc.get("stages")
        if not isinstance(stages, list):
            raise CorruptObjectError(oid, "tree has no stage list")
        entries = []
        for item in stages:
            if not (isinstance(item, list) and len(item) in (5, 6)):
                raise CorruptObjectError(oid, "malformed tree entry")
            name, blob, type_name, size, encoding = item[:5]
            files = item[5] if len(item) == 6 else []
            if not (
                isinstance(name, str)
                and isinstance(type_name, str)
                and type(size) is int
                and size >= 0
                and encoding in ENCODINGS
                and isinstance(files, list)
                and (files or len(item) == 5)
            ):
                raise CorruptObjectError(oid, "malformed tree entry")
            entries.append(
                TreeEntry(
                    name,
                    _oid(blob, oid),
                    type_name,
                    size,
                    encoding,
                    tuple(_oid(file_id, oid) for file_id in files),
                )
            )
        return cls(tuple(entries))


@attrs.frozen
class Commit:
    """One checkpoint of a job.  ``id`` is the commit object's id."""

    id: CommitId
    tree: ObjectId
    parents: tuple[CommitId, ...]
    job: str
    branch: str
    stage: str | None
    time: dt.datetime
    seq: int
    cost: float = 0.0
    tokens: int = 0
    total_cost: float = 0.0
    total_tokens: int = 0
    status: str = STATUS_ACTIVE
    message: str = ""
    meta: Mapping[str, JSONValue] = attrs.field(factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def parent(self) -> CommitId | None:
        return self.parents[0] if self.parents else None

    def to_json(self) -> dict[str, Any]:
        """The commit as plain JSON data (the schema of ``--json`` output)."""
        return {
            "id": self.id,
            "tree": self.tree,
            "parents": list(self.parents),
            "job": self.job,
            "branch": self.branch,
            "stage": self.stage,
            "time": self.time.isoformat(),
            "seq": self.seq,
            "cost": self.cost,
            "tokens": self.tokens,
            "total_cost": self.total_cost,
            "total_tokens": self.total_tokens,
            "status": self.status,
            "message": self.message,
            "meta": dict(self.meta),
        }


def encode_commit(commit: Commit) -> bytes:
    """Canonical bytes of ``commit`` (its ``id`` is not part of them)."""
    doc = commit.to_json()
    del doc["id"]
    doc["v"] = ENCODING_VERSION
    return canonical_json(doc)


def commit_fields_valid(cost: float, tokens: int) -> None:
    """Refuse cost/tokens that would make totals meaningless."""
    if (
        isinstance(cost, bool)
        or not isinstance(cost, (int, float))
        or not math.isfinite(cost)
        or cost < 0
    ):
        raise SerializationError(f"cost must be a finite number >= 0, not {cost!r}")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise SerializationError(f"tokens must be an integer >= 0, not {tokens!r}")


def decode_commit(data: bytes, oid: ObjectId) -> Commit:
    doc = _parse_doc(data, oid, "commit")
    try:
        when = dt.datetime.fromisoformat(_field(doc, "time", str, oid))
        parents = doc.get("parents")
        if not isinstance(parents, list):
            raise CorruptObjectError(oid, "commit parents are not a list")
        stage = doc.get("stage")
        if stage is not None and not isinstance(stage, str):
            raise CorruptObjectError(oid, "commit stage is not a string")
        meta = doc.get("meta", {})
        if not isinstance(meta, dict):
            raise CorruptObjectError(oid, "commit metadata is not an object")
        return Commit(
            id=CommitId(oid),
            tree=_oid(doc.get("tree"), oid),
            parents=tuple(CommitId(_oid(p, oid)) for p in parents),
            job=_field(doc, "job", str, oid),
            branch=_field(doc, "branch", str, oid),
            stage=stage,
            time=when,
            seq=_field(doc, "seq", int, oid),
            cost=float(_number(doc, "cost", oid)),
            tokens=_field(doc, "tokens", int, oid),
            total_cost=float(_number(doc, "total_cost", oid)),
            total_tokens=_field(doc, "total_tokens", int, oid),
            status=_field(doc, "status", str, oid),
            message=_field(doc, "message", str, oid),
            meta=meta,
        )
    except ValueError as exc:
        raise CorruptObjectError(oid, f"malformed commit: {exc}") from exc


def _parse_doc(data: bytes, oid: str, what: str) -> dict[str, JSONValue]:
    try:
        doc = parse_json(data)
    except SerializationError as exc:
        raise CorruptObjectError(oid, f"{what} is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise CorruptObjectError(oid, f"{what} is not a JSON object")
    if doc.get("v") != ENCODING_VERSION:
        raise CorruptObjectError(
            oid, f"unknown {what} encoding version", str(ENCODING_VERSION), repr(doc.get("v"))
        )
    return doc


def _oid(value: object, oid: str) -> ObjectId:
    try:
        return check_object_id(value)
    except ValueError:
        raise CorruptObjectError(oid, f"malformed object id {value!r}") from None


def _field(doc: Mapping[str, JSONValue], name: str, kind: type[Any], oid: str) -> Any:
    value = doc.get(name)
    if type(value) is not kind:
        raise CorruptObjectError(oid, f"field {name!r} is missing or not a {kind.__name__}")
    return value


def _number(doc: Mapping[str, JSONValue], name: str, oid: str) -> float | int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CorruptObjectError(oid, f"field {name!r} is missing or not a number")
    return value
