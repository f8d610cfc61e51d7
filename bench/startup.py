"""Start-up time of the ckpt command, as a ratio to ``python -c "import click"``.

::

    python bench/startup.py [--repeats N]

Measures, in fresh interpreters, ``ckpt --help`` (which must import click and
ckpt's small CLI modules only) and ``ckpt log JOB -n 10`` on a store holding a
20-checkpoint job (which imports the library it needs, lazily), against the
baseline of starting Python and importing click.  Runs are interleaved so
that a noisy machine slows baseline and command alike; the table shows the
median ratio, its min-max spread over the repeats, and the median wall
times.  ``rows()`` returns the figures for the bench suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

BASELINE = "python -c 'import click'"
JOB = "novel"


def _wall(argv: Sequence[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-2000:]}")
    return elapsed


def _make_store(path: str) -> None:
    """A store with one job of 20 checkpoints (written in a child, like a user's pipeline)."""
    code = (
        "import sys, ckpt\n"
        "repo = ckpt.init(sys.argv[1], durable=False)\n"
        f"job = repo.job({JOB!r})\n"
        "for i in range(20):\n"
        "    value = {'step': i, 'text': 'words ' * 200}\n"
        "    job.save(f'stage{i % 5}', value, cost=0.01, tokens=100)\n"
        "job.complete()\n"
    )
    subprocess.run([sys.executable, "-c", code, path], check=True)


def rows(repeats: int = 15) -> list[dict[str, Any]]:
    """One row per command: workload, what, baseline, per-repeat ratios, absolute times
    (the fields of the suite's ``Ratio``)."""
    with tempfile.TemporaryDirectory(prefix="ckpt-bench-startup-") as tmp:
        store = os.path.join(tmp, ".ckpt")
        _make_store(store)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_")}
        env["NO_COLOR"] = "1"
        # Byte-code cached as in an installed package (pip compiles it), here in a
        # scratch directory: without this, PYTHONDONTWRITEBYTECODE in the caller's
        # environment would make every run compile ckpt and click from source.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
        commands = {
            "ckpt --help": [sys.executable, "-m", "ckpt", "--help"],
            f"ckpt log {JOB} -n 10": [sys.executable, "-m", "ckpt", "log", JOB, "-n", "10"],
        }
        baseline_argv = [sys.executable, "-c", "import click"]
        for argv in [baseline_argv, *commands.values()]:  # warm the file cache and .pyc files
            _wall(argv, env, tmp)
        base: list[float] = []
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeats):
            base.append(_wall(baseline_argv, env, tmp))
            for name, argv in commands.items():
                times[name].append(_wall(argv, env, tmp))
    out: list[dict[str, Any]] = []
    for name, values in times.items():
        out.append(
            {
                "workload": "cli start-up",
                "what": name,
                "baseline": BASELINE,
                "values": [t / b for t, b in zip(values, base, strict=True)],
                "absolute": (
                    f"{statistics.median(values) * 1e3:.0f} ms vs "
                    f"{statistics.median(base) * 1e3:.0f} ms"
                ),
            }
        )
    return out


def table(measured: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = [
        f"| command | ratio to `{BASELINE}` (median) | spread (min-max) | wall time (median) |",
        "| --- | --- | --- | --- |",
    ]
    for row in measured:
        values = row["values"]
        lines.append(
            f"| `{row['what']}` | {statistics.median(values):.2f}x | "
            f"{min(values):.2f}-{max(values):.2f} | {row['absolute']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="runs of each command")
    args = parser.parse_args(argv)
    print(table(rows(args.repeats)))


if __name__ == "__main__":
    main()
