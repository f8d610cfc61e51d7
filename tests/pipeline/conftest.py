"""Fixtures of the pipeline tests: a fresh local store."""

from __future__ import annotations

from pathlib import Path

import pytest

import ckpt


@pytest.fixture
def repo(tmp_path: Path) -> ckpt.Repository:
    return ckpt.init(tmp_path / "store", durable=False)
