"""How LangGraph threads are laid out in a ckpt repository: jobs, branches, commits, trees.

This module knows nothing of LangGraph's classes: it stores and returns the
``(type, bytes)`` pairs that LangGraph's serializer makes, so that the
layout below is the whole contract between the saver and the rest of ckpt
(``ckpt log``, ``checkout``, ``verify``, ``gc``, push and pull).

Layout
------

* **Thread -> job.**  A thread id of letters, digits, ``_`` and ``-``
  (starting with a letter, digit or ``_``, at most 200 bytes) is the job
  name.  Any other id is ``lg.`` followed by the id with every other byte
  written ``=XX`` (hex), or ``lgh.`` and a hash when that is too long.  The
  thread id is also in every commit's metadata and in the job label
  ``langgraph_thread``.
* **Namespace -> branches.**  The root namespace ``""`` owns every branch
  not under ``ns/``; its current branch is the job's HEAD (``main`` at
  first), so ``ckpt checkout`` decides where the next graph invocation
  continues.  A subgraph namespace N owns the branches ``ns/<N encoded>/...``
  (``main`` first); its current branch is the one whose head holds the
  newest checkpoint.
* **Checkpoint -> commit.**  Its tree's stage ``lg.checkpoint`` holds the
  checkpoint's *record* (type ``lg.record``, see
  :mod:`ckpt.integrations.langgraph_record`): the checkpoint without its
  channel values and its metadata as the saver's serializer wrote them, and
  every channel value, small ones inline, larger ones in a stage of their own
  (the channel name when it is a plain identifier, else ``lg.c.`` and the
  escaped name), a message list (any msgpack array) as its newest elements
  inline plus a sealed prefix in stage ``lg.s.<escaped name>``.  The record is
  delta encoded against the parent checkpoint's record, so a step that
  appends a message stores about that message; identical values and sealed
  prefixes in any step of any thread are stored once.  The commit metadata
  ``langgraph`` names the kind, thread, namespace, checkpoint id and parent
  checkpoint id, the version of every channel (``versions``), and holds the
  scalar entries of the checkpoint metadata (step, source, run id, ...), so
  that ``ckpt log --json`` shows them.  A channel holds the value stored for
  that channel *at that version*: a new checkpoint reuses its parent's entry
  only where the parent's ``versions`` show the same version.
* **Pending writes.**  Writes sent for the newest checkpoint of a branch
  just before the next checkpoint of the same run are stored *with* that
  next checkpoint, in one commit (one durable step): its metadata lists
  them under ``carries`` (for each task, its id, path, and the channel and
  index of each write) and its record holds their values (a message the
  list gained is stored once, as a slice of the list), under the key
  ``lg.w.<hash>`` of each (a larger value that is no slice is a stage of
  that name).  Other writes make a *writes commit* on top of the head of
  the branch that holds their checkpoint: its tree is the head's tree plus
  one stage ``lg.w.<hash>`` per write, its metadata lists the task, path,
  stage, channel and index of each.  Writes sent for a checkpoint not stored
  yet (LangGraph saves in the background) make writes commits on top of it
  as soon as it is stored, in the same durable step.
* **Fork.**  A checkpoint whose parent is not the newest checkpoint of any
  branch of its namespace (LangGraph's time travel and ``update_state`` on
  an older checkpoint) starts a branch ``fork-<new checkpoint id>`` at the
  parent's newest commit, and that branch becomes the current one.

Stores written by earlier versions are read as they are: checkpoints whose
``lg.checkpoint`` stage holds the serialized header alone keep each channel
value whole in its stage, and commits written before ``versions`` existed are
read the same way (a child of one stores every channel it does not change
again, which costs no space: equal values are one blob).

Every write goes objects first, then one compare-and-swap of a branch, as
any ckpt save: a crash loses at most the checkpoint in flight.  A writer
that loses a race against another process retries on the new head.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

import attrs
import blake3

from ckpt.errors import CkptError, InvalidNameError
from ckpt.history import names
from ckpt.history.refs import DEFAULT_BRANCH
from ckpt.objects.model import Commit
from ckpt.values.serialize import JSONValue

META_KEY = "langgraph"
THREAD_LABEL = "langgraph_thread"
HEADER_STAGE = "lg.checkpoint"
KIND_CHECKPOINT = "checkpoint"
KIND_WRITES = "writes"
CARRIES = "carries"
SEALED_PREFIX = "lg.s."
NS_BRANCH_PREFIX = "ns/"

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")
_MAX_NAME = 200


# -- names ------------------------------------------------------------------


def _escape(text: str) -> str:
    out: list[str] = []
    for char in text:
        if char.isascii() and (char.isalnum() or char in "_-"):
            out.append(char)
        else:
            out.extend(f"={byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _unescape(text: str) -> str | None:
    data = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "=":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not re.fullmatch(r"[0-9A-F]{2}", pair):
                return None
            data.append(int(pair, 16))
            i += 3
        else:
            data.extend(char.encode("ascii", "replace"))
            i += 1
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


def encode_name(text: str, prefix: str = "lg") -> str:
    """A valid ckpt name for ``text``: itself if plain, else ``PREFIX.`` + escaped, else a hash.

    Distinct texts give distinct names (the hash form aside, which needs
    a blake3 collision), and plain names never contain a dot.
    """
    if _PLAIN.match(text) and len(text) <= _MAX_NAME and _valid(text):
        return text
    escaped = f"{prefix}.{_escape(text)}"
    if len(escaped) <= _MAX_NAME and _valid(escaped):
        return escaped
    digest = blake3.blake3(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"{prefix}h.{digest}"


def _valid(name: str) -> bool:
    try:
        names.validate_name("name", name)
    except InvalidNameError:
        return False
    return True


def job_name_for(thread_id: str) -> str:
    """The job that holds thread ``thread_id``."""
    return encode_name(thread_id, "lg")


def thread_id_from_job_name(job: str) -> str | None:
    """The thread id a job name encodes, or None for a hashed or foreign name."""
    if "." not in job:
        return job
    if job.startswith("lg."):
        return _unescape(job[3:])
    return None


def channel_stage(channel: str) -> str:
    """The stage that holds channel ``channel``'s value."""
    return encode_name(channel, "lg.c")


