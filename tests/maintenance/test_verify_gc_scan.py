"""verify --full and gc on whole stores, read in bulk: damage found, nothing live deleted."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

import ckpt
from ckpt.errors import CkptError
from ckpt.objects.ids import ObjectId
from ckpt.repository import Repository


def _flip(repo: Repository, oid: ObjectId, at: int = -1) -> None:
    """Damage one byte of ``oid``'s stored bytes in place."""
    where = repo.objects.locate(oid)
    assert where is not None and where.packed
    data = bytearray(repo.storage.get(where.key))
    data[where.offset + where.length + at] ^= 0x55
    repo.storage.delete(where.key)
    repo.storage.put_if_absent(where.key, bytes(data))


def _store(tmp_path: Path) -> Repository:
    """Several jobs: large chunked values saved as deltas, and many small checkpoints."""
    repo = ckpt.init(str(tmp_path / "store"), durable=False)
    big = repo.job("big")
    for n in range(3):
        big.save("state", os.urandom(200_000) + b"x" * n)
        big.save("log", b"line\n" * (20_000 + n * 10))
    for n in range(40):
        repo.job(f"small-{n % 4}").save("state", {"n": n})
    return repo


def test_a_damaged_commit_amid_many_is_reported_with_its_job(tmp_path: Path) -> None:
    repo = _store(tmp_path)
    job = repo.job("small-2")
    commits = job.log()
    hurt = commits[3]
    _flip(repo, hurt.id)
    report = ckpt.open(str(tmp_path / "store")).verify(full=True)
    assert [(p.kind, p.subject) for p in report.problems] == [("corrupt-object", hurt.id)]
    assert report.problems[0].jobs == ("small-2",)
    health = report.jobs["small-2"]
    assert hurt.id in health.broken_commits
    assert all(report.jobs[name].ok for name in report.jobs if name != "small-2")


def test_verify_full_checks_every_stored_object(tmp_path: Path) -> None:
    repo = _store(tmp_path)
    stored = list(repo.objects)
    report = ckpt.open(str(tmp_path / "store")).verify(full=True)
    assert report.ok
    assert report.objects_checked == len(stored)
    assert report.bytes_checked == sum(item.stored_size for item in stored)


def test_gc_stops_on_a_damaged_reachable_tree_and_deletes_nothing(tmp_path: Path) -> None:
    repo = _store(tmp_path)
    head = repo.job("small-1").head
    assert head is not None
    repo.delete_job("small-3")  # garbage gc would otherwise delete
    _flip(repo, head.tree)
    before = sorted(item.id for item in repo.objects)
    fresh = ckpt.open(str(tmp_path / "store"))
    with pytest.raises(CkptError, match="gc stopped before deleting anything"):
        fresh.gc(grace=dt.timedelta(0))
    assert sorted(item.id for item in fresh.objects) == before


def test_gc_is_not_stopped_by_damaged_garbage(tmp_path: Path) -> None:
    repo = _store(tmp_path)
    gone = repo.job("small-3").head
    assert gone is not None
    repo.delete_job("small-3")
    _flip(repo, gone.id)
    fresh = ckpt.open(str(tmp_path / "store"))
    report = fresh.gc(grace=dt.timedelta(0))
    assert report.deleted > 0
    assert not fresh.objects.has(gone.id)
    assert fresh.verify(full=True).ok


def test_gc_keeps_what_live_values_need(tmp_path: Path) -> None:
    repo = _store(tmp_path)
    expected = {
        "state": repo.job("big").load("state"),
        "log": repo.job("big").load("log"),
    }
    repo.delete_job("small-0")
    report = ckpt.open(str(tmp_path / "store")).gc(grace=dt.timedelta(0))
    assert report.deleted > 0
    fresh = ckpt.open(str(tmp_path / "store"))
    assert fresh.verify(full=True).ok
    assert {stage: fresh.job("big").load(stage) for stage in expected} == expected
    # Earlier versions too: their chunks and delta bases were kept.
    for commit in fresh.job("big").log():
        fresh.job("big").load("state", at=commit.id)
    again = fresh.gc(grace=dt.timedelta(0))
    assert again.deleted == 0
