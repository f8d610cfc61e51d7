"""Guarantee 11: a lost HEAD or ref never makes history collectable, and is reported and restored.

A job's refs, tags and reflog keep its history alive whether or not its
``HEAD`` exists; a branch or tag whose key is gone keeps its history while
the reflog says where it was.  ``ckpt verify`` reports both with the command
that fixes them, a save refuses to start a new root where the reflog shows
history, and ``ckpt repair`` puts them back.  Every ``ckpt`` command here
runs in its own process, as a user would run it.

Before the fix, with ``jobs/J/HEAD`` deleted ``verify --full`` said "0 jobs:
no problems found" and ``gc`` deleted the job's objects; with its branch ref
deleted, verify was clean, ``ckpt log`` printed nothing and the next save
started a new root.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import ckpt
from ckpt.objects.ids import CommitId

from ._support import Figures, run_ckpt


def _history(store: Path) -> list[CommitId]:
    job = ckpt.init(store).job("novel")
    return [job.save(stage, {"text": stage * 100}).id for stage in ("outline", "draft", "edit")]


def _all_load(store: Path, commits: list[CommitId]) -> None:
    repo = ckpt.open(store)
    for oid in commits:
        commit = repo.objects.get_commit(oid)
        for entry in repo.objects.get_tree(commit.tree):
            repo.objects.get(entry.id)


def _age_reflog(store: Path, days: int) -> None:
    """Make every reflog record ``days`` old (past the 30 days after which they keep nothing)."""
    path = store / "jobs" / "novel" / "reflog.log"
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat()
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    path.write_text("".join(json.dumps({**line, "time": old}) + "\n" for line in lines))


def test_a_job_whose_head_was_deleted_is_kept_reported_and_restored(
    tmp_path: Path, figures: Figures
) -> None:
    store = tmp_path / "store"
    commits = _history(store)
    (store / "jobs" / "novel" / "HEAD").unlink()

    verify = run_ckpt(store, "verify", "--full")
    assert verify.returncode == 5, verify.stdout + verify.stderr
    assert "missing-head novel:HEAD" in verify.stdout
    assert "restore it with `ckpt repair`" in verify.stdout

    gc = run_ckpt(store, "gc", "--grace", "0s")
    assert gc.returncode == 0, gc.stderr
    _all_load(store, commits)  # the refs kept the history: nothing was collected

    repair = run_ckpt(store, "repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert "Restored the HEAD of job novel." in repair.stdout
    log = run_ckpt(store, "log", "novel", "--json")
    assert [c["id"] for c in json.loads(log.stdout)["commits"]] == commits[::-1]
    assert run_ckpt(store, "verify", "--full").returncode == 0
    figures.set("objects_lost_to_gc", 0)


def test_a_deleted_branch_is_reported_kept_refused_and_restored(
    tmp_path: Path, figures: Figures
) -> None:
    store = tmp_path / "store"
    commits = _history(store)
    (store / "jobs" / "novel" / "refs" / "heads" / "main").unlink()
    _age_reflog(store, 40)  # the reflog alone no longer keeps anything alive

    verify = run_ckpt(store, "verify")
    assert verify.returncode == 5
    assert "missing-ref novel:refs/heads/main" in verify.stdout
    assert f"the reflog says it is at {commits[-1][:12]}" in verify.stdout
    assert "restore it with `ckpt repair`" in verify.stdout

    log = run_ckpt(store, "log", "novel")
    assert log.returncode == 5
    assert "branch main is missing" in log.stderr and "ckpt repair" in log.stderr

    code = "import ckpt, sys; ckpt.open(sys.argv[1]).job('novel').save('s', 1)"
    save = subprocess.run(
        [sys.executable, "-c", code, str(store)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert save.returncode != 0
    assert "CorruptRefError" in save.stderr and "branch main is missing" in save.stderr
    assert not (store / "jobs" / "novel" / "refs" / "heads" / "main").exists()

    assert run_ckpt(store, "gc", "--grace", "0s").returncode == 0
    _all_load(store, commits)

    repair = run_ckpt(store, "repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert f"Restored branch main of job novel to {commits[-1][:12]}" in repair.stdout
    after = ckpt.open(store).job("novel").save("next", 1)
    assert after.parents == (commits[-1],) and after.seq == 4
    figures.set("new_roots_started", 0)
