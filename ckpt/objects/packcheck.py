"""Checks of the packs themselves: header, index, fanout; and setting damaged packs right.

Readers find objects through a pack's trailer, fanout and index, and never
read its header; every object they read is checked against its id.  So
damage to a pack's structure either hides objects (a bad index) or goes
unseen (a bad header).  :func:`damaged_packs` finds both for ``verify``;
:func:`set_right` rewrites a pack whose header alone is damaged (its index
and entries are fine) and moves a pack whose index cannot be read to
``quarantine/`` (its bytes kept, no longer reported).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ckpt.errors import CorruptObjectError
from ckpt.objects import pack
from ckpt.objects.packset import PACKS_PREFIX, QUARANTINE_PREFIX
from ckpt.storage.base import KeyNotFoundError

if TYPE_CHECKING:
    from ckpt.objects.store import ObjectStore


@attrs.frozen
class PackDamage:
    """A damaged pack: its key, the error, and whether its index (so its objects) is whole."""

    key: str
    error: CorruptObjectError
    index_whole: bool


def damaged_packs(store: ObjectStore) -> list[PackDamage]:
    """Every pack whose header (magic, version, entry count) or index (trailer, fanout,
    checksum, entries within the pack) is damaged."""
    found: list[PackDamage] = []
    for ref in store._pack_list(refresh=True):
        read = store._reader(ref.key)
        try:
            ref.index = None  # read it afresh
            index = store._index(ref)
            if index.records is None:  # else checked as the index was read
                both = read(index.index_offset, index.count * pack.RECORD.size + pack.FANOUT.size)
                index.check_digest(both)
                index.check_records(both[: index.count * pack.RECORD.size])
        except KeyNotFoundError:
            continue
        except CorruptObjectError as exc:
            found.append(PackDamage(ref.key, exc, index_whole=False))
            continue
        try:
            count = pack.check_header(read(0, pack.PACK_HEADER.size), ref.key)
            if count != index.count:
                raise CorruptObjectError(
                    ref.key,
                    "pack header and index disagree on the number of entries",
                    str(index.count),
                    str(count),
                )
        except KeyNotFoundError:
            continue
        except CorruptObjectError as exc:
            found.append(PackDamage(ref.key, exc, index_whole=True))
    return found


def set_right(store: ObjectStore, damage: PackDamage) -> str:
    """Rewrite a pack whose header alone is damaged (objects checked on every read as
    always), or move a pack whose index is damaged to ``quarantine/pack-NAME``.
    Returns what was done: ``rewritten`` or ``quarantined``."""
    if damage.index_whole:
        store._rewrite_without(damage.key, set(), None)
        return "rewritten"
    try:
        data = store.storage.get(damage.key)
    except KeyNotFoundError:
        return "gone"
    name = damage.key[len(PACKS_PREFIX) :]
    store.storage.put_if_absent(f"{QUARANTINE_PREFIX}pack-{name}", data)
    store.storage.delete(damage.key)
    store._pack_list(refresh=True)
    return "quarantined"


__all__ = ["PackDamage", "damaged_packs", "set_right"]
