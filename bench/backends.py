"""Storage backends: save/load latency and push/pull throughput, against the local backend.

::

    python -m bench.backends [--quick] [--repeats N] [--json]

Starts its own ``redis-server``, moto S3 server and PostgreSQL server on
127.0.0.1 (with :mod:`tests.servers`, as the test suite does; a backend whose
server is not installed is left out with a note).  For each backend (local,
memory, sqlite, redis, s3 on moto, postgresql) it measures, in a fresh store
per repeat:

* **save latency**: one durable ``Job.save`` of a ~2 KB JSON stage value,
  distinct values, timed one by one;
* **load latency**: ``Job.load`` of those stages through a second handle on
  the store (so that nothing is served from the writer's caches);
* **push / pull throughput**: ``ckpt.transfer.remote.push`` of one job (checkpoints
  of 64 KB incompressible bytes plus a small JSON stage) from a local store
  to an empty store of the backend, then ``pull`` of it into an empty local
  store; MB/s of canonical bytes and objects/s.

Each figure is a ratio against the local backend measured in the same
repeat (latency: backend / local, lower is better; throughput: backend /
local, higher is better), given as median and min-max over repeats, with
the absolute median (and, for latency, the 10th-90th percentile of every
operation) alongside.  Numbers on moto say how ckpt's request pattern
behaves, not what AWS S3 would take: moto answers one request at a time on
loopback.  PostgreSQL runs with ``fsync = on`` (its durable setting, as the
local backend fsyncs), Redis without persistence.  ``rows()`` returns the
figures for the bench suite and ``run()`` a :class:`bench.common.Section`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `ckpt`, `bench` and `tests` importable
    sys.path.insert(0, str(ROOT))

import ckpt  # noqa: E402
from ckpt.transfer.remote import pull, push  # noqa: E402

if TYPE_CHECKING:
    from bench.common import Section

BACKENDS = ("local", "memory", "sqlite", "redis", "s3", "postgresql")
#: The backends that need a server, which :func:`servers` starts.
SERVED = ("redis", "s3", "postgresql")
BASELINE = "local backend"


@contextlib.contextmanager
def servers(workdir: Path, notes: list[str]) -> Iterator[dict[str, str]]:
    """Start redis-server, moto's S3 server and PostgreSQL; yields backend -> server URL for
    those that started (boto3 is pointed at moto through the environment until the block
    ends)."""
    from tests import servers as test_servers

    found: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        redis_dir = workdir / "redis"
        redis_dir.mkdir()
        try:
            found["redis"] = stack.enter_context(test_servers.redis_server(redis_dir))
        except (test_servers.ServerUnavailable, test_servers.ServerFailed) as exc:
            notes.append(f"redis left out: {str(exc).splitlines()[0]}")
        s3_dir = workdir / "moto"
        s3_dir.mkdir()
        try:
            endpoint = stack.enter_context(test_servers.s3_server(s3_dir))
            stack.enter_context(test_servers.s3_environ(endpoint, s3_dir))
            found["s3"] = endpoint
        except (test_servers.ServerUnavailable, test_servers.ServerFailed) as exc:
            notes.append(f"s3 left out: {str(exc).splitlines()[0]}")
        postgres_dir = workdir / "postgres"
        postgres_dir.mkdir()
        try:
            server = stack.enter_context(test_servers.postgres_server(postgres_dir, fsync=True))
            found["postgresql"] = server.url
        except (test_servers.ServerUnavailable, test_servers.ServerFailed) as exc:
            notes.append(f"postgresql left out: {str(exc).splitlines()[0]}")
        yield found


def _new_store(backend: str, workdir: Path, found: dict[str, str]) -> str:
    """The URL of a fresh, empty store of ``backend`` (created)."""
    name = uuid.uuid4().hex[:12]
    if backend == "local":
        url = str(workdir / f"local-{name}")
    elif backend == "memory":
        url = f"memory://bench-{name}"
    elif backend == "sqlite":
        url = f"sqlite://{workdir / f'sqlite-{name}.db'}"
    elif backend == "redis":
        url = f"{found['redis']}/0?prefix=bench-{name}"
    elif backend == "postgresql":
        url = f"{found['postgresql']}?schema=bench_{name}"
    else:
        from tests.servers import new_bucket

        url = f"s3://{new_bucket()}/bench"
    ckpt.init(url).close()
    return url


def _forget(url: str) -> None:
    if url.startswith("memory://"):
        from ckpt.storage.memory import forget

        forget(url[len("memory://") :])
    elif url.startswith("postgresql://"):
        from tests.servers import drop_postgres_schema

        server, _, schema = url.partition("?schema=")
        drop_postgres_schema(server, schema)


def _stage_value(i: int) -> dict[str, Any]:
    """A ~2 KB JSON stage value, distinct for every ``i``."""
    return {
        "step": i,
        "title": f"chapter {i}",
        "beats": [f"beat {i}.{j}: " + "the tide turns and the lighthouse " * 2 for j in range(20)],
    }


def human_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _latencies(url: str, ops: int) -> tuple[list[float], list[float]]:
    """Per-operation save and load times on the store at ``url``."""
    with ckpt.open(url) as writer, ckpt.open(url) as reader:
        job = writer.job("latency")
        job.save("warmup", _stage_value(-1))
        values = [_stage_value(i) for i in range(ops)]
        saves = [_timed(partial(job.save, f"s{i}", value)) for i, value in enumerate(values)]
        other = reader.job("latency")
        other.load("warmup")
        loads = [_timed(partial(other.load, f"s{i}")) for i in range(ops)]
    return saves, loads


def _source(workdir: Path, checkpoints: int) -> str:
    """A local store holding job ``transfer`` with ``checkpoints`` checkpoints."""
    url = str(workdir / f"source-{uuid.uuid4().hex[:12]}")
    with ckpt.init(url, durable=False) as repo:
        job = repo.job("transfer")
        for i in range(checkpoints):
            job.save_many({"state": os.urandom(64 << 10), "meta": _stage_value(i)})
    return url


def _transfer(source: str, backend: str, workdir: Path, found: dict[str, str]) -> dict[str, float]:
    """Push ``source`` to a fresh store of ``backend``, pull it into a fresh local store."""
    target = _new_store(backend, workdir, found)
    back = _new_store("local", workdir, found)
    try:
        with ckpt.open(source) as repo:
            start = time.perf_counter()
            pushed = push(repo, target)
            push_s = time.perf_counter() - start
        with ckpt.open(back) as repo:
            start = time.perf_counter()
            pulled = pull(repo, target)
            pull_s = time.perf_counter() - start
    finally:
        _forget(target)
    if pushed.rejected or pulled.rejected:
        raise RuntimeError(f"transfer to {backend} refused a ref")
    return {
        "push_mb_s": pushed.bytes_copied / push_s / 1e6,
        "push_obj_s": pushed.objects_copied / push_s,
        "pull_mb_s": pulled.bytes_copied / pull_s / 1e6,
        "pull_obj_s": pulled.objects_copied / pull_s,
        "bytes": float(pushed.bytes_copied),
        "objects": float(pushed.objects_copied),
    }


def _rate(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    low = ordered[int(0.1 * (len(ordered) - 1))]
    high = ordered[int(0.9 * (len(ordered) - 1))]
    return f"{human_seconds(low)}-{human_seconds(high)}"


def measure(
    *,
    quick: bool = False,
    repeats: int | None = None,
    ops: int | None = None,
    checkpoints: int | None = None,
    notes: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Raw figures per backend: per-repeat medians and every sample (see :func:`rows`)."""
    notes = notes if notes is not None else []
    repeats = repeats or (2 if quick else 5)
    ops = ops or (15 if quick else 60)
    checkpoints = checkpoints or (8 if quick else 40)
    raw: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ckpt-bench-backends-") as tmp:
        workdir = Path(tmp)
        with servers(workdir, notes) as found:
            backends = [b for b in BACKENDS if b not in SERVED or b in found]
            for backend in backends:
                raw[backend] = {"save": [], "load": [], "save_all": [], "load_all": []}
                raw[backend].update({key: [] for key in ("push_mb_s", "push_obj_s")})
                raw[backend].update({key: [] for key in ("pull_mb_s", "pull_obj_s")})
            source = _source(workdir, checkpoints)
            for _ in range(repeats):
                for backend in backends:  # interleaved, so that noise hits every backend alike
                    url = _new_store(backend, workdir, found)
                    try:
                        saves, loads = _latencies(url, ops)
                    finally:
                        _forget(url)
                    figures = raw[backend]
                    figures["save"].append(statistics.median(saves))
                    figures["load"].append(statistics.median(loads))
                    figures["save_all"] += saves
                    figures["load_all"] += loads
                    moved = _transfer(source, backend, workdir, found)
                    for key in ("push_mb_s", "push_obj_s", "pull_mb_s", "pull_obj_s"):
                        figures[key].append(moved[key])
                    figures["bytes"], figures["objects"] = moved["bytes"], moved["objects"]
    notes.append(
        f"{repeats} repeats; latency over {ops} saves and loads of a ~2 KB JSON value per "
        f"repeat; transfer of {checkpoints} checkpoints of 64 KB random bytes plus 2 KB JSON."
    )
    return raw


