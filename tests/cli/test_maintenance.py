"""verify, gc, stats and rm."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

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
        "run `ckpt repair` (add --from REMOTE to copy clean copies from a remote), "
        "then re-run the damaged stages or roll back to the last good checkpoints shown above\n"
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
    assert re.fullmatch(
        r"Would remove \d+ unreachable object\(s\), .+; \d+ reachable kept(, .+)?\.",
        dry.stdout.splitlines()[-1],
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
    assert lines[3] == (
        f"Stored:      {out.size(expected.stored_bytes)} (on disk, {expected.packs} packs; "
        f"the objects alone {out.size(expected.object_bytes)})"
    )
    assert expected.packs == 3  # one per save
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


def _save_at(
    job: Job, when: str, stage: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Save ``value`` as if at ``when`` (UTC); return the commit's short id."""
    import datetime as dt

    import ckpt.history.job

    moment = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
    monkeypatch.setattr(ckpt.history.job, "now", lambda: moment)
    return job.save(stage, value).short_id


def test_gc_keeps_one_checkpoint_per_day_week_or_month(
    run: Run, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = repo.job("agent")
    times = [
        "2024-01-01 09:00",
        "2024-01-01 18:00",
        "2024-01-02 10:00",
        "2024-01-03 08:00",
        "2024-01-03 20:00",
        "2024-01-10 12:00",
        "2024-02-09 12:00",
        "2024-02-09 13:00",
    ]
    ids = [
        _save_at(agent, when, "memory", {"step": i, "notes": "x" * 200 * i}, monkeypatch)
        for i, when in enumerate(times, 1)
    ]
    monkeypatch.undo()
    c1, c2, c3, c4, c5, c6, c7, c8 = ids
    dry = run("gc", "--keep-daily", "3", "--dry-run", "--grace", "0s")
    assert dry.exit_code == 0
    lines = dry.stdout.splitlines()
    assert lines[0] == "Would cut the history of agent: 5 older checkpoint(s) let go"
    would = re.fullmatch(
        r"Would remove (\d+) unreachable object\(s\), (.+); (\d+) reachable kept\.", lines[1]
    )
    assert would, lines
    assert int(would.group(1)) == 15  # the five commits let go, their trees and values
    assert len(lines) == 2
    objects = sum(1 for _ in repo.objects)
    done = run("gc", "--keep-daily", "3", "--grace", "0s")
    assert done.stdout.splitlines() == [
        "Cut the history of agent: 5 older checkpoint(s) let go",
        f"Removed {would.group(1)} unreachable object(s), {would.group(2)}; "
        f"{would.group(3)} reachable kept.",
    ]
    assert sum(1 for _ in repo.objects) == objects - int(would.group(1))
    log = run("log", "agent", "--oneline")
    note = "(history before this checkpoint was removed by retention)"
    assert [line.split()[0] if line != note else note for line in log.stdout.splitlines()] == [
        c8,
        note,
        c6,
        c5,
        note,
    ]
    assert agent.load("memory", at=c6) == {"step": 6, "notes": "x" * 1200}
    assert run("verify", "--full").exit_code == 0
    # Applied again later, a rule lets go of the checkpoints it no longer keeps.
    again = run("gc", "--keep-weekly", "1", "--keep-monthly", "2", "--grace", "0s", "--json")
    assert json.loads(again.stdout)["retention"]["pruned"] == [
        {
            "job": "agent",
            "cut_at": sorted([agent.resolve(c8).id, agent.resolve(c6).id]),
            "dropped_commits": 1,
        }
    ]
    assert [c.short_id for c in agent.log()] == [c8, c6]
    assert run("verify", "--full").exit_code == 0
    assert {c1, c2, c3, c4, c7}.isdisjoint(c.short_id for c in agent.log())


def test_following_verifys_advice_heals_a_damaged_checkpoint(
    run: Run, repo: Repository, store: Path
) -> None:
    """21.13: verify names `ckpt repair`; after it, re-running the deterministic stage
    writes a clean copy of the same value, and the store verifies clean."""
    from ckpt.pipeline.runner import Pipeline

    def outline(input: str) -> str:
        return input + " outline"

    def chapters(outline: str) -> list[str]:
        return [outline, outline.upper()]

    pipeline = Pipeline([outline, chapters], store=repo)
    pipeline.run("novel", "a story")
    job = repo.job("novel")
    blob = job.tree().get("chapters")
    assert blob is not None
    corrupt_object(store, repo, blob.id)
    verify = run("verify", "--full")
    assert verify.exit_code == ExitCode.DAMAGED
    assert "run `ckpt repair`" in verify.stderr
    repaired = run("repair")
    assert "Moved 1 corrupt object(s) to quarantine/" in repaired.stdout
    assert repaired.exit_code == ExitCode.DAMAGED  # until the stage is re-run
    last_good = json.loads(run("verify", "--full", "--json").stdout)["jobs"]["novel"]["last_good"]
    assert run("checkout", "novel", last_good["main"]).exit_code == 0
    result = Pipeline([outline, chapters], store=store).run("novel")
    assert list(result.ran) == ["chapters"]
    assert run("verify", "--full").exit_code == 0
    assert json.loads(run("cat", "novel", "HEAD", "chapters").stdout) == [
        "a story outline",
        "A STORY OUTLINE",
    ]
