"""Guarantee 20: a save into a store whose storage was wiped fails with a clear error.

A redis-server without persistence loses everything when it restarts, the
store's config included, and ``ckpt.open`` then refuses the namespace.  A
writer that was running must not go on saving into it: its next save fails
with ``StoreNotFoundError`` saying what happened, and no job appears in the
wiped namespace.  The server and the writer are real processes; the server
is stopped and started again on the same port.

Before the fix the writer went on saving (a new history from scratch)
into a namespace that ``ckpt.open`` refused.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

import ckpt
from ckpt.errors import StoreNotFoundError
from tests.servers import free_port, stop

from ._support import Figures, result, spawn

redis = pytest.importorskip("redis")


def _start(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(workdir)]
    with open(workdir / "server.log", "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.ping()
            return process
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    stop(process)
    raise RuntimeError((workdir / "server.log").read_text())


def test_a_writer_stops_when_a_restart_wiped_the_store(tmp_path: Path, figures: Figures) -> None:
    port = free_port()
    server = _start(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0?prefix=wiped"
    try:
        ckpt.init(url).close()
        writer = spawn("keep-saving", url, "novel", 30)
        assert writer.stdout is not None
        for _ in range(3):
            assert writer.stdout.readline().startswith("saved")
        stop(server)  # redis-server without persistence: everything is gone
        server = _start(port, tmp_path)
        outcome = result(writer, timeout=120)
        assert outcome["error"] == "StoreNotFoundError", outcome
        assert "has lost its config" in outcome["message"]
        with pytest.raises(StoreNotFoundError):
            ckpt.open(url)
        client = redis.Redis(host="127.0.0.1", port=port)
        assert not list(client.scan_iter(match="wiped:v:jobs/*"))  # no job, no ref
        figures.set("saves_before_the_restart", outcome["saved"])
        figures.set("saves_after_the_restart", 0)
    finally:
        stop(server)
