"""The runner hands a stage's ckpt.File and ckpt.Directory outputs to the next stage as
paths it can open: as returned in a fresh run, written out of the store on resume."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import ckpt
from ckpt.pipeline.runner import Pipeline

WORK: list[Path] = []
CALLS: list[str] = []
FAIL: set[str] = set()


def draw(input: int) -> ckpt.Directory:
    CALLS.append("draw")
    scenes = WORK[0] / "scenes"
    scenes.mkdir(parents=True, exist_ok=True)
    for n in range(input):
        (scenes / f"{n:02d}.png").write_bytes(bytes([n]) * 100_000)
    return ckpt.Directory(scenes)


def render(draw: ckpt.Directory):  # type: ignore[no-untyped-def]
    """Unannotated: its output comes back as plain data, its files as ckpt.File."""
    CALLS.append("render")
    video = WORK[0] / "final.mp4"
    with open(video, "wb") as out:
        for frame in sorted(Path(draw).iterdir()):  # a Directory is a path
            out.write(frame.read_bytes())
    return {"video": ckpt.File(video), "frames": len(list(Path(draw).iterdir()))}


def publish(render: dict[str, Any]) -> int:
    CALLS.append("publish")
    if "publish" in FAIL:
        raise TimeoutError("upload timed out")
    with open(render["video"], "rb") as video:  # a File is a path too
        return len(video.read())


@pytest.fixture(autouse=True)
def _work(tmp_path: Path) -> None:
    WORK[:] = [tmp_path / "work"]
    CALLS.clear()
    FAIL.clear()


def test_file_outputs_reach_the_next_stage_as_paths(repo: ckpt.Repository) -> None:
    pipeline = Pipeline([draw, render, publish], store=repo)
    result = pipeline.run("film", 3)
    assert result.output == 300_000
    assert isinstance(result["render"]["video"], ckpt.File)
    assert not result["render"]["video"].stored  # this run's own file
    # Resumed after the work directory is gone: the files come from the store.
    shutil.rmtree(WORK[0])
    pipeline.run("film", resume_from="publish")
    assert CALLS == ["draw", "render", "publish", "publish"]
    loaded = repo.job("film").load("render")["video"]
    assert loaded.stored and os.fspath(loaded).startswith(str(repo.location))


def test_a_failed_stage_resumes_with_the_files_of_the_stages_before(
    repo: ckpt.Repository,
) -> None:
    pipeline = Pipeline([draw, render, publish], store=repo)
    FAIL.add("publish")
    with pytest.raises(TimeoutError):
        pipeline.run("film", 2)
    FAIL.clear()
    shutil.rmtree(WORK[0])
    result = pipeline.run("film")
    assert result.ran == ("publish",) and result.output == 200_000
    assert isinstance(result["draw"], ckpt.Directory) and result["draw"].stored
