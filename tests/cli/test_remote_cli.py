"""remote, push, pull and clone on the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import ckpt
from ckpt.cli.exits import ExitCode
from ckpt.cli.main import cli
from ckpt.history.job import Job
from ckpt.repository import Repository
from ckpt.storage import shown_url

from .conftest import Run, save_stages


@pytest.fixture
def other(tmp_path: Path) -> Path:
    """A second, empty store: the remote."""
    path = tmp_path / "other"
    ckpt.init(path, durable=False).close()
    return path


def _short(oid: str | None) -> str:
    assert oid is not None
    return oid[:12]


def test_remote_add_list_and_remove(
    run: Run, other: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("remote").stdout == ""
    monkeypatch.chdir(tmp_path)
    added = run("remote", "add", "origin", "other")  # a relative path is stored absolute
    assert added.exit_code == 0
    assert added.stdout == f"Added remote origin: {other}\n"
    assert run("remote", "add", "cache", "redis://:s3cret@cache:6379/0").exit_code == 0
    assert run("remote").stdout == "cache\norigin\n"
    assert run("remote", "-v").stdout == (f"cache   redis://:***@cache:6379/0\norigin  {other}\n")
    again = run("remote", "add", "origin", "elsewhere")
    assert again.exit_code == ExitCode.CONFLICT
    assert again.stderr == "Error: remote 'origin' already exists\n"
    removed = run("remote", "remove", "cache")
    assert removed.exit_code == 0
    assert removed.stdout == "Removed remote cache.\n"
    missing = run("remote", "remove", "cache")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert missing.stderr == "Error: no remote named 'cache'\n"
    bad = run("remote", "add", "no/slash", str(other))
    assert bad.exit_code == ExitCode.USAGE
    assert bad.stderr.startswith("Error: invalid remote name 'no/slash'")


def test_shown_url_hides_only_the_password() -> None:
    assert shown_url("redis://user:pw@host:1/0?prefix=a") == "redis://user:***@host:1/0?prefix=a"
    assert shown_url("s3://bucket/prefix") == "s3://bucket/prefix"
    assert shown_url("/a/path") == "/a/path"


def test_push_prints_each_ref_then_what_was_copied(
    run: Run, novel: Job, repo: Repository, other: Path
) -> None:
    novel.tag("v1", "outline")
    assert run("remote", "add", "origin", str(other)).exit_code == 0
    result = run("push")
    assert result.exit_code == 0, result.output
    objects = sum(1 for _ in repo.objects)
    head, tag = novel.head, novel.resolve("v1")
    assert head is not None
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"To {other}",
        f"  novel  main    {_short(head.id)}  new branch",
        f"  novel  tag v1  {_short(tag.id)}  new tag",
    ]
    assert lines[3].startswith(f"Copied {objects} objects (")
    assert lines[3].endswith(f") to {other}.")
    assert len(lines) == 4
    assert result.stderr == ""
    again = run("push", "origin", "novel")
    assert (again.exit_code, again.stdout) == (0, "Everything up-to-date.\n")
    old = head.id
    novel.save("edit", "polished", cost=0.5)
    new = novel.head
    assert new is not None
    third = run("push")
    assert third.stdout.splitlines()[:2] == [
        f"To {other}",
        f"  novel  main  {_short(old)}..{_short(new.id)}  fast-forward",
    ]
    with ckpt.open(other) as remote:
        assert remote.job("novel").load("edit") == "polished"
        assert remote.verify(full=True).ok


def test_push_json(run: Run, novel: Job, repo: Repository, other: Path) -> None:
    result = run("push", str(other), "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    head = novel.head
    assert head is not None
    assert doc["remote"] == str(other)
    assert doc["objects_copied"] == sum(1 for _ in repo.objects)
    assert doc["bytes_copied"] > 0
    assert doc["updates"] == [
        {
            "job": "novel",
            "ref": "refs/heads/main",
            "old": None,
            "new": head.id,
            "status": "created",
            "reason": "",
        }
    ]


def test_a_non_fast_forward_push_is_refused_with_a_hint_unless_forced(
    run: Run, novel: Job, other: Path, store: Path
) -> None:
    run("remote", "add", "origin", str(other))
    assert run("push").exit_code == 0
    with ckpt.open(other) as remote:
        theirs = remote.job("novel").save("edit", "their edit")
    ours = novel.save("edit", "our edit")
    result = run("push")
    assert result.exit_code == ExitCode.CONFLICT
    assert result.stdout == (
        f"To {other}\n"
        f"  novel  main  {_short(theirs.id)}..{_short(ours.id)}  "
        "diverged (both sides have checkpoints the other lacks)\n"
    )
    prefix = f"ckpt --store {store}"
    assert result.stderr == (
        f"hint: Branch main of novel has diverged: here it is at {_short(ours.id)} (edit), "
        f"on origin at {_short(theirs.id)}; each has checkpoints the other lacks.\n"
        f"hint: To compare them: {prefix} pull origin novel (refused too, it fetches origin's "
        f"checkpoints and keeps yours), then {prefix} diff novel main {theirs.id}\n"
        f"hint: To replace origin's branch with this store's: {prefix} push --force origin novel\n"
        "Error: 1 ref was refused (see the hints above); everything else was transferred\n"
    )
    fetched = run("pull")  # as the hint says: refused, but origin's checkpoints come
    assert fetched.exit_code == ExitCode.CONFLICT
    compared = run("diff", "novel", "main", theirs.id)
    assert compared.exit_code == 0
    assert compared.stdout.splitlines()[-2:] == ["-our edit", "+their edit"]
    with ckpt.open(other) as remote:
        assert remote.job("novel").load("edit") == "their edit"
    forced = run("push", "--force")
    assert forced.exit_code == 0
    assert forced.stdout.splitlines()[1] == (
        f"  novel  main  {_short(theirs.id)}...{_short(ours.id)}  forced update"
    )
    with ckpt.open(other) as remote:
        assert remote.job("novel").load("edit") == "our edit"


def test_pull_fast_forwards_and_refuses_to_drop_local_checkpoints(
    run: Run, novel: Job, other: Path, store: Path
) -> None:
    run("remote", "add", "origin", str(other))
    run("push")
    before = novel.head
    assert before is not None
    with ckpt.open(other) as remote:
        theirs = remote.job("novel").save("edit", "their edit")
    pulled = run("pull")
    assert pulled.exit_code == 0
    assert pulled.stdout.splitlines()[:2] == [
        f"From {other}",
        f"  novel  main  {_short(before.id)}..{_short(theirs.id)}  fast-forward",
    ]
    assert pulled.stdout.splitlines()[2].startswith("Copied 3 objects (")
    novel.refresh()
    assert novel.load("edit") == "their edit"
    mine = novel.save("publish", "local only")
    ahead = run("pull", "origin", "novel")  # this store is ahead: nothing to take
    assert ahead.exit_code == 0
    assert ahead.stdout == "Everything up-to-date.\n"
    with ckpt.open(other) as remote:
        remote.job("novel").checkout("HEAD~1")
        theirs = remote.job("novel").save("edit", "another edit")
    refused = run("pull", "origin", "novel")  # the histories diverged
    assert refused.exit_code == ExitCode.CONFLICT
    assert refused.stdout.splitlines()[:2] == [
        f"From {other}",
        f"  novel  main  {_short(mine.id)}..{_short(theirs.id)}  "
        "diverged (both sides have checkpoints the other lacks)",
    ]
    assert refused.stdout.splitlines()[2].startswith("Copied 3 objects (")  # fetched
    prefix = f"ckpt --store {store}"
    assert refused.stderr == (
        f"hint: Branch main of novel has diverged: here it is at {_short(mine.id)} (publish), "
        f"on origin at {_short(theirs.id)} (edit); each has checkpoints the other lacks.\n"
        f"hint: Origin's checkpoints were fetched. To compare them: "
        f"{prefix} diff novel main {theirs.id}\n"
        f"hint: To keep both, origin's as a branch here: "
        f"{prefix} branch novel origin/main {theirs.id}\n"
        "hint: To take origin's (this store's stay in the reflog): "
        f"{prefix} pull --force origin novel\n"
        f"hint: To replace origin's branch with this store's: {prefix} push --force origin novel\n"
        "Error: 1 ref was refused (see the hints above); everything else was transferred\n"
    )
    novel.refresh()
    assert novel.load("publish") == "local only"
    kept = run("branch", "novel", "origin/main", theirs.id)  # as the hint says
    assert kept.exit_code == 0, kept.output
    assert novel.load("edit", at="origin/main") == "another edit"


def test_a_refused_tag_has_its_own_hint(run: Run, novel: Job, other: Path) -> None:
    novel.tag("v1", "outline")
    run("push", str(other))
    with ckpt.open(other) as remote:
        remote.job("novel").delete_tag("v1")
        remote.job("novel").tag("v1", "characters")
    result = run("push", str(other))
    assert result.exit_code == ExitCode.CONFLICT
    assert "rejected (tag exists with another target; use --force to overwrite)" in result.stdout
    assert result.stderr.splitlines()[0] == (
        "hint: A tag of the same name points elsewhere on the other side; --force moves it."
    )


def test_push_errors(run: Run, novel: Job, other: Path, store: Path) -> None:
    no_origin = run("push")
    assert no_origin.exit_code == ExitCode.NOT_FOUND
    assert no_origin.stderr == (
        "Error: no remote named 'origin' (add one with `ckpt remote add origin URL`)\n"
    )
    no_job = run("push", str(other), "novle")
    assert no_job.exit_code == ExitCode.NOT_FOUND
    assert no_job.stderr == f"Error: job 'novle' not found in {store}; did you mean 'novel'?\n"
    nowhere = run("pull", str(other / "missing"))
    assert nowhere.exit_code == ExitCode.NO_STORE
    assert nowhere.stderr == (
        f"Error: {other / 'missing'} holds no ckpt store: create an empty one there with "
        f"`ckpt init {other / 'missing'}`, then run this again\n"
    )


def test_push_to_a_remote_without_a_store_creates_it_and_pull_names_it(
    run: Run, novel: Job, tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path}/r.db"
    run("remote", "add", "backup", url)
    pulled = run("pull", "backup")
    assert pulled.exit_code == ExitCode.NO_STORE
    assert pulled.stderr == (
        f"Error: remote 'backup' ({url}) holds no ckpt store: create an empty one there with "
        f"`ckpt init {url}`, then run this again\n"
    )
    pushed = run("push", "backup")
    assert pushed.exit_code == 0
    assert f"Created a ckpt store at {url} (there was none)." in pushed.stdout
    assert run("pull", "backup").exit_code == 0
    direct = run("pull", f"sqlite://{tmp_path}/other.db")
    assert direct.stderr == (
        f"Error: sqlite://{tmp_path}/other.db holds no ckpt store: create an empty one there "
        f"with `ckpt init sqlite://{tmp_path}/other.db`, then run this again\n"
    )


def test_push_behind_says_to_pull(run: Run, novel: Job, other: Path, store: Path) -> None:
    run("remote", "add", "origin", str(other))
    run("push")
    with ckpt.open(other) as remote:
        theirs = remote.job("novel").save("edit", "their edit")
    head = novel.resolve()
    result = run("push")
    assert result.exit_code == ExitCode.CONFLICT
    assert result.stdout == (
        f"To {other}\n"
        f"  novel  main  {_short(theirs.id)}..{_short(head.id)}  "
        "rejected (the remote has newer checkpoints; pull first (or use --force))\n"
    )
    prefix = f"ckpt --store {store}"
    assert result.stderr.splitlines()[:3] == [
        "hint: Origin has checkpoints on branch main of novel that this store lacks (and lacks "
        "none of this store's).",
        f"hint: To take them: {prefix} pull origin novel (then nothing is left to push)",
        f"hint: To replace origin's branch with this store's: {prefix} push --force origin novel",
    ]


def test_remote_add_makes_relative_paths_in_urls_absolute(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, given, kept in [
        ("a", "sqlite://remote2.db", f"sqlite://{tmp_path}/remote2.db"),
        ("b", "file://sub/store", f"{tmp_path}/sub/store"),
        ("c", "../up", f"{tmp_path.parent}/up"),
        ("d", "s3://bucket/prefix", "s3://bucket/prefix"),
    ]:
        added = run("remote", "add", name, given)
        assert added.stdout == f"Added remote {name}: {kept}\n", given
    rooted = run("remote", "add", "e", "sqlite:///remote2.db")
    assert rooted.stdout == "Added remote e: sqlite:///remote2.db\n"
    assert rooted.stderr == (
        "note: three slashes make an absolute path, a file at the root of the filesystem; "
        "for one in this directory write sqlite://remote2.db\n"
    )
    listed = json.loads(run("remote", "--json").stdout)
    assert listed["remotes"][0] == {"name": "a", "url": f"sqlite://{tmp_path}/remote2.db"}
    assert [r["name"] for r in listed["remotes"]] == ["a", "b", "c", "d", "e"]


def test_push_to_a_new_location_creates_a_store_there_and_says_so(
    run: Run, novel: Job, repo: Repository, tmp_path: Path
) -> None:
    target = tmp_path / "new" / "remote"
    result = run("push", str(target))
    assert result.exit_code == 0, result.output
    head = novel.head
    assert head is not None
    objects = sum(1 for _ in repo.objects)
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"Created a ckpt store at {target} (there was none).",
        f"To {target}",
        f"  novel  main  {_short(head.id)}  new branch",
    ]
    assert lines[3].startswith(f"Copied {objects} objects (")
    assert len(lines) == 4
    assert result.stderr == ""
    again = run("push", str(target), "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["created_store"] is False
    with ckpt.open(target) as remote:
        assert remote.job("novel").load("chapters") == novel.load("chapters")
    empty = tmp_path / "empty"
    empty.mkdir()
    first = run("push", str(empty), "--json")
    assert json.loads(first.stdout)["created_store"] is True


def test_push_refuses_a_location_that_holds_something_else(
    run: Run, novel: Job, tmp_path: Path
) -> None:
    import sqlite3

    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "draft.txt").write_text("mine")
    result = run("push", str(papers))
    assert result.exit_code == ExitCode.NO_STORE
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {papers} holds files but no ckpt store; not creating a store there "
        "(give an empty or new directory)\n"
    )
    assert sorted(p.name for p in papers.iterdir()) == ["draft.txt"]
    a_file = papers / "draft.txt"
    refused = run("push", str(a_file))
    assert refused.exit_code == ExitCode.NO_STORE
    assert refused.stderr == (
        f"Error: {a_file} is a file, not a ckpt store; not creating a store there\n"
    )
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    other_program = run("push", f"sqlite://{database}")
    assert other_program.exit_code == ExitCode.NO_STORE
    assert other_program.stderr == (
        f"Error: sqlite://{database} holds tables of another program (users); "
        "it is not a ckpt store\n"
    )
    with sqlite3.connect(database) as db:
        tables = db.execute("SELECT name FROM sqlite_master").fetchall()
        assert tables == [("users",)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_clone_into_a_path_then_pull_and_push_from_there(
    run: Run, novel: Job, store: Path, tmp_path: Path
) -> None:
    target = tmp_path / "clone"
    result = run("clone", str(store), str(target))
    assert result.exit_code == 0, result.output
    head = novel.head
    assert head is not None
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"From {store}", f"  novel  main  {_short(head.id)}  new branch"]
    assert lines[2].startswith("Copied ")
    assert lines[3:] == [
        f"Cloned 1 job into {target}; its remote origin is {store}.",
        f"Use it with --store {target}, or: export CKPT_DIR={target}",
    ]
    with ckpt.open(target) as cloned:
        assert cloned.job("novel").load("chapters") == novel.load("chapters")
        save_stages(cloned.job("other"), ["outline"])
    back = run("--store", str(target), "push")
    assert back.exit_code == 0
    assert back.stdout.splitlines()[1].startswith("  other  main  ")
    assert novel.repo.job("other").exists
    existing = run("clone", str(store), str(target))
    assert existing.exit_code == ExitCode.CONFLICT
    assert existing.stderr == (
        f"Error: {target} already holds a ckpt store; pull into it instead "
        f"(`ckpt --store {target} pull {store}`)\n"
    )


def test_clone_defaults_to_dot_ckpt_and_prints_json(
    novel: Job, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(cli, ["clone", str(store), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["remote"] == str(store)
    assert doc["path"] == ".ckpt"
    assert [u["status"] for u in doc["updates"]] == ["created"]
    assert (work / ".ckpt").is_dir()
    with ckpt.open(work / ".ckpt") as cloned:
        assert cloned.job("novel").stages() == novel.stages()


def test_clone_of_a_missing_store_creates_nothing(run: Run, tmp_path: Path) -> None:
    result = run("clone", str(tmp_path / "nothing"), str(tmp_path / "copy"))
    assert result.exit_code == ExitCode.NO_STORE
    assert not (tmp_path / "copy").exists()


def test_push_to_s3_and_clone_back(
    run: Run, novel: Job, repo: Repository, s3_bucket: str, tmp_path: Path
) -> None:
    url = f"s3://{s3_bucket}/team/ckpt"
    ckpt.init(url).close()
    assert run("remote", "add", "origin", url).stdout == f"Added remote origin: {url}\n"
    result = run("push")
    assert result.exit_code == 0, result.output
    head = novel.head
    assert head is not None
    assert result.stdout.splitlines()[:2] == [
        f"To {url}",
        f"  novel  main  {_short(head.id)}  new branch",
    ]
    assert run("push").stdout == "Everything up-to-date.\n"
    with ckpt.open(url) as remote:
        assert remote.verify(full=True).ok
        assert remote.job("novel").load("chapters") == novel.load("chapters")
    target = tmp_path / "from-s3"
    cloned = run("clone", url, str(target))
    assert cloned.exit_code == 0, cloned.output
    assert cloned.stdout.splitlines()[-2] == (
        f"Cloned 1 job into {target}; its remote origin is {url}."
    )
    assert os.path.isdir(target)
