"""bench/w1_langgraph.py runs end to end on a few steps (its figures are for bench/, not here)."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph.checkpoint.sqlite", reason="needs langgraph-checkpoint-sqlite")
pytest.importorskip("bench.common", reason="bench/common.py is not here")
pytest.importorskip("bench.messages", reason="bench/messages.py is not here")

from bench import w1_langgraph


def test_rows_compare_both_savers_on_the_same_run() -> None:
    found = w1_langgraph.rows(steps=4, seed=3)
    assert [r["saver"] for r in found] == [
        "CkptSaver (local store)",
        "CkptSaver (local, durable=False)",
        "SqliteSaver",
    ]
    for row in found:
        assert row["steps"] == 4 and row["checkpoints"] == 6  # input, 4 steps, the end
        assert row["stored_bytes"] > 0 and row["disk_bytes"] > 0
        for what in ("put", "put_writes", "get_latest", "get_by_id"):
            assert 0 < row[f"{what}_p10"] <= row[f"{what}_median"] <= row[f"{what}_p90"]
    assert "SqliteSaver" in w1_langgraph.table(found)
