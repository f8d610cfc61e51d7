"""bench/backends.py runs on every backend and reports ratios to the local backend."""

from __future__ import annotations

import os

import pytest

from bench import backends


@pytest.mark.slow
def test_the_backend_bench_measures_every_backend() -> None:
    notes: list[str] = []
    found = backends.rows(repeats=1, ops=3, checkpoints=2, notes=notes)
    measured = {row["backend"] for row in found}
    if os.environ.get("CI"):
        assert measured == set(backends.BACKENDS), notes
    assert {"local", "memory", "sqlite"} <= measured
    for backend in measured:
        whats = [row["what"] for row in found if row["backend"] == backend]
        assert len(whats) == 4  # save and load latency, push and pull throughput
    for row in found:
        assert len(row["values"]) == 1 and row["values"][0] > 0
        if row["backend"] == "local":
            assert row["values"] == [1.0]
    assert "| push throughput, local -> local |" in backends.table(found)
