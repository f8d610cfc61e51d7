"""W3 history: cost of opening a store and reading the newest state as history grows.

Stores are built without fsync (building is not timed).  Each timing opens
the store afresh (``ckpt.open``), so nothing is cached in the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial

import ckpt
from bench.common import Ratio, Section, human_seconds, scratch
from bench.messages import prose

#: Seconds ``ckpt jobs`` may take to list 10,000 jobs.
JOBS_BUDGET = 0.3


def _build_history(path: str, commits: int) -> None:
    repo = ckpt.init(path, durable=False)
    job = repo.job("history")
    rng = random.Random(commits)
    text = prose(rng, 4000)
    for step in range(commits):
        start = rng.randrange(0, 2000)
        job.save("state", {"step": step, "notes": text[start : start + 2000]}, tokens=step)
    repo.close()


def _build_jobs(path: str, jobs: int) -> None:
    repo = ckpt.init(path, durable=False)
    for n in range(jobs):
        repo.job(f"job-{n:05d}").save("state", {"n": n})
    repo.close()


def _timed(fn: Callable[[], object], inner: int) -> float:
    runs = []
    for _ in range(inner):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def _rounds(
    measure: Callable[[], float], baseline: Callable[[], float], rounds: int
) -> tuple[list[float], str]:
    """Per round, the baseline's time then the measure's: their ratios, and the median
    times as text ("measure vs baseline")."""
    ratios, pairs = [], []
    for _ in range(rounds):
        base = baseline()
        many = measure()
        ratios.append(many / base)
        pairs.append((many, base))
    many, base = map(statistics.median, zip(*pairs, strict=True))
    return ratios, f"{human_seconds(many)} vs {human_seconds(base)}"


def _load_latest(path: str) -> object:
    with ckpt.open(path) as repo:
        return repo.job("history").load("state")


def _log20(path: str) -> object:
    return _log_n(path, 20)


def _log_n(path: str, limit: int) -> object:
    with ckpt.open(path) as repo:
        return repo.job("history").log(limit=limit)


def _job_names(path: str) -> object:
    with ckpt.open(path) as repo:
        return repo.job_names()


def _list_jobs(path: str) -> object:
    from ckpt.pipeline.listing import list_jobs

    with ckpt.open(path) as repo:
        return list_jobs(repo)


def _ckpt_jobs_json(path: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "ckpt", "--store", path, "jobs", "--json"],
        stdout=subprocess.DEVNULL,
        check=True,
    )


@contextlib.contextmanager
def _dashboard(path: str) -> Iterator[str]:
    """``ckpt ui`` serving ``path`` in a process of its own (as a user runs it); its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ckpt", "--store", path, "ui", "--no-open"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"at (http://\S+/) ", line)
        if found is None:
            raise RuntimeError(f"ckpt ui did not start: {line!r}")
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _get_jobs(url: str) -> None:
    with urllib.request.urlopen(url + "api/jobs", timeout=600) as answer:
        json.loads(answer.read())


def _ui_row(path: str, jobs: int, rounds: int) -> Ratio:
    """The jobs page's API (``GET /api/jobs`` of a running ``ckpt ui``, answer read and
    parsed) against ``ckpt jobs --json`` (a new process, as a script runs it), same store."""
    with _dashboard(path) as url:
        _get_jobs(url)  # a dashboard that has served its page once
        ratios, absolute = _rounds(
            partial(_timed, partial(_get_jobs, url), 1),
            partial(_timed, partial(_ckpt_jobs_json, path), 1),
            rounds,
        )
    return Ratio(
        "W3",
        f"jobs page API (`GET /api/jobs` of `ckpt ui`), {jobs} jobs",
        "`ckpt jobs --json`, same store",
        ratios,
        2.0,
        absolute=absolute,
    )


def run(small: int, large: int, repeats: int, inner: int) -> Section:
    section = Section("W3", f"W3 history ({small} vs {large} commits / jobs)")
    with scratch("w3") as tmp:
        paths = {}
        for n in (small, large):
            paths[("h", n)] = os.path.join(tmp, f"history-{n}")
            _build_history(paths[("h", n)], n)
            paths[("j", n)] = os.path.join(tmp, f"jobs-{n}")
            _build_jobs(paths[("j", n)], n)
        files = os.path.join(tmp, "files")
        os.makedirs(files)
        for n in range(large):
            open(os.path.join(files, f"file-{n:05d}"), "wb").close()
        rows: list[tuple[str, Callable[[str], object], float | None]] = [
            ("open + load latest", _load_latest, 1.2),
            ("open + log -n 20", _log20, 1.2),
            # The same number of commits shown at both sizes: how log scales with history
            # alone (log -n 20 on a job of fewer commits shows fewer).
            (
                f"open + log -n {small}",
                lambda path: _log_n(path, small),
                None,
            ),
        ]
        for what, fn, target in rows:
            ratios, absolute = _rounds(
                partial(_timed, partial(fn, paths[("h", large)]), inner),
                partial(_timed, partial(fn, paths[("h", small)]), inner),
                repeats,
            )
            section.rows.append(
                Ratio(
                    "W3",
                    f"{what}, {large} commits",
                    f"same, {small} commits",
                    ratios,
                    target,
                    absolute=absolute,
                )
            )
        listing_seconds: list[float] = []
        # `ckpt jobs` caches what it showed of each job (ckpt/pipeline/jobcache.py) and
        # trusts an entry once the job has not changed for SETTLED seconds: wait that
        # long, then list once untimed (the cold listing, which fills the cache).
        from ckpt.pipeline.jobcache import SETTLED

        time.sleep(SETTLED + 0.5)
        cold = _timed(partial(_list_jobs, paths[("j", large)]), 1)
        for what, fn, target, rounds in (
            ("job names (`Repository.job_names`)", _job_names, 5.0, repeats),
            # Reads every job's head: fewer rounds.
            ("`ckpt jobs` listing (`listing.list_jobs`)", _list_jobs, None, min(repeats, 3)),
        ):
            mine: list[float] = []

            def measure(fn: Callable[[str], object] = fn, mine: list[float] = mine) -> float:
                seconds = _timed(partial(fn, paths[("j", large)]), 1)
                mine.append(seconds)
                return seconds

            ratios, absolute = _rounds(
                measure, lambda: _timed(lambda: os.listdir(files), inner), rounds
            )
            section.rows.append(
                Ratio(
                    "W3",
                    f"{what}, {large} jobs",
                    f"listing {large} files (os.listdir)",
                    ratios,
                    target,
                    absolute=absolute,
                )
            )
            if fn is _list_jobs:
                listing_seconds = mine
        # The budget: 0.3 s for 10,000 jobs (scaled for smaller runs).
        budget = JOBS_BUDGET * large / 10_000
        section.rows.append(
            Ratio(
                "W3",
                f"`ckpt jobs` listing, {large} jobs, wall time",
                f"budget of {human_seconds(budget)}",
                [seconds / budget for seconds in listing_seconds],
                1.0,
                absolute=f"{human_seconds(statistics.median(listing_seconds))} "
                f"(cold, filling the cache: {human_seconds(cold)})",
            )
        )
        section.rows.append(_ui_row(paths[("j", large)], large, min(repeats, 3)))
    section.notes.append(
        "History commits each save a ~2 KB dict (below the delta/chunking thresholds), so these "
        "rows measure how lookups scale with the number of objects and packs. "
        f"`log -n 20` on the job of {small} commits shows {small}, on the other 20 (twice "
        f"the commits read and decoded); `log -n {small}` shows {small} on both. "
        "The jobs page API row times a request to a running `ckpt ui` (its answer read and "
        "parsed, after one request that warmed the dashboard up) against a new `ckpt jobs "
        "--json` process; both list every job with `listing.list_jobs`."
    )
    return section
