"""What a save relies on, secured against a concurrent gc.

A save does not store an object that is already stored: it *relies* on the
stored copy.  The stored copy may need other objects to be read: its delta
base (and that base's base...), and for a chunked blob its chunks (which
may themselves be deltas against an older version of the value).  gc judges
a pack by its modification time, so the writer marks every pack (or loose
file) holding any of these objects as young by *touching* it, not only the
pack of the object it reused.  gc removes a pack with the backend's
``delete_if_older``, which is atomic against ``touch`` where the backend
says so: a pack touched before gc removes it stays, and a touch that comes
too late fails, in which case the writer stores the object again itself.

On a backend whose ``delete_if_older`` is not atomic (S3), gc deletes only
the *candidates* an earlier run recorded under ``gc/candidates/`` (see
:mod:`ckpt.maintenance.gc_shared`), and a writer there never relies on a
candidate: it stores its own copy instead.  docs/format.md (*Garbage
collection*) gives the whole protocol and why it holds.

The objects a save writes itself are new and need nothing of this; a new
object stored as a delta needs its base, which is the stage's value in the
commit the save builds on, kept alive by the branch (or the reflog) that
names that commit.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ckpt.errors import CkptError, CorruptObjectError, ObjectNotFoundError
from ckpt.objects import codec
from ckpt.objects.ids import ObjectId, check_object_id
from ckpt.objects.packset import Location, PackRef
from ckpt.storage.base import KeyNotFoundError, Storage

if TYPE_CHECKING:
    from ckpt.objects.store import ObjectStore

#: Where two-phase gc records the objects it may delete one grace period later.
CANDIDATES_PREFIX = "gc/candidates/"
RECORD_FORMAT = "ckpt-gc-candidates"
#: Candidate records already read, by (store URL, record key): a record is
#: immutable once it holds ids, and a store keeps few of them.
_RECORDS: dict[tuple[str, str], frozenset[ObjectId]] = {}
_RECORDS_KEPT = 256
_NEEDS_MORE = codec.FLAG_CHUNKED | codec.FLAG_DELTA
#: How many closures (see :meth:`Reliance.secure`) a store remembers.
CLOSURES_KEPT = 100_000
#: A remembered closure: the keys of the packs it was touched in (in touch order) and
#: its objects.
Closure = tuple[tuple[str, ...], frozenset[ObjectId]]


class Reliance:
    """The objects one batch of writes relies on, each secured once (not thread-safe)."""

    def __init__(self, store: ObjectStore, doomed: frozenset[ObjectId] | None = None) -> None:
        self.store = store
        #: Objects found stored, with everything they need, and their containers touched.
        self.secured: set[ObjectId] = set()
        #: Pack and loose keys touched by this batch.
        self.touched: set[str] = set()
        self._refs: dict[str, PackRef] | None = None
        #: What gc may delete (see :func:`doomed_objects`), if the caller read it already.
        self._doomed: frozenset[ObjectId] | None = doomed

    def secure(self, oid: ObjectId, hint: str | None = None) -> bool:
        """True if ``oid`` can be relied on: it is stored, and so is every object its
        stored form needs (transitively); each of their packs has been touched.

        False if any of them is missing (or, on a store gc collects in two
        phases, is a recorded candidate for deletion): the caller then stores
        ``oid`` anew.  ``hint`` is the pack the caller believes holds ``oid``.
        """
        if oid in self.secured:
            return True
        # An object's closure and where each part of it was stored do not change while
        # those packs exist (packs are immutable; a merged pack has a new key): the store
        # remembers them, and a later save only touches the same packs again.  A touch
        # that fails (the pack was merged or collected) sends us to find them afresh.
        known = self.store.closures.get(oid)
        if known is not None and self._touch_all(known):
            return True
        # A part whose closure is remembered (a delta base secured by an earlier save, a
        # reused chunk) is not walked again; if touching one fails, walk everything.
        for splice in (True, False):
            found = self._find(oid, hint, splice=splice)
            if found is None:
                return False
            closure, parts = found
            # Dependencies before what needs them (the deepest base or chunk first): a
            # pack gc removes meanwhile makes its touch fail before anything that needs
            # it was touched, so no pack is kept alive for an object whose base or chunk
            # is gone.  Remembered parts are dependencies of what was walked.
            keys: dict[str, None] = {}  # where each was touched, in touch order
            if not all(self._touch_all(part) for part in parts):
                continue
            for part_keys, _ in parts:
                keys.update(dict.fromkeys(part_keys))
            for current, where in reversed(closure):
                touched = self._touch(current, where)
                if touched is None:
                    return False
                keys[touched.key] = None
            objects = frozenset(current for current, _ in closure).union(
                *(part_objects for _, part_objects in parts)
            )
            self.secured |= objects
            closures = self.store.closures
            if len(closures) >= CLOSURES_KEPT:
                closures.clear()
            closures[oid] = (tuple(keys), objects)
            return True
        return False

    def _find(
        self, oid: ObjectId, hint: str | None, *, splice: bool
    ) -> tuple[list[tuple[ObjectId, Location]], list[Closure]] | None:
        """``oid`` and every object its stored form needs, each with where it is (needed
        ones after what needs them), and with ``splice`` the remembered closures of
        parts not walked again; None if one is missing, doomed or unreadable."""
        found: list[tuple[ObjectId, Location]] = []
        parts: list[Closure] = []
        seen: set[ObjectId] = set()
        stack: list[tuple[ObjectId, str | None, bool]] = [(oid, hint, False)]
        closures = self.store.closures
        while stack:
            current, where_hint, needed = stack.pop()
            if current in seen:
                continue
            if splice and needed:
                remembered = closures.get(current)
                if remembered is not None:
                    parts.append(remembered)
                    seen |= remembered[1]
                    continue
            where = self._in_pack(current, where_hint) if where_hint is not None else None
            if where is None:
                where = self.store.locate(current, relist=needed)
            # Listed only once something is found: a batch of new objects never asks.
            if where is None or current in self._candidates():
                return None
            seen.add(current)
            found.append((current, where))
            if where.packed and not where.flags & _NEEDS_MORE:
                continue
            try:
                refs = self.store.references(current)
            except (CorruptObjectError, ObjectNotFoundError):
                return None  # unreadable: the caller stores a clean copy
            stack.extend((part, None, True) for part in refs)
        return found, parts

    def _touch_all(self, known: Closure) -> bool:
        """Touch the packs of a closure found before (their keys in the order to touch
        them, and the objects), dependencies first; False at the first that is gone, or if
        gc may delete one of the objects."""
        keys, objects = known
        doomed = self._candidates()
        if doomed and not objects.isdisjoint(doomed):
            return False
        touched = self.touched
        for key in keys:
            if key not in touched:
                if not self.store.storage.touch(key):
                    return False
                touched.add(key)
        self.secured |= objects
        return True

    def _touch(self, oid: ObjectId, where: Location) -> Location | None:
        """``where`` (or where ``oid`` is now) after touching it; None if ``oid`` is gone."""
        found: Location | None = where
        for _attempt in range(2):
            if found is None:
                return None
            if found.key in self.touched or self.store.storage.touch(found.key):
                self.touched.add(found.key)
                return found
            # Merged or collected since it was listed: look again.
            found = self.store.locate(oid)
        return None

    def _in_pack(self, oid: ObjectId, key: str) -> Location | None:
        store = self.store
        if self._refs is None:
            self._refs = {ref.key: ref for ref in store._pack_list()}
        ref = self._refs.get(key)
        if ref is None:
            return None
        try:
            entry = store._index(ref).find(bytes.fromhex(oid), store._reader(key))
        except (KeyNotFoundError, CorruptObjectError):
            return None
        if entry is None:
            return None
        return Location(key, entry.offset, entry.length, entry.kind, entry.flags)

    def _candidates(self) -> frozenset[ObjectId]:
        """Objects two-phase gc may delete (empty where deletion is atomic against touch)."""
        if self._doomed is None:
            self._doomed = doomed_objects(self.store.storage)
        return self._doomed


def doomed_objects(storage: Storage) -> frozenset[ObjectId]:
    """Objects two-phase gc may delete: none where deletion is atomic against a touch, else
    those its finished phase-1 records list (a writer never relies on one of them)."""
    return frozenset() if storage.atomic_delete_if_older else recorded_candidates(storage)


def recorded_candidates(storage: Storage) -> frozenset[ObjectId]:
    """Every object id a finished phase-1 record of two-phase gc lists."""
    found: set[ObjectId] = set()
    for info in storage.list(CANDIDATES_PREFIX):
        cache_key = (storage.url, info.key)
        ids = _RECORDS.get(cache_key)
        if ids is None:
            try:
                ids = record_ids(storage.get(info.key))
            except KeyNotFoundError:
                continue  # removed by the run that applied it
            if ids is None:
                continue  # still marking: nothing it lists can be deleted yet
            if len(_RECORDS) >= _RECORDS_KEPT:
                _RECORDS.clear()
            _RECORDS[cache_key] = ids
        found.update(ids)
    return frozenset(found)


def record_ids(raw: bytes) -> frozenset[ObjectId] | None:
    """The ids a finished candidate record lists; None for a record still marking or
    unreadable (none of whose ids gc ever deletes)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != RECORD_FORMAT
        or doc.get("state") != "recorded"
        or not isinstance(doc.get("ids"), list)
    ):
        return None
    try:
        return frozenset(check_object_id(oid) for oid in doc["ids"])
    except (CkptError, TypeError, ValueError):
        return None


__all__ = [
    "CANDIDATES_PREFIX",
    "RECORD_FORMAT",
    "Reliance",
    "doomed_objects",
    "record_ids",
    "recorded_candidates",
]
