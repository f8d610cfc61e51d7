"""A user's mistake prints one line saying what is wrong and what to do; never a traceback."""

from __future__ import annotations

import itertools
from pathlib import Path

import attrs
import pytest

from ckpt.cli.exits import ExitCode
from ckpt.history.job import Job
from ckpt.history.refs import HEADS
from ckpt.objects.ids import CommitId, Kind, object_id
from ckpt.objects.model import Commit, encode_commit
from ckpt.repository import Repository

from .conftest import Run


def _one_line(stderr: str) -> str:
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    return stderr


def test_unknown_job_suggests_a_close_name(run: Run, novel: Job, store: Path) -> None:
    result = run("log", "novle")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert _one_line(result.stderr) == (
        f"Error: job 'novle' not found in {store}; did you mean 'novel'?\n"
    )


def test_unknown_job_points_at_the_job_list(run: Run, novel: Job, store: Path) -> None:
    result = run("status", "zebra")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert _one_line(result.stderr) == (
        f"Error: job 'zebra' not found in {store}; `ckpt jobs` lists the jobs\n"
    )


def test_unknown_job_in_an_empty_store(run: Run, store: Path) -> None:
    result = run("show", "novel")
    assert _one_line(result.stderr) == (
        f"Error: job 'novel' not found in {store}; the store has no jobs yet\n"
    )


def test_bad_revision(run: Run, novel: Job) -> None:
    result = run("show", "novel", "nosuch")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert _one_line(result.stderr) == (
        "Error: job 'novel' has no revision 'nosuch' (not a branch, tag, stage or commit id); "
        "see `ckpt log novel`\n"
    )
    empty = run("log", "novel", "~")
    assert empty.exit_code == ExitCode.NOT_FOUND
    assert _one_line(empty.stderr) == "Error: invalid revision '~'\n"


def _colliding_commits(job: Job) -> list[tuple[CommitId, Commit]]:
    """Two variants of ``job``'s head whose ids share their first 6 hex digits
    (a birthday search: a few thousand hashes, no storage)."""
    head = job.resolve()
    seen: dict[str, tuple[CommitId, Commit]] = {}
    for n in itertools.count():
        variant = attrs.evolve(head, message=f"variant {n}")
        oid = CommitId(object_id(Kind.COMMIT, encode_commit(variant)))
        if oid[:6] in seen:
            return [seen[oid[:6]], (oid, variant)]
        seen[oid[:6]] = (oid, variant)
    raise AssertionError("itertools.count() does not end")


def test_ambiguous_commit_prefix(run: Run, novel: Job, repo: Repository) -> None:
    pair = _colliding_commits(novel)
    for n, (oid, variant) in enumerate(pair):
        assert repo.objects.put_commit(variant) == oid
        novel.refs.update(HEADS + f"b{n}", None, oid, "test")
    first, second = (oid for oid, _ in pair)
    prefix = first[:6]
    result = run("show", "novel", prefix)
    assert result.exit_code == ExitCode.NOT_FOUND
    shown = ", ".join(sorted(o[:12] for o in (first, second)))
    assert _one_line(result.stderr) == (
        f"Error: job 'novel': commit prefix {prefix!r} is ambiguous (2 matches: {shown}); "
        "give more digits\n"
    )
    longer = run("show", "novel", first[:20], "--json")
    assert longer.exit_code == 0


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (("log", "bad name"), "job"),
        (("cat", "novel", "../etc"), "stage"),
        (("tag", "novel", "v..1"), "tag"),
    ],
)
def test_invalid_names(run: Run, novel: Job, args: tuple[str, ...], kind: str) -> None:
    result = run(*args)
    assert result.exit_code == ExitCode.USAGE
    assert _one_line(result.stderr).startswith(f"Error: invalid {kind} name ")


def test_store_not_found_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ckpt.cli.main import cli

    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "x"), "verify"])
    assert result.exit_code == ExitCode.NO_STORE
    _one_line(result.stderr)


def test_damaged_object_read_is_one_line(run: Run, novel: Job, store: Path) -> None:
    from .conftest import corrupt_object

    entry = novel.tree().get("outline")
    assert entry is not None
    corrupt_object(store, novel.repo, entry.id)
    result = run("cat", "novel", "outline")
    assert result.exit_code == ExitCode.DAMAGED
    assert _one_line(result.stderr).startswith(f"Error: object {entry.id} is corrupt: ")