def sealed_stage(channel: str) -> str:
    """The stage that holds the sealed prefix of list channel ``channel``."""
    name = f"{SEALED_PREFIX}{_escape(channel)}"
    if len(name) <= _MAX_NAME and _valid(name):
        return name
    digest = blake3.blake3(channel.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"{SEALED_PREFIX}h.{digest}"


def ns_branch_prefix(ns: str) -> str:
    """``""`` for the root namespace, else ``ns/<encoded>/``."""
    return "" if ns == "" else f"{NS_BRANCH_PREFIX}{encode_name(ns)}/"


def primary_branch(ns: str) -> str:
    return DEFAULT_BRANCH if ns == "" else ns_branch_prefix(ns) + DEFAULT_BRANCH


def write_stage(checkpoint_id: str, task_id: str, idx: int) -> str:
    key = f"{checkpoint_id}\0{task_id}\0{idx}".encode("utf-8", "surrogatepass")
    return f"lg.w.{blake3.blake3(key).hexdigest()[:32]}"


# -- values -----------------------------------------------------------------


@attrs.frozen
class Payload:
    """A serialized value: the serializer's type tag and its bytes."""

    type: str
    data: bytes


@attrs.frozen
class Write:
    """One pending write to store: channel, index (LangGraph's ``WRITES_IDX_MAP``) and value."""

    channel: str
    idx: int
    value: Payload


@attrs.frozen
class StoredWrite:
    """One pending write as read back: the task that wrote it, its path, channel, index, value."""

    task_id: str
    task_path: str
    channel: str
    idx: int
    value: Payload


@attrs.frozen
class CommitInfo:
    """The ``langgraph`` metadata of a commit."""

    kind: str
    thread_id: str
    ns: str
    checkpoint_id: str
    parent_id: str | None
    doc: Mapping[str, JSONValue]


def commit_info(commit: Commit) -> CommitInfo | None:
    doc = commit.meta.get(META_KEY)
    if not isinstance(doc, dict):
        return None
    kind, thread, ns, cid = (doc.get(k) for k in ("kind", "thread_id", "checkpoint_ns", "id"))
    parent = doc.get("parent_id")
    if not (
        kind in (KIND_CHECKPOINT, KIND_WRITES)
        and isinstance(thread, str)
        and isinstance(ns, str)
        and isinstance(cid, str)
        and (parent is None or isinstance(parent, str))
    ):
        return None
    return CommitInfo(str(kind), thread, ns, cid, parent, doc)


@attrs.frozen
class StoredCheckpoint:
    """A checkpoint of a thread as stored: its commit and its writes commits (oldest first)."""

    thread_id: str
    ns: str
    checkpoint_id: str
    parent_id: str | None
    commit: Commit
    writes: tuple[Commit, ...] = ()

    @property
    def summary(self) -> Mapping[str, JSONValue]:
        """The checkpoint metadata's scalar entries kept in the commit (step, source, ...)."""
        info = commit_info(self.commit)
        return {} if info is None else summary_of(info)


def stored_checkpoint(commit: Commit, writes: Iterable[Commit]) -> StoredCheckpoint:
    info = commit_info(commit)
    if info is None:
        raise CkptError(f"commit {commit.short_id} is not a LangGraph checkpoint")
    ordered = sorted(writes, key=lambda c: (c.time, c.seq))
    return StoredCheckpoint(
        info.thread_id, info.ns, info.checkpoint_id, info.parent_id, commit, tuple(ordered)
    )


def write_items(
    checkpoint: StoredCheckpoint,
) -> Iterator[tuple[Commit, str, str, str, str, int]]:
    """(commit, task id, task path, key, channel, index) of every stored write, oldest first.

    The key names the write's value: a stage of the commit's tree, or an entry of
    its record.
    """
    for commit in checkpoint.writes:
        info = commit_info(commit)
        if info is None:
            continue
        if info.kind == KIND_WRITES:
            task_id, task_path, items = (
                info.doc.get(k) for k in ("task_id", "task_path", "writes")
            )
            if not isinstance(task_id, str) or not isinstance(items, list):
                continue
            path = task_path if isinstance(task_path, str) else ""
            for item in items:
                if isinstance(item, list) and len(item) == 3:
                    key, channel, idx = item
                    if isinstance(key, str) and isinstance(channel, str) and type(idx) is int:
                        yield commit, task_id, path, key, channel, idx
        elif info.parent_id == checkpoint.checkpoint_id:
            for task_id, path, channel, idx in carried_writes(info):
                key = write_stage(checkpoint.checkpoint_id, task_id, idx)
                yield commit, task_id, path, key, channel, idx


def _listed(
    commit: Commit, doc: Mapping[str, JSONValue]
) -> Iterator[tuple[Commit, str, str, str, str, int]]:
    """The writes a writes commit lists: its task, path, and each write's stage, channel and
    index."""
    task_id, task_path, items = (doc.get(k) for k in ("task_id", "task_path", "writes"))
    if not isinstance(task_id, str) or not isinstance(items, list):
        return
    path = task_path if isinstance(task_path, str) else ""
    for item in items:
        if isinstance(item, list) and len(item) == 3:
            key, channel, idx = item
            if isinstance(key, str) and isinstance(channel, str) and type(idx) is int:
                yield commit, task_id, path, key, channel, idx


def carried_writes(info: CommitInfo) -> Iterator[tuple[str, str, str, int]]:
    """(task id, task path, channel, index) of each write of its parent checkpoint that a
    checkpoint commit carries (``carries`` in its metadata: one entry per task,
    ``[task id, task path, [[channel, index], ...]]``)."""
    found = info.doc.get(CARRIES)
    if info.kind != KIND_CHECKPOINT or not isinstance(found, list):
        return
    for entry in found:
        if not (isinstance(entry, list) and len(entry) == 3):
            continue
        task_id, task_path, items = entry
        if not (isinstance(task_id, str) and isinstance(task_path, str)):
            continue
        for item in items if isinstance(items, list) else []:
            if isinstance(item, list) and len(item) == 2:
                channel, idx = item
                if isinstance(channel, str) and type(idx) is int:
                    yield task_id, task_path, channel, idx


def carried(commit: Commit) -> list[str]:
    """The checkpoints whose writes ``commit`` holds: a writes commit's checkpoint, or the
    parent of a checkpoint commit that carries writes."""
    info = commit_info(commit)
    if info is None:
        return []
    if info.kind == KIND_WRITES:
        return [info.checkpoint_id]
    if info.parent_id is not None and isinstance(info.doc.get(CARRIES), list):
        return [info.parent_id]
    return []


def channel_versions(versions: Mapping[str, Any]) -> dict[str, int | float | str] | None:
    """``versions`` as stored in commit metadata, or None if they mix numbers and strings
    (or hold another type): LangGraph compares a checkpoint's versions with each other."""
    out: dict[str, int | float | str] = {}
    kinds: set[bool] = set()
    for channel, version in versions.items():
        finite = type(version) is float and math.isfinite(version)
        if not isinstance(channel, str) or not (type(version) in (int, str) or finite):
            return None
        kinds.add(isinstance(version, str))
        out[channel] = version
    return None if len(kinds) > 1 else out


def versions_of(commit: Commit) -> Mapping[str, JSONValue] | None:
    """The channel versions a checkpoint commit records (None for a commit that predates them)."""
    info = commit_info(commit)
    found = None if info is None else info.doc.get("versions")
    return found if isinstance(found, dict) else None


def summary_of(info: CommitInfo) -> Mapping[str, JSONValue]:
    found = info.doc.get("metadata")
    return found if isinstance(found, dict) else {}


def writes_target(commit: Commit) -> str | None:
    info = commit_info(commit)
    return None if info is None or info.kind != KIND_WRITES else info.checkpoint_id


def for_thread(commit: Commit, thread_id: str) -> Commit:
    doc = commit.meta.get(META_KEY)
    if not isinstance(doc, dict):
        return commit
    return attrs.evolve(commit, meta={**commit.meta, META_KEY: {**doc, "thread_id": thread_id}})


def label_ok(value: str) -> bool:
    return "\n" not in value and "\r" not in value and len(value) <= 1024


def commit_stage(changed: Collection[str]) -> str:
    stages = sorted(channel_stage(c) for c in changed)
    plain = [s for s in stages if not s.startswith(("_", "lg."))]
    return (plain or stages or [HEADER_STAGE])[0]


def checkpoint_message(summary: Mapping[str, JSONValue], ns: str) -> str:
    source, step = summary.get("source"), summary.get("step")
    text = f"langgraph {source or 'checkpoint'}"
    if step is not None:
        text += f" step {step}"
    if ns:
        text += f" in {ns}"
    return text[:200]


def scalar_summary(metadata: Mapping[str, Any]) -> dict[str, JSONValue]:
    """The JSON-safe scalar entries of checkpoint metadata, kept readable in the commit."""
    out: dict[str, JSONValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            continue
        finite = isinstance(value, float) and math.isfinite(value)
        if value is None or isinstance(value, (bool, int, str)) or finite:
            out[key] = value
    return out
