"""The whole flow in real processes: a user's pipeline script and the ckpt command.

init, run a pipeline (it crashes), status, re-run (it resumes), log,
checkout a stage back, re-run, branch, corrupt an object on disk, verify
(non-zero, naming the job), gc --dry-run, gc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ckpt

PIPELINE = textwrap.dedent(
    '''
    """A user's pipeline: skips the stages its job already has, checkpoints each new one."""
    import sys

    import ckpt

    STAGES = ["outline", "characters", "chapters", "edit"]
    crash_at = sys.argv[1] if len(sys.argv) > 1 else None
    style = sys.argv[2] if len(sys.argv) > 2 else "lyrical"

    job = ckpt.open().job("novel")
    done = set(job.stages())
    for number, stage in enumerate(STAGES, 1):
        if stage in done:
            print(f"skip {stage}")
            continue
        if stage == crash_at:
            job.fail(TimeoutError("model API timed out"), stage=stage)
            print(f"crash in {stage}", file=sys.stderr)
            sys.exit(1)
        value = {"stage": stage, "style": style, "text": f"{stage} " * 200}
        job.save(stage, value, cost=0.1 * number, tokens=1000 * number)
        print(f"ran {stage}")
    job.complete()
    '''
)


def _run(cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_") and k != "NO_COLOR"}
    env["NO_COLOR"] = "1"
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
    return done


def ckpt_cli(cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    return _run(cwd, "-m", "ckpt", *args, code=code)


@pytest.mark.slow
def test_the_whole_flow(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pipeline.py").write_text(PIPELINE)

    assert ckpt_cli(project, "init").stdout == "Initialized empty ckpt store in .ckpt\n"

    crashed = _run(project, "pipeline.py", "chapters", code=1)
    assert crashed.stdout == "ran outline\nran characters\n"
    status = ckpt_cli(project, "status", "novel").stdout
    assert "novel: failed on branch main" in status
    assert "Failed:    at stage chapters: model API timed out" in status
    assert "Next run:  resumes after stage characters" in status

    resumed = _run(project, "pipeline.py")
    assert resumed.stdout == "skip outline\nskip characters\nran chapters\nran edit\n"

    log = ckpt_cli(project, "log", "novel", "--oneline").stdout.splitlines()
    assert [line.split()[1] for line in log[:-1]] == [
        "[completed]", "edit", "chapters", "characters", "outline",
    ]  # fmt: skip
    assert log[-1] == ("(1 internal commit not shown: 1 failed attempt; --all-commits shows them)")
    every = ckpt_cli(project, "log", "novel", "--oneline", "--all-commits").stdout.splitlines()
    assert [line.split()[1] for line in every] == [
        "[completed]", "edit", "chapters", "[failed]", "characters", "outline",
    ]  # fmt: skip

    checkout = ckpt_cli(project, "checkout", "novel", "characters").stdout
    assert "Rolled back branch 'main' of novel to " in checkout
    assert "4 checkpoints rolled back" in checkout
    undo = checkout.splitlines()[-1]
    assert undo.startswith("Undo with: ckpt checkout novel ")

    rerun = _run(project, "pipeline.py", "", "terse")
    assert rerun.stdout == "skip outline\nskip characters\nran chapters\nran edit\n"
    assert json.loads(ckpt_cli(project, "cat", "novel", "edit", "--raw").stdout)["style"] == "terse"

    ckpt_cli(project, "branch", "novel", "lyrical", undo.split()[-1])
    graph = ckpt_cli(project, "log", "novel", "--all", "--graph", "--oneline").stdout
    assert "|/" in graph
    assert "(lyrical)" in graph

    # Bit rot in the stored value of the terse edit.
    show = json.loads(ckpt_cli(project, "show", "novel", "edit", "--json").stdout)
    blob = next(s["id"] for s in show["stages"] if s["name"] == "edit")
    with ckpt.open(project / ".ckpt") as repo:
        where = repo.objects.locate(blob)
    assert where is not None
    damaged = project / ".ckpt" / where.key
    data = bytearray(damaged.read_bytes())
    middle = (where.offset + where.length // 2) if where.packed else len(data) // 2
    data[middle : middle + 4] = b"\x00\xff\x00\xff"
    damaged.chmod(0o644)
    damaged.write_bytes(bytes(data))

    verify = ckpt_cli(project, "verify", "--full", code=5)
    assert "breaks job: novel" in verify.stdout
    assert verify.stderr.startswith("Error: verify found ")
    assert "it breaks job novel" in verify.stderr
    last_good = json.loads(ckpt_cli(project, "verify", "--full", "--json", code=5).stdout)
    good = last_good["jobs"]["novel"]["last_good"]["main"]
    assert f"ckpt checkout novel {good[:12]}" in verify.stdout
    ckpt_cli(project, "checkout", "novel", good[:12])
    assert ckpt_cli(project, "cat", "novel", "chapters").stdout.startswith("{")

    dry = ckpt_cli(project, "gc", "--dry-run", "--keep-last", "2").stdout
    assert "Would cut the history of novel" in dry
    before = json.loads(ckpt_cli(project, "stats", "--json").stdout)["objects"]
    collected = ckpt_cli(project, "gc", "--keep-last", "2", "--grace", "0s").stdout
    assert collected.startswith("Cut the history of novel")
    removed = int(collected.splitlines()[-1].split()[1])
    assert removed > 0
    after = json.loads(ckpt_cli(project, "stats", "--json").stdout)["objects"]
    assert after == before - removed
    log_after = ckpt_cli(project, "log", "novel", "--oneline").stdout.splitlines()
    assert log_after[-1] == "(history before this checkpoint was removed by retention)"
