"""Refs that are damaged or gone, found against the reflog, and put back from it.

The reflog records every move of every ref, so it says where each ref
should be: the ``new`` commit of the ref's newest record (None once the ref
was deleted on purpose).  A ref whose key is missing although its newest
record moved it somewhere, or whose key holds something that is not a
commit id, is damaged; so is a job whose ``HEAD`` is gone although its refs
or reflog remain (the job then vanishes from every listing, while its refs
still keep its history).  :func:`ref_damage` finds all three; verify reports
them, and :func:`restore_refs` (``ckpt repair``) puts them back.
"""

from __future__ import annotations

import attrs

from ckpt.errors import ConflictError, InvalidNameError
from ckpt.history.names import branch_name, job_name
from ckpt.history.refs import DEFAULT_BRANCH, HEADS, JOBS_PREFIX, TAGS, ReflogEntry, RefStore
from ckpt.objects.ids import CommitId
from ckpt.storage.base import KeyNotFoundError, Storage

#: The reflog reason of a ref put back by :func:`restore_refs`.
RESTORED = "repair: restored from the reflog"


@attrs.frozen
class RefDamage:
    """One damaged ref of a job: ``kind`` is ``missing-head``, ``missing-ref`` or ``bad-ref``.

    ``ref`` is ``HEAD`` or the ref's name; ``logged`` is where the reflog says
    the ref should be (None if it does not say).
    """

    job: str
    kind: str
    ref: str
    logged: CommitId | None
    message: str


def job_folders(storage: Storage) -> list[str]:
    """Every job name with a folder under ``jobs/``, whether or not its ``HEAD`` exists."""
    names = []
    for child in storage.list_children(JOBS_PREFIX):
        if not child.endswith("/"):
            continue
        try:
            names.append(job_name(child[:-1]))
        except InvalidNameError:
            continue
    return names


def logged_targets(reflog: list[ReflogEntry]) -> dict[str, CommitId | None]:
    """Each ref's target by its newest reflog record (``reflog`` newest first)."""
    found: dict[str, CommitId | None] = {}
    for entry in reflog:
        found.setdefault(entry.ref, entry.new)
    return found


def missing_ref_message(job: str, ref: str, logged: CommitId) -> str:
    """What to say, and what to run, about ``ref`` gone although the reflog has it."""
    name = ref.removeprefix(HEADS).removeprefix(TAGS)
    kind = "branch" if ref.startswith(HEADS) else "tag"
    return (
        f"job {job}: {kind} {name} is missing, but the reflog says it is at {logged[:12]}; "
        f"restore it with `ckpt repair` (or `ckpt {kind} {job} {name} {logged[:12]}`)"
    )


def ref_damage(
    storage: Storage, job: str, reflog: list[ReflogEntry] | None = None
) -> list[RefDamage]:
    """The damaged refs of ``job``: garbled refs, refs missing against the reflog, and a
    missing ``HEAD`` of a job that still has refs or a reflog.

    ``reflog``: the job's reflog entries, newest first, if the caller has read them.
    """
    refs = RefStore(storage, job)
    damage: list[RefDamage] = []
    present = refs.all_refs()
    if reflog is None:
        reflog = refs.reflog()
    logged = logged_targets(reflog)
    if not refs.exists() and (present or reflog):
        damage.append(
            RefDamage(
                job,
                "missing-head",
                "HEAD",
                None,
                f"job {job} has refs but no HEAD (jobs/{job}/HEAD is missing), so it is "
                "hidden from `ckpt jobs` and `ckpt log`; restore it with `ckpt repair`",
            )
        )
    for ref, target in sorted(present.items()):
        if target is None:
            where = logged.get(ref)
            fix = (
                f"`ckpt repair` restores it to {where[:12]} from the reflog"
                if where is not None
                else "see `ckpt reflog` for where it pointed"
            )
            damage.append(
                RefDamage(
                    job,
                    "bad-ref",
                    ref,
                    where,
                    f"job {job}: ref {ref} is garbled; {fix}, or delete it with "
                    f"`{_delete_command(job, ref)}`",
                )
            )
    for ref, target in sorted(logged.items()):
        if target is not None and ref not in present and ref.startswith((HEADS, TAGS)):
            damage.append(
                RefDamage(job, "missing-ref", ref, target, missing_ref_message(job, ref, target))
            )
    return damage


def _delete_command(job: str, ref: str) -> str:
    if ref.startswith(TAGS):
        return f"ckpt tag {job} -d {ref[len(TAGS) :]}"
    return f"ckpt branch {job} -d {ref[len(HEADS) :]}"


def restore_refs(storage: Storage, job: str) -> list[RefDamage]:
    """Put back what :func:`ref_damage` finds and the reflog can restore: a missing
    ``HEAD`` (naming ``main`` if that branch is known, else the branch moved last),
    refs missing against the reflog, and garbled refs the reflog has a target for.
    Each move is logged.  Returns what was repaired; a ref that changed meanwhile
    is left to its writer.
    """
    refs = RefStore(storage, job)
    repaired: list[RefDamage] = []
    for damage in ref_damage(storage, job):
        if damage.kind == "missing-head":
            if refs.create(_head_branch(refs)):
                repaired.append(damage)
            continue
        if damage.logged is None:
            continue
        key = refs.key(damage.ref)
        try:
            current: bytes | None = storage.get(key)
        except KeyNotFoundError:
            current = None
        if damage.kind == "missing-ref" and current is not None:
            continue
        try:
            storage.compare_and_swap(key, current, f"{damage.logged}\n".encode())
        except ConflictError:
            continue
        refs.log(damage.ref, None, damage.logged, RESTORED)
        repaired.append(damage)
    return repaired


def _head_branch(refs: RefStore) -> str:
    branches = {ref[len(HEADS) :] for ref in refs.all_refs() if ref.startswith(HEADS)}
    for entry in refs.reflog():
        if entry.ref.startswith(HEADS) and entry.new is not None:
            branches.add(entry.ref[len(HEADS) :])
    if DEFAULT_BRANCH in branches or not branches:
        return DEFAULT_BRANCH
    for entry in refs.reflog():
        name = entry.ref[len(HEADS) :]
        if entry.ref.startswith(HEADS) and name in branches:
            try:
                return branch_name(name)
            except InvalidNameError:
                continue
    return sorted(branches)[0]


__all__ = [
    "RESTORED",
    "RefDamage",
    "job_folders",
    "logged_targets",
    "missing_ref_message",
    "ref_damage",
    "restore_refs",
]
