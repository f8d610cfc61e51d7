"""Fixtures of the integration tests: a fresh store on each backend the LangGraph saver runs on."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import ckpt

pytest.importorskip("langgraph.checkpoint.base", reason="needs pip install 'ckpt[langgraph]'")

SAVER_BACKENDS = ("local", "memory", "sqlite")


def store_location(backend: str, tmp_path: Path) -> str:
    """Where to create a new store of ``backend``."""
    if backend == "memory":
        return f"memory://lg-{uuid.uuid4().hex}"
    if backend == "sqlite":
        if importlib.util.find_spec("ckpt.storage.sqlite") is None:
            if os.environ.get("CI"):
                pytest.fail("the sqlite storage backend is missing", pytrace=False)
            pytest.skip("the sqlite storage backend is missing")
        return f"sqlite://{tmp_path}/store.db"
    return str(tmp_path / "store")


@pytest.fixture(params=SAVER_BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_location(str(request.param), tmp_path)


@pytest.fixture
def repo(location: str) -> Iterator[ckpt.Repository]:
    store = ckpt.init(location)
    yield store
    store.close()


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    """A SqliteSaver database file holding the threads of ``lg_sqlite.STORIES``."""
    pytest.importorskip("langgraph.checkpoint.sqlite")
    from .lg_sqlite import make_sqlite_file

    return make_sqlite_file(tmp_path / "checkpoints.sqlite")
