"""LangGraph's own conformance suite (langgraph-checkpoint-conformance) against CkptSaver.

Every capability, base and extended, must be detected and pass every test,
on each storage backend; a store written by the suite must verify clean.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import ckpt
from ckpt.integrations.langgraph import CkptSaver

conformance = pytest.importorskip("langgraph.checkpoint.conformance")
from langgraph.checkpoint.conformance.capabilities import (  # noqa: E402
    ALL_CAPABILITIES,
    BASE_CAPABILITIES,
)

pytestmark = pytest.mark.slow


def test_every_capability_passes(location: str) -> None:
    repos: list[ckpt.Repository] = []

    async def factory() -> AsyncIterator[CkptSaver]:
        # A fresh store for each capability suite, as the suite asks.
        where = location if not repos else f"{location}-{len(repos)}"
        if where.startswith("sqlite://"):
            where = location.replace("store.db", f"store{len(repos)}.db")
        repo = ckpt.init(where)
        repos.append(repo)
        yield CkptSaver(repo)

    registered = conformance.checkpointer_test(name=f"CkptSaver on {location}")(factory)
    report = asyncio.run(conformance.validate(registered))

    counts = {
        name: (result.tests_passed, result.tests_failed) for name, result in report.results.items()
    }
    failures = [f for result in report.results.values() for f in result.failures]
    assert not failures, f"conformance failures: {failures}"
    assert {c.value for c in ALL_CAPABILITIES} == set(report.results)
    for name, result in report.results.items():
        assert result.detected, f"{name} not detected"
        assert result.passed is True and result.tests_passed > 0, f"{name}: {counts[name]}"
    assert report.passed_all_base() and report.passed_all(), counts
    assert {c.value for c in BASE_CAPABILITIES} <= set(counts)
    for repo in repos:
        verified = repo.verify()
        assert verified.ok, verified.problems
        repo.close()
