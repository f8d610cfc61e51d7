"""verify, gc, stats and rm."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ckpt.cli import output as out
from ckpt.cli.exits import ExitCode
from ckpt.history.job import Job
from ckpt.maintenance.stats import store_stats
from ckpt.repository import Repository

from .conftest import Run, corrupt_object, save_stages


def test_verify_a_healthy_store(run: Run, novel: Job, repo: Repository) -> None:
    result = run("verify", "--full")
    assert result.exit_code == 0
    objects = sum(1 for _ in repo.objects)
    assert re.fullmatch(
        rf"Checked {objects} objects \(\d+(\.\d)? (B|KiB) read\) in 1 job: no problems found\.\n",
        result.stdout,
    )


def test_verify_names_the_damage_and_the_last_good_checkpoint(
    run: Run, novel: Job, store: Path
) -> None:
    chapters, characters, _ = novel.log()
    blob = novel.tree().get("chapters")
    assert blob is not None
    corrupt_object(store, novel.repo, blob.id)
    quick = run("verify")  # without --full, stage values are only checked to exist
    assert quick.exit_code == 0
    result = run("verify", "--full")
    assert result.exit_code == ExitCode.DAMAGED
    lines = result.stdout.splitlines()
    assert lines[0] == f"corrupt-object {blob.id}"
    assert lines[1].startswith(f"  object {blob.id} is corrupt: ")
    assert lines[2:] == [
        "  breaks job: novel",
        f"  breaks checkpoints: {chapters.short_id}",
        "",
        "Job novel: 1 broken checkpoint",
        f"  branch main: last good checkpoint {characters.short_id} (characters); roll back with:",
        f"    ckpt --store {store} checkout novel {characters.short_id}",
    ]
    assert result.stderr == (
        "Error: verify found 1 problem; it breaks job novel; "
        "roll back to the last good checkpoints shown above\n"
    )
    doc = json.loads(run("verify", "--full", "--json").stdout)
    assert doc["ok"] is False
    assert doc["problems"][0]["kind"] == "corrupt-object"
    assert doc["jobs"]["novel"]["last_good"] == {"main": characters.id}
    # Rolling back as told makes the branch whole again.
    assert run("checkout", "novel", characters.short_id).exit_code == 0
    assert "breaks job: novel" in run("verify", "--full", "novel").stdout


def test_verify_finds_a_corrupt_commit_without_full(run: Run, novel: Job, store: Path) -> None:
    corrupt_object(store, novel.repo, novel.resolve().id)
    result = run("verify", "novel")
    assert result.exit_code == ExitCode.DAMAGED
    assert "breaks job: novel" in result.stdout
    assert result.stderr.startswith("Error: verify found 1 problem; it breaks job novel;")


def test_verify_unknown_job(run: Run, novel: Job) -> None:
    result = run("verify", "novle")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr.endswith("; did you mean 'novel'?\n")


def test_gc_dry_run_then_collect(run: Run, novel: Job, repo: Repository) -> None:
    scratch = repo.job("scratch")
    scratch.save("junk", {"big": "x" * 5000})
    scratch.complete()
    before = sum(1 for _ in repo.objects)
    assert run("rm", "scratch").exit_code == 0
    dry = run("gc", "--dry-run", "--grace", "0s")
    assert dry.exit_code == 0
    match = re.fullmatch(
        r"Would remove (\d+) unreachable object\(s\), (.+); (\d+) reachable kept\.\n", dry.stdout
    )
    assert match, dry.stdout
    would = int(match.group(1))
    assert would > 0
    assert sum(1 for _ in repo.objects) == before
    done = run("gc", "--grace", "0s")
    assert done.stdout.startswith(f"Removed {would} unreachable object(s), {match.group(2)}; ")
    assert sum(1 for _ in repo.objects) == before - would
    assert run("verify", "--full").exit_code == 0


def test_gc_keeps_young_objects_by_default(run: Run, novel: Job, repo: Repository) -> None:
    scratch = repo.job("scratch")
    scratch.save("junk", {"big": "y" * 5000})
    scratch.complete()
    run("rm", "scratch")
    result = run("gc")
    assert re.fullmatch(
        r"Removed 0 unreachable object\(s\), 0 B; \d+ reachable kept, "
        r"\d+ younger than the grace period kept\.\n",
        result.stdout,
    )


def test_gc_says_what_only_the_reflog_keeps_and_how_to_let_it_go(
    run: Run, novel: Job, repo: Repository
) -> None:
    novel.checkout("HEAD", new_branch="try")
    novel.save("edit", "x" * 3000)
    novel.save("publish", "y" * 3000)
    novel.switch("main")
    assert run("branch", "novel", "-d", "try").exit_code == 0
    kept = run("gc", "--grace", "0s")
    assert kept.stdout.splitlines() == [
        "Removed 0 unreachable object(s), 0 B; 15 reachable kept.",
        "2 checkpoints are kept only by the reflog (novel: 2): deleted branches and "
        "rolled-back moves stay 30 days so that they can be undone; "
        "`ckpt gc --reflog-expiry 0s` lets them go now.",
    ]
    assert json.loads(run("gc", "--dry-run", "--json").stdout)["kept_by_reflog"] == {"novel": 2}
    freed = run("gc", "--grace", "0s", "--reflog-expiry", "0s")
    assert re.fullmatch(  # the two checkpoints: a commit, a tree and a blob each
        r"Removed 6 unreachable object\(s\), .+; 9 reachable kept\.\n", freed.stdout
    )
    assert run("verify", "--full").exit_code == 0  # the expiry is recorded: verify agrees
    assert run("gc", "--grace", "0s").stdout == (
        "Removed 0 unreachable object(s), 0 B; 9 reachable kept.\n"
    )


def test_gc_retention(run: Run, novel: Job, repo: Repository) -> None:
    done = repo.job("done")
    save_stages(done, ["outline"])
    done.complete()
    dry = run("gc", "--dry-run", "--keep-last", "1", "--status", "completed")
    assert dry.stdout.splitlines()[:2] == [
        "Would delete 1 job(s): done",
        "Would cut the history of novel: 2 older checkpoint(s) let go",
    ]
    assert dry.stdout.splitlines()[-1] == (
        "(Objects the retention above would release are not counted in a dry run.)"
    )
    assert repo.has_job("done")
    real = json.loads(run("gc", "--keep-last", "1", "--status", "completed", "--json").stdout)
    assert real["retention"]["deleted_jobs"] == ["done"]
    assert real["retention"]["pruned"][0]["dropped_commits"] == 2
    assert real["gc"]["dry_run"] is False
    assert not repo.has_job("done")
    lines = run("log", "novel", "--oneline").stdout.splitlines()
    assert lines[-1] == "(history before this checkpoint was removed by retention)"


def test_gc_option_errors(run: Run) -> None:
    bad = run("gc", "--grace", "forever")
    assert bad.exit_code == ExitCode.USAGE
    assert "Error: Invalid value for '--grace': invalid duration 'forever'" in bad.stderr
    bare = run("gc", "--older-than", "30")
    assert bare.exit_code == ExitCode.USAGE
    assert "Invalid value for '--older-than': invalid duration '30'" in bare.stderr
    status = run("gc", "--status", "active")
    assert status.exit_code == ExitCode.USAGE


def test_stats(run: Run, novel: Job, repo: Repository) -> None:
    expected = store_stats(repo)
    result = run("stats")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == (f"Objects:     {expected.objects} (3 blobs, 3 trees, 3 commits)")
    assert lines[1] == f"Logical:     {out.size(expected.logical_bytes)} (every checkpoint in full)"
    assert lines[4] == f"Dedup:       {out.ratio(expected.dedup_ratio)}"
    assert lines[-1].split()[:3] == ["novel", "3", "9"]
    assert json.loads(run("stats", "--json").stdout) == expected.to_json()


def test_stats_of_an_empty_store(run: Run, repo: Repository) -> None:
    result = run("stats")
    assert result.exit_code == 0
    assert result.stdout == (
        f"The store at {repo.location} is empty: no jobs, no objects "
        "(a job's first save fills it; try `ckpt demo`).\n"
    )
    assert json.loads(run("stats", "--json").stdout)["objects"] == 0


def test_stats_counts_one_of_a_kind_in_the_singular(run: Run, repo: Repository) -> None:
    repo.job("one").save("only", 1)
    assert run("stats").stdout.splitlines()[0] == "Objects:     3 (1 blob, 1 tree, 1 commit)"


def test_rm(run: Run, novel: Job, repo: Repository) -> None:
    done = repo.job("done")
    save_stages(done, ["outline"])
    done.complete()
    refused = run("rm", "done", "novel")
    assert refused.exit_code == ExitCode.USAGE
    assert refused.stderr == (
        "Error: job 'novel' is active (it may still be running); add --force to delete it anyway\n"
    )
    assert repo.has_job("done")
    unknown = run("rm", "done", "nope")
    assert unknown.exit_code == ExitCode.NOT_FOUND
    assert repo.has_job("done")
    removed = run("rm", "done")
    assert removed.stdout == "Deleted job done.\nIts objects are removed by the next `ckpt gc`.\n"
    forced = run("rm", "novel", "--force")
    assert forced.exit_code == 0
    assert repo.job_names() == []
