"""Point 11: docs/migrating.md maps every API, option and flag of the five seed documents.

The names are listed here (so the test runs anywhere); when the seed documents themselves
are present beside the repository (``../shared/seeds``), every call, constructor, keyword
argument and flag in their code blocks is extracted and checked too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIGRATING = ROOT / "docs" / "migrating.md"
SEEDS = ROOT.parent / "shared" / "seeds"

SEED_NAMES = {
    "000": [
        "CheckpointManager", "PipelineStateManager", "BatchOrchestrator", "ProductionBrief",
        "enable_checkpointing", "checkpoint_dir", "initialize_job", "resume_job",
        "save_stage_result", "get_next_stage", "cleanup_on_success", "rollback_on_failure",
        "save_checkpoint", "load_checkpoint", "get_latest_checkpoint", "list_checkpoints",
        "delete_checkpoints", "cleanup_old_checkpoints", "max_age_days", "get_progress",
        "total_stages", "can_resume", "load_brief", "produce_narrative", "CostLimitExceeded",
        "max_cost_per_job", "cost_usd", "tokens_used", "stage_outputs", "completed_stages",
        "cumulative_cost_usd", "cumulative_tokens", "started_at", "resumed_at", "percentage",
        "latest_stage", "total_cost_usd", "brief.json", "metadata.json", ".checkpoint",
        "CustomCheckpointManager", "Partial Resume", "WebSocket",
    ],
    "001": [
        "--input", "--workflow-id", "--resume", "--resume-from-step", "--list-checkpoints",
        "--no-checkpoint", "--checkpoint-path", "latest_checkpoint.json", "checkpoint_*.json",
        "enable_auto_checkpoint", "checkpoint_retention_count", "load_checkpoint",
        "list_checkpoints", "step_name", "timestamp", "No checkpoints found for workflow",
        "Checkpoint file not found",
    ],
    "002": [
        "StorageConfig", "sqlite_path", "SQLiteCheckpointStorage", "InMemoryCheckpointStorage",
        "initialize", "Executor", "ExecutorConfig", "checkpoint_interval_ms",
        "checkpoint_after_each_node", "max_checkpoints_per_trace", "CheckpointConfig",
        "TaskPayload", "trace_id", "resume_from_checkpoint", "resume_trace_id",
        "save_checkpoint", "current_node_id", "force", "load_checkpoint", "graph_id",
        "restore_context", "list_checkpoints", "clear_checkpoints", "get_latest_checkpoint",
        "CheckpointRecord", "current_node", "visited_nodes", "variables", "step_count",
        "total_tokens_in", "total_tokens_out", "start_time", "node_id", "tinyllm graph resume",
        "tinyllm graph checkpoints", "--graph", "--storage", "--log-level", "--graph-id",
        "--trace-id", "WAL",
    ],
    "003": [
        "MetaPlanner", "checkpoint_interval", "execute_with_resume", "checkpoint_id",
        "create_checkpoint", "execution_state", "plan_id", "list_checkpoints", "created_at",
        "completed_nodes", "total_nodes", "get_checkpoint", "node_results", "delete_checkpoint",
        "WorkflowPersistenceManager", "persistence_manager", ".vibe_checkpoints", "vibe",
        "workflow_plan", "pending_nodes", "CheckpointCorruptError",
    ],
    "004": [
        "CheckpointManager", "CheckpointConfig", "InMemoryCheckpointStore",
        "FileCheckpointStore", "RedisCheckpointStore", "S3CheckpointStore", "auto_checkpoint",
        "max_checkpoints_per_run", "checkpoint_interval", "default_ttl_seconds",
        "cleanup_interval", "create", "run_id", "messages", "tool_calls", "context",
        "step_name", "tags", "ttl_seconds", "force", "parent_id", "restore", "restore_from",
        "list_checkpoints", "limit", "delete", "delete_run", "mark_completed", "mark_failed",
        "Checkpoint", "CheckpointMetadata", "sequence", "CheckpointStatus", "ACTIVE",
        "COMPLETED", "FAILED", "EXPIRED", "is_expired", "cleanup_expired", "start", "stop",
        "to_json", "from_json", "to_dict", "from_dict", "agent_endpoint", "tool_call_id",
        "_manifest.json",
    ],
}  # fmt: skip

#: Names in the seeds' code that belong to Python, asyncio, boto or a web framework, not to
#: the seed's checkpointing API.
NOT_SEED_API = {
    "get", "join", "sleep", "walk", "getsize", "uuid4", "accept", "send_json", "create_task",
    "upload_file", "websocket", "error", "append", "client", "Path", "Redis", "Session",
    "execute", "close", "bucket", "key", "host", "port", "path", "prefix", "config", "state",
    "status", "id", "content", "task", "graph", "job_id", "stage_name", "stage_output",
    "metadata", "resume", "step", "total_stages", "checkpoint_storage", "_build_output",
}  # fmt: skip


def migrating_text() -> str:
    return MIGRATING.read_text()


@pytest.mark.parametrize("seed", sorted(SEED_NAMES))
def test_every_listed_seed_name_is_mapped(seed: str) -> None:
    text = migrating_text()
    missing = [name for name in SEED_NAMES[seed] if name not in text]
    assert missing == [], f"docs/migrating.md does not mention {missing} (seed {seed})"


def seed_code_names(path: Path) -> set[str]:
    text = path.read_text()
    code = "\n".join(re.findall(r"```(?:python|bash|json)?\n(.*?)```", text, re.S))
    names = set(re.findall(r"\.([a-z_][a-z0-9_]*)\(", code))
    names |= set(re.findall(r"\b([A-Z][A-Za-z0-9]+)\(", code))
    names |= set(re.findall(r"\b([a-z_][a-z0-9_]*)=", code))
    names |= set(re.findall(r"(--[a-z][a-z-]*)", text))
    return names - NOT_SEED_API


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed documents are not beside the repo")
def test_every_name_in_the_seed_documents_is_mapped() -> None:
    text = migrating_text()
    for path in sorted(SEEDS.glob("*.txt")):
        missing = sorted(name for name in seed_code_names(path) if name not in text)
        assert missing == [], f"docs/migrating.md does not mention {missing} ({path.name})"


def test_every_example_named_in_the_docs_exists() -> None:
    for doc in ("migrating.md", "pipeline.md"):
        for name in re.findall(r"examples/([a-z_]+\.py)", (ROOT / "docs" / doc).read_text()):
            assert (ROOT / "examples" / name).is_file(), f"{doc} names a missing example {name}"
