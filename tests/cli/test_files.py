"""Files in the CLI: ``show`` lists them, ``diff`` says which changed, ``cat --to``
writes them out; ``verify --full``, ``gc``, ``push``/``pull``/``clone`` and
``export``/``import`` carry them like any object."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import ckpt
from ckpt.cli.exits import ExitCode
from ckpt.history.job import Job
from ckpt.repository import Repository

from .conftest import Run, corrupt_object


@pytest.fixture
def render(repo: Repository, tmp_path: Path) -> Job:
    work = tmp_path / "work"
    (work / "scenes" / "empty").mkdir(parents=True)
    (work / "scenes" / "001.png").write_bytes(b"one")
    (work / "scenes" / "002.png").write_bytes(os.urandom(300_000))
    (work / "final.mp4").write_bytes(os.urandom(2_000_000))
    os.chmod(work / "final.mp4", 0o640)
    job = repo.job("render")
    job.save("plan", {"scenes": 2})
    job.save(
        "video",
        {
            "video": ckpt.File(work / "final.mp4"),
            "scenes": ckpt.Directory(work / "scenes"),
            "seconds": 61.2,
        },
    )
    return job


def test_show_lists_the_files_of_each_stage(run: Run, render: Job) -> None:
    result = run("show", "render")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Files of video (3, 2.2 MiB):" in text
    lines = text[text.index("Files of video") :].splitlines()
    assert lines[1].split() == ["FILE", "SIZE"]
    assert [line.split()[0] for line in lines[2:5]] == [
        "scenes/001.png",
        "scenes/002.png",
        "final.mp4",
    ]
    assert lines[4].split()[1:] == ["1.9", "MiB"]
    doc = json.loads(run("show", "render", "--json").output)
    video = next(stage for stage in doc["stages"] if stage["name"] == "video")
    assert [(f["path"], f["size"], f["mode"]) for f in video["files"]] == [
        ("scenes/001.png", 3, 0o644),
        ("scenes/002.png", 300_000, 0o644),
        ("final.mp4", 2_000_000, 0o640),
    ]
    plan = next(stage for stage in doc["stages"] if stage["name"] == "plan")
    assert plan["files"] == []


def test_diff_says_which_files_changed(run: Run, render: Job, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "scenes" / "001.png").write_bytes(b"one, redrawn")
    (work / "scenes" / "003.png").write_bytes(b"three")
    (work / "scenes" / "002.png").unlink()
    render.save(
        "video",
        {
            "video": ckpt.File(work / "final.mp4"),
            "scenes": ckpt.Directory(work / "scenes"),
            "seconds": 61.2,
        },
    )
    result = run("diff", "render", "HEAD~1", "--stat")
    assert result.exit_code == 0, result.output
    files = result.output[result.output.index("Files of video:") :].splitlines()[1:]
    assert [line.split()[:2] for line in files[1:]] == [
        ["M", "scenes/001.png"],
        ["D", "scenes/002.png"],
        ["A", "scenes/003.png"],
    ]
    assert "3 B -> 12 B" in files[1]
    doc = json.loads(run("diff", "render", "HEAD~1", "--json").output)
    changes = doc["changes"][0]["files"]
    assert [(c["change"], c["path"]) for c in changes] == [
        ("changed", "scenes/001.png"),
        ("removed", "scenes/002.png"),
        ("added", "scenes/003.png"),
    ]


def test_cat_to_writes_the_files_out(run: Run, render: Job, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("cat", "render", "HEAD", "video", "--to", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"wrote {out / 'scenes'}", f"wrote {out / 'final.mp4'}"]
    work = tmp_path / "work"
    assert (out / "final.mp4").read_bytes() == (work / "final.mp4").read_bytes()
    assert stat.S_IMODE((out / "final.mp4").stat().st_mode) == 0o640
    assert (out / "scenes" / "002.png").read_bytes() == (work / "scenes" / "002.png").read_bytes()
    assert (out / "scenes" / "empty").is_dir()
    # The value itself still prints as JSON.
    shown = json.loads(run("cat", "render", "video").output)
    assert shown["video"]["$ckpt"] == "file" and shown["video"]["size"] == 2_000_000


def test_cat_to_a_stage_without_files(run: Run, render: Job, tmp_path: Path) -> None:
    result = run("cat", "render", "plan", "--to", str(tmp_path / "out"))
    assert result.exit_code == ExitCode.ERROR
    assert result.output == (
        f"Error: stage 'plan' at {render.head.short_id}: "  # type: ignore[union-attr]
        "the value holds no ckpt.File or ckpt.Directory\n"
    )
    result = run("cat", "render", "video", "--to", str(tmp_path / "out"), "--raw")
    assert result.exit_code == ExitCode.USAGE
    assert result.output == "Error: give either --raw or --to, not both\n"


def test_saving_a_missing_file_is_one_clear_line(run: Run, repo: Repository) -> None:
    with pytest.raises(ckpt.FileValueError) as caught:
        repo.job("x").save("v", {"a": 1, "b": [ckpt.Directory("/nonexistent/dir")]})
    assert str(caught.value).count("\n") == 0


def test_verify_full_checks_file_contents_and_names_the_commit(
    run: Run, render: Job, repo: Repository, store: Path
) -> None:
    assert run("verify", "--full").exit_code == 0
    video = render.load("video")["video"]
    chunk = repo.objects.references(video.id)[5]
    corrupt_object(store, repo, chunk)
    result = run("verify", "--full", "--json")
    assert result.exit_code == ExitCode.DAMAGED
    doc = json.loads(result.stdout)
    broken = {p["subject"]: p for p in doc["problems"]}
    assert video.id in broken and broken[video.id]["commits"] == [render.head.id]  # type: ignore[union-attr]
    assert doc["jobs"]["render"]["last_good"]["main"] == render.resolve("plan").id


def test_gc_keeps_reachable_file_contents_and_collects_unreachable_ones(
    run: Run, render: Job, repo: Repository, tmp_path: Path
) -> None:
    video = render.load("video")["video"]
    assert run("gc", "--grace", "0s").exit_code == 0
    repo.objects._pack_list(refresh=True)
    assert repo.objects.has(video.id)
    assert render.load("video")["video"].read_bytes() == video.read_bytes()
    assert run("rm", "--force", "render").exit_code == 0
    assert run("gc", "--grace", "0s").exit_code == 0
    repo.objects._pack_list(refresh=True)
    assert not repo.objects.has(video.id)


def test_push_pull_and_clone_carry_files(
    run: Run, render: Job, tmp_path: Path, store: Path
) -> None:
    remote = tmp_path / "remote"
    assert run("init", str(remote)).exit_code == 0
    assert run("push", str(remote), "render").exit_code == 0
    clone = tmp_path / "clone"
    assert run("clone", str(remote), str(clone)).exit_code == 0
    with ckpt.open(clone) as cloned:
        value = cloned.job("render").load("video")
        assert value["video"].read_bytes() == (tmp_path / "work" / "final.mp4").read_bytes()
        assert (
            value["scenes"].open("002.png").read()
            == (tmp_path / "work" / "scenes" / "002.png").read_bytes()
        )
        assert cloned.verify(full=True).ok


def test_export_and_import_carry_files(
    run: Run, render: Job, repo: Repository, tmp_path: Path
) -> None:
    exported = tmp_path / "render.json"
    assert run("export", "render", "-o", str(exported)).exit_code == 0
    other = tmp_path / "other"
    with ckpt.init(other) as target:
        pass
    result = run("--store", str(other), "import", str(exported))
    assert result.exit_code == 0, result.output
    with ckpt.open(other) as target:
        job = target.job("render")
        assert job.head.id == render.head.id  # type: ignore[union-attr]
        assert (
            job.load("video")["video"].read_bytes()
            == (tmp_path / "work" / "final.mp4").read_bytes()
        )
        assert target.verify(full=True).ok
