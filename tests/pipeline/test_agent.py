"""Point 7: agent state (messages, tool calls, context, step) saved every step, restored by run
id (latest or a specific checkpoint), forked, marked completed or failed."""

from __future__ import annotations

import time

import pytest

import ckpt
from ckpt.pipeline.agent import AgentRun, AgentState, Message, ToolCall


def run_steps(run: AgentRun, steps: int) -> AgentState:
    state = run.restore() or AgentState(context={"user_id": "u-1"})
    for step in range(state.step, steps):
        state.add_message("user", f"question {step}")
        call = state.add_tool_call(f"call-{step}", "search", {"q": f"q{step}", "n": step})
        call.result = {"hits": [step, step + 1]}
        state.add_message("tool", "found", name="search", tool_call_id=call.id)
        state.add_message("assistant", f"answer {step}")
        state.step = step + 1
        run.save(state, step_name=f"step_{step}", cost=0.01, tokens=10)
    return state


def test_state_round_trips_every_field(repo: ckpt.Repository) -> None:
    run = AgentRun(repo, "run-1")
    assert run.restore() is None
    state = run_steps(run, 3)
    again = AgentRun(repo, "run-1").restore()
    assert again == state
    assert again is not None
    assert again.messages[1] == Message("tool", "found", "search", "call-0")
    assert again.tool_calls[1] == ToolCall(
        "call-1", "search", {"q": "q1", "n": 1}, {"hits": [1, 2]}
    )
    assert again.context == {"user_id": "u-1"}
    assert again.step == 3


def test_restore_latest_or_a_specific_checkpoint_and_list_them(repo: ckpt.Repository) -> None:
    run = AgentRun(repo, "run-1")
    run_steps(run, 3)
    checkpoints = run.checkpoints()
    assert [(c.seq, c.message) for c in checkpoints] == [
        (3, "step_2"),
        (2, "step_1"),
        (1, "step_0"),
    ]
    first = run.checkpoint(checkpoints[-1].id)
    assert first is not None
    assert (first.sequence, first.step_name, first.state.step) == (1, "step_0", 1)
    assert run.restore("HEAD~2") == first.state
    assert run.restore(checkpoints[-1].id[:8]) == first.state
    assert run.checkpoints(limit=1)[0].seq == 3
    # A crashed agent resumes from its last checkpoint.
    resumed = run_steps(AgentRun(repo, "run-1"), 5)
    assert resumed.step == 5
    assert len(resumed.messages) == 15


def test_fork_starts_a_new_run_from_any_checkpoint(repo: ckpt.Repository) -> None:
    run = AgentRun(repo, "run-1")
    run_steps(run, 3)
    branch = run.fork("run-1-alt", at="HEAD~1")
    restored = branch.restore()
    assert restored is not None and restored.step == 2
    fork_point = branch.job.record.forked_from
    assert fork_point is not None and fork_point.job == "run-1"
    restored.add_message("user", "a different question")
    branch.save(restored, step_name="alt")
    original = AgentRun(repo, "run-1").restore()
    assert original is not None and len(original.messages) == 9  # the original is untouched
    alt = AgentRun(repo, "run-1-alt").restore()
    assert alt is not None and len(alt.messages) == 7


def test_completed_failed_and_tags(repo: ckpt.Repository) -> None:
    done = AgentRun(repo, "done")
    run_steps(done, 1)
    done.complete()
    assert done.status == "completed"
    bad = AgentRun(repo, "bad")
    with pytest.raises(ckpt.CkptError, match="no checkpoints"):
        bad.fail("too early")
    bad.save(AgentState(), step_name="processing", tags=["retry", "important"])
    found = bad.checkpoint()
    assert found is not None and found.tags == ["important", "retry"]
    bad.fail(RuntimeError("Something went wrong"))
    assert bad.status == "failed"
    head = bad.job.head
    assert head is not None and head.meta["error"] == "Something went wrong"
    bad.delete()
    assert not repo.job("bad").exists


def test_ttl_is_renewed_by_each_save_and_expires(repo: ckpt.Repository) -> None:
    run = AgentRun(repo, "short", ttl=0.05)
    run.save(AgentState(step=1))
    first = run.job.record.expires_at
    time.sleep(0.01)
    run.save(AgentState(step=2))
    second = run.job.record.expires_at
    assert first is not None and second is not None and second > first
    time.sleep(0.1)
    assert run.is_expired
    assert run.status == "expired"


def test_min_interval_skips_saves_unless_forced(repo: ckpt.Repository) -> None:
    run = AgentRun(repo, "r", min_interval=3600, keep_last=2)
    assert run.save(AgentState(step=1)) is not None
    assert run.save(AgentState(step=2)) is None
    assert run.save(AgentState(step=3), force=True) is not None
    assert [c.seq for c in run.checkpoints()] == [2, 1]
    assert run.job.record.keep_last == 2


def test_keep_last_prunes_on_save_as_the_pipeline_does(repo: ckpt.Repository) -> None:
    run = AgentRun(repo, "r", keep_last=3)
    for step in range(1, 7):
        run.save(AgentState(step=step), step_name=f"step {step}")
        assert len(run.checkpoints()) == min(step, 3)  # cut at once, not at the next gc
    assert [c.seq for c in run.checkpoints()] == [6, 5, 4]
    run.complete()
    assert [c.seq for c in run.checkpoints()] == [7, 6, 5]
    pipeline_job = ckpt.Pipeline([("a", lambda input: input)], store=repo, keep_last=3)
    pipeline_job.run("p", 1)
    assert len(repo.job("p").log()) == 3  # the same rule


def test_tags_given_at_complete_are_on_the_checkpoint_restore_returns(
    repo: ckpt.Repository,
) -> None:
    run = AgentRun(repo, "r")
    run.save(AgentState(step=4), step_name="answer", tags=["draft"])
    done = run.complete("finished", tags=["final", "reviewed"])
    found = run.checkpoint()
    assert found is not None
    assert found.commit.id == done.id  # what restore returns is the completion...
    assert found.tags == ["draft", "final", "reviewed"]  # ... and it carries the tags
    assert found.state.step == 4
    assert done.meta["step"] == 4
    earlier = run.checkpoint("HEAD~1")
    assert earlier is not None and earlier.tags == ["draft"]
    failed = AgentRun(repo, "f")
    failed.save(AgentState(step=1))
    failed.fail(RuntimeError("tool crashed"), tags=["needs-review"])
    again = failed.checkpoint()
    assert again is not None and again.tags == ["needs-review"]
