"""The library API of maintenance: verify finds corruption, gc collects what nothing reaches.

Acceptance tests are named ``test_acceptance_*``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import ckpt
from ckpt.errors import (
    CkptError,
    CorruptObjectError,
    ObjectNotFoundError,
)
from ckpt.objects import codec
from ckpt.objects.ids import Kind, ObjectId, object_id
from ckpt.objects.store import ObjectStore, object_key
from ckpt.storage.memory import MemoryStorage
from tests.api_helpers import store_files as _files


@attrs.frozen
class Outline:
    title: str
    chapters: list[str]
    created: dt.datetime


OUTLINE = Outline("Dune", ["Arrakis", "Muad'Dib"], dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC))


# -- acceptance: corruption -------------------------------------------------


def _stored_range(repo: ckpt.Repository, root: Path, oid: ObjectId) -> tuple[Path, int, int]:
    """The file holding ``oid``'s stored bytes, and their offset and length in it."""
    locate = getattr(repo.objects, "locate", None)
    if locate is not None:
        where = locate(oid)
        assert where is not None
        path = root / where.key
        if where.length >= 0:
            return path, where.offset, where.length
        return path, 0, path.stat().st_size
    path = root / object_key(oid)
    return path, 0, path.stat().st_size


@pytest.fixture
def damaged(root: Path) -> Iterator[dict[str, Any]]:
    """A job of three commits whose middle stage's blob is the one to damage."""
    with ckpt.init(root, durable=False) as repo:
        job = repo.job("novel")
        c1 = job.save("outline", {"chapters": 12})
        c2 = job.save("draft", "chapter one: " + "x" * 64)
        c3 = job.save("review", {"ok": True})
        entry = job.tree().get("draft")
        assert entry is not None
        path, offset, length = _stored_range(repo, root, entry.id)
        yield {
            "repo": repo,
            "blob": entry.id,
            "commits": (c1, c2, c3),
            "path": path,
            "offset": offset,
            "length": length,
        }


def _check_verify_report(root: Path, state: dict[str, Any]) -> ckpt.VerifyReport:
    c1, c2, c3 = state["commits"]
    with ckpt.open(root) as fresh:
        report = fresh.verify()
    assert not report.ok
    # The blob's own problem; or, when its pack lost its index (a truncated pack), the
    # pack's, which names the objects it held.
    blob_problems = [
        p for p in report.problems if p.subject == state["blob"] or state["blob"] in p.objects
    ]
    assert len(blob_problems) == 1
    problem = blob_problems[0]
    assert problem.jobs == ("novel",)
    # Every readable commit whose tree holds the blob (a damaged container may
    # also take c2's own commit object with it: then c2 is broken by that).
    assert c3.id in problem.commits
    assert c1.id not in problem.commits
    assert state["blob"] in (problem.message if problem.kind != "damaged-pack" else problem.objects)
    health = report.jobs["novel"]
    assert not health.ok
    assert set(health.broken_commits) >= {c2.id, c3.id}
    assert c1.id not in health.broken_commits
    assert health.last_good == {"main": c1.id}
    return report


def test_acceptance_corruption_flipped_byte(root: Path, damaged: dict[str, Any]) -> None:
    blob: ObjectId = damaged["blob"]
    with open(damaged["path"], "r+b") as handle:
        position = damaged["offset"] + damaged["length"] - 6
        handle.seek(position)
        byte = handle.read(1)
        handle.seek(position)
        handle.write(bytes([byte[0] ^ 0x40]))
    with ckpt.open(root) as fresh:
        job = fresh.job("novel")
        with pytest.raises(CorruptObjectError) as info:
            job.load("draft")
        assert info.value.object_id == blob
        assert f"object {blob} is corrupt" in str(info.value)
        if info.value.reason == "content does not match its id":
            assert info.value.expected == blob
            assert f"expected {blob}, found {info.value.actual}" in str(info.value)
        # Stages the damage does not touch still load.
        assert job.load("outline") == {"chapters": 12}
        assert job.load("review") == {"ok": True}
    _check_verify_report(root, damaged)


def test_acceptance_corruption_bytes_that_decode_to_other_content(
    root: Path, damaged: dict[str, Any]
) -> None:
    """Rot that zstd cannot see (a misdirected write): only the hash catches it."""
    blob: ObjectId = damaged["blob"]
    data = b'"chapter one: ' + b"y" * 64 + b'"'
    # The other content stored the way this store stores it (same header form and size).
    scratch = ObjectStore(MemoryStorage())
    replacement = scratch.read_stored(scratch.put(Kind.BLOB, data))
    with open(damaged["path"], "r+b") as handle:
        handle.seek(damaged["offset"])
        original = handle.read(damaged["length"])
        assert codec.HEADER.unpack_from(original)[:4] == codec.HEADER.unpack_from(replacement)[:4]
        assert len(replacement) == len(original)
        handle.seek(damaged["offset"])
        handle.write(replacement)
    actual = object_id(Kind.BLOB, data)
    with ckpt.open(root) as fresh:
        with pytest.raises(CorruptObjectError) as info:
            fresh.job("novel").load("draft")
        assert info.value.object_id == blob
        assert (info.value.expected, info.value.actual) == (blob, actual)
        head = fresh.job("novel").head
        assert head is not None
        # Reached through a job, the error names the job, the commit and the stage (21.14).
        assert (info.value.job, info.value.commit, info.value.stage) == ("novel", head.id, "draft")
        assert str(info.value) == (
            f"job 'novel', commit {head.id[:12]}, stage 'draft': "
            f"object {blob} is corrupt: content does not match its id "
            f"(expected {blob}, found {actual})"
        )
    report = _check_verify_report(root, damaged)
    (problem,) = [p for p in report.problems if p.subject == blob]
    assert problem.kind == "corrupt-object"
    assert actual in problem.message


