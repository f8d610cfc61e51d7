"""log, show, cat, diff and reflog."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from ckpt.cli import output as out
from ckpt.cli.exits import ExitCode
from ckpt.history.job import Job
from ckpt.maintenance.retention import prune_job
from ckpt.repository import Repository

from .conftest import Run
from .terminal import run_on_terminal


def _ids(job: Job) -> list[str]:
    job.refresh()
    return [c.id for c in job.log()]


def test_log_shows_every_checkpoint_newest_first(run: Run, novel: Job) -> None:
    commits = novel.log()
    result = run("log", "novel")
    assert result.exit_code == 0
    expected: list[str] = []
    totals = {
        "chapters": ("$1.25, 40,000", "$2.00, 43,000"),
        "characters": ("$0.50, 2,000", "$0.75, 3,000"),
        "outline": ("$0.25, 1,000", "$0.25, 1,000"),
    }
    for index, commit in enumerate(commits):
        head = f"commit {commit.short_id}" + (" (HEAD -> main)" if index == 0 else "")
        stage_cost, total = totals[str(commit.stage)]
        expected += [
            head,
            f"Stage:  {commit.stage}",
            f"Date:   {out.timestamp(commit.time)} ({out.relative_time(commit.time)})",
            f"Cost:   {stage_cost} tokens (total {total} tokens)",
            "",
            f"    {commit.stage} done",
        ]
        if index < len(commits) - 1:
            expected.append("")
    assert result.stdout == "\n".join(expected) + "\n"
    assert result.stderr == ""


def test_log_oneline_limit_and_revision(run: Run, novel: Job) -> None:
    chapters, characters, outline = novel.log()
    result = run("log", "novel", "--oneline")
    when = out.relative_time(chapters.time).ljust(15)
    assert result.stdout.splitlines()[0] == (
        f"{chapters.short_id} chapters       $1.25 {when} (HEAD -> main) chapters done"
    )
    assert len(result.stdout.splitlines()) == 3
    limited = run("log", "novel", "--oneline", "-n", "1")
    assert len(limited.stdout.splitlines()) == 1
    from_rev = run("log", "novel", "HEAD~1", "--oneline")
    assert [line.split()[0] for line in from_rev.stdout.splitlines()] == [
        characters.short_id,
        outline.short_id,
    ]


def test_log_json(run: Run, novel: Job) -> None:
    result = run("log", "novel", "--json")
    doc = json.loads(result.stdout)
    assert doc["job"] == "novel"
    assert [c["id"] for c in doc["commits"]] == _ids(novel)
    head = doc["commits"][0]
    assert head["refs"] == ["HEAD -> main"]
    assert head["stage"] == "chapters"
    assert head["total_tokens"] == 43000
    assert head["cut"] is False


def test_log_all_graph_draws_a_fork(run: Run, novel: Job) -> None:
    outline = novel.resolve("outline")
    novel.checkout(outline.id, new_branch="alt")
    alt = novel.save("characters", ["Someone else"], cost=0.1)
    novel.tag("v1", "main")
    result = run("log", "novel", "--all", "--graph", "--oneline")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    # alt's commit is the newest; main's two commits run beside it, then join at outline.
    # Every row's id starts in the same column, whatever the graph beside it.
    chapters, characters = novel.log("main", limit=2)
    assert [line[:17] for line in lines] == [
        f"*   {alt.short_id} ",
        f"| * {chapters.short_id} ",
        f"| * {characters.short_id} ",
        "|/",
        f"*   {outline.short_id} ",
    ]
    assert "(HEAD -> alt)" in lines[0]
    assert "(main, tag: v1)" in lines[1]
    assert len({line.index("$") for line in lines if "$" in line}) == 1  # costs aligned


def test_log_graph_indents_the_last_commit_and_the_cut_like_the_others(
    run: Run, novel: Job
) -> None:
    prune_job(novel, 2)
    head, cut = novel.log()
    lines = run("log", "novel", "--graph").stdout.splitlines()
    assert lines == [
        f"* commit {head.short_id} (HEAD -> main)",
        "| Stage:  chapters",
        f"| Date:   {out.timestamp(head.time)} ({out.relative_time(head.time)})",
        "| Cost:   $1.25, 40,000 tokens (total $2.00, 43,000 tokens)",
        "|",
        "|     chapters done",
        "|",
        f"* commit {cut.short_id}",
        "  Stage:  characters",
        f"  Date:   {out.timestamp(cut.time)} ({out.relative_time(cut.time)})",
        "  Cost:   $0.50, 2,000 tokens (total $0.75, 3,000 tokens)",
        "",
        "      characters done",
        "  (history before this checkpoint was removed by retention)",
    ]


def test_log_says_where_retention_cut_history(run: Run, novel: Job) -> None:
    prune_job(novel, 2)
    result = run("log", "novel", "--oneline")
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[2] == "(history before this checkpoint was removed by retention)"
    doc = json.loads(run("log", "novel", "--json").stdout)
    assert [c["cut"] for c in doc["commits"]] == [False, True]


def test_log_rev_and_all_together_is_a_usage_error(run: Run, novel: Job) -> None:
    result = run("log", "novel", "HEAD", "--all")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == "Error: give either REV or --all, not both\n"


def test_show_one_checkpoint(run: Run, novel: Job) -> None:
    commit = novel.resolve("characters")
    result = run("show", "novel", "characters")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"commit {commit.id}"
    assert lines[1:9] == [
        "Job:      novel",
        "Branch:   main",
        f"Parents:  {commit.parent[:12] if commit.parent else ''}",
        f"Date:     {out.timestamp(commit.time)} ({out.relative_time(commit.time)})",
        "Stage:    characters",
        "Cost:     $0.50, 2,000 tokens (this stage)",
        "Total:    $0.75, 3,000 tokens",
        "Status:   active",
    ]
    assert lines[9] == "Message:  characters done"
    assert lines[-3:] == [
        "     STAGE       TYPE  SIZE",
        "     outline     dict  29 B",
        "  +  characters  list  15 B",
    ]


def test_show_tells_a_person_what_a_run_recorded_and_keeps_internals_for_json(
    run: Run, repo: Repository
) -> None:
    import ckpt

    pipeline = ckpt.Pipeline(store=repo)

    @pipeline.stage
    def outline(input: dict[str, str]) -> dict[str, str]:
        return {"title": input["title"]}

    @pipeline.stage
    def chapters(outline: dict[str, str]) -> list[str]:
        raise TimeoutError("API timeout after 120 s")

    with pytest.raises(TimeoutError):
        pipeline.run("novel", {"title": "Vell"})
    job = repo.job("novel")
    job.set_labels(team="fiction", model="m-2")
    failed = job.resolve()
    shown = run("show", "novel")
    assert shown.exit_code == 0
    run_id = failed.meta["pipeline"]["run"]  # type: ignore[index]
    assert shown.stdout.splitlines()[1:14] == [
        "Job:      novel",
        "Branch:   main",
        f"Parents:  {failed.parents[0][:12]}",
        f"Date:     {out.timestamp(failed.time)} ({out.relative_time(failed.time)})",
        "Stage:    [failed]",
        "Cost:     $0.00, 0 tokens (this stage)",
        "Total:    $0.00, 0 tokens",
        "Status:   failed",
        "Message:  failed: API timeout after 120 s",
        f"Run:      {run_id}, 1 of 2 stages done",
        "Error:    TimeoutError: API timeout after 120 s (in stage chapters)",
        "Labels:   model=m-2, team=fiction",
        "",
    ]
    assert "base_cost" not in shown.stdout  # the runner's bookkeeping stays in --json
    doc = json.loads(run("show", "novel", "--json").stdout)
    assert doc["commit"]["meta"]["pipeline"]["base_cost"] == 0.0


def test_show_lists_user_metadata_one_key_a_line_cut_to_fit(run: Run, repo: Repository) -> None:
    job = repo.job("novel")
    job.save("outline", {"n": 1}, meta={"prompt": "Write " * 30, "temperature": 0.7})
    lines = run("show", "novel").stdout.splitlines()
    assert lines[9:12] == [
        'Metadata: prompt: "Write Write Write Write Write Write Write Write Write Write Wr…',
        "          temperature: 0.7",
        "(cut values are whole in `ckpt show --json`)",
    ]


def test_show_json(run: Run, novel: Job) -> None:
    doc = json.loads(run("show", "novel", "--json").stdout)
    assert doc["commit"]["refs"] == ["HEAD -> main"]
    assert [(s["name"], s["change"]) for s in doc["stages"]] == [
        ("outline", None),
        ("characters", None),
        ("chapters", "added"),
    ]
    assert doc["stages"][0]["type"] == "dict"


def test_cat_prints_pretty_json(run: Run, novel: Job) -> None:
    result = run("cat", "novel", "outline")
    assert result.exit_code == 0
    assert result.stdout == '{\n  "chapters": 3,\n  "title": "Vell"\n}\n'
    older = run("cat", "novel", "HEAD~2", "outline")
    assert older.stdout == result.stdout


def test_cat_raw_writes_the_canonical_bytes(run: Run, novel: Job) -> None:
    result = run("cat", "novel", "outline", "--raw")
    assert result.stdout_bytes == novel.load_raw("outline")
    assert result.stdout_bytes == b'{"chapters":3,"title":"Vell"}'


def test_cat_binary_stage_needs_raw(run: Run, novel: Job) -> None:
    novel.save("cover", b"\x89PNG\r\n\x1a\n")
    head = novel.resolve()
    result = run("cat", "novel", "cover")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith(
        "Error: stage 'cover' holds 8 bytes of binary data; add --raw to write them (ckpt --store "
    )
    assert result.stderr.endswith(f"cat novel {head.short_id} cover --raw > FILE)\n")
    assert run("cat", "novel", "cover", "--raw").stdout_bytes == b"\x89PNG\r\n\x1a\n"


def test_cat_missing_stage(run: Run, novel: Job) -> None:
    head = novel.resolve()
    result = run("cat", "novel", "ending")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr == (
        f"Error: job 'novel' has no stage 'ending' at {head.short_id} "
        "(stages: outline, characters, chapters)\n"
    )


@pytest.mark.parametrize("word", ["HEAD", "HEAD~1", "lyrical"])
def test_cat_of_a_revision_without_its_stage_says_so(
    run: Run, novel: Job, store: Path, word: str
) -> None:
    novel.tag("lyrical", "HEAD~1")
    commit = novel.resolve(word)
    stages = ", ".join(novel.stages(commit.id))
    result = run("cat", "novel", word)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == (
        f"Error: {word} is a checkpoint ({commit.short_id}), not a stage: give the stage after "
        f"it, as in `ckpt --store {store} cat novel {shlex.quote(word)} STAGE` "
        f"(its stages: {stages})\n"
    )


def test_cat_argument_count(run: Run, novel: Job) -> None:
    result = run("cat", "novel", "HEAD", "outline", "extra")
    assert result.exit_code == ExitCode.USAGE
    assert "Error: expected [REV] STAGE after JOB" in result.stderr


def test_diff_lists_stages_and_value_diffs(run: Run, novel: Job) -> None:
    novel.save("characters", ["Ida", "Tomas", "Vell"], cost=0.5)
    old = novel.resolve("HEAD~2")
    new = novel.resolve()
    result = run("diff", "novel", "HEAD~2")
    assert result.exit_code == 0
    assert result.stdout == "\n".join(
        [
            f"diff novel {old.short_id}..{new.short_id}",
            "   STAGE       TYPE  SIZE",
            "M  characters  list  15 B -> 22 B",
            "A  chapters    list  43 B",
            "",
            "--- a/characters",
            "+++ b/characters",
            "@@ -1,4 +1,5 @@",
            " [",
            '   "Ida",',
            '-  "Tomas"',
            '+  "Tomas",',
            '+  "Vell"',
            " ]",
            "",
            "--- /dev/null",
            "+++ b/chapters",
            "@@ -0,0 +1,10 @@",
            "+[",
            "+  {",
            '+    "n": 1,',
            '+    "words": 2400',
            "+  },",
            "+  {",
            '+    "n": 2,',
            '+    "words": 2750',
            "+  }",
            "+]",
            "",
        ]
    )


def test_diff_one_stage_between_two_revisions(run: Run, novel: Job) -> None:
    novel.save("characters", ["Ida"], cost=0.5)
    two_args = run("diff", "novel", "HEAD~1", "characters")
    three_args = run("diff", "novel", "HEAD~1", "HEAD", "characters")
    assert two_args.stdout == three_args.stdout
    assert "M  characters" in two_args.stdout
    assert "chapters" not in two_args.stdout
    stat = run("diff", "novel", "HEAD~1", "characters", "--stat")
    assert "---" not in stat.stdout


def test_diff_without_changes(run: Run, novel: Job) -> None:
    head = novel.resolve()
    result = run("diff", "novel", "HEAD", "HEAD")
    assert result.stdout == f"no stage differs between {head.short_id} and {head.short_id}\n"
    same_stage = run("diff", "novel", "HEAD~1", "outline")
    assert same_stage.stdout.startswith("stage 'outline' is the same between ")


def test_diff_json_and_removed_stage(run: Run, novel: Job, repo: object) -> None:
    other = novel.repo.job("novel")
    doc = json.loads(run("diff", "novel", "HEAD", "outline~0", "--json").stdout)
    assert doc["old"] == other.resolve().id
    assert [(c["stage"], c["change"]) for c in doc["changes"]] == [
        ("characters", "removed"),
        ("chapters", "removed"),
    ]
    assert doc["changes"][0]["new"] is None
    assert doc["changes"][0]["diff"][0] == "--- a/characters"


def test_diff_unknown_stage(run: Run, novel: Job) -> None:
    old, new = novel.resolve("HEAD~1"), novel.resolve()
    result = run("diff", "novel", "HEAD~1", "HEAD", "ending")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr == (
        f"Error: job 'novel' has no stage 'ending' at {old.short_id} or {new.short_id}\n"
    )


def test_reflog(run: Run, novel: Job) -> None:
    first = novel.resolve("outline")
    novel.checkout("outline")
    result = run("reflog", "novel")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["WHEN", "REF", "FROM", "TO", "REASON"]
    assert len(lines) == 5
    assert lines[1].endswith(f"checkout: main to {first.short_id}")
    assert lines[-1].split()[-5:] == ["main", "-", first.short_id, "save:", "outline"]
    limited = json.loads(run("reflog", "novel", "-n", "2", "--json").stdout)
    assert [e["reason"] for e in limited["entries"]] == [
        f"checkout: main to {first.short_id}",
        "save: chapters",
    ]
    assert limited["entries"][0]["ref"] == "refs/heads/main"


def _strict(text: str) -> object:
    """``json.loads`` that refuses the NaN and Infinity literals JSON does not have."""

    def refuse(literal: str) -> object:
        raise ValueError(f"not JSON: {literal}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_print_as_valid_json(run: Run, repo: Repository) -> None:
    job = repo.job("floats")
    job.save("scores", {"nan": float("nan"), "up": float("inf"), "down": [float("-inf"), 1.5]})
    job.save(
        "scores",
        {"nan": 0.5, "up": float("inf"), "down": [float("-inf"), 1.5]},
        meta={"loss": float("nan")},
    )
    printed = run("cat", "floats", "HEAD~1", "scores")
    assert printed.stdout == (
        '{\n  "down": [\n    "-Infinity",\n    1.5\n  ],\n  "nan": "NaN",\n  "up": "Infinity"\n}\n'
    )
    assert _strict(printed.stdout) == {"down": ["-Infinity", 1.5], "nan": "NaN", "up": "Infinity"}
    assert run("cat", "floats", "HEAD~1", "scores", "--raw").stdout == (
        '{"down":[-Infinity,1.5],"nan":NaN,"up":Infinity}'
    )  # the stored canonical bytes keep the floats themselves
    logged = _strict(run("log", "floats", "--json").stdout)
    assert isinstance(logged, dict) and logged["commits"][0]["meta"] == {"loss": "NaN"}
    diffed = run("diff", "floats", "HEAD~1", "HEAD", "--json")
    assert diffed.exit_code == 0
    assert '-  "nan": "NaN",' in _strict(diffed.stdout)["changes"][0]["diff"]  # type: ignore[index]


CHAPTER = "Line one.\nLine two.\nLine three."


def test_cat_text_prints_a_string_as_itself(run: Run, repo: Repository) -> None:
    repo.job("book").save("chapter", CHAPTER)
    assert run("cat", "book", "chapter").stdout == '"Line one.\\nLine two.\\nLine three."\n'
    assert run("cat", "book", "chapter", "--text").stdout == CHAPTER  # exactly the string
    refused = run("cat", "book", "chapter", "--text", "--raw")
    assert refused.exit_code == ExitCode.USAGE
    assert refused.stderr == "Error: give either --raw or --text, not both\n"


def test_cat_text_refuses_what_is_not_a_string(run: Run, novel: Job) -> None:
    result = run("cat", "novel", "outline", "--text")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == (
        "Error: stage 'outline' holds an object, not a string: --text prints string values "
        "only (leave it out to print JSON)\n"
    )


def test_cat_on_a_terminal_prints_a_string_as_text(store: Path, repo: Repository) -> None:
    repo.job("book").save("chapter", CHAPTER)
    repo.job("book").save("outline", {"chapters": 3})
    shown, status = run_on_terminal(["--store", str(store), "cat", "book", "chapter"], cwd=store)
    assert (shown, status) == (CHAPTER + "\n", 0)
    as_json, _ = run_on_terminal(
        ["--store", str(store), "cat", "book", "chapter", "--no-text"], cwd=store
    )
    assert as_json == '"Line one.\\nLine two.\\nLine three."\n'
    other, _ = run_on_terminal(["--store", str(store), "cat", "book", "outline"], cwd=store)
    assert other == '{\n  "chapters": 3\n}\n'


def test_diff_of_string_values_is_line_by_line(run: Run, repo: Repository) -> None:
    job = repo.job("book")
    job.save("chapter", CHAPTER)
    job.save("chapter", CHAPTER.replace("two", "2"))
    result = run("diff", "book", "HEAD~1")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[4:] == [
        "--- a/chapter",
        "+++ b/chapter",
        "@@ -1,3 +1,3 @@",
        " Line one.",
        "-Line two.",
        "+Line 2.",
        " Line three.",
    ]
    as_json = run("diff", "book", "HEAD~1", "--no-text")
    assert as_json.stdout.splitlines()[-2:] == [
        '-"Line one.\\nLine two.\\nLine three."',
        '+"Line one.\\nLine 2.\\nLine three."',
    ]
