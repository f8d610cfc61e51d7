"""init, demo and completion."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import ckpt
from ckpt.cli.exits import ExitCode
from ckpt.cli.main import cli
from ckpt.history.job import Job

from .conftest import Run


def test_init_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 0
    assert result.stdout == "Initialized empty ckpt store in .ckpt\n"
    assert (tmp_path / ".ckpt" / "config").is_file()
    again = CliRunner().invoke(cli, ["init"])
    assert again.exit_code == ExitCode.CONFLICT
    assert again.stderr == f"Error: a ckpt store already exists at {tmp_path / '.ckpt'}\n"


def test_init_elsewhere_says_how_to_use_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["init", "stores/main"])
    assert result.stdout == (
        "Initialized empty ckpt store in stores/main\n"
        "Use it with --store stores/main, or: export CKPT_DIR=stores/main\n"
    )
    ckpt.open(tmp_path / "stores" / "main").close()
    monkeypatch.setenv("CKPT_DIR", str(tmp_path / "env-store"))
    from_env = CliRunner().invoke(cli, ["init"])
    assert from_env.stdout == f"Initialized empty ckpt store in {tmp_path / 'env-store'}\n"


def test_init_where_no_directory_can_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    for where, why in (
        ("/dev/null/x", "/dev/null is not a directory"),
        (f"{tmp_path}/afile/x/y", f"{tmp_path}/afile is not a directory"),
    ):
        result = CliRunner().invoke(cli, ["init", where])
        assert result.exit_code == ExitCode.ERROR
        assert result.stderr == f"Error: cannot create a store at {where}: {why}\n"


def test_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "== Run 1: the model API times out in stage 3" in text
    assert "  x chapters     API timeout after 120 s (simulated)" in text
    assert "Next run:  resumes after stage characters (skips outline, characters)" in text
    assert "  = characters  loaded from its checkpoint, $0.00" in text
    assert "Completed. This run paid $1.71: nothing twice." in text
    assert "3 checkpoints rolled back ($0.39 of work)." in text
    assert "Completed again for $0.39: only edit and publish ran." in text
    # No store was here: the demo's is ./.ckpt, which every command then finds.
    assert "$ ckpt log novel --oneline --graph --all" in text
    assert text.endswith(
        "\nThe demo's store is .ckpt in this directory: every ckpt command here uses it.\n"
        "Remove it with: rm -rf .ckpt\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt"]  # no ckpt-demo/ surprise
    jobs = CliRunner().invoke(cli, ["jobs"])
    assert jobs.exit_code == 0 and jobs.stdout.splitlines()[1].split()[:2] == ["novel", "completed"]
    with ckpt.open(tmp_path / ".ckpt") as repo:
        job = repo.job("novel")
        assert job.status == "completed"
        assert job.load("edit")["style"] == "terse"
        assert job.load("edit", at="lyrical")["style"] == "lyrical"
        assert [c.stage for c in job.log(limit=3)] == [None, "publish", "edit"]
    # With a store around, the demo leaves it alone and says where its own is.
    second = CliRunner().invoke(cli, ["demo"])
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith("Created a store in ckpt-demo ")
    assert "$ ckpt --store ckpt-demo log novel --oneline --graph --all" in second.stdout
    assert second.stdout.endswith(
        "\nThe demo's store is ckpt-demo: use it with --store ckpt-demo, or: "
        "export CKPT_DIR=ckpt-demo\nRemove it with: rm -rf ckpt-demo\n"
    )
    again = CliRunner().invoke(cli, ["demo"])  # a third demo gets a store of its own
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("Created a store in ckpt-demo-2 ")
    taken = CliRunner().invoke(cli, ["demo", "ckpt-demo"])  # an explicit PATH is never reused
    assert taken.exit_code == ExitCode.CONFLICT
    assert taken.stderr == (
        "Error: ckpt-demo already holds a ckpt store; remove it or give `ckpt demo` another PATH\n"
    )


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F"), ("zsh", "#compdef ckpt"), ("fish", "complete --no-files")],
)
def test_completion_scripts(shell: str, marker: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    assert marker in result.stdout
    assert "_CKPT_COMPLETE" in result.stdout


def test_completion_of_an_unknown_shell() -> None:
    result = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert result.exit_code == ExitCode.USAGE


def _complete(store: Path, words: str) -> list[str]:
    """What the bash completion script would offer for the command line ``words``."""
    args = words.split(" ")
    env = {
        "_CKPT_COMPLETE": "bash_complete",
        "COMP_WORDS": " ".join(["ckpt", "--store", str(store), *args]),
        "COMP_CWORD": str(len(args) + 2),
    }
    result = CliRunner().invoke(cli, [], env=env, prog_name="ckpt")
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_completion_of_commands_jobs_branches_and_stages(store: Path, novel: Job, run: Run) -> None:
    novel.branch("alt", at="outline")
    novel.tag("v1")
    assert "checkout" in _complete(store, "che")
    assert _complete(store, "log no") == ["novel"]
    assert _complete(store, "switch novel ") == ["alt", "main"]
    assert _complete(store, "cat novel ch") == ["chapters", "characters"]
    assert _complete(store, "checkout novel ") == [
        "HEAD", "alt", "chapters", "characters", "main", "outline", "v1",
    ]  # fmt: skip
    assert _complete(store, "tag novel -d ") == ["v1"]
    assert _complete(store, "log zz") == []


def test_completion_without_a_store_offers_nothing(tmp_path: Path) -> None:
    assert _complete(tmp_path / "missing", "log ") == []
    assert os.environ.get("_CKPT_COMPLETE") is None
