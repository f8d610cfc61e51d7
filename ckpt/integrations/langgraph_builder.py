"""Building a LangGraph checkpoint's record against its parent's: :class:`RecordBuilder`.

Which channel entries a checkpoint keeps from its parent (those whose version
did not change), how a new value is stored (inline, a stage of its own, or a
list's tail and sealed prefix) and how the writes it carries are held (a
slice of the list they were appended to where they are one); the format is
:mod:`ckpt.integrations.langgraph_record`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

import attrs

from ckpt.integrations.langgraph_layout import (
    HEADER_STAGE,
    Payload,
    Write,
    channel_stage,
    sealed_stage,
    versions_of,
    write_stage,
)
from ckpt.integrations.langgraph_reader import ObjectBatch, ThreadReader, blob_entry
from ckpt.integrations.langgraph_record import (
    INLINE_MAX,
    RECORD_CHAIN,
    RECORD_TYPE,
    SEALED_CHAIN,
    SEALED_TYPE,
    Array,
    Entry,
    InBlob,
    Inline,
    Record,
    Slice,
    WriteValue,
    array_parts,
    encode_record,
    find_slice,
    seal_point,
)
from ckpt.objects.model import Commit, Tree, TreeEntry
from ckpt.values.serialize import JSONValue

__all__ = ["Carried", "RecordBuilder"]


@attrs.frozen
class Carried:
    """One task's writes for checkpoint ``target``, to store in a checkpoint's commit."""

    target: str
    task_id: str
    task_path: str
    writes: tuple[Write, ...]


@attrs.define
class _ListBuild:
    """A list value being stored: its bytes, where its elements start, how many of them are
    sealed and where the elements new since the parent begin."""

    data: bytes
    start: int
    sealed: int
    fresh: int


class RecordBuilder:
    """The record of one checkpoint and the stages it needs, built against its parent's.

    Blobs go into ``batch`` as they are made; :meth:`tree` puts the record and
    returns the commit's tree.  After it, :attr:`carried` is the commit's
    ``carries`` metadata (empty if it carries no writes).
    """

    def __init__(self, reader: ThreadReader, batch: ObjectBatch, parent: Commit | None) -> None:
        self.reader = reader
        self.batch = batch
        self.found = None if parent is None else reader.record(parent)
        self.parent_tree = None if parent is None else reader.tree(parent.tree)
        self.parent_versions = None if parent is None else versions_of(parent)
        self.stages: dict[str, TreeEntry] = {}
        self.channels: dict[str, Entry] = {}
        self.writes: dict[str, WriteValue] = {}
        self.lists: dict[str, _ListBuild] = {}
        self.keyframe = False
        self.carried: list[JSONValue] = []

    def add_channels(
        self,
        versions: Mapping[str, int | float | str],
        changed: Collection[str],
        value: Callable[[str], Payload | None],
    ) -> None:
        """An entry for every channel of ``versions``: the parent's where it holds that very
        version (and the channel is not in ``changed``), else ``value(channel)`` stored."""
        for channel, version in versions.items():
            same = self.parent_versions is not None and self.parent_versions.get(channel) == version
            if channel not in changed and same and self.parent_tree is not None:
                # The parent holds this very version: its entry (or its lack of one, for an
                # empty channel) is this checkpoint's.
                kept = self._kept(channel)
                if kept is not None:
                    self.channels[channel] = kept
                continue
            payload = value(channel)
            if payload is None:
                continue
            previous = None if self.found is None else self.found[1].channels.get(channel)
            self.channels[channel] = self._entry(channel, payload, previous)

    def carry(self, batches: Sequence[Carried]) -> None:
        """Hold the writes of ``batches`` in the record (see :meth:`_write_value`)."""
        for carried in batches:
            listed: list[JSONValue] = []
            for write in carried.writes:
                key = write_stage(carried.target, carried.task_id, write.idx)
                if key in self.writes or key in self.stages:
                    continue  # a task's regular write is stored once
                held = self._write_value(write)
                if held is None:
                    self.stages[key] = blob_entry(self.batch, key, write.value)
                else:
                    self.writes[key] = held
                listed.append([write.channel, write.idx])
            if listed:
                self.carried.append([carried.task_id, carried.task_path, listed])

    def tree(self, header: Payload) -> Tree:
        """Put the record (a delta against the parent's, unless it starts a new chain) and
        return the tree holding it and every stage its entries name."""
        record = Record(header.type, header.data, self.channels, self.writes)
        data = encode_record(record)
        base, depth = None, 0
        if self.found is not None and not self.keyframe:
            previous = self.found[0].get(HEADER_STAGE)
            if previous is not None:
                depth = self.reader.depth(previous.id) + 1
                if depth <= RECORD_CHAIN:
                    base = previous.id
        stored = blob_entry(self.batch, HEADER_STAGE, Payload(RECORD_TYPE, data), base=base)
        # At most this deep (less if the store found the record too small for a delta).
        self.reader.remember_depth(stored.id, depth if base is not None else 0)
        self.reader.remember_blob(stored.id, data)
        self.reader.remember_record(stored.id, record, len(data))
        return Tree((stored, *self.stages.values()))

    def _kept(self, channel: str) -> Entry | None:
        """The parent's entry for ``channel``, with the stages it names copied over."""
        parent_tree = self.parent_tree
        if parent_tree is None:
            return None
        if self.found is None:  # a parent of the layout before records: whole-value stages
            stage = parent_tree.get(channel_stage(channel))
            if stage is None:
                return None
            self.stages[stage.name] = stage
            return InBlob(stage.type, stage.name)
        entry = self.found[1].channels.get(channel)
        needed = None
        if isinstance(entry, InBlob):
            needed = entry.stage
        elif isinstance(entry, Array):
            needed = entry.sealed
        if needed is not None:
            stage = parent_tree.get(needed)
            if stage is not None:
                self.stages[stage.name] = stage
        return entry

    def _entry(self, channel: str, payload: Payload, previous: Entry | None) -> Entry:
        """How a new value of ``channel`` is stored, putting the blobs it needs."""
        data = payload.data
        parts = array_parts(data) if payload.type == "msgpack" else None
        if parts is not None:
            return self._list(channel, data, parts[0], parts[1], previous)
        if len(data) <= INLINE_MAX:
            return Inline(payload.type, data)
        name = channel_stage(channel)
        kept = None if self.parent_tree is None else self.parent_tree.get(name)
        # The channel's previous value is the delta base of the new one.
        self.stages[name] = blob_entry(
            self.batch, name, payload, base=None if kept is None else kept.id
        )
        return InBlob(payload.type, name)

    def _list(
        self, channel: str, data: bytes, head: bytes, body: memoryview, previous: Entry | None
    ) -> Array:
        """A msgpack array: the parent's sealed prefix if the new elements still start with
        it, sealed further once the tail is long enough, and the tail."""
        start = len(head)
        sealed_len, sealed = 0, None
        if isinstance(previous, Array) and previous.sealed is not None and self.parent_tree:
            stage = self.parent_tree.get(previous.sealed)
            # (bytes.startswith compares with memcmp, without a copy.)
            if stage is not None and data.startswith(self.reader.blob(stage.id), start):
                sealed_len, sealed = stage.size, stage
        fresh = 0  # where the elements new since the parent begin (0: not known)
        if (
            isinstance(previous, Array)
            and (previous.sealed is None) == (sealed is None)
            and data.startswith(previous.tail, start + sealed_len)
        ):
            fresh = sealed_len + len(previous.tail)
        point = seal_point(body, sealed_len)
        if point > sealed_len:
            content = bytes(body[:point])
            base = None
            if sealed is not None and self.reader.depth(sealed.id) < SEALED_CHAIN:
                base = sealed.id
            sealed = blob_entry(
                self.batch, sealed_stage(channel), Payload(SEALED_TYPE, content), base=base
            )
            self.reader.remember_blob(sealed.id, content)
            sealed_len = point
            self.keyframe = True  # the record's tail shrank: a good place to store it whole
        if sealed is not None:
            self.stages[sealed.name] = sealed
        self.lists[channel] = _ListBuild(data, start, sealed_len, min(fresh, len(body)))
        name = None if sealed is None else sealed.name
        return Array(bytes(head), bytes(body[sealed_len:]), name)

    def _write_value(self, write: Write) -> WriteValue | None:
        """How a carried write's value is held in the record: a slice of the list it was
        appended to, inline if small, else None (a blob stage of its own)."""
        value = write.value
        found = self.lists.get(write.channel)
        parts = array_parts(value.data) if value.type == "msgpack" else None
        if found is not None and parts is not None:
            head, elements = parts
            body = memoryview(found.data)[found.start :]
            at = find_slice(body, elements, found.fresh)
            if at is not None:
                return Slice(write.channel, at, len(elements), bytes(head))
        if len(value.data) <= INLINE_MAX:
            return Inline(value.type, value.data)
        return None
