"""Guarantee 3: concurrent writers never lose an update and never tear a ref.

Several processes save at once: some to a job of their own, several to the
same job (half of them with ``retry=True``, which rebuilds on the moved head
when it loses a race).  Every save either lands, or raises ConflictError.
Then, for the shared job: saves attempted = commits in its history +
conflicts reported; every save that returned is in history, exactly once;
every commit in history was returned to exactly one writer; every ref parses;
each commit's reflog record moved the branch from its parent.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import ckpt
from ckpt.history.refs import HEADS

from ._support import Figures, result, spawn, wait_ready

SHARED_WRITERS = 4
OWN_WRITERS = 2
ATTEMPTS = 40


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(tmp_path: Path, figures: Figures) -> None:
    store = tmp_path / "store"
    repo = ckpt.init(store)
    first = repo.job("shared").save("start", {"n": 0})
    children = [
        spawn("writer", store, "shared", ATTEMPTS, "retry" if i % 2 else "once", i)
        for i in range(SHARED_WRITERS)
    ]
    children += [
        spawn("writer", store, f"own-{i}", ATTEMPTS, "once", 100 + i) for i in range(OWN_WRITERS)
    ]
    wait_ready(children)
    results = [result(child) for child in children]
    shared, own = results[:SHARED_WRITERS], results[SHARED_WRITERS:]

    repo = ckpt.open(store)
    report = repo.verify(full=True)
    assert report.ok, [p.message for p in report.problems]

    # The shared job: attempts = commits + conflicts, and no save lost or duplicated.
    job = repo.job("shared")
    history = [commit.id for commit in job.log()]
    assert history[-1] == first.id
    landed = history[:-1]
    returned = [oid for r in shared for oid in r["saved"]]
    conflicts = sum(r["conflicts"] for r in shared)
    attempts = sum(r["attempts"] for r in shared)
    assert attempts == len(landed) + conflicts
    assert Counter(returned) == Counter(landed), "a returned save is missing, or a phantom landed"
    _check_refs_and_reflog(repo, "shared", history)

    # Jobs with one writer each: every attempt landed, no conflict.
    for index, r in enumerate(own):
        assert r["conflicts"] == 0
        own_history = [c.id for c in repo.job(f"own-{index}").log()]
        assert list(reversed(own_history)) == r["saved"]
        _check_refs_and_reflog(repo, f"own-{index}", own_history)

    figures.add("processes", len(children))
    figures.add("saves_attempted", attempts + sum(r["attempts"] for r in own))
    figures.add("saves_attempted_on_shared_job", attempts)
    figures.add("commits_on_shared_job", len(landed))
    figures.add("conflicts_reported", conflicts)
    figures.add(
        "conflicts_reported_with_retry",
        sum(r["conflicts"] for i, r in enumerate(shared) if i % 2),
    )
    figures.set("lost_updates", 0)
    figures.set("torn_refs", 0)


def _check_refs_and_reflog(repo: ckpt.Repository, name: str, history: list[str]) -> None:
    """Every ref parses; the branch's reflog moved it along history one commit at a time."""
    job = repo.job(name)
    refs = job.refs.all_refs()
    assert None not in refs.values(), f"a ref of {name} is torn: {refs}"
    assert not job.refs.bad_reflog_lines()
    moves = [e for e in reversed(job.reflog()) if e.ref == HEADS + "main"]
    parents = {commit.id: commit.parent for commit in job.log()}
    # One record per move.  (Records are appended after the compare-and-swap,
    # outside its lock, so two racing saves may log in either order.)
    assert Counter(e.new for e in moves) == Counter(history)
    for entry in moves:
        assert entry.new is not None
        assert entry.old == parents[entry.new]
