"""gc on a shared store: two phases on S3 (no atomic delete_if_older), one phase elsewhere."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

import ckpt
from ckpt.maintenance.gc import GcReport, collect
from ckpt.maintenance.gc_shared import CANDIDATES_PREFIX, SharedGcReport, read_records
from ckpt.objects.ids import Kind, ObjectId
from ckpt.repository import Repository
from ckpt.storage import Storage
from ckpt.transfer.remote import push

NOW = dt.timedelta(0)
HOUR = dt.timedelta(hours=1)
GARBAGE = {"draft": "an abandoned chapter " * 40}


def test_only_s3_lacks_an_atomic_delete_if_older(storage: Storage, backend: str) -> None:
    assert storage.atomic_delete_if_older is (backend != "s3")


def _garbage(repo: Repository) -> tuple[ObjectId, set[ObjectId]]:
    """Save a job and delete it: returns its blob's id and every object it left behind."""
    before = {obj.id for obj in repo.objects}
    job = repo.job("abandoned")
    job.save("draft", GARBAGE)
    entry = job.tree().get("draft")
    assert entry is not None
    repo.delete_job("abandoned")
    return entry.id, {obj.id for obj in repo.objects} - before


def _stored(repo: Repository) -> set[ObjectId]:
    return {obj.id for obj in repo.objects}


@pytest.fixture
def s3_repo(s3_bucket: str) -> Repository:
    repo = ckpt.init(f"s3://{s3_bucket}/shared")
    repo.job("kept").save("outline", {"title": "Vell"})
    return repo


def _older_than_a_second() -> None:
    """S3 keeps modification times to the second: let the clock pass the next one."""
    time.sleep(1.1)


def test_s3_records_candidates_first_and_deletes_them_in_a_later_run(s3_repo: Repository) -> None:
    _, garbage = _garbage(s3_repo)
    _older_than_a_second()

    first = collect(s3_repo, grace=NOW)
    assert isinstance(first, SharedGcReport)
    assert (first.deleted, first.due_records, first.recorded) == (0, 0, len(garbage))
    assert _stored(s3_repo) >= garbage  # phase 1 deletes nothing
    [record] = read_records(s3_repo.storage)
    assert record.key == first.record
    assert record.ids == garbage
    assert record.marked_at is not None

    # A run with a longer grace period finds the record too young for phase 2.
    waiting = collect(s3_repo, grace=HOUR)
    assert isinstance(waiting, SharedGcReport)
    assert (waiting.deleted, waiting.due_records, waiting.waiting_records) == (0, 0, 1)
    assert waiting.recorded == 0 and waiting.record is None
    assert [r.key for r in read_records(s3_repo.storage)] == [record.key]

    second = collect(s3_repo, grace=NOW)
    assert isinstance(second, SharedGcReport)
    assert second.due_records == 1
    assert second.deleted == len(garbage)
    assert set(second.candidates) == garbage
    assert not _stored(s3_repo) & garbage
    assert read_records(s3_repo.storage) == []  # processed, and nothing new to record
    assert s3_repo.verify(full=True).ok
    assert s3_repo.job("kept").load("outline") == {"title": "Vell"}


def test_s3_writer_stores_its_own_copy_of_a_candidate(s3_repo: Repository) -> None:
    """A save of a value that phase 1 recorded as a candidate does not rely on the
    recorded copy (phase 2 may delete it between its HEAD and DELETE, where a touch
    cannot save it): it stores its own, which phase 2 spares for its youth."""
    blob, garbage = _garbage(s3_repo)
    _older_than_a_second()
    first = collect(s3_repo, grace=NOW)
    assert first.recorded == len(garbage)

    from ckpt.values import serialize

    packs = {info.key for info in s3_repo.storage.list("packs/")}
    assert s3_repo.objects.put(Kind.BLOB, serialize.dumps(GARBAGE)) == blob
    assert len({info.key for info in s3_repo.storage.list("packs/")} - packs) == 1
    _older_than_a_second()  # so that only the phase-1 time, not the age, can spare it
    second = collect(s3_repo, grace=NOW)
    assert isinstance(second, SharedGcReport)
    assert second.due_records == 1
    assert blob in _stored(s3_repo)  # the writer's copy

    # The writer commits: its checkpoint is whole.
    s3_repo.job("resumed").save("draft", GARBAGE)
    assert s3_repo.job("resumed").load("draft") == GARBAGE
    assert s3_repo.verify(full=True).ok


def test_s3_spares_a_candidate_that_became_reachable_again(
    s3_repo: Repository, tmp_path: Path
) -> None:
    blob, _ = _garbage(s3_repo)
    _older_than_a_second()
    collect(s3_repo, grace=NOW)
    # Another machine pushes a job holding the same value.  The store already has the
    # blob and tree, but they are recorded candidates: the push never relies on a
    # candidate (a phase 2 could delete it before the ref moves), so it sends its own
    # copies with the new commit, then moves the ref.
    laptop = ckpt.init(tmp_path / "laptop", durable=False)
    laptop.job("again").save("draft", GARBAGE)
    report = push(laptop, s3_repo.location, ["again"])
    assert report.objects_copied == 3
    _older_than_a_second()  # so that only reachability, not age, can spare it
    second = collect(s3_repo, grace=NOW)
    assert isinstance(second, SharedGcReport)
    assert second.due_records == 1
    assert blob not in second.candidates
    assert blob in _stored(s3_repo)
    assert s3_repo.verify(full=True).ok


def test_s3_dry_run_writes_no_record_and_deletes_nothing(s3_repo: Repository) -> None:
    _, garbage = _garbage(s3_repo)
    _older_than_a_second()
    collect(s3_repo, grace=NOW)
    dry = collect(s3_repo, grace=NOW, dry_run=True)
    assert isinstance(dry, SharedGcReport)
    assert dry.dry_run and dry.record is None
    assert set(dry.candidates) == garbage  # what the next run would delete
    assert _stored(s3_repo) >= garbage
    assert len(read_records(s3_repo.storage)) == 1


def test_s3_unreadable_record_deletes_nothing(s3_repo: Repository) -> None:
    _, garbage = _garbage(s3_repo)
    _older_than_a_second()
    forged = {"format": "ckpt-gc-candidates", "state": "recorded", "marked_at": 0, "ids": [1]}
    s3_repo.storage.put_if_absent(f"{CANDIDATES_PREFIX}0-bad", json.dumps(forged).encode())
    report = collect(s3_repo, grace=NOW)
    assert report.deleted == 0
    assert _stored(s3_repo) >= garbage


def test_local_gc_stays_one_phase(tmp_path: Path) -> None:
    repo = ckpt.init(tmp_path / "store", durable=False)
    repo.job("kept").save("outline", {"title": "Vell"})
    _, garbage = _garbage(repo)
    time.sleep(0.05)  # past the file system's mtime tick
    report = collect(repo, grace=NOW)
    assert type(report) is GcReport
    assert set(report.candidates) == garbage
    assert report.deleted == len(garbage)
    assert not _stored(repo) & garbage
    assert list(repo.storage.list("gc/")) == []
    assert repo.verify(full=True).ok
