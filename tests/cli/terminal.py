"""Running ``ckpt`` on a real pseudo-terminal, for what it does only on a terminal
(text mode, paging, colour): the test reads the terminal as a person would see it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_on_terminal(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[str, int]:
    """Run ``python -m ckpt ARGS`` with a pseudo-terminal as its stdin, stdout and stderr;
    return what the terminal showed (``\\r\\n`` read as ``\\n``) and the exit status."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_")}
    environment.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "100", "LINES": "40"})
    environment.update(env or {})
    main, side = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "ckpt", *args],
            cwd=cwd,
            env=environment,
            stdin=side,
            stdout=side,
            stderr=side,
            close_fds=True,
        )
    finally:
        os.close(side)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.1)
            if ready:
                try:
                    data = os.read(main, 65536)
                except OSError:  # the other side closed (Linux reports EIO)
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n"), status