def test_acceptance_corruption_truncated(root: Path, damaged: dict[str, Any]) -> None:
    blob: ObjectId = damaged["blob"]
    path: Path = damaged["path"]
    os.truncate(path, damaged["offset"] + damaged["length"] // 2)
    with ckpt.open(root) as fresh:
        with pytest.raises((CorruptObjectError, ObjectNotFoundError)) as info:
            fresh.job("novel").load("draft")
        assert type(info.value) in (CorruptObjectError, ObjectNotFoundError)
        assert info.value.object_id == blob  # type: ignore[union-attr]
        assert blob in str(info.value)
        assert fresh.job("novel").load("outline") == {"chapters": 12}
    _check_verify_report(root, damaged)


def test_acceptance_corruption_deleted(root: Path, damaged: dict[str, Any]) -> None:
    blob: ObjectId = damaged["blob"]
    assert damaged["repo"].objects.delete(blob)
    with ckpt.open(root) as fresh:
        with pytest.raises(ObjectNotFoundError) as info:
            fresh.job("novel").load("draft")
        assert info.value.object_id == blob
        head = fresh.job("novel").head
        assert head is not None
        assert str(info.value) == (
            f"job 'novel', commit {head.id[:12]}, stage 'draft': "
            f"object {blob} not found in the store"
        )
        assert fresh.job("novel").load("review") == {"ok": True}
    report = _check_verify_report(root, damaged)
    (problem,) = [p for p in report.problems if p.subject == blob]
    assert problem.kind == "missing-object"


def test_verify_of_a_healthy_store(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = history
    report = job.repo.verify()
    assert report.ok
    assert report.problems == ()
    assert report.jobs["novel"].broken_commits == ()
    assert report.jobs["novel"].last_good == {"main": commits[3].id}
    assert report.objects_checked >= 4 * 2 + 3


# -- gc ---------------------------------------------------------------------


def _all_objects_of(job: ckpt.Job) -> set[ObjectId]:
    found: set[ObjectId] = set()
    for commit in job.log():
        found.add(commit.id)
        found.add(commit.tree)
        found.update(entry.id for entry in job.repo.objects.get_tree(commit.tree))
    return found


def test_gc_removes_a_deleted_jobs_objects_and_keeps_reachable_ones(
    repo: ckpt.Repository, root: Path
) -> None:
    keep = repo.job("keep")
    keep.save("shared", "same value in both jobs")
    keep.save("own", "only in keep")
    doomed = repo.job("doomed")
    doomed.save("shared", "same value in both jobs")
    doomed.save("own", "only in doomed " * 50)
    kept_objects = _all_objects_of(keep)
    doomed_objects = _all_objects_of(doomed)
    shared = kept_objects & doomed_objects
    # The blob of the shared value, and the first tree (same stage, same value).
    assert len(shared) == 2
    assert keep.tree("HEAD~1").get("shared") == doomed.tree("HEAD~1").get("shared")
    repo.delete_job("doomed")

    report = repo.gc(grace=dt.timedelta(0))
    assert not report.dry_run
    assert report.deleted == len(doomed_objects - shared)
    assert set(report.candidates) == doomed_objects - shared

    with ckpt.open(root) as fresh:
        assert {o for o in doomed_objects - shared if fresh.objects.has(o)} == set()
        assert all(fresh.objects.has(o) for o in kept_objects)
        assert fresh.job("keep").load("shared") == "same value in both jobs"
        assert fresh.job("keep").load("own") == "only in keep"
        assert fresh.verify().ok
    assert repo.gc(grace=dt.timedelta(0)).deleted == 0


def test_gc_dry_run_deletes_nothing(repo: ckpt.Repository, root: Path) -> None:
    repo.job("keep").save("s", 1)
    doomed = repo.job("doomed")
    doomed.save("s", "doomed value")
    doomed_objects = _all_objects_of(doomed)
    repo.delete_job("doomed")
    before = _files(root)
    report = repo.gc(grace=dt.timedelta(0), dry_run=True)
    assert report.dry_run
    assert set(report.candidates) == doomed_objects
    assert report.deleted == len(doomed_objects)
    assert _files(root) == before
    assert all(repo.objects.has(o) for o in doomed_objects)


def test_gc_grace_period_spares_new_objects(repo: ckpt.Repository) -> None:
    doomed = repo.job("doomed")
    doomed.save("s", "young value")
    doomed_objects = _all_objects_of(doomed)
    repo.delete_job("doomed")
    report = repo.gc(grace=dt.timedelta(hours=1))
    assert report.deleted == 0
    assert report.kept_by_grace >= 1
    assert all(repo.objects.has(o) for o in doomed_objects)


def test_gc_keeps_rolled_back_commits_while_in_the_reflog(
    history: tuple[ckpt.Job, list[ckpt.Commit]], root: Path
) -> None:
    job, commits = history
    job.checkout(commits[0].id)
    report = job.repo.gc(grace=dt.timedelta(0))
    assert report.deleted == 0
    with ckpt.open(root) as fresh:
        again = fresh.job("novel")
        assert again.head.id == commits[0].id  # type: ignore[union-attr]
        assert again.load("review", at=commits[3].id) == "r1"
        assert again.load("outline", at=commits[2].id) == "o2"
        assert again.checkout(commits[3].id).new == commits[3].id
        assert again.stages() == ["outline", "draft", "review"]


def test_gc_refuses_a_negative_grace(repo: ckpt.Repository) -> None:
    with pytest.raises(CkptError, match="grace period must not be negative"):
        repo.gc(grace=dt.timedelta(seconds=-1))
