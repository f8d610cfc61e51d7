"""Annotated tags: a message (and when it was written) kept with a tag, as ``git tag -m``.

A tag stays what it always was, the ref ``jobs/JOB/refs/tags/TAG`` holding
``COMMIT-ID\\n``, so that every reader (old ones too) sees the tag and gc
keeps what it names.  The message lives beside it, at
``jobs/JOB/annotations/TAG``, as JSON naming the commit it was written for::

    {"commit": "<id>", "message": "first draft approved", "tag": "v1",
     "time": "2024-05-01T12:00:00+00:00"}

An annotation counts only while the tag points at that commit: one left
behind by a crash, by a tag deleted and created again, or by a tag moved
elsewhere is never shown.  Write order: the annotation first, then the tag
(a crash in between leaves an annotation no tag shows); a tag is deleted
before its annotation.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import attrs

from ckpt.errors import CkptError, ConflictError
from ckpt.history.names import tag_name
from ckpt.history.refs import TAGS, job_prefix, now
from ckpt.objects.ids import CommitId, check_object_id
from ckpt.storage.base import KeyNotFoundError, Storage

if TYPE_CHECKING:
    from ckpt.history.job import Job

ANNOTATIONS = "annotations/"
_RETRIES = 20


class InvalidMessageError(CkptError, ValueError):
    """A tag message that cannot be stored (an empty one)."""


@attrs.frozen
class TagAnnotation:
    """The message of tag ``tag``, written when it was created on ``commit``."""

    tag: str
    commit: CommitId
    message: str
    time: dt.datetime

    def to_json(self) -> dict[str, str]:
        return {
            "tag": self.tag,
            "commit": self.commit,
            "message": self.message,
            "time": self.time.isoformat(),
        }


def annotation_key(job: str, tag: str) -> str:
    return f"{job_prefix(job)}{ANNOTATIONS}{tag_name(tag)}"


def _encode(annotation: TagAnnotation) -> bytes:
    return json.dumps(annotation.to_json(), sort_keys=True).encode() + b"\n"


def _decode(raw: bytes) -> TagAnnotation | None:
    """The annotation stored in ``raw``; None if it cannot be read (it is then ignored)."""
    try:
        doc = json.loads(raw)
        return TagAnnotation(
            tag=str(doc["tag"]),
            commit=CommitId(check_object_id(doc["commit"])),
            message=str(doc["message"]),
            time=dt.datetime.fromisoformat(doc["time"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _read_raw(storage: Storage, key: str) -> bytes | None:
    try:
        return storage.get(key)
    except KeyNotFoundError:
        return None


def _replace(storage: Storage, key: str, new: bytes | None) -> None:
    """Set ``key`` to ``new`` (None: remove it) whatever it held, by compare-and-swap."""
    for _ in range(_RETRIES):
        old = _read_raw(storage, key)
        if old == new:
            return
        try:
            storage.compare_and_swap(key, old, new)
            return
        except ConflictError:
            continue
    raise ConflictError(f"{key} kept changing; try again")


def prepare_tag(job: Job, tag: str, commit: CommitId, message: str | None) -> None:
    """Before tag ``tag`` is created on ``commit``: write its message, or clear an old one."""
    key = annotation_key(job.name, tag)
    if message is None:
        if _read_raw(job.repo.storage, key) is not None:
            _replace(job.repo.storage, key, None)
        return
    if not isinstance(message, str) or not message.strip():
        raise InvalidMessageError("a tag message must not be empty")
    _replace(job.repo.storage, key, _encode(TagAnnotation(tag, commit, message, now())))


def forget_tag(job: Job, tag: str) -> None:
    """After tag ``tag`` was deleted: remove its message."""
    _replace(job.repo.storage, annotation_key(job.name, tag), None)


def tag_annotation(job: Job, tag: str) -> TagAnnotation | None:
    """The message of tag ``tag``, if it has one for the commit the tag points at."""
    target = job.refs.read(TAGS + tag_name(tag))
    raw = _read_raw(job.repo.storage, annotation_key(job.name, tag))
    found = None if raw is None or target is None else _decode(raw)
    return found if found is not None and found.commit == target and found.tag == tag else None


def tag_annotations(job: Job) -> dict[str, TagAnnotation]:
    """Tag name -> message, for every tag of ``job`` that has one."""
    prefix = f"{job_prefix(job.name)}{ANNOTATIONS}"
    tags = job.tags()
    found: dict[str, TagAnnotation] = {}
    for info in job.repo.storage.list(prefix):
        name = info.key[len(prefix) :]
        raw = _read_raw(job.repo.storage, info.key)
        annotation = None if raw is None else _decode(raw)
        if (
            annotation is not None
            and annotation.tag == name
            and tags.get(name) == annotation.commit
        ):
            found[name] = annotation
    return found


def copy_annotation(src: Job, dst: Job, tag: str) -> None:
    """Give ``dst``'s tag ``tag`` the message ``src``'s has (or none), before the tag moves."""
    raw = _read_raw(src.repo.storage, annotation_key(src.name, tag))
    _replace(dst.repo.storage, annotation_key(dst.name, tag), raw)
