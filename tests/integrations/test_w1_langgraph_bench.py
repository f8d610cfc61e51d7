"""bench/w1_langgraph.py runs end to end on a few steps (its figures are for bench/, not here)."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph.checkpoint.sqlite", reason="needs langgraph-checkpoint-sqlite")
pytest.importorskip("aiosqlite", reason="needs aiosqlite")
pytest.importorskip("bench.common", reason="bench/common.py is not here")

from bench import w1_langgraph


def test_every_row_of_the_issue_is_a_ratio_with_its_target() -> None:
    section = w1_langgraph.run(steps=4, rounds=1)
    rows = {row.what: row for row in section.rows}
    for what in (
        "whole run, graph.invoke (sync)",
        "put latency at step 4",
        "get_state, warm",
        "get_state, cold (open + load)",
        "get_state_history, whole thread",
        "whole run, await graph.ainvoke",
    ):
        row = rows[f"LangGraph: {what}"]
        assert row.target == 1.0 and len(row.values) == 1 and row.values[0] > 0
    assert rows["LangGraph: bytes stored"].target == 4.0
    assert rows["LangGraph: whole run, await graph.ainvoke"].baseline == "AsyncSqliteSaver"


def test_fsyncs_are_counted_where_strace_runs() -> None:
    count = w1_langgraph.fsyncs_per_step("ckpt", 2, 4)
    if count is None:
        pytest.skip("strace cannot run here")
    assert count > 0
