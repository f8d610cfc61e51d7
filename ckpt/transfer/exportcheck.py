"""The whole of an export document checked before an import writes anything.

An export is input from anywhere: a file edited by hand, cut short, or made
to harm.  :func:`check_export` checks every part that import relies on —
the shape of each field, every job, branch, tag and stage name by the same
rules as the API, every commit a ref or parent names — and raises one
:class:`~ckpt.errors.CkptError` saying where the document is wrong, so that
an import either writes a whole job or nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ckpt.errors import CkptError, CorruptObjectError, CorruptRefError, SerializationError
from ckpt.history import names
from ckpt.history.jobrecord import JobRecord
from ckpt.objects.ids import ObjectId, check_object_id
from ckpt.objects.model import ENCODING_JSON, ENCODING_RAW, STATUSES, decode_commit
from ckpt.values import serialize

#: Commit fields an export carries besides its stages (``id`` and ``tree`` are recomputed).
_COMMIT_FIELDS = {
    "id", "tree", "parents", "job", "branch", "stage", "time", "seq", "cost", "tokens",
    "total_cost", "total_tokens", "status", "message", "meta", "stage_order", "stages",
}  # fmt: skip


class MalformedExportError(CkptError, ValueError):
    """An export document that an import cannot take whole."""


def _fail(where: str, what: str) -> MalformedExportError:
    return MalformedExportError(f"the export is malformed: {where}: {what}")


def _name(check: Any, value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a name, found {type(value).__name__}")
    try:
        name: str = check(value)
    except CkptError as exc:
        raise _fail(where, str(exc)) from None
    return name


def _mapping(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(key, f"expected an object of names, found {type(value).__name__}")
    return value


def check_export(doc: Any, *, name: str | None = None) -> None:
    """Raise MalformedExportError (or InvalidNameError for ``name``) unless ``doc`` is an
    export an import can take whole."""
    if not isinstance(doc, dict):
        raise _fail("document", "not a JSON object")
    if name is not None:
        names.job_name(name)
    else:
        _name(names.job_name, doc.get("job"), "job")
    head = doc.get("head")
    if head is not None:
        _name(names.branch_name, head, "head")
    commits = doc.get("commits")
    if not isinstance(commits, list) or not commits:
        raise _fail("commits", "expected a non-empty list")
    partial = doc.get("partial", False)
    if not isinstance(partial, bool):
        raise _fail("partial", "expected true or false")
    seen: set[ObjectId] = set()
    for number, item in enumerate(commits, 1):
        commit_id = _check_commit(item, f"commit {number}", seen, partial)
        seen.add(commit_id)
    for key, check in (("branches", names.branch_name), ("tags", names.tag_name)):
        for ref, target in _mapping(doc, key).items():
            _name(check, ref, f"{key} {ref!r}")
            if target not in seen:
                raise _fail(f"{key} {ref!r}", f"names commit {target!r}, which is not exported")
    if not _mapping(doc, "branches"):
        raise _fail("branches", "an export needs at least one branch")
    try:
        JobRecord.from_json(doc.get("record") or {}, "record")
    except CorruptRefError as exc:
        raise _fail("record", str(exc)) from None


def _check_commit(item: object, where: str, seen: set[ObjectId], partial: bool) -> ObjectId:
    if not isinstance(item, dict):
        raise _fail(where, "not a JSON object")
    unknown = set(item) - _COMMIT_FIELDS
    if unknown:
        raise _fail(where, f"unknown field {sorted(unknown)[0]!r}")
    try:
        commit_id = check_object_id(item.get("id"))
    except (CkptError, ValueError, TypeError):
        raise _fail(where, "id is not a commit id") from None
    order = item.get("stage_order")
    stages = item.get("stages")
    if not isinstance(order, list):
        raise _fail(where, "stage_order is not a list")
    if not isinstance(stages, dict):
        raise _fail(where, "stages is not an object")
    if len(set(map(str, order))) != len(order) or set(map(str, order)) != set(stages):
        raise _fail(where, "stage_order and stages do not name the same stages")
    for stage in order:
        _name(names.stage_name, stage, f"{where}, stage {stage!r}")
        _check_value(stages[stage], f"{where}, stage {stage!r}")
    parents = item.get("parents")
    if not isinstance(parents, list):
        raise _fail(where, "parents is not a list")
    if not partial:
        for parent in parents:
            if parent not in seen:
                raise _fail(where, f"its parent {parent!r} is not exported before it")
    stage = item.get("stage")
    if stage is not None:
        _name(names.stage_name, stage, f"{where}, stage")
    _name(names.branch_name, item.get("branch"), f"{where}, branch")
    if item.get("status") not in STATUSES:
        raise _fail(where, f"unknown status {item.get('status')!r}")
    fields = {k: v for k, v in item.items() if k not in ("stage_order", "stages", "id")}
    fields.update(tree="0" * 64, v=1, job="job", parents=[] if partial else parents)
    try:
        decode_commit(serialize.canonical_json(fields), ObjectId("0" * 64))
    except (CorruptObjectError, SerializationError) as exc:
        raise _fail(where, str(exc).removeprefix(f"object {'0' * 64} is corrupt: ")) from None
    return commit_id


def _check_value(spec: object, where: str) -> None:
    if not isinstance(spec, dict):
        raise _fail(where, "not a JSON object")
    if not isinstance(spec.get("type"), str):
        raise _fail(where, "type is not a string")
    encoding = spec.get("encoding", ENCODING_JSON)
    if encoding == ENCODING_RAW:
        raw = spec.get("base64")
        if not isinstance(raw, str):
            raise _fail(where, "base64 is not a string")
        try:
            base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _fail(where, "base64 is not valid base64") from None
    elif encoding == ENCODING_JSON:
        if "value" not in spec:
            raise _fail(where, "no value")
        try:
            serialize.canonical_json(spec["value"])
        except SerializationError as exc:
            raise _fail(where, str(exc)) from None
    else:
        raise _fail(where, f"unknown encoding {encoding!r}")


__all__ = ["MalformedExportError", "check_export"]
