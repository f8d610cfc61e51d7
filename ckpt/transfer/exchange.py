"""Export and import of jobs as human-readable JSON.

An export holds a job's branches, tags, HEAD, record, and every commit with
its stages' values as plain JSON.  Because stored values *are* canonical
JSON, importing re-creates byte-identical blobs, trees and commits: the same
ids, so an export/import round trip is lossless.

The contents of files (``ckpt.File``, ``ckpt.Directory``) travel in the
export's ``files`` object, content id -> base64, each checked against its id
on import (an export holds them in memory: for large files, push to a
remote store instead).

Exporting one checkpoint (``rev=``) gives a single commit; importing it
creates a job whose history starts at that checkpoint (the commit is
re-parented, so its id differs).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import attrs

from ckpt.errors import CkptError, ConflictError
from ckpt.history.job import Job
from ckpt.history.jobrecord import JobRecord, update_record
from ckpt.history.refs import HEADS, TAGS
from ckpt.objects.ids import CommitId, Kind, ObjectId, check_object_id
from ckpt.objects.model import (
    ENCODING_JSON,
    ENCODING_RAW,
    Commit,
    Tree,
    TreeEntry,
    decode_commit,
    encode_commit,
)
from ckpt.objects.store import ObjectStore
from ckpt.objects.stream import BLOCK_SIZE, BlobReader, ContentWriter
from ckpt.repository import Repository
from ckpt.transfer.exportcheck import check_export
from ckpt.values import serialize

EXPORT_FORMAT = "ckpt-export"
EXPORT_VERSION = 1


def export_job(job: Job, rev: str | None = None) -> dict[str, Any]:
    """The job (or, with ``rev``, the one checkpoint ``rev`` names) as JSON data."""
    objects = job.repo.objects
    if rev is not None:
        commits = [job.resolve(rev)]
        branches = {job.branch_name: commits[0].id}
        tags: dict[str, CommitId] = {}
    else:
        branches = job.branches()
        tags = job.tags()
        seen: set[CommitId] = set()
        commits = []
        for head in [*branches.values(), *tags.values()]:
            for commit in job.walk(head):
                if commit.id in seen:
                    break
                seen.add(commit.id)
                commits.append(commit)
        commits.sort(key=lambda c: (c.seq, c.time))
    exported = []
    contents: dict[ObjectId, str] = {}
    for commit in commits:
        tree = objects.get_tree(commit.tree)
        stages = {
            entry.name: _export_value(entry, objects.get(entry.id, Kind.BLOB)) for entry in tree
        }
        for entry in tree:
            for oid in entry.files:
                if oid not in contents:
                    contents[oid] = _export_content(objects, oid)
        exported.append({**commit.to_json(), "stage_order": tree.names, "stages": stages})
    doc: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "job": job.name,
        "head": job.branch_name,
        "branches": dict(branches),
        "tags": dict(tags),
        "record": job.record.to_json() if rev is None else JobRecord().to_json(),
        "partial": rev is not None,
        "commits": exported,
    }
    if contents:
        doc["files"] = contents
    return doc


def import_job(repo: Repository, doc: Any, *, name: str | None = None) -> Job:
    """Create a job from an export.  Refuses to overwrite an existing job.

    All or nothing: the whole document is checked first (names by the
    API's rules, every field, every commit a ref or parent names), and a
    failure while writing removes the job again.
    """
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise CkptError("not a ckpt export (missing format marker)")
    if doc.get("version") != EXPORT_VERSION:
        raise CkptError(f"unsupported export version {doc.get('version')!r}")
    check_export(doc, name=name)
    job = repo.job(name or str(doc.get("job")))
    if job.exists:
        raise ConflictError(f"job {job.name!r} already exists; import under another name")
    return _import(repo, job, doc)


def _import(repo: Repository, job: Job, doc: dict[str, Any]) -> Job:
    objects = repo.objects
    renamed: dict[str, CommitId] = {}
    partial = bool(doc.get("partial"))
    _import_contents(repo, doc.get("files") or {})
    for item in doc["commits"]:
        entries = []
        for stage in item["stage_order"]:
            spec = item["stages"][stage]
            encoding = spec.get("encoding", ENCODING_JSON)
            if encoding == ENCODING_RAW:
                data = base64.b64decode(spec["base64"], validate=True)
            else:
                data = serialize.canonical_json(spec["value"])
            blob = objects.put(Kind.BLOB, data)
            files = tuple(check_object_id(oid) for oid in spec.get("files", []))
            missing = [oid for oid in files if not objects.has(oid)]
            if missing:
                raise CkptError(
                    f"the export is malformed: stage {stage!r} needs file content {missing[0]} "
                    "which it does not hold"
                )
            entries.append(TreeEntry(stage, blob, str(spec["type"]), len(data), encoding, files))
        tree_id = objects.put_tree(Tree(tuple(entries)))
        fields = {k: v for k, v in item.items() if k not in ("stage_order", "stages", "id")}
        fields["tree"] = tree_id
        fields["job"] = job.name
        fields["parents"] = [] if partial else [renamed.get(p, p) for p in fields["parents"]]
        fields["v"] = 1
        encoded = serialize.canonical_json(fields)
        commit = decode_commit(encoded, ObjectId("0" * 64))
        new_id = objects.put_commit(commit)
        renamed[item["id"]] = new_id
        _check_same(commit, encode_commit(attrs.evolve(commit, id=new_id)), encoded)
    head = str(doc.get("head") or "main")
    if not job.refs.create(head):
        raise ConflictError(f"job {job.name!r} was created meanwhile; import under another name")
    try:
        for branch, oid in doc["branches"].items():
            job.refs.update(HEADS + branch, None, renamed[oid], "import")
        for tag, oid in (doc.get("tags") or {}).items():
            job.refs.update(TAGS + tag, None, renamed[oid], "import")
        record = JobRecord.from_json(doc.get("record") or {}, "export record")
        update_record(repo.storage, job.name, lambda _old: record)
    except BaseException:
        repo.delete_job(job.name)  # a half-made job is removed; its objects are garbage for gc
        raise
    return job


def _export_value(entry: TreeEntry, data: bytes) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": entry.type}
    if entry.encoding == ENCODING_RAW:
        spec["encoding"] = ENCODING_RAW
        spec["base64"] = base64.b64encode(data).decode("ascii")
    else:
        spec["value"] = serialize.parse_json(data)
    if entry.files:
        spec["files"] = list(entry.files)
    return spec


def _export_content(objects: ObjectStore, oid: ObjectId) -> str:
    """A file's content as base64 (read piece by piece, checked)."""
    with BlobReader(objects, oid) as reader:
        return "".join(_base64_pieces(reader.pieces()))


def _base64_pieces(pieces: Iterator[bytes]) -> Iterator[str]:
    carry = b""
    for piece in pieces:
        data = carry + piece
        cut = len(data) - len(data) % 3
        carry = data[cut:]
        yield base64.b64encode(data[:cut]).decode("ascii")
    yield base64.b64encode(carry).decode("ascii")


def _import_contents(repo: Repository, contents: Any) -> None:
    """Store the files' contents of an export, each checked against its id."""
    if not isinstance(contents, dict):
        raise CkptError("the export is malformed: 'files' is not an object")
    with ContentWriter(repo.objects) as writer:
        for oid, text in contents.items():
            expected = check_object_id(oid)
            data = base64.b64decode(text, validate=True)
            blob = writer.stream(len(data))
            with memoryview(data) as view:
                for at in range(0, len(data), BLOCK_SIZE):
                    blob.write(view[at : at + BLOCK_SIZE])
            if blob.finish() != expected:
                raise CkptError(f"the export is damaged: file content {oid} does not match its id")


def _check_same(commit: Commit, stored: bytes, expected: bytes) -> None:
    if stored != expected:
        raise CkptError(f"import of commit {commit.id[:12]} would not be lossless")
