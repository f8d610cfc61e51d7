"""The demo pipeline behind `ckpt demo`: crash, resume, roll back, redo."""

from __future__ import annotations

from pathlib import Path

import ckpt
from ckpt.cli.demo import STAGES, StageRun, run_novel
from ckpt.pipeline.listing import job_progress


def test_crash_resume_and_redo(tmp_path: Path) -> None:
    seen: list[StageRun] = []
    with ckpt.init(tmp_path / "s", durable=False) as repo:
        first = run_novel(repo, "novel", crash_at="chapters", on_stage=seen.append)
        assert not first.completed
        assert first.failed_stage == "chapters"
        assert [r.stage for r in first.stages] == ["outline", "characters"]
        job = repo.job("novel")
        assert job.status == "failed"
        progress = job_progress(job)
        assert progress.failed_stage == "chapters"
        assert progress.total_stages == len(STAGES)
        assert progress.resume_after == "characters"

        second = run_novel(repo, "novel")
        assert second.completed
        assert [r.stage for r in second.stages if r.skipped] == ["outline", "characters"]
        assert [r.stage for r in second.stages if not r.skipped] == list(STAGES[2:])
        assert second.cost == 1.71
        job.refresh()
        assert job.status == "completed"
        assert all(r.commit is not None for r in second.stages if not r.skipped)

        job.checkout("chapters")
        third = run_novel(repo, "novel", style="terse")
        assert [r.stage for r in third.stages if not r.skipped] == ["edit", "publish"]
        job.refresh()
        assert job.load("edit")["style"] == "terse"
        assert job.load("publish")["words"] == sum(
            ch["words"] for ch in job.load("edit")["chapters"]
        )
    assert [r.stage for r in seen] == ["outline", "characters"]
