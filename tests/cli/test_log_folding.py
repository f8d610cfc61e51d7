"""``ckpt log`` folds internal commits (partial checkpoints, failed attempts, LangGraph's
pending writes) and names LangGraph checkpoints by node and step."""

from __future__ import annotations

from typing import Any

import pytest

import ckpt
from ckpt.pipeline.runner import StageContext
from ckpt.repository import Repository

from .conftest import Run


class Crash(RuntimeError):
    pass


def _run_with_partials(repo: Repository, *, crash: bool) -> None:
    pipeline = ckpt.Pipeline(store=repo)

    @pipeline.stage
    def outline(input: dict[str, int]) -> list[int]:
        return list(range(input["n"]))

    @pipeline.stage
    def chapters(outline: list[int], ctx: StageContext) -> list[str]:
        done: list[str] = ctx.partial(default=[])
        for n in outline[len(done) :]:
            done.append(f"chapter {n}")
            ctx.checkpoint(done, force=True)
            if crash and len(done) == 2:
                raise Crash("the model went away")
        return done

    pipeline.run("novel", {"n": 3})


@pytest.fixture
def resumed(repo: Repository) -> ckpt.Job:
    """Job ``novel``: a run that checkpointed two chapters and crashed, then the run that
    resumed it and finished."""
    with pytest.raises(Crash):
        _run_with_partials(repo, crash=True)
    _run_with_partials(repo, crash=False)
    return repo.job("novel")


def _labels(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if not line.startswith("(")]


def test_partial_checkpoints_and_a_resumed_failure_are_folded(run: Run, resumed: ckpt.Job) -> None:
    result = run("log", "novel", "--oneline")
    assert result.exit_code == 0
    assert _labels(result.stdout) == ["[completed]", "chapters", "outline", "input"]
    assert result.stdout.splitlines()[-1] == (
        "(4 internal commits not shown: 3 partial checkpoints, 1 failed attempt; "
        "--all-commits shows them)"
    )
    every = run("log", "novel", "--oneline", "--all-commits").stdout
    assert _labels(every) == [
        "[completed]", "chapters", "chapters.partial", "[failed]", "chapters.partial",
        "chapters.partial", "outline", "input",
    ]  # fmt: skip
    assert not every.splitlines()[-1].startswith("(")
    # -n counts what is shown; --json lists every commit
    assert _labels(run("log", "novel", "--oneline", "-n", "3").stdout) == [
        "[completed]", "chapters", "outline",
    ]  # fmt: skip
    assert len(run("log", "novel", "--json").stdout.split('"stage":')) - 1 == 8


def test_a_failure_at_a_ref_stays_in_view(run: Run, repo: Repository) -> None:
    with pytest.raises(Crash):
        _run_with_partials(repo, crash=True)
    lines = run("log", "novel", "--oneline").stdout.splitlines()
    assert _labels("\n".join(lines)) == ["[failed]", "outline", "input"]
    assert "(HEAD -> main) failed: the model went away" in lines[0]
    assert lines[-1] == (
        "(2 internal commits not shown: 2 partial checkpoints; --all-commits shows them)"
    )


def test_the_graph_joins_across_folded_commits(run: Run, resumed: ckpt.Job) -> None:
    resumed.tag("draft", "stage:outline")
    lines = run("log", "novel", "--oneline", "--graph", "--all").stdout.splitlines()
    assert [line[:2] for line in lines[:-1]] == ["* ", "* ", "* ", "* "]
    assert "(tag: draft)" in lines[2]


def test_langgraph_checkpoints_show_by_node_and_step(run: Run, repo: Repository) -> None:
    pytest.importorskip("langgraph.graph", reason="needs pip install 'ckpt[langgraph]'")
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from ckpt.integrations.langgraph import CkptSaver

    class State(TypedDict):
        text: str

    def draft(state: State) -> dict[str, Any]:
        return {"text": state["text"] + " drafted"}

    def review(state: State) -> dict[str, Any]:
        return {"text": state["text"] + " reviewed"}

    graph = StateGraph(State)
    graph.add_node("draft", draft)
    graph.add_node("review", review)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "review")
    graph.add_edge("review", END)
    app = graph.compile(checkpointer=CkptSaver(repo))
    # durability="sync": every checkpoint is stored before invoke returns.
    app.invoke({"text": "a story"}, {"configurable": {"thread_id": "story"}}, durability="sync")

    result = run("log", "story", "--oneline")
    assert result.exit_code == 0
    # Each checkpoint carries the writes of the step that made it: no writes commits.
    labels = [line[13:32].rstrip() for line in result.stdout.splitlines()]
    assert labels == [
        "review (step 2)",
        "draft (step 1)",
        "__start__ (step 0)",
        "input (step -1)",
    ]
    every = run("log", "story", "--oneline", "--all-commits").stdout.splitlines()
    assert [line[13:32].rstrip() for line in every] == labels
