"""Fixtures of the pipeline tests: a fresh local store."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import ckpt


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[ckpt.Repository]:
    opened = ckpt.init(tmp_path / "store", durable=False)
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _collect_dropped_stores() -> Iterator[None]:
    """Close the stores a test dropped (pipelines open their own) now, rather than when the
    garbage collector happens to run during a later test that counts open files."""
    yield
    gc.collect()
