"""Stale stages: a checkpoint is only valid for the code, version, parameters and inputs that
made it.  A resumed run re-runs stale stages and what depends on them (or keeps them, or
refuses), says which and why, and `ckpt status` lists them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ckpt
from ckpt.pipeline.fingerprint import Fingerprint, find_stale, source_digest
from ckpt.pipeline.runner import Pipeline, StaleStagesError, StaleStageWarning
from ckpt.pipeline.stages import stage

from ._support import ckpt_status

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


def outline(input: int) -> list[int]:
    CALLS.append("outline")
    return list(range(input))


def chapters(outline: list[int]) -> list[str]:
    CALLS.append("chapters")
    return [f"chapter {n}" for n in outline]


def chapters_v2(outline: list[int]) -> list[str]:
    CALLS.append("chapters")
    return [f"Chapter {n + 1}" for n in outline]


def book(chapters: list[str]) -> str:
    CALLS.append("book")
    return " / ".join(chapters)


def cover(input: int) -> str:
    CALLS.append("cover")
    return f"cover of {input}"


def make(repo: ckpt.Repository, *stages: ckpt.Stage, **options: object) -> Pipeline:
    return Pipeline(stages, store=repo, **options)  # type: ignore[arg-type]


V1 = (stage(outline), stage(chapters), stage(book), stage(cover))


def test_changed_code_reruns_the_stage_and_what_takes_its_output(
    repo: ckpt.Repository,
) -> None:
    make(repo, *V1).run("novel", 3)
    CALLS.clear()
    changed = make(repo, stage(outline), stage(chapters_v2, name="chapters"), V1[2], V1[3])
    assert changed.stale("novel") == {
        "chapters": "code of 'chapters' changed",
        "book": "input 'chapters' is stale",
    }
    result = changed.run("novel")
    assert CALLS == ["chapters", "book"]  # cover does not take chapters: kept
    assert result.stale == {
        "chapters": "code of 'chapters' changed",
        "book": "input 'chapters' is stale",
    }
    assert result["book"] == "Chapter 1 / Chapter 2 / Chapter 3"
    assert result.skipped == ("outline", "cover")
    # The decision is recorded before anything runs, and the next run finds nothing stale.
    messages = [c.message for c in repo.job("novel").log()]
    assert any(
        m.startswith("stale, re-run: chapters (code of 'chapters' changed)") for m in messages
    )
    CALLS.clear()
    assert changed.run("novel").ran == ()
    assert CALLS == []


def test_inserting_a_stage_that_a_finished_stage_now_takes(repo: ckpt.Repository) -> None:
    """The case the issue starts from: `x` inserted before the finished `b`, which now takes it."""

    def a(input: int) -> int:
        return input + 1

    def b(a: int) -> int:
        return a * 10

    def x(a: int) -> int:
        return 5

    def b2(a: int, x: int) -> int:
        return a * 10 + x

    def c(b: int) -> int:
        return b + 1

    Pipeline([a, b, c], store=repo).run("job", 1)
    fresh = Pipeline([a, x, ("b", b2), c], store=repo)
    result = fresh.run("job")
    assert result.ran == ("x", "b", "c")
    assert result.stale["b"] == "parameters of 'b' changed (now takes 'x')"
    assert (
        result.output == 26 == Pipeline([a, x, ("b", b2), c]).run("n", 1, no_checkpoint=True).output
    )


def test_a_renamed_stage_makes_the_stages_that_take_it_stale(repo: ckpt.Repository) -> None:
    def a(input: int) -> int:
        return input + 1

    def b(a: int) -> int:
        return a * 2

    def renamed(a: int) -> int:
        return a * 3

    def c(b: int) -> int:
        return b

    def c2(renamed: int) -> int:
        return renamed

    Pipeline([a, b, ("c", c)], store=repo).run("job", 1)
    result = Pipeline([a, renamed, ("c", c2)], store=repo).run("job")
    assert result.ran == ("renamed", "c")
    assert result.stale == {
        "c": "parameters of 'c' changed (now takes 'renamed'; no longer takes 'b')"
    }
    assert result.output == 6


def test_keep_warns_and_records_them_and_error_refuses(repo: ckpt.Repository) -> None:
    make(repo, *V1).run("novel", 2)
    changed = make(repo, V1[0], stage(chapters_v2, name="chapters"), V1[2], V1[3])
    log_before = len(repo.job("novel").log())
    with pytest.raises(
        StaleStagesError, match=r"2 stages stale: chapters \(code of 'chapters'"
    ) as caught:
        changed.run("novel", stale="error")
    assert caught.value.stale == {
        "chapters": "code of 'chapters' changed",
        "book": "input 'chapters' is stale",
    }
    assert len(repo.job("novel").log()) == log_before  # refusing writes nothing
    CALLS.clear()
    with pytest.warns(StaleStageWarning, match="keeping stale stages"):
        kept = changed.run("novel", stale="keep")
    assert CALLS == []
    assert kept["book"] == "chapter 0 / chapter 1"
    assert kept.stale == {
        "chapters": "code of 'chapters' changed",
        "book": "input 'chapters' is stale",
    }
    assert ckpt_status(repo.location, "novel", as_json=True)["stale"] == kept.stale
    text = ckpt_status(str(repo.location), "novel")
    assert (
        "Stale:     chapters: code of 'chapters' changed\n"
        "           book: input 'chapters' is stale" in text
    )
    # Keeping again records nothing new; re-running clears them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StaleStageWarning)
        changed.run("novel", stale="keep")
    assert len(repo.job("novel").log()) == log_before + 2  # the first keep: stale, completed
    assert changed.run("novel").ran == ("chapters", "book")
    assert ckpt_status(repo.location, "novel", as_json=True)["stale"] == {}


def test_status_sees_a_changed_input_from_the_store_alone(repo: ckpt.Repository) -> None:
    make(repo, *V1).run("novel", 3)
    job = repo.job("novel")
    job.save("outline", [7, 8, 9])  # someone replaced an upstream result by hand
    assert ckpt_status(repo.location, "novel", as_json=True)["stale"] == {
        "chapters": "input 'outline' changed",
        "book": "input 'chapters' is stale",
    }
    CALLS.clear()
    result = make(repo, *V1).run("novel")
    assert CALLS == ["chapters", "book"]
    assert result["book"] == "chapter 7 / chapter 8 / chapter 9"


def test_a_stage_that_changes_with_the_same_output_still_reruns_its_dependents(
    repo: ckpt.Repository,
) -> None:
    """Everything downstream of a stale stage is stale: predictable, and a model's output is
    rarely the same twice anyway."""
    make(repo, *V1).run("novel", 2)

    def outline_v2(input: int) -> list[int]:  # same output, other code
        return [n for n in range(input)]

    CALLS.clear()
    make(repo, stage(outline_v2, name="outline"), *V1[1:]).run("novel")
    assert CALLS == ["chapters", "book"]


# -- code, version, whitespace and comments, in real processes ----------------------------

SCRIPT = """
import json, sys
import ckpt

