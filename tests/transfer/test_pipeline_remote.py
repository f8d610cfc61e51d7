"""Acceptance: a pipeline moves between machines through an S3 store.

A run fails halfway on one machine; its store is pushed to S3, cloned into a
fresh directory (another machine), the job resumed there (done stages are
skipped) and pushed back.  A push to S3 killed with SIGKILL leaves both
stores verifying clean, and the next push completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ckpt
from ckpt.pipeline.runner import Pipeline, StageContext
from ckpt.transfer.remote import add_remote, clone, pull, push

CALLS: list[str] = []
FAIL_IN_CHAPTERS = {"on": True}


def outline(input: dict[str, str], ctx: StageContext) -> list[str]:
    CALLS.append("outline")
    ctx.report(cost=0.25, tokens=1000)
    return [f"{input['title']}, part {i}" for i in range(3)]


def chapters(outline: list[str], ctx: StageContext) -> list[str]:
    CALLS.append("chapters")
    if FAIL_IN_CHAPTERS["on"]:
        raise TimeoutError("model API timed out")
    ctx.report(cost=1.5, tokens=30000)
    return [f"{beat}: " + "words " * 200 for beat in outline]


def edit(chapters: list[str], ctx: StageContext) -> str:
    CALLS.append("edit")
    ctx.report(cost=0.5, tokens=8000)
    return "\n\n".join(text.strip() for text in chapters)


def novel_pipeline() -> Pipeline:
    return Pipeline([outline, chapters, edit])


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FAIL_IN_CHAPTERS["on"] = True


def test_run_push_to_s3_clone_resume_and_push_back(s3_bucket: str, tmp_path: Path) -> None:
    url = f"s3://{s3_bucket}/pipelines"
    ckpt.init(url).close()
    laptop = ckpt.init(tmp_path / "laptop", durable=False)
    add_remote(laptop, "origin", url)
    pipeline = novel_pipeline()

    with pytest.raises(TimeoutError):
        pipeline.run("novel-42", {"title": "Vell"}, store=laptop)
    assert CALLS == ["outline", "chapters"]
    job = laptop.job("novel-42")
    assert job.status == "failed"
    assert [u.status for u in push(laptop).updates] == ["created"]

    # Another machine: a fresh directory, the job cloned from S3 and resumed there.
    server, report = clone(url, str(tmp_path / "server"))
    assert [(u.job, u.ref, u.status) for u in report.updates] == [
        ("novel-42", "refs/heads/main", "created")
    ]
    CALLS.clear()
    FAIL_IN_CHAPTERS["on"] = False
    result = novel_pipeline().run("novel-42", store=server)
    assert CALLS == ["chapters", "edit"]  # outline was done on the laptop: skipped
    assert result.skipped == ("outline",)
    assert result.output.startswith("Vell, part 0: words")
    back = push(server)
    assert [u.status for u in back.updates] == ["fast-forward"]
    assert back.objects_copied > 0

    # The laptop takes the finished job back.
    assert [u.status for u in pull(laptop).updates] == ["fast-forward"]
    job.refresh()
    assert job.status == "completed"
    assert job.load("edit") == result.output
    head = job.head
    assert head is not None
    assert head.total_cost == pytest.approx(2.25)

    with ckpt.open(url) as remote:
        assert remote.job("novel-42").status == "completed"
        assert remote.verify(full=True).ok
    assert laptop.verify(full=True).ok
    assert server.verify(full=True).ok
    CALLS.clear()
    novel_pipeline().run("novel-42", store=laptop)
    assert CALLS == []  # everything is done, on every machine


@pytest.mark.slow
def test_push_to_s3_killed_midway_leaves_both_stores_clean_and_resumes(
    s3_bucket: str, tmp_path: Path
) -> None:
    url = f"s3://{s3_bucket}/store"
    ckpt.init(url).close()
    local = ckpt.init(tmp_path / "local", durable=False)
    add_remote(local, "origin", url)
    job = local.job("big")
    for i in range(30):
        job.save(f"s{i}", os.urandom(50_000), cost=0.1)
    script = tmp_path / "push.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import ckpt
            from ckpt.transfer.remote import push
            repo = ckpt.open({str(tmp_path / "local")!r})

            def report(event):
                if event.phase == "copying objects" and event.done:
                    print("obj", event.done, flush=True)

            push(repo, "origin", workers=1, progress=report)
            """
        )
    )
    # The child inherits the environment that points boto3 at the test endpoint.
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    copied = 0
    deadline = time.monotonic() + 120
    while copied < 10 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        if line.startswith("obj"):
            copied = int(line.split()[1])  # objects durably copied so far
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert copied >= 10
    with ckpt.open(url) as remote:
        # Objects are written before refs: the job is absent or has no head yet.
        assert not remote.job("big").exists or remote.job("big").head is None
        assert remote.verify(full=True).ok
    assert local.verify(full=True).ok

    report = push(local)
    total = sum(1 for _ in local.objects)
    assert 0 < report.objects_copied <= total - copied  # only what the killed push had not sent
    assert [u.status for u in report.updates] == ["created"]
    with ckpt.open(url) as remote:
        assert remote.job("big").load("s29", type=bytes) == job.load("s29", type=bytes)
        assert remote.verify(full=True).ok
