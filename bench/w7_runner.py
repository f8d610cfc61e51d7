"""W7 runner overhead: a pipeline and a fan-out run by ckpt vs the same functions called directly.

Each stage (and each fan-out item) sleeps a fixed time, as a fast model or
API call would, and passes a number on.  The baseline calls the functions
in a plain loop (a thread pool of the same width for the parallel
fan-out); the measure runs them through ``ckpt.Pipeline`` on a durable
local store, so that it includes everything a run pays for: the lease,
saving the input, one fsynced commit per stage (per group of items), the
completion commit.  The ratio is runner time over direct time; the
absolute column gives the overhead per stage (per item) in time.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import ckpt
from bench.common import Ratio, Section, human_seconds, scratch

STAGE_WORK = 0.010  # seconds per stage: a fast call
ITEM_WORK = 0.005  # seconds per fan-out item
LANES = 8


def _stages(count: int) -> list[ckpt.Stage]:
    """``count`` stages, each taking the previous one's output (the first takes the input)."""
    made = []
    previous = "input"
    for number in range(count):
        name = f"s{number:03d}"
        namespace = {"time": time, "WORK": STAGE_WORK}
        # Stage functions whose parameter names chain them: each takes the one before.
        exec(
            f"def {name}({previous}: int) -> int:\n"
            f"    time.sleep(WORK)\n"
            f"    return {previous} + 1\n",
            namespace,
        )
        made.append(ckpt.stage(namespace[name]))  # type: ignore[arg-type]
        previous = name
    return made


def _item(value: int) -> int:
    time.sleep(ITEM_WORK)
    return value * 2


def _direct_stages(stages: list[ckpt.Stage]) -> Callable[[], object]:
    def run() -> object:
        value = 0
        for stage in stages:
            value = stage.fn(value)
        return value

    return run


def _runner(pipeline: ckpt.Pipeline, counter: list[int]) -> Callable[[], object]:
    def run() -> object:
        counter[0] += 1
        return pipeline.run(f"job-{counter[0]}", 0).output

    return run


def _fan_out_stage(items: int, lanes: int) -> ckpt.Stage:
    def fan(input: int, ctx: ckpt.StageContext) -> list[int]:
        out: list[int] = ctx.map(_item, range(input, input + items), max_concurrency=lanes)
        return out

    return ckpt.stage(fan)


def _direct_map(items: int, lanes: int) -> Callable[[], object]:
    def run() -> object:
        if lanes == 1:
            return [_item(n) for n in range(items)]
        with ThreadPoolExecutor(lanes) as pool:
            return list(pool.map(_item, range(items)))

    return run


def _once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _row(
    what: str,
    baseline: str,
    measure: Callable[[], object],
    direct: Callable[[], object],
    units: int,
    unit: str,
    repeats: int,
) -> Ratio:
    ratios, overheads, pairs = [], [], []
    for _ in range(repeats):
        base = _once(direct)
        took = _once(measure)
        ratios.append(took / base)
        overheads.append((took - base) / units)
        pairs.append((took, base))
    took, base = map(statistics.median, zip(*pairs, strict=True))
    absolute = (
        f"{human_seconds(took)} vs {human_seconds(base)}; "
        f"{human_seconds(statistics.median(overheads))} per {unit}"
    )
    return Ratio("W7", what, baseline, ratios, absolute=absolute)


def run(stage_count: int, item_count: int, repeats: int) -> Section:
    section = Section("W7", f"W7 runner overhead ({stage_count} stages, {item_count} items)")
    with scratch("w7") as tmp:
        store = os.path.join(tmp, "store")
        ckpt.init(store).close()  # durable: every commit is fsynced, as users get it
        counter = [0]
        stages = _stages(stage_count)
        section.rows.append(
            _row(
                f"pipeline of {stage_count} stages ({human_seconds(STAGE_WORK)} each)",
                "the functions called in a loop",
                _runner(ckpt.Pipeline(stages, store=store), counter),
                _direct_stages(stages),
                stage_count,
                "stage",
                repeats,
            )
        )
        for lanes in (1, LANES):
            baseline = "a list comprehension" if lanes == 1 else f"ThreadPoolExecutor({lanes}).map"
            section.rows.append(
                _row(
                    f"ctx.map over {item_count} items ({human_seconds(ITEM_WORK)} each), "
                    f"max_concurrency={lanes}",
                    baseline,
                    _runner(
                        ckpt.Pipeline([_fan_out_stage(item_count, lanes)], store=store),
                        counter,
                    ),
                    _direct_map(item_count, lanes),
                    item_count,
                    "item",
                    repeats,
                )
            )
    section.notes.append(
        "Runner time over direct time, on a durable local store: the lease, the input, "
        "one fsynced commit per stage (items finishing together share one), the "
        "completion.  The absolute column ends with the overhead per stage or item."
    )
    return section