pipeline = ckpt.Pipeline(store=sys.argv[1])
ran = []

@pipeline.stage
def draft(input: str) -> str:
    ran.append("draft")
    return input.upper()

@pipeline.stage{review_options}
def review(draft: str) -> str:
    ran.append("review")
{review_body}

@pipeline.stage
def publish(review: str) -> str:
    ran.append("publish")
    return "[" + review + "]"

result = pipeline.run("job", "tale")
print(json.dumps({{"ran": ran, "stale": result.stale, "output": result.output}}))
"""


def run_script(tmp_path: Path, review_body: str, review_options: str = "") -> dict[str, object]:
    script = tmp_path / "story.py"
    body = textwrap.indent(textwrap.dedent(review_body).strip("\n"), "    ")
    script.write_text(SCRIPT.format(review_body=body, review_options=review_options))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_real_program_edited_between_runs(tmp_path: Path) -> None:
    first = run_script(tmp_path, "return draft + '!'")
    assert first["ran"] == ["draft", "review", "publish"]
    # Comments, blank lines, a docstring and another layout are not a change of code.
    same = run_script(
        tmp_path,
        """
        '''Review the draft.'''
        # shout a little
        return (draft
                + '!')   # done
        """,
    )
    assert same == {"ran": [], "stale": {}, "output": "[TALE!]"}
    edited = run_script(tmp_path, "return draft + '?'")
    assert edited["ran"] == ["review", "publish"]
    assert edited["stale"] == {
        "review": "code of 'review' changed",
        "publish": "input 'review' is stale",
    }
    # With a declared version, the version decides: code edits alone keep the checkpoint...
    versioned = run_script(tmp_path, "return draft + '?'", '(version="1")')
    assert versioned["stale"] == {
        "review": "version of 'review' changed (None -> '1')",
        "publish": "input 'review' is stale",
    }
    kept = run_script(tmp_path, "return draft + '?!'", '(version="1")')
    assert kept == {"ran": [], "stale": {}, "output": "[TALE?]"}
    # ... and a new version re-runs it.
    bumped = run_script(tmp_path, "return draft + '?!'", '(version="2")')
    assert bumped["ran"] == ["review", "publish"]
    assert bumped["stale"]["review"] == "version of 'review' changed ('1' -> '2')"
    assert bumped["output"] == "[TALE?!]"
    assert "Stale:" not in ckpt_status(tmp_path / "store", "job")


# -- properties --------------------------------------------------------------------------

BASE = """
def review(draft: str, notes: list[str]) -> str:
    total = 0
    for note in notes:
        if note:
            total += len(note)
    return draft + str(total)
