"""The public API end to end on every storage backend."""

from __future__ import annotations

import datetime as dt

import pytest

import ckpt
from ckpt.errors import StoreExistsError, StoreNotFoundError


def test_repository_works_on_every_backend(store_url: str) -> None:
    with pytest.raises(StoreNotFoundError):
        ckpt.open(store_url)

    repo = ckpt.init(store_url)
    job = repo.job("novel")
    first = job.save("outline", {"chapters": 3}, cost=0.5, tokens=100)
    second = job.save("draft", "It was a dark and stormy night.", cost=1.0, tokens=900)
    third = job.save("outline", {"chapters": 4}, cost=0.25, tokens=50)

    assert job.load("outline") == {"chapters": 4}
    assert job.load("outline", at=first.id) == {"chapters": 3}
    assert [commit.id for commit in job.log()] == [third.id, second.id, first.id]
    assert third.total_tokens == 1050

    rolled = job.checkout(second.id)
    assert [commit.id for commit in rolled.rolled_back] == [third.id]
    assert job.load("outline") == {"chapters": 3}
    assert job.load("draft") == "It was a dark and stormy night."

    job.branch("alt", at=first.id)
    assert set(job.branches()) == {"main", "alt"}

    report = repo.verify()
    assert report.ok, report.to_json()
    collected = repo.gc(grace=dt.timedelta(0))
    assert collected.deleted == 0  # the rolled-back commit is still in the reflog
    assert repo.verify().ok
    repo.close()

    with pytest.raises(StoreExistsError):
        ckpt.init(store_url)

    again = ckpt.open(store_url)
    try:
        assert again.job_names() == ["novel"]
        reopened = again.job("novel")
        assert reopened.head is not None and reopened.head.id == second.id
        assert reopened.load("outline", at=third.id) == {"chapters": 4}
        assert reopened.load("outline", at="alt") == {"chapters": 3}
        moves = [(entry.ref, entry.new) for entry in reopened.reflog()]
        assert moves == [
            ("refs/heads/alt", first.id),
            ("refs/heads/main", second.id),
            ("refs/heads/main", third.id),
            ("refs/heads/main", second.id),
            ("refs/heads/main", first.id),
        ]
    finally:
        again.close()


def test_job_names_lists_exactly_the_jobs_that_exist(store_url: str) -> None:
    """A folder under jobs/ without HEAD (a crashed first save, a deleted job's leftovers)
    is not a job: job_names agrees with Job.exists on every backend."""
    repo = ckpt.init(store_url)
    try:
        for name in ("b", "a", "gone", "c-1"):
            repo.job(name).save("s", {"name": name})
        repo.job("empty").refs.create()  # a HEAD but no checkpoint yet: the job exists
        repo.delete_job("gone")
        # What a first save that died before creating HEAD may leave.
        repo.storage.put_if_absent("jobs/crashed/meta", b"{}")
        repo.storage.append("jobs/crashed/reflog", b"{}")
        repo.storage.put_if_absent("jobs/stray", b"a key, not a job folder")
        names = repo.job_names()
        assert names == ["a", "b", "c-1", "empty"]
        candidates = [c.removesuffix("/") for c in repo.storage.list_children("jobs/")]
        assert [n for n in candidates if repo.job(n).exists] == names
        assert [job.name for job in repo.jobs()] == names
    finally:
        repo.close()
