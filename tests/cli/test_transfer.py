"""export and import."""

from __future__ import annotations

import json
from pathlib import Path

from ckpt.cli.exits import ExitCode
from ckpt.history.job import Job
from ckpt.repository import Repository

from .conftest import Run


def test_export_then_import_under_another_name(
    run: Run, novel: Job, repo: Repository, tmp_path: Path
) -> None:
    target = tmp_path / "novel.json"
    result = run("export", "novel", "-o", str(target))
    assert result.exit_code == 0
    assert result.stdout == f"Exported novel (3 checkpoints) to {target}.\n"
    doc = json.loads(target.read_text())
    assert doc["job"] == "novel"
    imported = run("import", str(target), "--as", "copy")
    assert imported.stdout == f"Imported job copy (3 checkpoints) from {target}.\n"
    copy = repo.job("copy")
    assert copy.load("chapters") == novel.load("chapters")
    assert [(c.stage, c.cost, c.time) for c in copy.log()] == [
        (c.stage, c.cost, c.time) for c in novel.log()
    ]


def test_export_one_checkpoint_to_stdout_and_import_from_stdin(
    run: Run, novel: Job, repo: Repository
) -> None:
    characters = novel.resolve("characters")
    exported = run("export", "novel", "characters", "-o", "-")
    assert exported.exit_code == 0
    doc = json.loads(exported.stdout)
    assert doc["partial"] is True
    assert [c["id"] for c in doc["commits"]] == [characters.id]
    imported = run("import", "-", "--as", "single", input=exported.stdout)
    assert imported.stdout == "Imported job single (1 checkpoints) from -.\n"
    assert repo.job("single").stages() == ["outline", "characters"]


def test_import_refuses_to_replace_a_job(run: Run, novel: Job, tmp_path: Path) -> None:
    target = tmp_path / "novel.json"
    run("export", "novel", "-o", str(target))
    result = run("import", str(target))
    assert result.exit_code == ExitCode.CONFLICT
    assert result.stderr == ("Error: job 'novel' already exists; import under another name\n")


def test_import_errors(run: Run, tmp_path: Path) -> None:
    missing = run("import", str(tmp_path / "nope.json"))
    assert missing.exit_code == ExitCode.ERROR
    assert (
        missing.stderr
        == f"Error: cannot read {tmp_path / 'nope.json'}: No such file or directory\n"
    )
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    bad = run("import", str(garbled))
    assert bad.exit_code == ExitCode.ERROR
    assert bad.stderr.startswith(f"Error: {garbled} is not a ckpt export: not valid JSON (")
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    wrong = run("import", str(other))
    assert wrong.exit_code == ExitCode.ERROR
    assert wrong.stderr == "Error: not a ckpt export (missing format marker)\n"


def test_export_unknown_job_and_missing_output(run: Run, novel: Job) -> None:
    unknown = run("export", "nope", "-o", "x.json")
    assert unknown.exit_code == ExitCode.NOT_FOUND
    no_output = run("export", "novel")
    assert no_output.exit_code == ExitCode.USAGE
    assert "Missing option '-o' / '--output'." in no_output.stderr
