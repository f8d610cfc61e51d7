"""Shared helpers: timing with repeats, ratios with spread, disk usage, machine facts."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class Ratio:
    """A measured figure as a ratio against a baseline of the same run.

    ``values`` holds one ratio per repeat; the table shows the median and the
    min-max spread.  ``target`` is the highest (or, with ``at_least``, the
    lowest) acceptable median.
    """

    workload: str
    what: str
    baseline: str
    values: list[float]
    target: float | None = None
    at_least: bool = False
    detail: str = ""
    absolute: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.median >= self.target if self.at_least else self.median <= self.target

    def spread(self) -> str:
        if len(self.values) < 2:
            return "-"
        return f"{fmt(min(self.values))}-{fmt(max(self.values))}"


@dataclass
class Section:
    """The rows of one workload plus free notes."""

    name: str
    title: str
    rows: list[Ratio] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def human_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(fn: Callable[[], object], inner: int) -> float:
    """Median wall time of ``inner`` calls of ``fn``."""
    return statistics.median(timed(fn) for _ in range(inner))


def disk_usage(path: str) -> int:
    """Bytes the files under ``path`` occupy on disk (like ``du``: allocated blocks)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def apparent_size(path: str) -> int:
    """Sum of file sizes under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def file_count(path: str) -> int:
    return sum(len(files) for _root, _dirs, files in os.walk(path))


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[str]:
    """A temporary directory on the same disk as the system temp dir, removed after."""
    path = tempfile.mkdtemp(prefix=f"ckpt-bench-{prefix}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fsync_write(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def machine() -> dict[str, str]:
    """Facts about the machine the run is on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    disk = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["df", "-hT", tempfile.gettempdir()], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
        if len(out) > 1:
            fields = out[1].split()
            disk = f"{fields[1]} on {fields[0]} ({fields[2]})"
    import blake3
    import zstandard

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "disk": disk,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "zstandard": zstandard.__version__,
        "blake3": getattr(blake3, "__version__", "?"),
    }


def run_child(code: str, *args: str, timeout: float = 600) -> str:
    """Run ``code`` in a fresh interpreter (repo root on sys.path); return its stdout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout
