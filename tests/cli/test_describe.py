"""ckpt.cli.describe reads the metadata the runner and LangGraph's saver write: the keys
and suffixes it repeats (to spare ``ckpt log`` importing them) agree with theirs."""

from __future__ import annotations

from ckpt.cli import describe
from ckpt.integrations import langgraph_layout
from ckpt.pipeline import progress, stages


def test_the_keys_agree_with_the_writers() -> None:
    assert describe.PIPELINE_KEY == progress.META_KEY
    assert describe.PARTIAL_SUFFIX == stages.PARTIAL_SUFFIX
    assert describe.LANGGRAPH_KEY == langgraph_layout.META_KEY
    assert describe.LANGGRAPH_CHECKPOINT == langgraph_layout.KIND_CHECKPOINT
    assert describe.LANGGRAPH_WRITES == langgraph_layout.KIND_WRITES
