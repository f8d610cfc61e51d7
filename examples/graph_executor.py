"""A graph executor (seed 002) on ckpt: per-node and time-interval checkpoints, a long node
that checkpoints inside itself, resume by trace id, listing and pruning.

Run it::

    python examples/graph_executor.py [--store DIR]

Each node of the graph is a stage (nodes run in topological order; a
node's parameters name the nodes it needs).  The executor settings of the
seed map as follows:

* ``checkpoint_after_each_node=True``  -> ``checkpoint_every=1`` (default)
* ``checkpoint_interval_ms=5000``       -> ``checkpoint_interval=5.0``
* ``max_checkpoints_per_trace=50``      -> ``keep_last=50``
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import graphlib
import inspect
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import attrs

import ckpt


@attrs.frozen
class ExecutorConfig:
    checkpoint_interval_ms: int = 0
    checkpoint_after_each_node: bool = True
    max_checkpoints_per_trace: int = 100


def executor(
    nodes: dict[str, Callable[..., Any]], config: ExecutorConfig, store: str
) -> ckpt.Pipeline:
    """A pipeline running ``nodes`` in an order that respects their dependencies."""
    graph = {
        name: {p for p in inspect.signature(fn).parameters if p in nodes}
        for name, fn in nodes.items()
    }
    order = list(graphlib.TopologicalSorter(graph).static_order())
    return ckpt.Pipeline(
        [(name, nodes[name]) for name in order],
        store=store,
        checkpoint_every=1 if config.checkpoint_after_each_node else None,
        checkpoint_interval=config.checkpoint_interval_ms / 1000 or None,
        keep_last=config.max_checkpoints_per_trace,
        partial_every=250,
        partial_interval=10.0,
    )


FLAKY = {"aggregate": 1}  # the aggregate node fails once, like a dropped connection


def ingest(input: int) -> list[int]:
    return list(range(input))


def clean(ingest: list[int]) -> list[int]:
    return [x for x in ingest if x % 7]


def process(clean: list[int], ctx: ckpt.StageContext) -> dict[str, int]:
    """A long node: 1000s of records, with its own checkpoints every 250 records or 10 s."""
    totals: dict[str, int] = ctx.partial(dict[str, int], {"count": 0, "sum": 0})
    for record in clean[totals["count"] :]:
        totals = {"count": totals["count"] + 1, "sum": totals["sum"] + record * record}
        ctx.checkpoint(totals, tokens=1, items_done=totals["count"], items_total=len(clean))
    return totals


def aggregate(process: dict[str, int], clean: list[int]) -> float:
    if FLAKY["aggregate"]:
        FLAKY["aggregate"] -= 1
        raise ConnectionError("connection reset while aggregating")
    return process["sum"] / max(len(clean), 1)


def report(aggregate: float, process: dict[str, int]) -> str:
    return f"{process['count']} records, mean square {aggregate:.1f}"


NODES: dict[str, Callable[..., Any]] = {
    "report": report,
    "aggregate": aggregate,
    "process": process,
    "clean": clean,
    "ingest": ingest,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store directory (default: a new temporary one)")
    args = parser.parse_args()
    store = args.store or tempfile.mkdtemp(prefix="graph-")
    if args.store is None:  # a temporary store goes when the example ends
        atexit.register(shutil.rmtree, store, ignore_errors=True)
    config = ExecutorConfig(
        checkpoint_interval_ms=5000, checkpoint_after_each_node=True, max_checkpoints_per_trace=6
    )
    graph = executor(NODES, config, store)
    print(f"node order: {' -> '.join(graph.stage_names)}")
    trace_id = "trace-123"

    try:
        graph.run(trace_id, 2000)
    except ConnectionError as exc:
        print(f"execution failed: {exc}")

    repo = ckpt.open(store)
    job = repo.job(trace_id)
    print("checkpoints (newest first; history is pruned to the newest 6):")
    for commit in job.log():
        label = commit.stage or "-"
        print(f"  step {commit.seq:>2}: {label:<18} ({commit.status})")
    oldest = job.log()[-1]
    print(f"  history cut before step {oldest.seq}: {job.is_cut(oldest)}")

    result = graph.run(trace_id)  # resume_from_checkpoint(trace_id)
    print(f"resumed: skipped {', '.join(result.skipped)}; ran {', '.join(result.ran)}")
    print(f"result: {result.output}")
    assert result.ran == ("aggregate", "report")

    gc = repo.gc(grace=dt.timedelta(0))
    print(f"gc after pruning: {gc.deleted} objects deleted; verify ok: {repo.verify().ok}")
    assert repo.verify().ok


if __name__ == "__main__":
    main()
