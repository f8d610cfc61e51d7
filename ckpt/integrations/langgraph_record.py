"""The record of a LangGraph checkpoint: its header, channel values and carried writes in one blob.

A checkpoint commit of the saver's current layout (see
:mod:`ckpt.integrations.langgraph_layout`) holds one *record* in its
``lg.checkpoint`` stage, a msgpack map::

    {"v": 1,
     "h": [type, bytes],               the header: the checkpoint without its channel
                                       values, and its metadata, as the serializer wrote it
     "c": {channel: entry, ...},       the channel values
     "w": {key: write value, ...}}     values of the writes the commit carries

A channel entry is one of

* ``["i", type, bytes]``: the serialized value, inline;
* ``["b", type, stage]``: the serialized value, whole, in blob stage ``stage`` of the
  commit's tree (values over :data:`INLINE_MAX` bytes that are not msgpack arrays);
* ``["a", head, tail, sealed]``: a msgpack array (a message list), whose serialized
  value is ``head + S + tail``: ``head`` is the array header (it holds the length, so
  it changes whenever the list does), ``S`` the *sealed* prefix of the elements, kept
  in blob stage ``sealed`` of the tree (``None``: no sealed prefix, ``S`` is empty),
  and ``tail`` the elements after it.

Appending to a list changes only ``head`` and ``tail``: the record is delta encoded
against the parent checkpoint's record, so a step costs about the elements it
added.  When the tail reaches :data:`SEAL_AT` bytes, the elements up to the last
content-defined cut point of ckpt's chunker move into a new sealed prefix (a
chunked blob whose chunks are the old prefix's chunks and one or two new ones), so
that reading a list decodes a bounded number of objects however long it grew.

A write value is ``["i", type, bytes]``, ``["b", type, stage]`` or ``["s", channel,
offset, length, head]``: a msgpack array whose elements are bytes ``offset`` to
``offset + length`` of the elements of this record's value of ``channel`` (the
message a node wrote is the message the list gained: it is stored once), after
its own array header ``head``.

This module only encodes, decodes and plans; it reads and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import attrs
import ormsgpack

from ckpt.errors import CkptError
from ckpt.objects import chunking

__all__ = [
    "INLINE_MAX",
    "RECORD_CHAIN",
    "RECORD_TYPE",
    "SEALED_CHAIN",
    "SEALED_TYPE",
    "SEAL_AT",
    "Array",
    "Entry",
    "InBlob",
    "Inline",
    "Record",
    "RecordError",
    "Slice",
    "WriteValue",
    "array_parts",
    "decode_record",
    "encode_record",
    "find_slice",
    "seal_point",
]

#: Tree entry types of the record stage and of a sealed prefix.
RECORD_TYPE = "lg.record"
SEALED_TYPE = "lg.sealed"
FORMAT = 1
#: Values up to this size that are not msgpack arrays are kept in the record.
INLINE_MAX = 8 * 1024
#: A list's tail is sealed once it holds this many bytes.
SEAL_AT = 48 * 1024
#: Longest chain of record deltas a writer builds (then a record is stored whole).
RECORD_CHAIN = 32
#: Longest chain of deltas of a list's sealed prefix (its chunk list) a writer builds.
SEALED_CHAIN = 8


class RecordError(CkptError):
    """A record that cannot be read (its blob passed its hash check: a writer's bug)."""


@attrs.frozen
class Inline:
    """A serialized value kept in the record."""

    type: str
    data: bytes


@attrs.frozen
class InBlob:
    """A serialized value kept whole in a blob stage of the commit's tree."""

    type: str
    stage: str


@attrs.frozen
class Array:
    """A msgpack array: ``head`` + the sealed prefix (stage ``sealed``, if any) + ``tail``."""

    head: bytes
    tail: bytes
    sealed: str | None


@attrs.frozen
class Slice:
    """A written msgpack array: ``head`` + bytes ``offset:offset+length`` of the elements of
    ``channel``'s value in the same record."""

    channel: str
    offset: int
    length: int
    head: bytes


Entry: TypeAlias = Inline | InBlob | Array
WriteValue: TypeAlias = Inline | InBlob | Slice


@attrs.frozen
class Record:
    """A decoded record (see the module docstring)."""

    header_type: str
    header: bytes
    channels: Mapping[str, Entry]
    writes: Mapping[str, WriteValue] = attrs.field(factory=dict)


def _entry(item: Entry | Slice) -> list[object]:
    if isinstance(item, Inline):
        return ["i", item.type, item.data]
    if isinstance(item, InBlob):
        return ["b", item.type, item.stage]
    if isinstance(item, Array):
        return ["a", item.head, item.tail, item.sealed]
    return ["s", item.channel, item.offset, item.length, item.head]


def encode_record(record: Record) -> bytes:
    """The record's bytes (channels and writes in the order given: keep it stable, so that
    a record's delta against its parent's stays small)."""
    return ormsgpack.packb(
        {
            "v": FORMAT,
            "h": [record.header_type, record.header],
            "c": {name: _entry(entry) for name, entry in record.channels.items()},
            "w": {key: _entry(value) for key, value in record.writes.items()},
        }
    )


def _decode_entry(item: object, writes: bool) -> Entry | Slice:
    if isinstance(item, list) and item:
        tag, rest = item[0], item[1:]
        if tag == "i" and len(rest) == 2 and isinstance(rest[0], str):
            if isinstance(rest[1], bytes):
                return Inline(rest[0], rest[1])
        elif tag == "b" and len(rest) == 2 and all(isinstance(r, str) for r in rest):
            return InBlob(str(rest[0]), str(rest[1]))
        elif tag == "a" and not writes and len(rest) == 3:
            head, tail, sealed = rest
            fits = sealed is None or isinstance(sealed, str)
            if isinstance(head, bytes) and isinstance(tail, bytes) and fits:
                return Array(head, tail, sealed)
        elif tag == "s" and writes and len(rest) == 4:
            channel, offset, length, head = rest
            counts = type(offset) is int and type(length) is int and offset >= 0 and length >= 0
            if isinstance(channel, str) and isinstance(head, bytes) and counts:
                return Slice(channel, offset, length, head)
    raise RecordError(f"a record entry is garbled ({str(item)[:60]})")


def decode_record(data: bytes) -> Record:
    """The record ``data`` encodes; RecordError if it is not one."""
    try:
        doc = ormsgpack.unpackb(data)
    except ValueError as exc:
        raise RecordError(f"a record is not valid msgpack: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != FORMAT:
        raise RecordError("a record has an unknown format")
    header, channels, writes = doc.get("h"), doc.get("c"), doc.get("w", {})
    if not (
        isinstance(header, list)
        and len(header) == 2
        and isinstance(header[0], str)
        and isinstance(header[1], bytes)
        and isinstance(channels, dict)
        and isinstance(writes, dict)
    ):
        raise RecordError("a record misses its header or channels")
    found: dict[str, Entry] = {}
    for name, item in channels.items():
        entry = _decode_entry(item, writes=False)
        if not isinstance(name, str) or isinstance(entry, Slice):
            raise RecordError("a record entry is garbled")
        found[name] = entry
    values: dict[str, WriteValue] = {}
    for key, item in writes.items():
        value = _decode_entry(item, writes=True)
        if not isinstance(key, str) or isinstance(value, Array):
            raise RecordError("a record write is garbled")
        values[key] = value
    return Record(header[0], header[1], found, values)


# -- msgpack arrays -----------------------------------------------------------


def array_parts(data: bytes) -> tuple[bytes, memoryview] | None:
    """``(header, elements)`` of msgpack bytes that encode an array, else None.

    msgpack writes an array as a header holding the element count (one byte up
    to 15 elements, then three or five) followed by the elements, so a list that
    grows keeps its elements' bytes and changes only its header.
    """
    if not data:
        return None
    first = data[0]
    if 0x90 <= first <= 0x9F:
        size = 1
    elif first == 0xDC:
        size = 3
    elif first == 0xDD:
        size = 5
    else:
        return None
    if len(data) < size:
        return None
    return data[:size], memoryview(data)[size:]


def seal_point(body: bytes | memoryview, sealed: int) -> int:
    """How many leading bytes of a list's elements ``body`` to keep sealed, given that the
    first ``sealed`` bytes are sealed already (and still the same).

    The tail past ``sealed`` is sealed once it reaches :data:`SEAL_AT` bytes, up to
    the last cut point ckpt's chunker finds in it (the chunker cuts a blob at the
    same points whatever follows them, so the sealed prefix is stored as the
    previous prefix's chunks and the new ones).  Returns ``sealed`` if there is
    nothing to seal yet.
    """
    if len(body) - sealed < SEAL_AT:
        return sealed
    cuts = chunking.cut_points(memoryview(body)[sealed:])
    return sealed + cuts[-1] if cuts else sealed


def find_slice(body: bytes | memoryview, elements: bytes | memoryview, start: int) -> int | None:
    """Where ``elements`` (a written array's elements) are in a list's ``body``, searching
    from ``start`` (where the list's new elements begin); None if they are not."""
    if not elements:
        return None
    at = bytes(memoryview(body)[start:]).find(elements)
    return None if at < 0 else start + at
