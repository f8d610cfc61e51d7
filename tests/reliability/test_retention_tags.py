"""Guarantee 12: retention never deletes what a tag keeps.

A tag keeps the commit it names and the whole history before it (``ckpt tag
--help`` and docs/format.md say so), whether the tag stands inside the window
``--keep-last`` keeps or below it.  Every ``ckpt`` command runs in its own
process.

Before the fix, ``ckpt tag JOB v1 HEAD; ckpt gc --keep-last 2 --grace 0s;
ckpt show JOB v1~3`` failed with "object ... not found": the cut made at the
edge of the kept window also cut the history of a tag inside the window.
"""

from __future__ import annotations

from pathlib import Path

import ckpt
from ckpt.objects.ids import CommitId

from ._support import Figures, run_ckpt

SAVES = 6


def _saves(repo: ckpt.Repository, name: str) -> list[CommitId]:
    job = repo.job(name)
    return [job.save(f"chapter{i}", {"text": "x" * 50 * i}).id for i in range(SAVES)]


def test_keep_last_keeps_every_tag_with_its_history(tmp_path: Path, figures: Figures) -> None:
    store = tmp_path / "store"
    repo = ckpt.init(store)
    inside = _saves(repo, "inside")  # tagged at HEAD: inside the kept window
    below = _saves(repo, "below")  # tagged below the window, commits after it let go
    assert run_ckpt(store, "tag", "inside", "v1", "HEAD").returncode == 0
    assert run_ckpt(store, "tag", "below", "v1", below[2]).returncode == 0
    repo.job("inside").save("epilogue", {"text": "the end"})

    gc = run_ckpt(store, "gc", "--keep-last", "2", "--grace", "0s")
    assert gc.returncode == 0, gc.stderr

    checked = 0
    for job, rev, expected in (
        ("inside", "v1~3", inside[-4]),
        ("inside", "v1~5", inside[0]),
        ("below", "v1", below[2]),
        ("below", "v1~2", below[0]),
    ):
        shown = run_ckpt(store, "show", job, rev, "--json")
        assert shown.returncode == 0, (job, rev, shown.stderr)
        assert expected in shown.stdout, (job, rev)
        checked += 1
    assert "removed by retention" not in run_ckpt(store, "log", "inside").stdout
    # Retention still lets go what no tag keeps: below's commits 3 and 4.  The log says
    # where, and goes on with the tagged history kept below the cut.
    below_log = run_ckpt(store, "log", "below", "--oneline")
    shown = [line.split()[0] for line in below_log.stdout.splitlines() if "retention" not in line]
    assert shown == [below[5][:12], below[4][:12], below[2][:12], below[1][:12], below[0][:12]]
    assert "removed by retention" in below_log.stdout
    assert run_ckpt(store, "verify", "--full").returncode == 0
    figures.set("tagged_revisions_checked", checked)
    figures.set("tagged_commits_lost", 0)
