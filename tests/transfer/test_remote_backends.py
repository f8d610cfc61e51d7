"""Remotes on every backend: push to it, clone from it, resume there, push back."""

from __future__ import annotations

from pathlib import Path

import ckpt
from ckpt.transfer.remote import add_remote, clone, pull, push


def test_push_clone_resume_and_push_back(store_url: str, tmp_path: Path) -> None:
    ckpt.init(store_url).close()
    work = ckpt.init(tmp_path / "work")
    add_remote(work, "origin", store_url)
    job = work.job("novel")
    for i in range(3):
        job.save(f"stage{i}", {"chapter": i, "text": "words " * 50}, cost=0.25, tokens=100)
    first = push(work, "origin")
    assert [u.status for u in first.updates] == ["created"]

    other, report = clone(store_url, str(tmp_path / "elsewhere"))
    assert [u.status for u in report.updates] == ["created"]
    resumed = other.job("novel")
    assert resumed.stages() == ["stage0", "stage1", "stage2"]
    resumed.save("stage3", {"chapter": 3}, cost=0.25, tokens=100)
    back = push(other, "origin")
    assert [u.status for u in back.updates] == ["fast-forward"]
    assert back.objects_copied == 3

    assert [u.status for u in pull(work, "origin").updates] == ["fast-forward"]
    job.refresh()
    assert job.stages() == ["stage0", "stage1", "stage2", "stage3"]
    assert job.head is not None and job.head.total_cost == 1.0
    with ckpt.open(store_url) as remote:
        assert remote.verify(full=True).ok
        assert remote.job("novel").load("stage3") == {"chapter": 3}