"""


@st.composite
def reformatted(draw: st.DrawFn) -> str:
    """BASE with comments, blank lines, a docstring, extra spaces and another indent width."""
    indent = " " * draw(st.integers(min_value=1, max_value=8))
    lines = []
    for line in BASE.strip("\n").splitlines():
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 4
        spaced = stripped.replace(" = ", draw(st.sampled_from([" = ", "=", "  =   "])))
        comment = draw(st.sampled_from(["", "  # note", "# x = 1"]))
        if comment.startswith("#") and not stripped:
            comment = ""
        lines.append(
            indent * depth + spaced + (" " + comment if comment.startswith("#") else comment)
        )
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", indent * depth + "# a comment line"])))
        if stripped.startswith("def ") and draw(st.booleans()):
            lines.append(indent + '"""A docstring."""')
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(reformatted())
def test_whitespace_comments_and_docstrings_do_not_change_the_digest(source: str) -> None:
    assert source_digest(source, "review") == source_digest(BASE, "review")


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["total += len(note)", "return draft + str(total)", "if note:"]),
    st.sampled_from(["total -= len(note)", "return draft + repr(total)", "if not note:"]),
)
def test_a_change_of_code_changes_the_digest(old: str, new: str) -> None:
    changed = BASE.replace(old, new)
    if changed != BASE:
        assert source_digest(changed, "review") != source_digest(BASE, "review")


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    count = draw(st.integers(min_value=1, max_value=9))
    order = [f"s{i}" for i in range(count)]
    params = {
        name: tuple(sorted(draw(st.sets(st.sampled_from(["input", *order[:i]]), max_size=3))))
        for i, name in enumerate(order)
    }
    return order, params


@settings(max_examples=200, deadline=None)
@given(dags(), st.data())
def test_stale_is_every_changed_stage_and_all_that_depends_on_it(
    dag: tuple[list[str], dict[str, tuple[str, ...]]], data: st.DataObject
) -> None:
    order, params = dag
    changed = data.draw(st.sets(st.sampled_from(order)))
    ids = {name: f"{index:064x}" for index, name in enumerate(["input", *order])}
    recorded = {
        name: Fingerprint("c", None, params[name], {p: ids[p][:16] for p in params[name]})
        for name in order
    }
    from ckpt.pipeline.fingerprint import StageShape

    shapes = {
        name: StageShape(name, "changed" if name in changed else "c", None, params[name])
        for name in order
    }
    stale = find_stale(order, order, recorded, ids, shapes)
    expected = set(changed)
    for name in order:  # downstream closure, in order
        if any(p in expected for p in params[name]):
            expected.add(name)
    assert set(stale) == expected
    for name in changed:
        assert stale[name] == f"code of {name!r} changed"
