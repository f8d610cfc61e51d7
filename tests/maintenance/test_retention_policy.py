"""KeepPolicy: restic's forget rules on one branch's history, and dry runs that count."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ckpt.errors import CkptError
from ckpt.maintenance.gc import collect
from ckpt.maintenance.retention import KeepPolicy, apply_retention
from ckpt.objects.ids import CommitId, ObjectId
from ckpt.objects.model import Commit


def _chain(*times: str) -> list[Commit]:
    """Commits at ``times`` (UTC, oldest first), returned newest first like a branch walk."""
    commits = []
    for seq, when in enumerate(times, 1):
        commits.append(
            Commit(
                id=CommitId(ObjectId(f"{seq:064x}")),
                tree=ObjectId("f" * 64),
                parents=(),
                job="j",
                branch="main",
                stage="s",
                time=dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC),
                seq=seq,
                cost=0.0,
                tokens=0,
                total_cost=0.0,
                total_tokens=0,
                status="active",
                message="",
                meta={},
            )
        )
    return commits[::-1]


def _seqs(policy: KeepPolicy, chain: list[Commit]) -> list[int]:
    kept = policy.select(chain)
    return sorted(c.seq for c in chain if c.id in kept)


CHAIN = _chain(
    "2023-12-31 23:00",  # 1: Sunday, ISO week 52 of 2023
    "2024-01-01 09:00",  # 2: Monday, week 1
    "2024-01-01 18:00",  # 3
    "2024-01-07 10:00",  # 4: Sunday, still week 1
    "2024-01-08 08:00",  # 5: week 2
    "2024-02-29 12:00",  # 6: February
    "2024-03-01 00:30",  # 7: March
)


def test_each_rule_keeps_the_newest_checkpoint_of_each_period() -> None:
    assert _seqs(KeepPolicy(last=2), CHAIN) == [6, 7]
    assert _seqs(KeepPolicy(daily=3), CHAIN) == [5, 6, 7]
    assert _seqs(KeepPolicy(daily=10), CHAIN) == [1, 3, 4, 5, 6, 7]
    # 2024-02-29 (a Thursday) and 2024-03-01 are in one ISO week: its newest is kept.
    assert _seqs(KeepPolicy(weekly=3), CHAIN) == [4, 5, 7]
    assert _seqs(KeepPolicy(weekly=10), CHAIN) == [1, 4, 5, 7]
    assert _seqs(KeepPolicy(monthly=3), CHAIN) == [5, 6, 7]
    assert _seqs(KeepPolicy(monthly=10), CHAIN) == [1, 5, 6, 7]
    # Rules add up: a checkpoint any of them keeps is kept.
    assert _seqs(KeepPolicy(last=1, daily=2, monthly=4), CHAIN) == [1, 5, 6, 7]


def test_a_policy_must_keep_something() -> None:
    with pytest.raises(CkptError, match="a retention policy must keep something"):
        KeepPolicy()
    with pytest.raises(CkptError, match="keep daily must be a count >= 0, not -1"):
        KeepPolicy(daily=-1)


def test_a_dry_run_counts_what_retention_and_gc_would_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ckpt.history.job

    repo = ckpt.init(tmp_path / "store", durable=False)
    job = repo.job("agent")
    start = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    for day in range(10):
        monkeypatch.setattr(ckpt.history.job, "now", lambda day=day: start + dt.timedelta(day))
        job.save("state", {"day": day, "log": "entry " * 50 * day})
    job.tag("first", job.log()[-1].id)
    dry = apply_retention(repo, keep_daily=3, dry_run=True)
    # Days 1-6 are let go; day 0 is kept by its tag, with its history (none before it).
    assert [(p.job, p.dropped_commits) for p in dry.pruned] == [("agent", 6)]
    would = collect(repo, grace=dt.timedelta(0), dry_run=True, plan=dry.plan)
    assert job.record.cut == frozenset()  # nothing changed
    apply_retention(repo, keep_daily=3)
    done = collect(repo, grace=dt.timedelta(0))
    assert (done.deleted, done.deleted_bytes) == (would.deleted, would.deleted_bytes)
    assert done.deleted == 3 * 6  # day 0 stays: the tag keeps it
    # The log goes on from the cut to the tagged checkpoint kept below it.
    assert [c.time.day for c in job.log()] == [10, 9, 8, 1]
    assert job.load("state", at="first") == {"day": 0, "log": ""}
    assert repo.verify(full=True).ok
