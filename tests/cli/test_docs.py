"""docs/cli.md is generated from the commands, and the --json schemas match real output."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

import ckpt
from ckpt.cli.docgen import recorded_transcript, render
from ckpt.cli.main import COMMAND_MODULES, cli
from ckpt.cli.schema import SCHEMAS, field_paths
from ckpt.history.job import Job
from ckpt.pipeline.lease import Lease
from ckpt.repository import Repository, init

from .conftest import Run, corrupt_object

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
REGENERATE = "regenerate it with: python -m ckpt.cli.docgen --write docs/cli.md"


def _sections(text: str) -> dict[str, str]:
    """Command name -> the text of its ``### ckpt NAME`` section."""
    out: dict[str, str] = {}
    for chunk in text.split("\n### ckpt ")[1:]:
        title, _, body = chunk.partition("\n")
        out[title.strip()] = body
    return out


def _commands() -> list[tuple[str, click.Command]]:
    """Every command, and every subcommand of a group (as ``"group sub"``)."""
    root = click.Context(cli, info_name="ckpt")
    found = []
    for _, _, names in COMMAND_MODULES:
        for name in names:
            command = cli.get_command(root, name)
            assert command is not None, name
            found.append((name, command))
            if isinstance(command, click.Group):
                ctx = click.Context(command, info_name=name, parent=root)
                for sub in command.list_commands(ctx):
                    subcommand = command.get_command(ctx, sub)
                    assert subcommand is not None, sub
                    found.append((f"{name} {sub}", subcommand))
    return found


def test_the_reference_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(recorded_transcript(text)) == text, f"docs/cli.md is stale; {REGENERATE}"


def test_every_command_and_option_is_documented() -> None:
    sections = _sections(DOC.read_text(encoding="utf-8"))
    for name, command in _commands():
        assert name in sections, f"`ckpt {name}` is not in docs/cli.md; {REGENERATE}"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                for flag in param.opts:
                    assert flag in sections[name], f"{flag} of `ckpt {name}` is undocumented"
                assert param.help, f"{param.opts[0]} of `ckpt {name}` has no help text"
        assert command.help, f"`ckpt {name}` has no help text"
    for param in cli.params:
        if isinstance(param, click.Option):
            assert all(flag in DOC.read_text() for flag in param.opts)


def test_the_transcript_was_recorded_by_running_the_commands() -> None:
    transcript = recorded_transcript(DOC.read_text(encoding="utf-8"))
    assert transcript.startswith("$ ckpt demo\n")
    for command in ("ckpt log", "ckpt verify --full", "ckpt gc --dry-run", "ckpt checkout"):
        assert f"$ {command}" in transcript
    assert "[exit status 5]" in transcript  # verify found the damage it was shown
    assert "/tmp/" not in transcript


def test_every_read_command_has_json() -> None:
    for name, command in _commands():
        has_json = any("--json" in getattr(p, "opts", ()) for p in command.params)
        assert has_json == (name in SCHEMAS), name


@pytest.fixture
def rich_store(novel: Job, repo: Repository, store: Path) -> Repository:
    """A store where every documented JSON field has a value to show."""
    novel.set_labels(team="fiction")
    novel.branch("alt", at="outline")
    novel.tag("v1", "characters", message="first draft approved")
    novel.save("characters", ["Ida"], cost=0.1)
    novel.fork("sequel", at="characters")
    art = store.parent / "art"
    art.mkdir()
    (art / "cover.png").write_bytes(b"cover")
    novel.save("art", ckpt.Directory(art))
    (art / "cover.png").write_bytes(b"cover, redrawn")
    novel.save("art", ckpt.Directory(art))
    broken = repo.job("broken")
    broken.save("only", {"x": 1})
    entry = broken.tree().get("only")
    assert entry is not None
    corrupt_object(store, repo, entry.id)
    lease = Lease(repo.storage, "novel")  # a runner holds the job: `status` names it
    lease.acquire()
    lease._stop.set()  # no renewing thread needed while the test reads it
    return repo


def test_json_output_matches_the_documented_schemas(
    rich_store: Repository, run: Run, tmp_path: Path
) -> None:
    remote = str(tmp_path / "remote")
    init(remote, durable=False).close()
    assert run("remote", "add", "origin", remote).exit_code == 0
    invocations = {
        "jobs": [("jobs", "--json")],
        "log": [("log", "novel", "--json", "--all")],
        "show": [("show", "novel", "--json"), ("show", "novel", "v1", "--json")],
        "diff": [
            ("diff", "novel", "HEAD~2", "--json"),
            ("diff", "novel", "HEAD", "HEAD~3", "--json"),
            ("diff", "novel", "HEAD~1", "--json"),
        ],
        "reflog": [("reflog", "novel", "--json")],
        "status": [("status", "novel", "--json")],
        "branch": [("branch", "novel", "--json")],
        "tag": [("tag", "novel", "--json")],
        "verify": [("verify", "--full", "--json")],
        "gc": [("gc", "--dry-run", "--keep-last", "1", "--json")],
        "stats": [("stats", "--json")],
        "remote": [("remote", "--json")],
        "push": [("push", remote, "novel", "--json")],
        "pull": [("pull", remote, "--json")],
        "clone": [("clone", remote, str(tmp_path / "clone"), "--json")],
    }
    # The langgraph commands need LangGraph: tests/integrations/test_langgraph_cli.py checks them.
    assert sorted(invocations) == sorted(n for n in SCHEMAS if not n.startswith("langgraph "))
    for name, calls in invocations.items():
        schema = SCHEMAS[name]
        seen: set[str] = set()
        for args in calls:
            result = run(*args)
            assert result.exit_code in (0, 5), (args, result.output)
            seen |= field_paths(json.loads(result.stdout), schema)
        undocumented = seen - set(schema)
        assert not undocumented, f"`ckpt {name} --json` has undocumented fields {undocumented}"
        missing = set(schema) - seen
        assert not missing, f"`ckpt {name} --json` never produced documented fields {missing}"
