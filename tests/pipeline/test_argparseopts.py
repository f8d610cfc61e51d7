"""The checkpoint flags for argparse programs: the same flags and aliases as click's, the same
checks, argparse's own way of reporting a usage error."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ckpt
from ckpt.pipeline.runner import Pipeline

PROGRAM = textwrap.dedent(
    """
    import argparse, json, sys
    import ckpt

    ran = []

    def analyze(input: str) -> str:
        ran.append("analyze")
        if "--fail" in sys.argv:
            raise TimeoutError("API timeout")
        return input.upper()

    def assemble(analyze: str) -> str:
        ran.append("assemble")
        return analyze + "!"

    pipeline = ckpt.Pipeline([analyze, assemble])
    parser = argparse.ArgumentParser(prog="video")
    parser.add_argument("--input")
    parser.add_argument("--fail", action="store_true")
    ckpt.add_checkpoint_arguments(parser, pipeline)
    args = parser.parse_args()
    runner = ckpt.runner_from_args(parser, args, pipeline)
    try:
        result = runner.run(args.input)
    except (ckpt.CkptError, TimeoutError) as exc:
        sys.exit(f"video: {exc}")
    print(json.dumps({"ran": ran, "output": result.output}))
    """
)


def program(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "video.py"
    script.write_text(PROGRAM)
    return subprocess.run(
        [sys.executable, str(script), "--store", str(tmp_path / "store"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.slow
def test_an_argparse_program_runs_resumes_and_lists(tmp_path: Path) -> None:
    failed = program(tmp_path, "--input", "sea", "--workflow-id", "v1", "--fail")
    assert failed.returncode == 1 and "API timeout" in failed.stderr
    again = program(tmp_path, "--workflow-id", "v1")
    assert again.returncode == 2
    assert "already has checkpoints: pass --resume to continue it" in again.stderr
    resumed = program(tmp_path, "--workflow-id", "v1", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"ran": ["analyze", "assemble"], "output": "SEA!"}
    rerun = program(tmp_path, "--job-id", "v1", "--resume-from-step", "assemble")
    assert json.loads(rerun.stdout)["ran"] == ["assemble"]
    listed = program(tmp_path, "--workflow-id", "v1", "--list-checkpoints")
    assert listed.returncode == 0
    assert listed.stdout.startswith("Checkpoints of job 'v1' (branch main):\n  1. input")
    bad = program(tmp_path, "--resume-from-step", "nope", "--job-id", "v1")
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr
    lonely = program(tmp_path, "--resume")
    assert lonely.returncode == 2 and "video: error: --resume needs --job-id" in lonely.stderr
    missing = program(tmp_path, "--job-id", "nothing", "--list-checkpoints")
    assert missing.returncode == 1
    assert "no checkpoints found for job 'nothing'" in missing.stderr


def test_the_flags_parse_into_a_runner(tmp_path: Path) -> None:
    pipeline = Pipeline([("a", lambda input: input)])
    parser = argparse.ArgumentParser()
    ckpt.add_checkpoint_arguments(parser, pipeline, default_store=str(tmp_path / "s"))
    args = parser.parse_args(["--workflow-id", "w", "--checkpoint-path", "HEAD~1", "--wait"])
    runner = ckpt.runner_from_args(parser, args, pipeline)
    assert (runner.job_id, runner.at, runner.wait, runner.store) == (
        "w",
        "HEAD~1",
        True,
        str(tmp_path / "s"),
    )
    with pytest.raises(SystemExit) as exited:
        ckpt.runner_from_args(
            parser, parser.parse_args(["--job-id", "w", "--restart", "--resume"]), pipeline
        )
    assert exited.value.code == 2
