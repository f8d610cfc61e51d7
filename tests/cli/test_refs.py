"""checkout, branch, switch and tag: each move prints the command that undoes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ckpt.cli.exits import ExitCode
from ckpt.errors import InvalidNameError
from ckpt.history.job import Job
from ckpt.history.names import branch_name

from .conftest import Run, save_stages


def test_checkout_rolls_back_and_prints_the_undo(run: Run, novel: Job, store: Path) -> None:
    chapters, characters, outline = novel.log()
    result = run("checkout", "novel", "outline")
    assert result.exit_code == 0
    assert result.stdout == "\n".join(
        [
            f"Rolled back branch 'main' of novel to {outline.short_id} (outline):",
            "  ID            STAGE       COST",
            f"  {chapters.short_id}  chapters    $1.25",
            f"  {characters.short_id}  characters  $0.50",
            "2 checkpoints rolled back ($1.75 of work).",
            "The next run resumes after stage outline.",
            f"Undo with: ckpt --store {store} checkout novel {chapters.short_id}",
            "",
        ]
    )
    novel.refresh()
    assert novel.resolve().id == outline.id
    undo = run("checkout", "novel", chapters.short_id)
    assert undo.stdout.startswith(
        f"Moved branch 'main' of novel from {outline.short_id} to {chapters.short_id} (chapters)."
    )
    novel.refresh()
    assert novel.resolve().id == chapters.id


def test_checkout_to_where_it_is(run: Run, novel: Job) -> None:
    head = novel.resolve()
    result = run("checkout", "novel", "HEAD")
    assert result.stdout == f"Branch 'main' of novel is already at {head.short_id} (chapters).\n"


def test_checkout_new_branch(run: Run, novel: Job, store: Path) -> None:
    outline = novel.resolve("outline")
    result = run("checkout", "novel", "outline", "-b", "alt")
    assert result.exit_code == 0
    assert result.stdout == (
        f"Switched novel to new branch 'alt' at {outline.short_id} (outline); "
        "'main' is unchanged.\n"
        f"Undo with: ckpt --store {store} switch novel main && "
        f"ckpt --store {store} branch novel -d alt\n"
    )
    novel.refresh()
    assert novel.branch_name == "alt"
    again = run("checkout", "novel", "outline", "-b", "alt")
    assert again.exit_code == ExitCode.CONFLICT
    assert again.stderr == "Error: job 'novel': branch 'alt' already exists\n"


def test_checkout_b_name_rule_says_where_a_slash_goes(run: Run, novel: Job) -> None:
    refused = run("checkout", "novel", "outline", "-b", "try again")
    assert refused.exit_code == ExitCode.USAGE
    assert refused.stderr == (
        "Error: invalid branch name 'try again': use letters, digits and . _ - @ + = "
        "(starting with a letter, digit or _); '/' may separate parts (as in fix/ending), "
        "each part following that rule\n"
    )
    assert run("checkout", "novel", "outline", "-b", "try/again").exit_code == 0


def test_checkout_bad_revision(run: Run, novel: Job) -> None:
    result = run("checkout", "novel", "HEAD~7")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr == (
        "Error: HEAD~7: branch main has only 3 checkpoints; the first is HEAD~2\n"
    )


def test_branch_list_create_delete(run: Run, novel: Job, store: Path) -> None:
    head = novel.resolve()
    outline = novel.resolve("outline")
    created = run("branch", "novel", "alt", "outline")
    assert created.stdout == (
        f"Created branch 'alt' of novel at {outline.short_id} (outline).\n"
        f"Switch to it with: ckpt --store {store} switch novel alt\n"
    )
    listing = run("branch", "novel").stdout.splitlines()
    assert listing[0].split() == ["NAME", "COMMIT", "STAGE", "UPDATED"]
    assert listing[1].split()[:4] == ["alt", outline.short_id, "outline", "just"]
    assert listing[2].split()[:4] == ["*", "main", head.short_id, "chapters"]
    doc = json.loads(run("branch", "novel", "--json").stdout)
    assert doc["current"] == "main"
    assert [(r["name"], r["commit"], r["current"]) for r in doc["refs"]] == [
        ("alt", outline.id, False),
        ("main", head.id, True),
    ]
    deleted = run("branch", "novel", "-d", "alt")
    assert deleted.stdout == (
        f"Deleted branch 'alt' of novel (was {outline.short_id}).\n"
        f"Undo with: ckpt --store {store} branch novel alt {outline.short_id}\n"
    )
    assert "alt" not in novel.branches()


def test_branch_errors(run: Run, novel: Job) -> None:
    exists = run("branch", "novel", "main")
    assert exists.exit_code == ExitCode.CONFLICT
    assert exists.stderr == "Error: job 'novel': branch 'main' already exists\n"
    current = run("branch", "novel", "-d", "main")
    assert current.exit_code == ExitCode.CONFLICT
    assert current.stderr == (
        "Error: job 'novel': cannot delete the current branch 'main'; switch first\n"
    )
    missing = run("branch", "novel", "-d", "nope")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert missing.stderr == "Error: job 'novel' has no branch 'nope'\n"
    invalid = run("branch", "novel", "bad..name")
    assert invalid.exit_code == ExitCode.USAGE
    with pytest.raises(InvalidNameError) as refused:
        branch_name("bad..name")
    assert invalid.stderr == f"Error: {refused.value}\n"
    assert invalid.stderr.startswith("Error: invalid branch name 'bad..name': ")
    both = run("branch", "novel", "x", "-d", "y")
    assert both.exit_code == ExitCode.USAGE
    assert both.stderr == "Error: give either a branch to create or -d NAME, not both\n"


def test_switch(run: Run, novel: Job, store: Path) -> None:
    outline = novel.resolve("outline")
    novel.branch("alt", at="outline")
    result = run("switch", "novel", "alt")
    assert result.stdout == (
        f"Switched novel to branch 'alt' at {outline.short_id} (outline).\n"
        f"Undo with: ckpt --store {store} switch novel main\n"
    )
    assert run("switch", "novel", "alt").stdout == "novel is already on branch 'alt'.\n"
    missing = run("switch", "novel", "nope")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert missing.stderr == "Error: job 'novel' has no branch 'nope' (branches: alt, main)\n"
    # The next save continues alt.
    novel.refresh()
    save_stages(novel, ["characters"])
    assert novel.resolve("alt").stage == "characters"


def test_tag(run: Run, novel: Job, store: Path) -> None:
    characters = novel.resolve("characters")
    result = run("tag", "novel", "v1", "characters")
    assert result.stdout == f"Tagged {characters.short_id} (characters) of novel as 'v1'.\n"
    listing = run("tag", "novel").stdout.splitlines()
    assert listing[0].split() == ["NAME", "COMMIT", "STAGE", "UPDATED"]
    assert listing[1].split()[:3] == ["v1", characters.short_id, "characters"]
    assert json.loads(run("tag", "novel", "--json").stdout)["refs"][0]["commit"] == characters.id
    exists = run("tag", "novel", "v1")
    assert exists.exit_code == ExitCode.CONFLICT
    assert exists.stderr == "Error: job 'novel': tag 'v1' already exists\n"
    deleted = run("tag", "novel", "-d", "v1")
    assert deleted.stdout == (
        f"Deleted tag 'v1' of novel (was {characters.short_id}).\n"
        f"Undo with: ckpt --store {store} tag novel v1 {characters.short_id}\n"
    )
    missing = run("tag", "novel", "-d", "v1")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert missing.stderr == "Error: job 'novel' has no tag 'v1'\n"


def test_a_branch_named_like_a_stage_wins_everywhere_with_a_warning(run: Run, novel: Job) -> None:
    outline = novel.resolve("outline")
    novel.branch("characters", at="HEAD")  # a branch with a stage's name, at HEAD
    warning = (
        "warning: 'characters' names both a branch and a stage of job 'novel': using the "
        "branch; write stage:characters for the other\n"
    )
    # diff reads the word as checkout does: the branch, not the stage
    diffed = run("diff", "novel", "outline", "characters")
    assert diffed.exit_code == 0
    assert diffed.stderr == warning
    assert diffed.stdout.splitlines()[1:4] == [
        "   STAGE       TYPE  SIZE",
        "A  characters  list  15 B",
        "A  chapters    list  43 B",
    ]
    moved = run("checkout", "novel", "characters")
    assert moved.stderr == warning
    assert "is already at" in moved.stdout
    staged = run("checkout", "novel", "stage:characters")
    assert staged.exit_code == 0 and staged.stderr == ""
    novel.refresh()
    assert novel.head is not None and novel.head.stage == "characters"
    assert novel.head.parent == outline.id
    # the three-word form still compares one stage between two revisions
    one = run("diff", "novel", "outline", "HEAD", "characters")
    assert one.exit_code == 0 and one.stderr == ""
