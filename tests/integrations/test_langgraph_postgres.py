"""CkptSaver on a PostgreSQL store, for those who would otherwise use LangGraph's
PostgresSaver: LangGraph's conformance suite, and a run resumed by a new saver."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

import ckpt
from ckpt.integrations.langgraph import CkptSaver
from tests.servers import drop_postgres_schema

from .test_langgraph_saver import Command, config, graph

conformance = pytest.importorskip("langgraph.checkpoint.conformance")


@pytest.mark.slow
def test_every_capability_passes_on_postgres(postgres_server: str) -> None:
    repos: list[ckpt.Repository] = []
    schemas: list[str] = []

    async def factory() -> AsyncIterator[CkptSaver]:
        # A fresh store (schema) for each capability suite, as the suite asks.
        schemas.append(f"test_lg_{uuid.uuid4().hex}")
        repo = ckpt.init(f"{postgres_server}?schema={schemas[-1]}")
        repos.append(repo)
        yield CkptSaver(repo)

    try:
        registered = conformance.checkpointer_test(name="CkptSaver on PostgreSQL")(factory)
        report = asyncio.run(conformance.validate(registered))
        failures = [f for result in report.results.values() for f in result.failures]
        assert not failures, f"conformance failures: {failures}"
        assert report.passed_all_base() and report.passed_all()
        for repo in repos:
            verified = repo.verify()
            assert verified.ok, verified.problems
    finally:
        for repo in repos:
            repo.close()
        for schema in schemas:
            drop_postgres_schema(postgres_server, schema)


def test_a_new_saver_resumes_an_interrupted_run(postgres_store: str) -> None:
    with ckpt.init(postgres_store) as repo:
        app = graph(CkptSaver(repo))
        cfg = config("resume")
        app.invoke({"log": [], "n": 0}, cfg)
        assert app.get_state(cfg).next == ("ask",)
    with CkptSaver(postgres_store) as saver:  # opens the same store by its URL
        assert graph(saver).invoke(Command(resume="later"), cfg)["log"][-1] == "answer:later"
