"""An agent run (seed 004): messages, tool calls and context checkpointed every step, a TTL,
restore latest or a specific checkpoint, fork, completed and failed marking, JSON export.

Run it::

    python examples/agent_run.py [--store DIR]
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from ckpt.pipeline.agent import AgentRun, AgentState
from ckpt.pipeline.listing import expire_due, list_jobs
from ckpt.pipeline.runner import open_store
from ckpt.transfer.exchange import export_job, import_job

TOOLS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "search": lambda args: {"hits": [f"{args['q']} result {i}" for i in range(2)]},
    "calculator": lambda args: {"value": args["a"] * args["b"]},
}


class AgentCrashed(Exception):
    pass


def agent_step(state: AgentState) -> None:
    """One step of a scripted agent: a question, a tool call, its result, an answer."""
    step = state.step
    tool = "search" if step % 2 == 0 else "calculator"
    args = {"q": f"topic {step}"} if tool == "search" else {"a": step, "b": 7}
    state.add_message("user", f"question {step}")
    call = state.add_tool_call(f"call-{step}", tool, args)
    call.result = TOOLS[tool](args)
    state.add_message("tool", json.dumps(call.result), name=tool, tool_call_id=call.id)
    state.add_message("assistant", f"answer {step}")
    state.step += 1


def run_agent(run: AgentRun, steps: int, crash_at: int | None = None) -> AgentState:
    """Resume from the newest checkpoint (or start), checkpoint after every step."""
    state = run.restore() or AgentState(context={"user_id": "user-456"})
    try:
        while state.step < steps:
            if state.step == crash_at:
                raise AgentCrashed(f"worker lost at step {state.step}")
            agent_step(state)
            run.save(state, step_name=f"step_{state.step - 1}", cost=0.002, tokens=350)
    except Exception as exc:
        run.fail(exc)
        raise
    run.complete()
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store directory (default: a new temporary one)")
    args = parser.parse_args()
    store = args.store or tempfile.mkdtemp(prefix="agent-")
    if args.store is None:  # a temporary store goes when the example ends
        atexit.register(shutil.rmtree, store, ignore_errors=True)
    repo = open_store(store)  # opens the store, creating it if absent

    run = AgentRun(repo, "run-123", ttl=24 * 3600, keep_last=100)
    print("1. the agent crashes at step 3")
    try:
        run_agent(run, steps=5, crash_at=3)
    except AgentCrashed as exc:
        print(f"  {exc}; status {run.status}")

    print("2. restore and finish")
    state = run_agent(run, steps=5)
    print(f"  status {run.status}, step {state.step}, {len(state.messages)} messages")
    for commit in run.checkpoints(limit=4):
        print(f"  seq {commit.seq}: {commit.message or '-'} ({commit.status})")

    print("3. restore a specific checkpoint and fork from it")
    second = run.checkpoints()[-2]
    earlier = run.checkpoint(second.id)
    assert earlier is not None
    print(
        f"  checkpoint {earlier.checkpoint_id[:12]}: "
        f"seq {earlier.sequence}, step {earlier.state.step}"
    )
    alt = run.fork("run-123-alt", at=second.id)
    alt_state = alt.restore()
    assert alt_state is not None
    alt_state.add_message("user", "try another approach")
    alt.save(alt_state, step_name="alternative", tags=["important"])
    fork = alt.job.record.forked_from
    assert fork is not None
    print(f"  run-123-alt forked from {fork.job} at {fork.commit[:12]}")

    print("4. TTL: a short-lived run expires and is cleaned up")
    scratch = AgentRun(repo, "scratch", ttl=0.05)
    scratch.save(AgentState(step=1), step_name="processing")
    time.sleep(0.1)
    print(f"  expired: {scratch.is_expired}; marked: {expire_due(repo)}")
    for summary in list_jobs(repo, sizes=False):
        print(f"  {summary.name:<12} {summary.status:<10} seq {summary.seq}")
    from ckpt.maintenance.retention import apply_retention

    print(f"  cleaned: {apply_retention(repo, expired=True).deleted_jobs}")

    print("5. export a run as JSON and import it back")
    doc = export_job(run.job)
    text = json.dumps(doc, indent=1)
    copy = import_job(repo, json.loads(text), name="run-123-copy")
    assert AgentRun(repo, copy.name).restore() == run.restore()
    print(f"  {len(text)} bytes of JSON; the imported copy restores the same state")


if __name__ == "__main__":
    main()
