"""Fixtures of the reliability suite, and the figures it records.

Each test adds what it counted (kills survived, faults injected, conflicts,
bad inputs tried, bytes lost...) to the session's figures.  At the end of the
run they are written as JSON to ``$CKPT_RELIABILITY_FIGURES`` (default:
``reliability-figures.json`` in pytest's base temporary directory) and shown
in the terminal summary; ``docs/reliability.md`` quotes them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._support import FIGURES, Figures


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Where a test records its counts; the section is the test's name."""
    return Figures(request.node.name)


@pytest.fixture
def fast_tmp_path(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory in memory (``/dev/shm``) where there is one, else ``tmp_path``.

    For tests that run hundreds of small durable saves to count and fail
    system calls: the calls are the same on tmpfs, only fsync costs nothing.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="ckpt-reliability-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _figures_path(config: pytest.Config) -> Path:
    explicit = os.environ.get("CKPT_RELIABILITY_FIGURES")
    if explicit:
        return Path(explicit)
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
    return factory.getbasetemp() / "reliability-figures.json"


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not FIGURES:
        return
    path = _figures_path(session.config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")
    session.config.stash[_PATH_KEY] = str(path)


_PATH_KEY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for section, values in sorted(FIGURES.items()):
        shown = ", ".join(f"{k}={v}" for k, v in sorted(values.items()) if not isinstance(v, dict))
        terminalreporter.write_line(f"{section}: {shown}")
    where = config.stash.get(_PATH_KEY, None)
    if where:
        terminalreporter.write_line(f"written to {where}")
