"""The git habits: show/cat by commit id in any job, log -- STAGE, diff between jobs, switch in
the reflog, annotated tags."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import attrs

from ckpt.cli.exits import ExitCode
from ckpt.history.job import Job
from ckpt.history.refs import HEADS
from ckpt.history.tags import tag_annotation
from ckpt.objects.ids import CommitId, Kind, ObjectId, object_id
from ckpt.objects.model import Commit, encode_commit
from ckpt.repository import Repository

from .conftest import Run

# -- show and cat by commit id, in any job -----------------------------------------


def test_show_and_cat_find_a_commit_in_any_job(run: Run, novel: Job, repo: Repository) -> None:
    other = repo.job("essay")
    first = other.save("draft", {"words": 900}, message="rough")
    other.save("draft", {"words": 1200})
    prefix = first.id[:8]
    shown = run("show", prefix)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[:3] == [
        f"commit {first.id}",
        "Job:      essay",
        "Branch:   main",
    ]
    as_json = json.loads(run("show", prefix, "--json").stdout)
    assert (as_json["job"], as_json["commit"]["id"]) == ("essay", first.id)
    cat = run("cat", prefix, "draft")
    assert (cat.exit_code, cat.stdout) == (0, '{\n  "words": 900\n}\n')
    outline = novel.resolve("outline")
    assert run("cat", outline.id[:6], "outline").stdout == run("cat", "novel", "outline").stdout
    missing = run("show", "abcdef12")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert missing.stderr == f"Error: no job of {repo.location} has a commit 'abcdef12'\n"
    no_stage = run("cat", prefix, "outline")
    assert no_stage.exit_code == ExitCode.NOT_FOUND
    assert no_stage.stderr == (
        f"Error: job 'essay' has no stage 'outline' at {first.short_id} (stages: draft)\n"
    )


def _colliding_commits(tree: ObjectId) -> tuple[Commit, Commit]:
    """Two commits (one per job) whose ids share their first 6 hex digits."""
    when = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    seen: dict[str, Commit] = {}
    for i in range(1_000_000):
        job = "alpha" if i % 2 else "beta"
        commit = Commit(
            id=CommitId(ObjectId("0" * 64)),
            tree=tree,
            parents=(),
            job=job,
            branch="main",
            stage="draft",
            time=when,
            seq=1,
            cost=0.0,
            tokens=0,
            total_cost=0.0,
            total_tokens=0,
            status="active",
            message=f"try {i}",
            meta={},
        )
        oid = object_id(Kind.COMMIT, encode_commit(commit))
        commit = attrs.evolve(commit, id=CommitId(oid))
        other = seen.get(oid[:6])
        if other is not None and other.job != job:
            return other, commit
        seen.setdefault(oid[:6], commit)
    raise AssertionError("no collision found")


def test_an_ambiguous_prefix_lists_the_candidates(run: Run, repo: Repository) -> None:
    seed = repo.job("seed").save("draft", {"words": 1})
    first, second = _colliding_commits(seed.tree)
    for commit in (first, second):
        assert repo.objects.put_commit(commit) == commit.id
        job = repo.job(commit.job)
        job.refs.create("main")
        job.refs.update(HEADS + "main", None, commit.id, "test")
    prefix = first.id[:6]
    result = run("show", prefix)
    assert result.exit_code == ExitCode.NOT_FOUND
    a, b = sorted([first, second], key=lambda c: c.id)
    assert result.stderr == (
        f"Error: commit prefix {prefix!r} is ambiguous: {a.id[:12]} (job {a.job}, draft), "
        f"{b.id[:12]} (job {b.job}, draft); give more digits\n"
    )
    assert run("show", a.id[:12]).stdout.splitlines()[1] == f"Job:      {a.job}"


def test_a_job_name_wins_over_a_commit_prefix(run: Run, repo: Repository) -> None:
    commit = repo.job("essay").save("draft", {"words": 1})
    named = repo.job(commit.id[:8])  # a job whose name is the commit's prefix
    named.save("other", {"x": 1})
    result = run("show", commit.id[:8])
    assert result.stdout.splitlines()[1] == f"Job:      {commit.id[:8]}"


# -- log -- STAGE ------------------------------------------------------------------


def test_log_lists_only_the_commits_that_changed_a_stage(run: Run, novel: Job) -> None:
    novel.save("characters", ["Ida", "Tomas", "Vera"], cost=0.1)
    novel.save("chapters", [{"n": 1}], cost=0.2)
    novel.save("characters", ["Ida", "Tomas", "Vera"], cost=0.1)  # the same value again
    history = novel.log()
    changed = [c for c in history if c.stage == "characters"][1:]  # the repeat changed nothing
    result = run("log", "novel", "--oneline", "--", "characters")
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == [c.short_id for c in changed]
    both = run("log", "novel", "--oneline", "--", "characters", "outline")
    assert len(both.stdout.splitlines()) == 3
    limited = run("log", "novel", "-n", "1", "--json", "--", "characters")
    assert [c["id"] for c in json.loads(limited.stdout)["commits"]] == [changed[0].id]
    typo = run("log", "novel", "--", "charcters")
    assert typo.exit_code == ExitCode.NOT_FOUND
    assert typo.stderr == (
        "Error: job 'novel' has no stage 'charcters' in this history "
        "(stages: outline, characters, chapters)\n"
    )
    graph = run("log", "novel", "--graph", "--", "characters")
    assert graph.exit_code == ExitCode.USAGE
    assert graph.stderr == ("Error: --graph draws whole histories; leave it out to list by stage\n")
    assert "[-- STAGE...]" in run("log", "--help").stdout


# -- diff between two jobs ---------------------------------------------------------


def test_diff_between_two_jobs(run: Run, novel: Job, repo: Repository) -> None:
    sequel = novel.fork("sequel", at="characters")
    sequel.save("characters", ["Ida", "Vera"], cost=0.1)
    old = novel.resolve()
    new = sequel.resolve()
    result = run("diff", "novel:", "sequel:HEAD", "--stat")
    assert result.exit_code == 0, result.output
    assert result.stdout == "\n".join(
        [
            f"diff novel:{old.short_id} sequel:{new.short_id}",
            "   STAGE       TYPE  SIZE",
            "M  characters  list  15 B -> 14 B",
            "D  chapters    list  43 B",
            "",
        ]
    )
    doc = json.loads(run("diff", "novel:characters", "sequel:", "characters", "--json").stdout)
    assert (doc["job"], doc["new_job"]) == ("novel", "sequel")
    assert [c["stage"] for c in doc["changes"]] == ["characters"]
    assert doc["changes"][0]["diff"][-4:] == ['   "Ida",', '-  "Tomas"', '+  "Vera"', " ]"]
    same = run("diff", "novel:outline", "sequel:outline")
    assert same.stdout == (
        f"no stage differs between novel:{novel.resolve('outline').short_id} "
        f"and sequel:{novel.resolve('outline').short_id}\n"
    )
    half = run("diff", "novel:HEAD", "sequel")
    assert half.exit_code == ExitCode.USAGE
    assert half.stderr == (
        "Error: compare two jobs as JOB1:REV1 JOB2:REV2 [STAGE] (REV empty: HEAD)\n"
    )
    unknown = run("diff", "novel:", "sequal:")
    assert unknown.exit_code == ExitCode.NOT_FOUND
    assert unknown.stderr.startswith("Error: job 'sequal' not found")


# -- switch is in the reflog -------------------------------------------------------


def test_switch_is_recorded_in_the_reflog_like_git(run: Run, novel: Job) -> None:
    main_head = novel.resolve()
    outline = novel.resolve("outline")
    novel.branch("alt", at="outline")
    assert run("switch", "novel", "alt").exit_code == 0
    entry = novel.reflog()[0]
    assert (entry.ref, entry.old, entry.new, entry.reason) == (
        "HEAD",
        main_head.id,
        outline.id,
        "switch: moving from main to alt",
    )
    shown = run("reflog", "novel", "-n", "1")
    assert shown.stdout.splitlines()[1].split() == [
        "just",
        "now",
        "HEAD",
        main_head.short_id,
        outline.short_id,
        "switch:",
        "moving",
        "from",
        "main",
        "to",
        "alt",
    ]
    assert run("switch", "novel", "alt").stdout == "novel is already on branch 'alt'.\n"
    assert len(novel.reflog()) == 1 + len([e for e in novel.reflog() if e.ref != "HEAD"])
    run("checkout", "novel", "HEAD", "-b", "third")
    assert novel.reflog()[0].reason == "switch: moving from alt to third"


# -- annotated tags ----------------------------------------------------------------


def test_annotated_tags_are_shown_by_show_and_the_tag_list(
    run: Run, novel: Job, repo: Repository
) -> None:
    characters = novel.resolve("characters")
    result = run("tag", "novel", "v1", "characters", "-m", "first draft approved")
    assert result.exit_code == 0
    assert result.stdout == (
        f"Tagged {characters.short_id} (characters) of novel as 'v1' (annotated).\n"
    )
    run("tag", "novel", "light", "characters")
    shown = run("show", "novel", "v1")
    assert "Tag:      v1: first draft approved" in shown.stdout.splitlines()
    assert not any(line.startswith("Tag:      light") for line in shown.stdout.splitlines())
    doc = json.loads(run("show", "novel", "v1", "--json").stdout)
    assert [(t["name"], t["message"]) for t in doc["tags"]] == [
        ("light", None),
        ("v1", "first draft approved"),
    ]
    listed = run("tag", "novel")
    assert listed.stdout.splitlines()[0].split() == [
        "NAME",
        "COMMIT",
        "STAGE",
        "UPDATED",
        "MESSAGE",
    ]
    assert listed.stdout.splitlines()[2].endswith("  first draft approved")
    tags = json.loads(run("tag", "novel", "--json").stdout)["refs"]
    assert [(t["name"], t["message"]) for t in tags] == [
        ("light", None),
        ("v1", "first draft approved"),
    ]
    no_name = run("tag", "novel", "-m", "oops")
    assert no_name.exit_code == ExitCode.USAGE
    assert no_name.stderr == (
        "Error: -m annotates a new tag: give its NAME (ckpt tag JOB NAME -m MESSAGE)\n"
    )
    empty = run("tag", "novel", "v2", "-m", " ")
    assert empty.exit_code == ExitCode.USAGE
    assert empty.stderr == "Error: a tag message must not be empty\n"
    assert "v2" not in novel.tags()


def test_a_tag_deleted_and_made_again_forgets_its_message(run: Run, novel: Job) -> None:
    run("tag", "novel", "v1", "-m", "old message")
    run("tag", "novel", "-d", "v1")
    run("tag", "novel", "v1")
    assert tag_annotation(novel, "v1") is None
    assert not any(line.startswith("Tag:") for line in run("show", "novel").stdout.splitlines())


def test_an_annotated_tag_stays_a_gc_root_and_travels(
    run: Run, novel: Job, repo: Repository, tmp_path: Path
) -> None:
    outline = novel.resolve("outline")
    run("tag", "novel", "keep", "outline", "-m", "the outline we liked")
    run("checkout", "novel", "outline")
    novel.refresh()
    novel.save("characters", ["Someone else"])
    # The tag's ref is a plain commit id: every reader sees it, gc keeps what it names.
    raw = repo.storage.get("jobs/novel/refs/tags/keep")
    assert raw == f"{outline.id}\n".encode()
    assert run("gc", "--grace", "0s").exit_code == 0
    assert novel.load("outline", at="keep") == {"title": "Vell", "chapters": 3}
    remote = tmp_path / "remote"
    assert run("push", str(remote)).exit_code == 0
    other = run("--store", str(remote), "show", "novel", "keep")
    assert "Tag:      keep: the outline we liked" in other.stdout.splitlines()