def rows(
    *,
    quick: bool = False,
    repeats: int | None = None,
    ops: int | None = None,
    checkpoints: int | None = None,
    notes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per backend and measure, with the fields of :class:`bench.common.Ratio`:
    workload, what, baseline, values (per-repeat ratios to the local backend), absolute,
    and ``backend``.  ``ops`` and ``checkpoints`` override the sizes (see :func:`measure`)."""
    raw = measure(quick=quick, repeats=repeats, ops=ops, checkpoints=checkpoints, notes=notes)
    base = raw["local"]
    out: list[dict[str, Any]] = []
    for backend, figures in raw.items():
        for op in ("save", "load"):
            ratios = [b / a for b, a in zip(figures[op], base[op], strict=True)]
            out.append(
                {
                    "workload": "backends",
                    "backend": backend,
                    "what": f"{op} latency, {backend}",
                    "baseline": BASELINE,
                    "values": ratios,
                    "absolute": f"median {human_seconds(statistics.median(figures[op]))} "
                    f"(p10-p90 {_percentiles(figures[op + '_all'])})",
                }
            )
        for op in ("push", "pull"):
            mb = figures[f"{op}_mb_s"]
            objs = figures[f"{op}_obj_s"]
            ratios = [b / a for b, a in zip(mb, base[f"{op}_mb_s"], strict=True)]
            direction = f"local -> {backend}" if op == "push" else f"{backend} -> local"
            out.append(
                {
                    "workload": "backends",
                    "backend": backend,
                    "what": f"{op} throughput, {direction}",
                    "baseline": f"{op} local -> local",
                    "values": ratios,
                    "at_least": True,
                    "absolute": f"{_rate(statistics.median(mb))} MB/s, "
                    f"{_rate(statistics.median(objs))} objects/s",
                }
            )
    return out


def run(
    quick: bool = False,
    repeats: int | None = None,
    ops: int | None = None,
    checkpoints: int | None = None,
) -> Section:
    """The figures as a section of the bench suite's report (arguments as for :func:`rows`)."""
    from bench.common import Ratio, Section

    section = Section("backends", "Storage backends: latency and transfer throughput")
    found = rows(
        quick=quick, repeats=repeats, ops=ops, checkpoints=checkpoints, notes=section.notes
    )
    for row in found:
        section.rows.append(
            Ratio(
                workload=row["workload"],
                what=row["what"],
                baseline=row["baseline"],
                values=row["values"],
                at_least=row.get("at_least", False),
                absolute=row["absolute"],
            )
        )
    section.notes.append(
        "S3 runs on moto on loopback, one request at a time: its figures show the cost of "
        "ckpt's request pattern, not AWS latency."
    )
    section.notes.append(
        "PostgreSQL runs on loopback with fsync = on (every save waits for its write-ahead "
        "log on disk, as the local backend waits for fsync); Redis runs without persistence."
    )
    return section


def table(found: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| measure | baseline | ratio (median) | spread (min-max) | absolute (median) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in found:
        values = row["values"]
        spread = f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else "-"
        lines.append(
            f"| {row['what']} | {row['baseline']} | {statistics.median(values):.2f}x | "
            f"{spread} | {row['absolute']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations and repeats")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 5, quick 2)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    notes: list[str] = []
    found = rows(quick=args.quick, repeats=args.repeats, notes=notes)
    if args.json:
        print(json.dumps(found, indent=1))
        return
    print(table(found))
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
