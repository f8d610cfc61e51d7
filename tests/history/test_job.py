"""The library API of jobs: init/open, save/load, history, revisions, refs, dedup.

Acceptance tests are named ``test_acceptance_*``: dedup, conflict and the
durability flag (corruption: tests/maintenance/test_repository.py).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest

import ckpt
from ckpt.errors import (
    ConflictError,
    InvalidRevisionError,
    NotFoundError,
    SerializationError,
    StoreExistsError,
    StoreNotFoundError,
)
from ckpt.history.refs import HEADS
from ckpt.objects.ids import CommitId, Kind, object_id
from ckpt.objects.model import encode_commit
from tests.api_helpers import object_ids as _object_ids
from tests.api_helpers import store_files as _files


@attrs.frozen
class Outline:
    title: str
    chapters: list[str]
    created: dt.datetime


OUTLINE = Outline("Dune", ["Arrakis", "Muad'Dib"], dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC))


# -- init and open ----------------------------------------------------------


def test_init_creates_a_store_that_open_finds(root: Path) -> None:
    with ckpt.init(root) as repo:
        assert repo.job_names() == []
        assert (root / "config").is_file()
    with ckpt.open(root) as again:
        assert again.location == str(root)
        assert again.job_names() == []


def test_init_twice_is_an_error(root: Path) -> None:
    ckpt.init(root).close()
    with pytest.raises(StoreExistsError, match=f"a ckpt store already exists at {root}"):
        ckpt.init(root)


def test_init_on_a_file_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a store")
    with pytest.raises(StoreExistsError, match="exists and is not a directory"):
        ckpt.init(target)
    assert target.read_text() == "not a store"


def test_init_defaults_to_dot_ckpt_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt.init().close()
    assert (tmp_path / ".ckpt" / "config").is_file()


def test_open_missing_path_says_how_to_create_one(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(StoreNotFoundError) as info:
        ckpt.open(missing)
    assert f"no ckpt store at {missing}" in str(info.value)
    assert f"run `ckpt init {missing}`" in str(info.value)
    assert not missing.exists()


def test_open_directory_that_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match=r"no ckpt store at .* \(run `ckpt init`"):
        ckpt.open(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_open_uses_ckpt_dir(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt.init(root).job("j").save("s", 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("CKPT_DIR", str(root))
    with ckpt.open() as repo:
        assert repo.job_names() == ["j"]


def test_open_finds_dot_ckpt_upward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CKPT_DIR", raising=False)
    project = tmp_path / "project"
    ckpt.init(project / ".ckpt").job("j").save("s", 1)
    deep = project / "src" / "pkg" / "sub"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert ckpt.find_store() == str(project / ".ckpt")
    with ckpt.open() as repo:
        assert repo.job_names() == ["j"]
        assert Path(repo.location) == project / ".ckpt"


def test_open_with_nothing_to_find(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if ckpt.find_store(tmp_path) is not None:
        pytest.skip("a .ckpt directory exists above the temporary directory")
    monkeypatch.delenv("CKPT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreNotFoundError) as info:
        ckpt.open()
    message = str(info.value)
    assert "no ckpt store found in this directory or any parent" in message
    assert "ckpt init" in message
    assert "CKPT_DIR" in message
    assert isinstance(info.value, NotFoundError)


# -- save and load ----------------------------------------------------------


def test_save_and_load_with_a_type(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    commit = job.save("outline", OUTLINE, type=Outline)
    assert commit.stage == "outline"
    assert job.load("outline", Outline) == OUTLINE
    assert job.load("outline", type=Outline) == OUTLINE
    assert job.tree().get("outline").type.endswith("Outline")  # type: ignore[union-attr]


def test_save_without_type_loads_plain_data(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    job.save("outline", OUTLINE)
    assert job.load("outline") == {
        "title": "Dune",
        "chapters": ["Arrakis", "Muad'Dib"],
        "created": "2024-05-01T09:30:00+00:00",
    }
    assert job.load("outline", Outline) == OUTLINE
    job.save("plain", {"b": [1, 2.5, None], "a": "x"})
    assert job.load("plain") == {"a": "x", "b": [1, 2.5, None]}


def test_load_survives_reopening(repo: ckpt.Repository, root: Path) -> None:
    repo.job("novel").save("outline", OUTLINE)
    with ckpt.open(root) as again:
        assert again.job("novel").load("outline", Outline) == OUTLINE


def test_load_with_a_type_that_does_not_fit(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    job.save("count", {"n": 1})
    with pytest.raises(SerializationError) as info:
        job.load("count", Outline)
    assert "stage 'count' of job 'novel'" in str(info.value)
    assert "Outline" in str(info.value)


def test_load_unknown_stage_lists_the_stages(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    job.save("outline", 1)
    job.save("draft", 2)
    with pytest.raises(NotFoundError) as info:
        job.load("review")
    assert "job 'novel' has no stage 'review'" in str(info.value)
    assert "(stages: outline, draft)" in str(info.value)


def test_load_from_a_job_with_no_checkpoints(repo: ckpt.Repository) -> None:
    with pytest.raises(NotFoundError, match="job 'ghost' not found"):
        repo.job("ghost").load("anything")


def test_unserializable_value_fails_the_save_and_writes_nothing(
    repo: ckpt.Repository, root: Path
) -> None:
    job = repo.job("novel")
    job.save("outline", 1)
    before = _files(root)
    with pytest.raises(SerializationError) as info:
        job.save("draft", {"conn": threading.Lock()})
    assert "stage 'draft' of job 'novel'" in str(info.value)
    assert "lock" in str(info.value)
    assert _files(root) == before
    assert job.stages() == ["outline"]


@pytest.mark.parametrize(
    ("cost", "tokens"),
    [(-1.0, 0), (float("nan"), 0), (float("inf"), 0), (True, 0), (0.0, -1), (0.0, 1.5), ("1", 0)],
)
def test_invalid_cost_or_tokens_write_nothing(
    repo: ckpt.Repository, root: Path, cost: Any, tokens: Any
) -> None:
    job = repo.job("novel")
    job.save("outline", 1)
    before = _files(root)
    with pytest.raises(SerializationError, match=r"cost|tokens"):
        job.save("draft", 2, cost=cost, tokens=tokens)
    assert _files(root) == before


def test_stages_in_first_saved_order(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    assert job.stages() == []
    job.save("outline", 1)
    job.save("draft", 2)
    job.save("outline", 3)
    job.save("review", 4)
    assert job.stages() == ["outline", "draft", "review"]
    assert job.load("outline") == 3
    assert job.stages("HEAD~2") == ["outline", "draft"]
    assert job.has_stage("draft")
    assert not job.has_stage("polish")


def test_head(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    assert job.head is None
    assert not job.exists
    first = job.save("outline", 1)
    second = job.save("draft", 2)
    assert job.exists
    assert job.head == second
    assert job.head.parent == first.id  # type: ignore[union-attr]
    assert first.parents == ()
    assert repo.job("novel").head == second


def test_cost_tokens_totals_and_seq(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    a = job.save("outline", 1, cost=0.12, tokens=1834)
    b = job.save("draft", 2, cost=0.5, tokens=100)
    c = job.save("review", 3)
    assert (a.seq, b.seq, c.seq) == (1, 2, 3)
    assert (a.cost, a.tokens, a.total_cost, a.total_tokens) == (0.12, 1834, 0.12, 1834)
    assert (b.cost, b.tokens, b.total_tokens) == (0.5, 100, 1934)
    assert b.total_cost == pytest.approx(0.62)
    assert (c.cost, c.tokens, c.total_tokens) == (0.0, 0, 1934)
    assert c.total_cost == pytest.approx(0.62)
    assert job.head.total_tokens == 1934  # type: ignore[union-attr]


def test_meta_and_message(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    meta = {"model": "gpt", "temperature": 0.7, "retries": [1, 2], "nested": {"ok": True}}
    commit = job.save("outline", 1, meta=meta, message="first pass")
    assert commit.meta == meta
    assert commit.message == "first pass"
    again = repo.job("novel").head
    assert again is not None
    assert again.meta == meta
    assert again.message == "first pass"
    with pytest.raises(SerializationError, match="metadata"):
        job.save("draft", 2, meta={"bad": object()})


def test_log_newest_first(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    assert job.log() == []
    commits = [job.save(f"s{i}", i) for i in range(4)]
    assert [c.id for c in job.log()] == [c.id for c in reversed(commits)]
    assert [c.id for c in job.log(limit=2)] == [commits[3].id, commits[2].id]
    assert [c.id for c in job.log("HEAD~2")] == [commits[1].id, commits[0].id]
    assert [c.stage for c in job.log()] == ["s3", "s2", "s1", "s0"]


# -- revisions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("rev", "index"),
    [
        ("HEAD", 3),
        ("HEAD~0", 3),
        ("HEAD~", 2),
        ("HEAD~1", 2),
        ("HEAD~2", 1),
        ("HEAD~3", 0),
        ("HEAD^", 2),
        ("HEAD^^", 1),
        ("HEAD~1^", 1),
        ("main", 3),
        ("main~3", 0),
        ("review", 3),
        ("outline", 2),
        ("outline~1", 1),
        ("draft", 1),
        (" HEAD~1 ", 2),
    ],
)
def test_revisions(history: tuple[ckpt.Job, list[ckpt.Commit]], rev: str, index: int) -> None:
    job, commits = history
    assert job.resolve(rev).id == commits[index].id


def test_revision_by_tag_and_commit_id(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = history
    job.tag("v1", "HEAD~2")
    assert job.resolve("v1").id == commits[1].id
    assert job.resolve("v1~1").id == commits[0].id
    for commit in commits:
        assert job.resolve(commit.id).id == commit.id
        assert job.resolve(commit.id[:6]).id == commit.id
    for commit in commits[1:]:
        assert job.resolve(commit.id[:12] + "^").id == commit.parents[0]
    assert job.load("outline", at=commits[1].id[:8]) == "o1"


def test_commit_prefix_shorter_than_six_is_not_a_revision(
    history: tuple[ckpt.Job, list[ckpt.Commit]],
) -> None:
    job, commits = history
    with pytest.raises(InvalidRevisionError, match=f"has no revision '{commits[0].id[:5]}'"):
        job.resolve(commits[0].id[:5])


@pytest.mark.parametrize("rev", ["nope", "HEAD~x", "~1", "^", "", "   ", "a" * 64])
def test_unknown_revision(history: tuple[ckpt.Job, list[ckpt.Commit]], rev: str) -> None:
    job, _ = history
    with pytest.raises(InvalidRevisionError) as info:
        job.resolve(rev)
    assert isinstance(info.value, NotFoundError)


def test_unknown_revision_message(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, _ = history
    with pytest.raises(InvalidRevisionError) as info:
        job.resolve("nope")
    assert "job 'novel' has no revision 'nope'" in str(info.value)
    assert "not a branch, tag, stage or commit id" in str(info.value)
    assert "ckpt log novel" in str(info.value)


def test_revision_with_a_huge_count_is_an_invalid_revision(
    history: tuple[ckpt.Job, list[ckpt.Commit]],
) -> None:
    """int() refuses more than 4300 digits with ValueError; a revision must not leak it."""
    job, _ = history
    with pytest.raises(InvalidRevisionError):
        job.resolve("HEAD~" + "9" * 5000)


@pytest.mark.parametrize(
    ("rev", "message"),
    [
        ("HEAD~4", "HEAD~4: branch main has only 4 checkpoints; the first is HEAD~3"),
        ("HEAD^^^^", "HEAD^^^^: branch main has only 4 checkpoints; the first is HEAD~3"),
        ("main~10", "main~10: there are only 4 checkpoints up to main; the first is main~3"),
        ("draft~2", "draft~2: there are only 2 checkpoints up to draft; the first is draft~1"),
    ],
)
def test_revision_past_the_first_commit_says_how_many_there_are(
    history: tuple[ckpt.Job, list[ckpt.Commit]], rev: str, message: str
) -> None:
    job, _ = history
    with pytest.raises(InvalidRevisionError) as raised:
        job.resolve(rev)
    assert str(raised.value) == message


def test_revision_past_a_retention_cut_says_so(
    history: tuple[ckpt.Job, list[ckpt.Commit]],
) -> None:
    from ckpt.maintenance.retention import prune_job

    job, _ = history
    prune_job(job, 2)
    with pytest.raises(InvalidRevisionError) as raised:
        job.resolve("HEAD~2")
    assert str(raised.value) == (
        "HEAD~2: branch main has only 2 checkpoints (retention removed the older ones); "
        "the first is HEAD~1"
    )


def test_ambiguous_commit_prefix(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    """Two reachable commits whose ids share their first six hex digits."""
    job, commits = history
    head = commits[-1]
    by_prefix: dict[str, tuple[ckpt.Commit, CommitId]] = {}
    for attempt in range(200_000):
        candidate = attrs.evolve(head, message=f"twin {attempt}", parents=(head.id,))
        oid = CommitId(object_id(Kind.COMMIT, encode_commit(candidate)))
        if oid[:6] in by_prefix:
            break
        by_prefix[oid[:6]] = (candidate, oid)
    else:
        raise AssertionError("no two ids with a common 6-digit prefix")
    first, first_id = by_prefix[oid[:6]]
    twin_id = oid
    assert job.repo.objects.put_commit(first) == first_id
    assert job.repo.objects.put_commit(candidate) == twin_id
    job.refs.update(HEADS + "twin-a", None, first_id, "test: twin a")
    job.refs.update(HEADS + "twin-b", None, twin_id, "test: twin b")

    with pytest.raises(InvalidRevisionError) as info:
        job.resolve(twin_id[:6])
    assert f"commit prefix '{twin_id[:6]}' is ambiguous" in str(info.value)
    assert "2 matches" in str(info.value)
    assert first_id[:12] in str(info.value)
    assert twin_id[:12] in str(info.value)
    assert job.resolve(first_id[:16]).id == first_id
    assert job.resolve(twin_id[:16]).id == twin_id


def test_revision_of_a_job_with_no_checkpoints(repo: ckpt.Repository) -> None:
    with pytest.raises(NotFoundError, match=r"job 'ghost' not found \(no checkpoints saved\)"):
        repo.job("ghost").resolve("HEAD")


# -- checkout ---------------------------------------------------------------


def test_checkout_rolls_back(history: tuple[ckpt.Job, list[ckpt.Commit]], root: Path) -> None:
    job, commits = history
    result = job.checkout("HEAD~2")
    assert result.branch == "main"
    assert result.old == commits[3].id
    assert result.new == commits[1].id
    assert [c.id for c in result.rolled_back] == [commits[3].id, commits[2].id]
    assert not result.created_branch
    assert job.head.id == commits[1].id  # type: ignore[union-attr]
    assert job.stages() == ["outline", "draft"]
    assert job.load("outline") == "o1"

    entry = job.reflog()[0]
    assert entry.ref == "refs/heads/main"
    assert (entry.old, entry.new) == (commits[3].id, commits[1].id)
    assert entry.reason.startswith("checkout: main to ")

    # The rolled-back commits still load by id, and from a fresh handle.
    with ckpt.open(root) as again:
        fresh = again.job("novel")
        assert fresh.head.id == commits[1].id  # type: ignore[union-attr]
        assert fresh.load("review", at=commits[3].id) == "r1"
        assert fresh.resolve(commits[3].id[:10]).id == commits[3].id
        assert fresh.load("outline", at=commits[2].id) == "o2"

    # Saving after the rollback builds on the commit checked out.
    redo = job.save("outline", "o3")
    assert redo.parents == (commits[1].id,)
    assert redo.seq == 3
    assert job.stages() == ["outline", "draft"]


def test_checkout_forward_again_by_id(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = history
    job.checkout(commits[0].id)
    result = job.checkout(commits[3].id)
    assert result.rolled_back == ()
    assert job.stages() == ["outline", "draft", "review"]


def test_checkout_new_branch_keeps_the_original(
    history: tuple[ckpt.Job, list[ckpt.Commit]],
) -> None:
    job, commits = history
    result = job.checkout("HEAD~2", new_branch="retry")
    assert result.created_branch
    assert (result.branch, result.new) == ("retry", commits[1].id)
    assert job.branch_name == "retry"
    assert job.branches() == {"main": commits[3].id, "retry": commits[1].id}
    alt = job.save("draft", "d2")
    assert alt.branch == "retry"
    assert alt.parents == (commits[1].id,)
    assert job.branches()["main"] == commits[3].id
    job.switch("main")
    assert job.head.id == commits[3].id  # type: ignore[union-attr]
    assert job.load("draft") == "d1"
    assert job.load("draft", at="retry") == "d2"


# -- branches and tags ------------------------------------------------------


def test_branch_switch_delete(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = history
    assert job.branch("side", at="HEAD~1").id == commits[2].id
    with pytest.raises(ConflictError, match="branch 'side' already exists"):
        job.branch("side")
    with pytest.raises(NotFoundError, match=r"has no branch 'nope' \(branches: main, side\)"):
        job.switch("nope")
    job.switch("side")
    assert job.branch_name == "side"
    assert repo_branch(job) == "side"
    assert job.head.id == commits[2].id  # type: ignore[union-attr]
    with pytest.raises(ConflictError, match="cannot delete the current branch 'side'"):
        job.delete_branch("side")
    job.switch("main")
    assert job.delete_branch("side") == commits[2].id
    assert list(job.branches()) == ["main"]
    with pytest.raises(NotFoundError, match="has no branch 'side'"):
        job.delete_branch("side")
    assert job.reflog()[0].reason == "branch: deleted"
    assert (job.reflog()[0].old, job.reflog()[0].new) == (commits[2].id, None)


def repo_branch(job: ckpt.Job) -> str:
    """The current branch as a fresh handle sees it."""
    return job.repo.job(job.name).branch_name


def test_tag_and_delete_tag(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = history
    assert job.tag("v1").id == commits[3].id
    assert job.tag("first", commits[0].id[:8]).id == commits[0].id
    assert job.tags() == {"first": commits[0].id, "v1": commits[3].id}
    with pytest.raises(ConflictError, match="tag 'v1' already exists"):
        job.tag("v1", "HEAD~1")
    assert job.resolve("v1").id == commits[3].id
    job.save("polish", 1)
    assert job.resolve("v1").id == commits[3].id
    assert job.delete_tag("v1") == commits[3].id
    assert job.tags() == {"first": commits[0].id}
    with pytest.raises(NotFoundError, match="has no tag 'v1'"):
        job.delete_tag("v1")
    with pytest.raises(InvalidRevisionError):
        job.resolve("v1")


def test_reflog_records_every_move(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = history
    job.tag("v1")
    entries = job.reflog()
    assert [e.reason for e in entries] == [
        "tag: v1",
        "save: review",
        "save: outline",
        "save: draft",
        "save: outline",
    ]
    assert entries[0].ref == "refs/tags/v1"
    assert (entries[0].old, entries[0].new) == (None, commits[3].id)
    saves = entries[1:]
    assert [e.new for e in saves] == [c.id for c in reversed(commits)]
    assert [e.old for e in saves] == [commits[2].id, commits[1].id, commits[0].id, None]
    assert all(e.ref == "refs/heads/main" for e in saves)
    times = [e.time for e in entries]
    assert times == sorted(times, reverse=True)
    assert all(t.tzinfo is not None for t in times)


# -- status commits ---------------------------------------------------------


def test_complete(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = history
    assert job.status == "active"
    done = job.complete("all chapters written", meta={"words": 90000})
    assert done.status == "completed"
    assert done.stage is None
    assert done.parents == (commits[3].id,)
    assert done.message == "all chapters written"
    assert done.meta == {"words": 90000}
    assert done.total_tokens == commits[3].total_tokens
    assert job.status == "completed"
    assert repo_status(job) == "completed"
    assert job.stages() == ["outline", "draft", "review"]
    assert job.load("review") == "r1"


def repo_status(job: ckpt.Job) -> str:
    return job.repo.job(job.name).status


def test_fail_with_an_exception_and_a_string(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, _ = history
    failed = job.fail(TimeoutError("API timed out"), stage="polish")
    assert failed.status == "failed"
    assert failed.stage is None
    assert failed.meta == {
        "error_type": "TimeoutError",
        "error": "API timed out",
        "failed_stage": "polish",
    }
    assert failed.message == "failed: API timed out"
    assert repo_status(job) == "failed"
    again = job.fail("out of budget")
    assert again.meta == {"error": "out of budget"}
    assert again.parents == (failed.id,)
    # A failed job can go on: the next save is active again.
    assert job.save("polish", 1).status == "active"
    assert repo_status(job) == "active"


# -- jobs -------------------------------------------------------------------


def test_jobs_and_job_names(repo: ckpt.Repository) -> None:
    assert repo.jobs() == [] and repo.job_names() == []
    for name in ["zeta", "alpha", "mid"]:
        repo.job(name).save("s", name)
    repo.job("never-saved")
    assert repo.job_names() == ["alpha", "mid", "zeta"]
    assert [job.name for job in repo.jobs()] == ["alpha", "mid", "zeta"]
    assert all(isinstance(job, ckpt.Job) for job in repo.jobs())
    assert repo.has_job("mid")
    assert not repo.has_job("never-saved")


def test_delete_job(repo: ckpt.Repository, root: Path) -> None:
    repo.job("keep").save("s", 1)
    doomed = repo.job("doomed")
    doomed.save("s", 2)
    doomed.branch("side")
    doomed.tag("v1")
    repo.delete_job("doomed")
    assert repo.job_names() == ["keep"]
    assert not repo.job("doomed").exists
    assert repo.job("doomed").head is None
    assert list(repo.storage.list("jobs/doomed/")) == []
    # Only lock files may stay (removing a lock file another process may hold is unsafe).
    leftovers = [p for p in _files(root) if p.startswith(os.path.join("jobs", "doomed", ""))]
    assert all(p.endswith(".lock") for p in leftovers), leftovers
    with pytest.raises(NotFoundError, match="job 'doomed' not found"):
        repo.delete_job("doomed")
    with pytest.raises(NotFoundError, match="job 'doomed' not found"):
        repo.job("doomed").load("s")
    assert repo.job("keep").load("s") == 1
    # The name can be used again from scratch.
    assert repo.job("doomed").save("s", 3).parents == ()


# -- acceptance: dedup ------------------------------------------------------

BIG_VALUE = {"text": "It was a dark and stormy night. " * 200, "n": list(range(100))}


def test_acceptance_dedup_same_value_in_two_stages(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    job.save("draft", BIG_VALUE)
    blobs = _object_ids(repo, Kind.BLOB)
    everything = _object_ids(repo)
    job.save("copy", dict(reversed(list(BIG_VALUE.items()))))
    assert _object_ids(repo, Kind.BLOB) == blobs
    new = _object_ids(repo) - everything
    assert {repo.objects.kind_of(oid) for oid in new} == {Kind.TREE, Kind.COMMIT}
    tree = job.tree()
    assert tree.get("draft").id == tree.get("copy").id  # type: ignore[union-attr]


def test_acceptance_dedup_same_value_in_two_jobs(repo: ckpt.Repository) -> None:
    repo.job("first").save("draft", BIG_VALUE)
    blobs = _object_ids(repo, Kind.BLOB)
    repo.job("second").save("other-stage", BIG_VALUE, cost=1.0)
    assert _object_ids(repo, Kind.BLOB) == blobs
    a = repo.job("first").tree().get("draft")
    b = repo.job("second").tree().get("other-stage")
    assert a is not None and b is not None
    assert a.id == b.id
    assert repo.job("second").load("other-stage") == BIG_VALUE


def test_acceptance_dedup_resaving_the_same_stage(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    job.save("draft", BIG_VALUE)
    blobs = _object_ids(repo, Kind.BLOB)
    job.save("draft", BIG_VALUE)
    assert _object_ids(repo, Kind.BLOB) == blobs
    assert len(job.log()) == 2


# -- acceptance: conflict ---------------------------------------------------


def test_acceptance_conflict_two_handles_one_parent(repo: ckpt.Repository) -> None:
    base = repo.job("novel").save("outline", 1)
    first, second = repo.job("novel"), repo.job("novel")
    assert first.head == second.head == base

    winner = first.save("draft", "from first")
    with pytest.raises(ConflictError) as info:
        second.save("draft", "from second")
    message = str(info.value)
    assert "job novel: branch main moved to" in message
    assert winner.id[:12] in message
    assert base.id[:12] in message

    log = repo.job("novel").log()
    assert [c.id for c in log] == [winner.id, base.id]
    assert repo.job("novel").load("draft") == "from first"

    second.refresh()
    on_top = second.save("draft", "from second")
    assert on_top.parents == (winner.id,)
    assert [c.id for c in repo.job("novel").log()] == [on_top.id, winner.id, base.id]
    assert repo.job("novel").load("draft", at=winner.id) == "from first"


def _save_at_once(handles: list[ckpt.Job], value: str) -> list[object]:
    """Let every handle save ``value`` at the same moment; return each commit or ConflictError."""
    barrier = threading.Barrier(len(handles))
    results: list[object] = [None] * len(handles)

    def write(index: int) -> None:
        barrier.wait()
        try:
            results[index] = handles[index].save("draft", f"{value} writer {index}")
        except ConflictError as exc:
            results[index] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_acceptance_conflict_race_in_threads(repo: ckpt.Repository) -> None:
    """Both writers read the head, then save at the same moment: exactly one wins."""
    repo.job("novel").save("outline", 0)
    for round_ in range(5):
        handles = [repo.job("novel"), repo.job("novel")]
        parent = repo.job("novel").head
        assert parent is not None
        assert all(handle.head == parent for handle in handles)
        results = _save_at_once(handles, f"round {round_}")
        wins = [r for r in results if isinstance(r, ckpt.Commit)]
        losses = [r for r in results if isinstance(r, ConflictError)]
        assert (len(wins), len(losses)) == (1, 1), results
        assert wins[0].parents == (parent.id,)
        assert repo.job("novel").head == wins[0]
    assert len(repo.job("novel").log()) == 6


def test_conflict_leaves_the_branch_unchanged(repo: ckpt.Repository) -> None:
    job = repo.job("novel")
    job.save("outline", 1)
    stale_complete, stale_fail = repo.job("novel"), repo.job("novel")
    assert stale_complete.head == stale_fail.head
    moved = job.save("draft", 2)
    with pytest.raises(ConflictError):
        stale_complete.complete()
    with pytest.raises(ConflictError):
        stale_fail.fail("boom")
    assert repo.job("novel").head == moved
    assert repo.job("novel").status == "active"
    # A handle that lost forgets the head it saw: its next try builds on the new one.
    assert stale_complete.complete().parents == (moved.id,)


# -- acceptance: durability flag --------------------------------------------


@pytest.mark.parametrize("durable", [False, True])
def test_acceptance_durability_flag(root: Path, durable: bool) -> None:
    with ckpt.init(root, durable=durable) as repo:
        assert repo.storage.durable is durable
        job = repo.job("novel")
        job.save("outline", OUTLINE, cost=0.5, tokens=10)
        job.save("draft", b"raw bytes \x00\xff")
        assert job.load("outline", Outline) == OUTLINE
    with ckpt.open(root, durable=durable) as again:
        job = again.job("novel")
        assert job.load("outline", Outline) == OUTLINE
        assert job.load("draft") == b"raw bytes \x00\xff"
        assert job.head.total_tokens == 10  # type: ignore[union-attr]
        assert again.verify().ok
