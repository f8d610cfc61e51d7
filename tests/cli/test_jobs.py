"""jobs, status and watch."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

import ckpt
from ckpt.cli import output as out
from ckpt.cli.exits import ExitCode
from ckpt.history.job import Job
from ckpt.maintenance.stats import job_sizes
from ckpt.repository import Repository

from .conftest import Run, save_stages


def test_jobs_table(run: Run, novel: Job, repo: Repository) -> None:
    draft = repo.job("draft")
    save_stages(draft, ["outline"])
    draft.complete()
    sizes = job_sizes(repo)
    when = out.relative_time(novel.resolve().time)
    draft_row = ["draft", "completed", "main", "1", "$0.25", "1,000", *when.split()]
    novel_row = ["novel", "active", "main", "3", "$2.00", "43,000", *when.split()]
    result = run("jobs")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "BRANCH", "STAGES", "COST", "TOKENS", "UPDATED"]
    assert lines[1].split() == draft_row
    assert lines[2].split() == novel_row
    measured = run("jobs", "--sizes")
    assert measured.exit_code == 0
    lines = measured.stdout.splitlines()
    assert lines[0].split()[-1] == "SIZE"
    assert lines[1].split() == [*draft_row, *out.size(sizes["draft"].stored_bytes).split()]
    assert lines[2].split() == [*novel_row, *out.size(sizes["novel"].stored_bytes).split()]


def test_jobs_json_sizes_only_when_asked(run: Run, novel: Job, repo: Repository) -> None:
    plain = json.loads(run("jobs", "--json").stdout)
    assert [(j["name"], j["size"]) for j in plain["jobs"]] == [("novel", None)]
    measured = json.loads(run("jobs", "--json", "--sizes").stdout)
    assert measured["jobs"][0]["size"] == job_sizes(repo)["novel"].stored_bytes > 0


def test_jobs_filters_and_json(run: Run, novel: Job, repo: Repository) -> None:
    draft = repo.job("draft")
    save_stages(draft, ["outline"])
    draft.set_labels(team="fiction")
    draft.fail("boom", stage="characters")
    failed = json.loads(run("jobs", "--status", "failed", "--json").stdout)
    assert [j["name"] for j in failed["jobs"]] == ["draft"]
    assert failed["jobs"][0]["labels"] == {"team": "fiction"}
    both = json.loads(run("jobs", "--status", "failed", "--status", "active", "--json").stdout)
    assert [j["name"] for j in both["jobs"]] == ["draft", "novel"]
    tagged = run("jobs", "--tag", "team=fiction")
    assert [line.split()[0] for line in tagged.stdout.splitlines()[1:]] == ["draft"]
    assert run("jobs", "--tag", "team=poetry").stdout == "No jobs match.\n"
    bad = run("jobs", "--tag", "team")
    assert bad.exit_code == ExitCode.ERROR
    assert bad.stderr == "Error: label 'team' is not KEY=VALUE\n"
    wrong_status = run("jobs", "--status", "done")
    assert wrong_status.exit_code == ExitCode.USAGE


def test_jobs_in_an_empty_store(run: Run) -> None:
    result = run("jobs")
    assert result.stdout == (
        "No jobs yet: a pipeline creates one with its first save (try `ckpt demo`).\n"
    )
    assert json.loads(run("jobs", "--json").stdout) == {"jobs": []}


def test_status_of_a_failed_job(run: Run, novel: Job) -> None:
    failed = novel.fail(TimeoutError("API timeout"), stage="edit")
    result = run("status", "novel")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "novel: failed on branch main",
        "Progress:  3 stages done: outline, characters, chapters",
        "Cost:      $2.00, 43,000 tokens",
        f"Last:      {failed.short_id} [failed], {out.relative_time(failed.time)}",
        "Failed:    at stage edit: API timeout",
        "Next run:  resumes after stage chapters (skips outline, characters, chapters)",
    ]
    doc = json.loads(run("status", "novel", "--json").stdout)
    assert doc["status"] == "failed"
    assert doc["failed_stage"] == "edit"
    assert doc["resume_after"] == "chapters"
    assert doc["stages_done"] == ["outline", "characters", "chapters"]


def test_status_of_a_completed_job(run: Run, novel: Job, store: Path) -> None:
    novel.complete()
    lines = run("status", "novel").stdout.splitlines()
    assert lines[0] == "novel: completed on branch main"
    assert lines[-1] == (
        "Next run:  nothing left to do (completed); to redo from a stage: "
        f"ckpt --store {store} checkout novel STAGE"
    )


def test_watch_a_finished_job(run: Run, novel: Job) -> None:
    novel.complete()
    result = run("watch", "novel")
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "Watching novel (completed, 3 stages done, $2.00); Ctrl-C to stop.\n"
        "novel: completed on branch main\n"
    )


def test_watch_a_failed_job_exits_1(run: Run, novel: Job) -> None:
    novel.fail(TimeoutError("API timeout"), stage="edit")
    result = run("watch", "novel")
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr == "Error: job novel failed at stage edit: API timeout\n"


def test_watch_follows_a_running_job(run: Run, store: Path, repo: Repository) -> None:
    job = repo.job("novel")
    save_stages(job, ["outline"])
    started = threading.Event()

    def pipeline() -> None:
        with ckpt.open(store) as other:
            writer = other.job("novel")
            started.wait(10)
            for stage in ("characters", "chapters"):
                time.sleep(0.2)
                save_stages(writer, [stage])
            time.sleep(0.2)
            writer.complete(message="all done")

    thread = threading.Thread(target=pipeline)
    thread.start()
    try:
        started.set()
        result = run("watch", "novel", "--interval", "0.05", "--timeout", "30s")
    finally:
        thread.join()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Watching novel (active, 1 stage done, $0.25); Ctrl-C to stop."
    assert lines[1].split() == ["+", "characters", "$0.50", "2,000", "tokens", "total", "$0.75"]
    assert lines[2].split() == ["+", "chapters", "$1.25", "40,000", "tokens", "total", "$2.00"]
    assert lines[3] == "  completed all done"
    assert lines[4] == "novel: completed on branch main"


def test_watch_gives_up_after_the_timeout(run: Run, novel: Job) -> None:
    result = run("watch", "novel", "--interval", "0.05", "--timeout", "0.2s")
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr == "Error: stopped watching novel after 0.2s: it is still active\n"
    bad = run("watch", "novel", "--timeout", "soon")
    assert bad.exit_code == ExitCode.USAGE
    assert bad.stderr.startswith("Error: invalid duration 'soon': use a number and a unit")


def test_a_damaged_job_is_listed_and_the_command_exits_5(
    run: Run, novel: Job, repo: Repository, store: Path
) -> None:
    from .conftest import corrupt_object

    head = repo.job("broken").save("only", {"x": 1})
    corrupt_object(store, repo, head.id)
    result = run("jobs")
    assert result.exit_code == ExitCode.DAMAGED
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert rows == {"broken": "damaged", "novel": "active"}
    assert result.stderr.startswith(f"Error: job broken is damaged: object {head.id} is corrupt")
    assert result.stderr.endswith("; `ckpt verify` names the last good checkpoints\n")
    listed = run("jobs", "--json")
    assert listed.exit_code == ExitCode.DAMAGED
    doc = {j["name"]: j for j in json.loads(listed.stdout)["jobs"]}
    assert doc["broken"]["status"] == "damaged"
    assert head.id in doc["broken"]["damage"]
    assert doc["novel"]["damage"] is None


def test_status_blames_the_damaged_stage_not_its_reader(
    run: Run, repo: Repository, store: Path
) -> None:
    from ckpt.errors import CorruptObjectError
    from ckpt.pipeline.runner import Pipeline

    from .conftest import corrupt_object

    attempts: list[str] = []

    def outline(input: str) -> str:
        return input + " outline"

    def chapters(outline: str) -> str:
        attempts.append(outline)
        if len(attempts) == 1:
            raise TimeoutError("API timeout")
        return outline * 2

    pipeline = Pipeline([outline, chapters], store=repo)
    with pytest.raises(TimeoutError):
        pipeline.run("novel", "a story")
    job = repo.job("novel")
    corrupt_object(store, repo, job.tree().get("outline").id)  # type: ignore[union-attr]
    with pytest.raises(CorruptObjectError) as raised:
        pipeline.run("novel", "a story")
    # The error names where the damaged object was reached, and the failure is the
    # damaged stage's, not that of the stage that was reading it (21.14).
    assert (raised.value.job, raised.value.stage) == ("novel", "outline")
    doc = json.loads(run("status", "novel", "--json").stdout)
    assert doc["failed_stage"] == "outline"
    failed = ckpt.open(store).job("novel").head
    assert failed is not None and failed.meta["read_by"] == "chapters"
    assert "at stage outline: job 'novel', commit " in run("status", "novel").stdout
