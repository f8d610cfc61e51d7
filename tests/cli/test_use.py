"""A current job (``ckpt use JOB`` or $CKPT_JOB) lets every JOB-first command leave JOB out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ckpt.cli.currentjob import state_path
from ckpt.cli.exits import ExitCode
from ckpt.history.job import Job
from ckpt.repository import Repository

from .conftest import Run, save_stages


def test_without_a_current_job_job_is_required(run: Run, novel: Job) -> None:
    result = run("log")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.endswith(
        "Error: Missing argument 'JOB' (or set a current job: `ckpt use JOB`, or $CKPT_JOB)\n"
    )
    assert run("use").stdout == "No current job: set one with `ckpt use JOB` or $CKPT_JOB.\n"


def test_use_sets_the_job_every_command_then_leaves_out(
    run: Run, novel: Job, repo: Repository
) -> None:
    used = run("use", "novel")
    assert used.exit_code == 0
    assert used.stdout == "Using job novel: `ckpt log` now means `ckpt log novel`.\n"
    assert run("use").stdout == "novel (from `ckpt use`)\n"
    for short, full in [
        (("log", "--oneline"), ("log", "novel", "--oneline")),
        (("log", "HEAD~1"), ("log", "novel", "HEAD~1")),
        (("show",), ("show", "novel")),
        (("show", "HEAD~1", "--json"), ("show", "novel", "HEAD~1", "--json")),
        (("cat", "outline"), ("cat", "novel", "outline")),
        (("cat", "HEAD~1", "characters"), ("cat", "novel", "HEAD~1", "characters")),
        (("diff", "outline"), ("diff", "novel", "outline")),
        (("reflog",), ("reflog", "novel")),
        (("status",), ("status", "novel")),
        (("branch",), ("branch", "novel")),
        (("tag",), ("tag", "novel")),
    ]:
        left_out, given = run(*short), run(*full)
        assert left_out.exit_code == 0, (short, left_out.output)
        assert left_out.stdout == given.stdout, short
    # a first word that names a job is that job
    other = repo.job("other")
    save_stages(other, ["outline"])
    assert run("log", "other", "--oneline").stdout.count("\n") == 1
    moved = run("checkout", "characters")
    assert moved.exit_code == 0
    assert moved.stdout.startswith("Rolled back branch 'main' of novel to ")
    assert json.loads(state_path().read_text()) == {repo.location: "novel"}


def test_ckpt_job_wins_over_use(
    run: Run, novel: Job, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_stages(repo.job("other"), ["outline"])
    run("use", "novel")
    monkeypatch.setenv("CKPT_JOB", "other")
    assert run("use").stdout == "other (from $CKPT_JOB)\n"
    assert run("log", "--oneline").stdout == run("log", "other", "--oneline").stdout
    again = run("use", "novel")
    assert again.stderr == "warning: $CKPT_JOB=other is set, and wins while it is\n"


def test_a_current_job_that_is_gone_says_where_it_was_set(
    run: Run, novel: Job, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("use", "novel")
    repo.delete_job("novel")
    gone = run("log")
    assert gone.exit_code == ExitCode.NOT_FOUND
    assert gone.stderr == (
        "Error: the current job 'novel' (set by ckpt use) is not in this store; give a JOB, "
        "pick another with `ckpt use JOB`, or `ckpt use --clear`\n"
    )
    monkeypatch.setenv("CKPT_JOB", "nope")
    assert run("status").stderr == (
        "Error: the current job 'nope' (set by $CKPT_JOB) is not in this store; give a JOB, "
        "pick another with `ckpt use JOB`, or unset CKPT_JOB\n"
    )


def test_use_clear_and_unknown_job(run: Run, novel: Job) -> None:
    run("use", "novel")
    cleared = run("use", "--clear")
    assert cleared.stdout.startswith("No current job for ")
    assert run("log").exit_code == ExitCode.USAGE
    unknown = run("use", "novle")
    assert unknown.exit_code == ExitCode.NOT_FOUND
    assert "did you mean 'novel'?" in unknown.stderr


def test_each_store_has_its_own_current_job(run: Run, novel: Job, tmp_path: Path) -> None:
    run("use", "novel")
    other = tmp_path / "other-store"
    from click.testing import CliRunner

    from ckpt.cli.main import cli

    CliRunner().invoke(cli, ["init", str(other)])
    result = CliRunner().invoke(cli, ["--store", str(other), "use"])
    assert result.stdout == "No current job: set one with `ckpt use JOB` or $CKPT_JOB.\n"
    assert os.environ["XDG_STATE_HOME"] in str(state_path())
