"""The benchmark suite runs end to end at tiny sizes (its figures are for bench/, not here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import run


def _document(tmp_path: Path, only: str) -> str:
    out = tmp_path / "benchmarks.md"
    assert run.main(["--tiny", "--only", only, "--out", str(out), "--notes", "/nonexistent"]) == 0
    return out.read_text()


def test_history_and_save_workloads_write_a_table(tmp_path: Path) -> None:
    text = _document(tmp_path, "W2,W3")
    assert text.startswith("# Benchmarks\n")
    assert "| W2 | save 1 KB (text) | (a) pickle.dump + fsync |" in text
    assert "| W3 | open + load latest, 30 commits | same, 3 commits |" in text
    assert "| W3 | jobs page API (`GET /api/jobs` of `ckpt ui`), 30 jobs |" in text
    assert "cores: " in text and "python: " in text


@pytest.mark.slow
def test_every_workload_runs(tmp_path: Path) -> None:
    text = _document(tmp_path, "W1,W4,W5,W6,WF")
    for row in (
        "| W1 | bytes stored | zstd(final state) |",
        "| W4 | verify --full throughput |",
        "| W6 | peak RSS loading | value size |",
        "| WF | save a 8.0 MB file (random) | cp + fsync |",
        "| WF | re-save with 1% of the bytes changed: bytes stored | file size |",
    ):
        assert row in text
    assert "W5" in text


def test_the_runner_overhead_rows(tmp_path: Path) -> None:
    text = _document(tmp_path, "W7")
    for row in (
        "| W7 | pipeline of 4 stages (10.00 ms each) | the functions called in a loop |",
        "| W7 | ctx.map over 10 items (5.00 ms each), max_concurrency=1 | a list comprehension |",
        "| W7 | ctx.map over 10 items (5.00 ms each), max_concurrency=8 | "
        "ThreadPoolExecutor(8).map |",
    ):
        assert row in text
    assert " per stage |" in text and " per item |" in text


def test_a_run_of_some_workloads_keeps_the_others(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    args = ["--tiny", "--out", str(out), "--notes", "/nonexistent"]
    assert run.main([*args, "--only", "W3"]) == 0
    first = out.read_text()
    assert run.main([*args, "--only", "W5"]) == 0
    text = out.read_text()
    w3_rows = [line for line in first.splitlines() if line.startswith("| W3 |")]
    assert w3_rows and all(line in text for line in w3_rows)  # kept, as measured
    assert "| W5 | ckpt --help |" in text
    assert "## Targets" in text and "| W5 | ckpt --help | ≤ 1.50 |" in text
    assert (tmp_path / "benchmarks.json").is_file()
    notes = tmp_path / "notes.md"
    notes.write_text("## Reading the results\n")
    assert run.main(["--rewrite", "--out", str(out), "--notes", str(notes)]) == 0
    rewritten = out.read_text()
    assert all(line in rewritten for line in w3_rows) and "| W5 | ckpt --help |" in rewritten
    assert rewritten.endswith("## Reading the results\n")


def test_unknown_workload_is_refused() -> None:
    with pytest.raises(SystemExit):
        run.main(["--only", "W9", "--no-write"])


def test_a_section_named_otherwise_is_kept_in_the_document(tmp_path: Path) -> None:
    from bench.common import Ratio, Section

    section = Section("backends", "Storage backends")
    section.rows.append(Ratio("WB", "save latency, sqlite", "local", [1.5, 1.7]))
    out, results = tmp_path / "b.md", tmp_path / "b.json"
    run.write_documents(str(out), str(results), [section], "tiny", "")
    run.write_documents(str(out), str(results), [], "tiny", "")  # a rewrite keeps it
    assert "| WB | save latency, sqlite | local |" in out.read_text()
