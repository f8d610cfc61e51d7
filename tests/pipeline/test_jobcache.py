"""The jobs listing cache: the listing it gives is always the one a full read gives.

The cache trusts an entry only while the job's folders keep the stamp they
had, and only once that stamp is a few seconds old.  The tests make the
stamps old by moving the folders' mtimes back an hour (what waiting would
do), so every later change gets a stamp of its own.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

import ckpt
from ckpt.history import jobrecord
from ckpt.pipeline import jobcache, listing
from ckpt.pipeline.listing import JobSummary, list_jobs


def _settle(root: Path) -> None:
    """Move every folder's mtime an hour back, as if nothing had changed for that long."""
    old = os.stat(root).st_mtime - 3600
    for folder, _dirs, _files in os.walk(root / "jobs"):
        os.utime(folder, (old, old))


def _uncached(repo: ckpt.Repository, monkeypatch: pytest.MonkeyPatch) -> list[JobSummary]:
    with monkeypatch.context() as patch:
        patch.setattr(jobcache.JobsCache, "open", classmethod(lambda cls, storage: None))
        return list_jobs(repo)


def _records_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = listing.read_record_or_default

    def counting(storage: object, job: str) -> jobrecord.JobRecord:
        seen.append(job)
        return real(storage, job)  # type: ignore[arg-type]

    monkeypatch.setattr(listing, "read_record_or_default", counting)
    return seen


@pytest.fixture
def jobs(repo: ckpt.Repository) -> ckpt.Repository:
    repo.job("alpha").save("draft", {"text": "one"}, cost=0.5, tokens=10)
    beta = repo.job("beta")
    beta.save("draft", [1, 2, 3])
    beta.set_labels(genre="fantasy")
    gamma = repo.job("gamma")
    gamma.save("a", "x")
    gamma.save("b", "y")
    gamma.set_ttl(dt.timedelta(hours=1))
    repo.job("delta").save("only", 1)
    return repo


def test_a_settled_listing_reads_no_job_again(
    jobs: ckpt.Repository, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settle(root)
    first = list_jobs(jobs)
    assert first == _uncached(jobs, monkeypatch)
    seen = _records_read(monkeypatch)
    assert list_jobs(jobs) == first
    assert seen == []


def test_every_change_is_seen(
    jobs: ckpt.Repository, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settle(root)
    list_jobs(jobs)
    jobs.job("alpha").save("final", {"text": "two"}, cost=0.25)  # a new head
    jobs.job("beta").set_labels(genre="horror")  # the record
    gamma = jobs.job("gamma")
    gamma.checkout(gamma.log()[-1].id)  # the branch moves back
    jobs.job("delta").branch("other")
    jobs.job("delta").switch("other")  # HEAD names another branch
    jobs.job("delta").save("more", 2)
    jobs.delete_job("alpha")
    jobs.job("epsilon").save("new", 0)
    seen = _records_read(monkeypatch)
    after = list_jobs(jobs)
    assert sorted(seen) == ["beta", "delta", "epsilon", "gamma"]
    assert after == _uncached(jobs, monkeypatch)
    assert [s.name for s in after] == ["beta", "delta", "epsilon", "gamma"]


def test_a_change_within_the_settling_time_is_read_again(
    jobs: ckpt.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing settled: every job was written moments ago, so none is taken from the cache.
    list_jobs(jobs)
    seen = _records_read(monkeypatch)
    list_jobs(jobs)
    assert sorted(seen) == ["alpha", "beta", "delta", "gamma"]


def test_a_ttl_that_passes_shows_as_expired_from_the_cache(
    jobs: ckpt.Repository, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settle(root)
    assert {s.name: s.status for s in list_jobs(jobs)}["gamma"] == "active"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    monkeypatch.setattr(listing, "now", lambda: later)
    seen = _records_read(monkeypatch)
    assert {s.name: s.status for s in list_jobs(jobs)}["gamma"] == "expired"
    assert seen == []


def test_label_and_status_filters_apply_to_cached_jobs(
    jobs: ckpt.Repository, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settle(root)
    list_jobs(jobs)
    _records_read(monkeypatch)
    assert [s.name for s in list_jobs(jobs, labels={"genre": "fantasy"})] == ["beta"]
    jobs.job("delta").complete()
    assert [s.name for s in list_jobs(jobs, statuses=["completed"])] == ["delta"]


@pytest.mark.parametrize("garbage", [b"", b"not json", b'{"v": 1, "jobs": {"alpha": [1, 2]}}'])
def test_a_garbled_cache_is_rebuilt(
    jobs: ckpt.Repository, root: Path, monkeypatch: pytest.MonkeyPatch, garbage: bytes
) -> None:
    _settle(root)
    list_jobs(jobs)
    (root / "cache" / "jobs").write_bytes(garbage)
    assert list_jobs(jobs) == _uncached(jobs, monkeypatch)
    seen = _records_read(monkeypatch)
    assert list_jobs(jobs) == _uncached(jobs, monkeypatch)
    assert seen.count("alpha") == 1  # only the uncached listing read it


def test_backends_without_stamps_cache_nothing(tmp_path: Path) -> None:
    with ckpt.init("memory://jobcache-test") as repo:
        repo.job("alpha").save("s", 1)
        assert [s.name for s in list_jobs(repo)] == ["alpha"]
        assert repo.storage.stat(jobcache.CACHE_KEY) is None


def test_local_stamps_change_with_each_kind_of_change(jobs: ckpt.Repository, root: Path) -> None:
    _settle(root)
    storage = jobs.storage

    def stamp(name: str) -> tuple[int, int, int, int]:
        stamps = storage.folder_stamps("jobs/", "refs/heads")
        assert stamps is not None
        return stamps[name]

    before = stamp("alpha")
    jobs.job("alpha").save("next", 2)
    assert stamp("alpha")[2:] != before[2:]  # the branch ref
    before = stamp("beta")
    jobs.job("beta").set_labels(owner="ana")
    assert stamp("beta")[:2] != before[:2]  # the record
    before = stamp("delta")
    jobs.job("delta").branch("side")
    jobs.job("delta").switch("side")
    assert stamp("delta")[:2] != before[:2]  # HEAD
    assert sorted(storage.folder_stamps("jobs/", "refs/heads") or {}) == sorted(jobs.job_names())
