"""``ckpt langgraph import`` and ``ckpt langgraph export`` on real SqliteSaver files.

Run twice, on a file with several threads, subgraphs and pending writes;
with ``--json`` (checked against the documented schema); on broken, missing
and foreign files (one line each); and on a real terminal, where the
progress bar is drawn.
"""

from __future__ import annotations

import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ckpt.cli.main import cli
from ckpt.cli.schema import SCHEMAS, field_paths

pytest.importorskip("langgraph.checkpoint.sqlite")

from .lg_sqlite import break_row, everything, sqlite_at


def _ckpt(store: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--store", str(store), *args])


def test_cli_import_twice_then_export(sqlite_file: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = _ckpt(store, "langgraph", "import", str(sqlite_file))
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[0].startswith("Imported 3 threads: ") and " checkpoints and " in lines[0]
    assert lines[0].endswith(" pending writes copied.")
    assert lines[1].startswith(f"{sqlite_file}: ") and "the store grew by" in lines[1]
    assert f"Initialized empty ckpt store in {store}" in first.stderr
    again = _ckpt(store, "langgraph", "import", str(sqlite_file), "--json")
    assert again.exit_code == 0, again.output
    doc = json.loads(again.stdout)
    assert doc["checkpoints"] == 0 and doc["writes"] == 0 and doc["skipped"] > 0
    assert doc["store_bytes_after"] == doc["store_bytes_before"] > 0
    assert field_paths(doc, SCHEMAS["langgraph import"]) == set(SCHEMAS["langgraph import"])
    out = tmp_path / "out.sqlite"
    exported = _ckpt(store, "langgraph", "export", str(out), "--thread", "gamma", "--json")
    assert exported.exit_code == 0, exported.output
    doc = json.loads(exported.stdout)
    assert field_paths(doc, SCHEMAS["langgraph export"]) == set(SCHEMAS["langgraph export"])
    assert doc["threads"] == 1 and doc["checkpoints"] > 0
    for source in sqlite_at(sqlite_file):
        for copy in sqlite_at(out):
            assert everything(copy, "gamma") == everything(source, "gamma")
            assert everything(copy, "alpha") == []
    text = _ckpt(store, "langgraph", "export", str(out))
    assert text.exit_code == 0 and text.stdout.startswith("Exported 3 threads: ")


def test_cli_errors_are_one_line(sqlite_file: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    broken = break_row(sqlite_file, "checkpoints", "gamma")
    found = _ckpt(store, "langgraph", "import", str(sqlite_file))
    assert found.exit_code == 1
    assert found.stderr.splitlines()[-1].startswith(
        f"Error: thread 'gamma': checkpoint {broken} cannot be read from the source: "
    )
    missing = _ckpt(store, "langgraph", "import", str(tmp_path / "nope.sqlite"))
    assert missing.exit_code == 3 and missing.stderr.strip().endswith("nope.sqlite: no such file")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    found = _ckpt(store, "langgraph", "import", str(other))
    assert found.exit_code == 1
    assert "is not a LangGraph SqliteSaver database" in found.stderr
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    found = _ckpt(store, "langgraph", "import", str(junk))
    assert found.exit_code == 1 and "is not a SQLite database" in found.stderr


def test_cli_shows_progress_on_a_terminal(sqlite_file: Path, tmp_path: Path) -> None:
    """A real terminal on stderr: the bar is drawn there, stdout keeps the summary."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ckpt",
            "--store",
            str(tmp_path / "store"),
            "langgraph",
            "import",
            str(sqlite_file),
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(follower)
    drawn = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    summary, _ = child.communicate(timeout=60)
    os.close(leader)
    assert child.returncode == 0
    assert b"Importing checkpoints" in drawn and b"100%" in drawn
    assert summary.decode().startswith("Imported 3 threads: ")
