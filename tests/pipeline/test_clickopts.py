"""Point 9: ``@ckpt.click_options(pipeline)`` adds the checkpoint flags to a user's command."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import ckpt
from ckpt.pipeline.runner import Pipeline

RAN: list[str] = []
FAIL_IN: set[str] = set()


def analyze(input: str) -> str:
    RAN.append("analyze")
    if "analyze" in FAIL_IN:
        raise TimeoutError("API timeout")
    return input.upper()


def write(analyze: str) -> str:
    RAN.append("write")
    if "write" in FAIL_IN:
        raise TimeoutError("API timeout")
    return analyze + "!"


def assemble(write: str) -> dict[str, str]:
    RAN.append("assemble")
    return {"video": write}


pipeline = Pipeline([analyze, write, assemble])


@click.command()
@click.option("--input", "story")
@ckpt.click_options(pipeline)
def main(story: str | None, runner: ckpt.Runner) -> None:
    result = runner.run(story)
    click.echo(json.dumps({"job": runner.job_id, "ran": list(result.ran), "out": result.output}))


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()
    FAIL_IN.clear()


def invoke(store: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--store", str(store)])
    return result.exit_code, result.output


def test_the_flags_are_added(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--help"])
    for flag in (
        "--job-id",
        "--resume",
        "--resume-from",
        "--list-checkpoints",
        "--no-checkpoint",
        "--store",
        "--restart",
        "--at",
        "--branch",
        "--input",
    ):
        assert flag in result.output


def test_run_resume_resume_from_and_list(tmp_path: Path) -> None:
    store = tmp_path / "s"
    FAIL_IN.add("write")
    code, out = invoke(store, "--input", "sea", "--job-id", "v1")
    assert code == 1
    assert RAN == ["analyze", "write"]
    assert ckpt.open(store).job("v1").status == "failed"

    code, out = invoke(store, "--job-id", "v1")
    assert code == 2
    assert "already has checkpoints: pass --resume" in out

    FAIL_IN.clear()
    RAN.clear()
    code, out = invoke(store, "--job-id", "v1", "--resume")
    assert code == 0, out
    assert json.loads(out)["ran"] == ["write", "assemble"]

    RAN.clear()
    code, out = invoke(store, "--job-id", "v1", "--resume-from", "assemble")
    assert code == 0, out
    assert RAN == ["assemble"]

    code, out = invoke(store, "--job-id", "v1", "--list-checkpoints")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Checkpoints of job 'v1' (branch main):"
    assert [line.split()[1] for line in lines[1:]] == [
        "input", "analyze", "[failed]", "write", "assemble", "[completed]",
    ]  # fmt: skip
    assert lines[1].startswith("  1. input")

    code, out = invoke(store, "--job-id", "v1", "--resume-from", "nope")
    assert code == 2 and "nope" in out


def test_restart_and_branch(tmp_path: Path) -> None:
    store = tmp_path / "s"
    assert invoke(store, "--input", "sea", "--job-id", "v")[0] == 0
    RAN.clear()
    code, out = invoke(store, "--job-id", "v", "--restart")
    assert code == 0, out
    assert RAN == ["analyze", "write", "assemble"]
    RAN.clear()
    code, out = invoke(store, "--job-id", "v", "--resume-from", "write", "--branch", "alt")
    assert code == 0, out
    assert RAN == ["write", "assemble"]
    assert set(ckpt.open(store).job("v").branches()) == {"main", "alt"}


def test_no_checkpoint_writes_no_store(tmp_path: Path) -> None:
    store = tmp_path / "never"
    code, out = invoke(store, "--input", "sea", "--no-checkpoint")
    assert code == 0, out
    assert json.loads(out)["out"] == {"video": "SEA!"}
    assert not store.exists()


def test_a_generated_job_id_is_announced(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--input", "sea", "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    job_id = json.loads(result.output.splitlines()[-1])["job"]
    assert f"ckpt: job id {job_id}" in result.output
    assert ckpt.open(tmp_path / "s").job(job_id).status == "completed"


def test_misuse_is_a_usage_error(tmp_path: Path) -> None:
    store = tmp_path / "s"
    code, out = invoke(store, "--resume")
    assert code == 2 and "--resume needs --job-id" in out
    code, out = invoke(store, "--job-id", "x", "--resume", "--no-checkpoint")
    assert code == 2 and "cannot be combined" in out
    code, out = invoke(store, "--job-id", "x", "--resume")
    assert code == 1 and "no saved run to resume" in out
    code, out = invoke(store, "--job-id", "x", "--list-checkpoints")
    assert code == 1 and "no checkpoints found for job 'x'" in out


def test_seed_001_flag_names_are_aliases(tmp_path: Path) -> None:
    store = tmp_path / "s"
    FAIL_IN.add("write")
    code, _ = invoke(store, "--input", "sea", "--workflow-id", "v1")
    assert code == 1
    FAIL_IN.clear()
    RAN.clear()
    code, out = invoke(store, "--workflow-id", "v1", "--resume")
    assert code == 0, out
    assert RAN == ["write", "assemble"]
    RAN.clear()
    code, out = invoke(store, "--workflow-id", "v1", "--resume-from-step", "assemble")
    assert code == 0, out
    assert RAN == ["assemble"]
    first = ckpt.open(store).job("v1").log()[-1].id
    RAN.clear()
    code, out = invoke(store, "--workflow-id", "v1", "--checkpoint-path", first[:12])
    assert code == 0, out
    assert RAN == ["analyze", "write", "assemble"]  # resumed from the input checkpoint
    help_text = CliRunner().invoke(main, ["--help"]).output
    for flag in ("--job-id, --workflow-id", "--resume-from, --resume-from-step", "--wait"):
        assert flag in help_text


TYPED = Pipeline([("shout", lambda input: input.upper())], input_type=str)


@click.command()
@ckpt.click_options(TYPED)
def typed(runner: ckpt.Runner) -> None:
    runner.run()


def test_a_missing_input_is_reported_as_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(typed, ["--job-id", "j", "--store", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert "Error: job 'j': no input given (its stages need a str as 'input')" in result.output


def test_a_resumed_run_says_which_stages_are_stale(tmp_path: Path) -> None:
    store = tmp_path / "s"
    assert invoke(store, "--input", "sea", "--job-id", "v")[0] == 0

    def write(analyze: str) -> str:  # new code for the stage
        return analyze + "?"

    @click.command()
    @ckpt.click_options(Pipeline([analyze, write, assemble]))
    def edited(runner: ckpt.Runner) -> None:
        click.echo(json.dumps(runner.run().output))

    result = CliRunner().invoke(edited, ["--job-id", "v", "--resume", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "ckpt: stage write is stale (code of 'write' changed): it runs again" in result.output
    assert "ckpt: stage assemble is stale (input 'write' is stale): it runs again" in result.output
    assert json.loads(result.output.splitlines()[-1]) == {"video": "SEA?"}
