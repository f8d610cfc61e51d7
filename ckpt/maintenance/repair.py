"""Repair: put back damaged refs, move corrupt objects aside and heal them from a clean copy.

``repair`` first puts back what the reflog can restore: a job's lost
``HEAD``, and refs that are missing or garbled although the reflog says
where they were (see :mod:`ckpt.history.refcheck`).  Then it runs a full
verify, moves every corrupt object to
``quarantine/ID`` (so that a clean copy of it can be stored again), and, if a
remote is given, copies a clean copy of every corrupt or missing object from
there (each copy is hash-checked on the way out and on arrival).  Objects it
cannot heal stay reported; re-saving the same value heals a blob too, since
the value's bytes give the same id.  Nothing that is intact is ever touched.
"""

from __future__ import annotations

import attrs

from ckpt.errors import CkptError
from ckpt.history.jobrecord import rewrite_garbled
from ckpt.history.refcheck import RefDamage, job_folders, restore_refs
from ckpt.history.remotes import remote_url
from ckpt.history.repository import BaseRepository, existing_storage
from ckpt.maintenance.verify import VerifyReport, verify
from ckpt.objects.ids import ObjectId
from ckpt.objects.packcheck import damaged_packs, set_right

_HEAL_ROUNDS = 8


@attrs.frozen
class RepairReport:
    quarantined: tuple[ObjectId, ...]
    healed: tuple[ObjectId, ...]
    unhealed: tuple[ObjectId, ...]
    after: VerifyReport
    refs_restored: tuple[RefDamage, ...] = ()
    #: Damaged packs set right: (key, "rewritten" or "quarantined").
    packs: tuple[tuple[str, str], ...] = ()
    #: Jobs whose garbled record was rewritten.
    records: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "refs_restored": [
                {"job": r.job, "ref": r.ref, "was": r.kind, "commit": r.logged}
                for r in self.refs_restored
            ],
            "packs": [{"pack": key, "done": done} for key, done in self.packs],
            "records_rewritten": list(self.records),
            "quarantined": list(self.quarantined),
            "healed": list(self.healed),
            "unhealed": list(self.unhealed),
            "after": self.after.to_json(),
        }


def repair(repo: BaseRepository, *, remote: str | None = None) -> RepairReport:
    """Restore damaged refs from the reflog, quarantine corrupt objects and, with
    ``remote`` (a remote's name or a store's URL), restore clean copies from it."""
    folders = job_folders(repo.storage)
    restored = tuple(damage for job in folders for damage in restore_refs(repo.storage, job))
    records = tuple(job for job in folders if rewrite_garbled(repo.storage, job))
    packs = tuple(
        (damage.key, set_right(repo.objects, damage)) for damage in damaged_packs(repo.objects)
    )
    before = verify(repo, full=True)
    broken = _broken(before)
    quarantined = _quarantine(repo, before, broken)
    healed: list[ObjectId] = []
    after = before
    if remote is not None and broken:
        with BaseRepository(existing_storage(remote_url(repo, remote))) as source:
            # Healing a commit can reveal damage behind it (its tree was in the
            # same pack, say): heal again until a round finds nothing new.
            todo = list(broken)
            for _round in range(_HEAL_ROUNDS):
                for oid in todo:
                    try:
                        kind = source.objects.verify(oid)
                        written = repo.objects.put(kind, source.objects.get(oid, kind))
                    except CkptError:
                        continue
                    if written == oid:
                        healed.append(oid)
                after = verify(repo, full=True)
                todo = [oid for oid in _broken(after) if oid not in broken]
                if not todo:
                    break
                broken.extend(todo)
                quarantined += _quarantine(repo, after, todo)
    else:
        after = verify(repo, full=True)
    unhealed = tuple(oid for oid in broken if oid not in healed)
    return RepairReport(quarantined, tuple(healed), unhealed, after, restored, packs, records)


def _broken(report: VerifyReport) -> list[ObjectId]:
    return [
        ObjectId(p.subject)
        for p in report.problems
        if p.kind in ("corrupt-object", "missing-object")
    ]


def _quarantine(
    repo: BaseRepository, report: VerifyReport, broken: list[ObjectId]
) -> tuple[ObjectId, ...]:
    return tuple(
        oid
        for oid in broken
        if any(p.subject == oid and p.kind == "corrupt-object" for p in report.problems)
        and repo.objects.quarantine(oid)
    )
