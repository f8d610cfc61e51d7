"""The names LangGraph threads, namespaces and channels get in a store."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ckpt.history import names
from ckpt.integrations.langgraph_layout import (
    channel_stage,
    encode_name,
    job_name_for,
    ns_branch_prefix,
    primary_branch,
    thread_id_from_job_name,
)

texts = st.text(min_size=1, max_size=300)


@given(texts)
def test_every_thread_id_gets_a_valid_job_name_that_decodes_back(thread: str) -> None:
    name = job_name_for(thread)
    assert names.job_name(name) == name
    decoded = thread_id_from_job_name(name)
    if not name.startswith("lgh."):
        assert decoded == thread


@given(texts, texts)
def test_distinct_ids_get_distinct_names(one: str, two: str) -> None:
    if one != two:
        assert job_name_for(one) != job_name_for(two)
        assert channel_stage(one) != channel_stage(two)
        assert encode_name(one) != encode_name(two)


@given(texts)
def test_channels_and_namespaces_get_valid_names(text: str) -> None:
    assert names.stage_name(channel_stage(text))
    assert names.branch_name(primary_branch(text))
    assert primary_branch(text).startswith(ns_branch_prefix(text))


def test_plain_names_stay_readable() -> None:
    assert job_name_for("550e8400-e29b-41d4-a716-446655440000") == (
        "550e8400-e29b-41d4-a716-446655440000"
    )
    assert job_name_for("user:42") == "lg.user=3A42"
    assert job_name_for("HEAD").startswith("lg.")
    assert channel_stage("messages") == "messages"
    assert channel_stage("branch:to:agent") == "lg.c.branch=3Ato=3Aagent"
    assert primary_branch("") == "main"
    assert primary_branch("tools:1f2e") == "ns/lg.tools=3A1f2e/main"
    assert thread_id_from_job_name("novel-42") == "novel-42"
    assert thread_id_from_job_name("lgh.00ff") is None
