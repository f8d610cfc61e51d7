"""A planner workflow (seed 003): checkpoints every N nodes, resume from the latest or a
specific checkpoint, and a corrupted checkpoint detected and recovered from.

The corrupted checkpoint is found by ``load`` (which refuses to return bad
data) and by ``verify`` (which names the last good checkpoint); ``repair``
moves the bad object aside and re-running from the last good checkpoint
heals it.

Run it::

    python examples/planner_workflow.py [--store DIR]

Seed 003's ``MetaPlanner(checkpoint_interval=5)`` becomes
``checkpoint_every=5``: finished nodes are committed five at a time (each
node keeps its own commit, so ``log`` and ``resume_from`` still see every
node); a crash loses at most the nodes since the last batch.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile

import ckpt
from ckpt.errors import CorruptObjectError
from ckpt.maintenance.repair import repair
from ckpt.pipeline.stages import Param, Stage

NODE_COUNT = 12
FAIL_ONCE = {"node_08"}
RAN: list[str] = []


def node(index: int) -> Stage:
    """Node ``index`` as a stage built by hand: it reads the previous node's output."""
    name = f"node_{index:02d}"
    previous = f"node_{index - 1:02d}" if index > 1 else "input"

    def run(**inputs: dict[str, int]) -> dict[str, int]:
        RAN.append(name)
        if name in FAIL_ONCE:
            FAIL_ONCE.discard(name)
            raise RuntimeError(f"rate limited in {name}")
        return {**inputs[previous], name: index * index}

    return Stage(name, run, output_type=dict[str, int], params=(Param(previous, dict[str, int]),))


def build(store: str) -> ckpt.Pipeline:
    stages = [node(index) for index in range(1, NODE_COUNT + 1)]
    return ckpt.Pipeline(stages, store=store, input_type=dict[str, int], checkpoint_every=5)


def corrupt_latest_output(repo: ckpt.Repository, job: ckpt.Job, stage: str) -> None:
    """Flip one stored byte of ``stage``'s value, as a failing disk would."""
    entry = job.tree().get(stage)
    assert entry is not None
    location = repo.objects.locate(entry.id)
    assert location is not None
    data = bytearray(repo.storage.get(location.key))
    end = len(data) if location.length < 0 else location.offset + location.length
    data[end - 1] ^= 0xFF
    repo.storage.compare_and_swap(location.key, repo.storage.get(location.key), bytes(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store directory (default: a new temporary one)")
    args = parser.parse_args()
    store = args.store or tempfile.mkdtemp(prefix="planner-")
    if args.store is None:  # a temporary store goes when the example ends
        atexit.register(shutil.rmtree, store, ignore_errors=True)
    planner = build(store)
    plan_id = "plan-001"

    print("1. execute; node_08 is rate limited")
    try:
        planner.run(plan_id, {"vibe": 1})
    except RuntimeError as exc:
        print(f"  failed: {exc}")
    job = ckpt.open(store).job(plan_id)
    committed = [c.stage for c in reversed(job.log()) if c.stage]
    print(f"  committed: {', '.join(committed)}")
    progress = planner.progress(plan_id)
    assert progress is not None
    print(f"  progress: {progress.completed_stages}/{progress.total_stages} nodes")

    print("2. execute_with_resume (latest checkpoint)")
    RAN.clear()
    result = planner.run(plan_id)
    print(f"  ran {', '.join(RAN)}")
    assert RAN[0] == "node_08"

    print("3. resume from a specific checkpoint")
    job.refresh()  # this handle last saw the head before step 2
    checkpoint_id = job.resolve("node_10").id
    RAN.clear()
    planner.run(plan_id, at=checkpoint_id[:12])
    print(f"  from {checkpoint_id[:12]} (after node_10): ran {', '.join(RAN)}")
    assert RAN == ["node_11", "node_12"]

    print("4. a corrupted checkpoint is detected")
    repo = ckpt.open(store)
    corrupt_latest_output(repo, repo.job(plan_id), "node_12")
    repo = ckpt.open(store)  # a fresh process would see the same
    try:
        repo.job(plan_id).load("node_12")
    except CorruptObjectError as exc:
        print(f"  load refused: {exc}")
    report = repo.verify()
    print(f"  verify: ok={report.ok}, problems: {[p.kind for p in report.problems]}")
    assert not report.ok
    last_good = report.jobs[plan_id].last_good["main"]
    assert last_good is not None
    print(
        f"  last good checkpoint: {last_good[:12]} ({repo.job(plan_id).resolve(last_good).stage})"
    )
    repaired = repair(repo)  # moves the corrupt object aside so that a re-save can heal it
    print(f"  quarantined {len(repaired.quarantined)} object(s)")
    RAN.clear()
    result = build(store).run(plan_id, at=last_good)
    nodes = [key for key in result.output if key.startswith("node_")]
    print(f"  rolled back and re-ran {', '.join(RAN)}: {len(nodes)} nodes done")
    assert len(nodes) == NODE_COUNT
    repo = ckpt.open(store)
    print(f"  node_12 loads again: {repo.job(plan_id).load('node_12')['node_12']}")
    print(f"  verify after the re-run: ok={repo.verify().ok}")
    assert repo.verify().ok


if __name__ == "__main__":
    main()
