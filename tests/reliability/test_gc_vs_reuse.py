"""Guarantee 9: a save that reuses stored objects survives a gc that deletes them meanwhile.

A save that finds a value already stored relies on the stored copy, and on
everything that copy needs: its delta base (and that base's base) and, for a
chunked value, its chunks, which may be spread over many packs.  Here three
versions of two stages (each a delta against the one before, one of them
chunked) are saved, then made garbage by deleting their job.  gc runs in its
own process (a thread for the in-memory backend) and is made to stop before
each of its deletions in turn (``CKPT_TEST_GC_PAUSE_DIR``); while it is
stopped there, another process saves the last version again.  When gc has
finished, that save must load, value by value, and ``verify --full`` must be
clean.  On every backend; on S3 gc collects in two phases, and the save runs
during the second.

Before the fix, the save touched only the pack holding the value it reused:
gc, having judged the other packs old before that touch, removed the delta
bases and chunks, and the returned save failed to load ("its delta base ...
is missing").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ckpt
from ckpt.maintenance.gc import collect
from tests.servers import delete_redis_namespace

from ._support import Figures, result, reused_versions, spawn

OLD_JOB = "old"
NO_GRACE = dt.timedelta(0)
#: A pause the test never releases by itself within this long is a hang.
PAUSE_TIMEOUT = 120.0


def _build(store_url: str) -> None:
    """The three versions, saved and then made garbage."""
    repo = ckpt.init(store_url)
    job = repo.job(OLD_JOB)
    for version in reused_versions():
        for stage, value in version.items():
            job.save(stage, value)
    repo.delete_job(OLD_JOB)
    repo.close()


def _age(backend: str, store_url: str) -> None:
    """Make the garbage old enough for gc with no grace period to take it."""
    if backend != "s3":
        time.sleep(0.2)  # past the file system's mtime tick
        return
    # Two-phase gc: phase 1 records the candidates now, phase 2 (the run under
    # test) deletes them.  S3 keeps mtimes to the second.
    time.sleep(1.1)
    collect(ckpt.open(store_url), grace=NO_GRACE)
    time.sleep(1.1)


class _GcRun:
    """One gc run stopped before each deletion; ``step`` lets it go on to the next."""

    def __init__(self, backend: str, store_url: str, pauses: Path) -> None:
        pauses.mkdir()
        self.pauses = pauses
        self.count = 0
        self.thread: threading.Thread | None = None
        self.child: subprocess.Popen[str] | None = None
        self.error: BaseException | None = None
        if backend == "memory":
            os.environ["CKPT_TEST_GC_PAUSE_DIR"] = str(pauses)

            def run() -> None:
                try:
                    collect(ckpt.open(store_url), grace=NO_GRACE)
                except BaseException as exc:  # reported by finish()
                    self.error = exc

            self.thread = threading.Thread(target=run)
            self.thread.start()
        else:
            env = dict(os.environ, CKPT_TEST_GC_PAUSE_DIR=str(pauses))
            self.child = spawn("gc-once", store_url, 0, env=env)

    def _running(self) -> bool:
        if self.thread is not None:
            return self.thread.is_alive()
        assert self.child is not None
        return self.child.poll() is None

    def next_pause(self) -> bool:
        """Wait for gc's next deletion point; False once gc has finished instead."""
        marker = self.pauses / f"{self.count + 1}.paused"
        deadline = time.monotonic() + PAUSE_TIMEOUT
        while not marker.exists():
            if not self._running():
                return False
            if time.monotonic() > deadline:
                raise TimeoutError("gc neither paused nor finished")
            time.sleep(0.005)
        self.count += 1
        return True

    def resume(self) -> None:
        (self.pauses / f"{self.count}.go").touch()

    def finish(self) -> None:
        if self.thread is not None:
            self.thread.join()
            os.environ.pop("CKPT_TEST_GC_PAUSE_DIR", None)
            if self.error is not None:
                raise self.error
        else:
            assert self.child is not None
            result(self.child)


def _save_again(backend: str, store_url: str, job: str) -> str:
    if backend == "memory":
        return ckpt.open(store_url).job(job).save_many(reused_versions()[-1]).id
    commit: str = result(spawn("save-last-version", store_url, job))["commit"]
    return commit


def _run(backend: str, store_url: str, pauses: Path, act_at: int, act: Callable[[], None]) -> int:
    """One gc run; ``act`` runs while gc is stopped at its ``act_at``-th deletion.
    Returns how many deletion points gc passed."""
    run = _GcRun(backend, store_url, pauses)
    try:
        while run.next_pause():
            if run.count == act_at:
                act()
            run.resume()
    finally:
        # Never leave gc waiting: let it run to its end whatever happened.
        for number in range(1, 1000):
            (pauses / f"{number}.go").touch()
        run.finish()
    return run.count


@pytest.mark.slow
def test_a_save_reusing_objects_survives_gc_paused_at_each_deletion(
    store_url: str, backend: str, tmp_path: Path, figures: Figures
) -> None:
    _build(store_url)
    _age(backend, store_url)
    points = _run(backend, store_url, tmp_path / "probe", 0, lambda: None)
    assert points >= 3, "gc should delete the packs of the three saves one by one"
    expected = reused_versions()[-1]
    for point in range(1, points + 1):
        with _another_store(store_url, backend, tmp_path, point) as url:
            _build(url)
            _age(backend, url)
            saved: list[str] = []

            def save(url: str = url, saved: list[str] = saved) -> None:
                saved.append(_save_again(backend, url, "new"))

            _run(backend, url, tmp_path / f"pauses-{point}", point, save)
            assert saved, f"gc passed fewer deletion points than the probe run ({point})"
            repo = ckpt.open(url)
            job = repo.job("new")
            for stage, value in expected.items():
                assert job.load(stage, at=saved[0]) == value, f"paused at deletion {point}"
            report = repo.verify(full=True)
            assert report.ok, (point, [p.message for p in report.problems])
            repo.close()
        figures.add(f"{backend}_deletion_points", 1)
    figures.set("returned_saves_lost", 0)


@contextlib.contextmanager
def _another_store(store_url: str, backend: str, tmp_path: Path, number: int) -> Iterator[str]:
    """The URL of another empty store of the same backend as ``store_url``."""
    if backend == "local":
        root = tmp_path / f"store-{number}"
        root.mkdir()
        yield str(root)
    elif backend == "sqlite":
        yield f"sqlite://{tmp_path / f'store-{number}.db'}"
    elif backend == "memory":
        from ckpt.storage.memory import forget

        yield f"{store_url}-{number}"
        forget(f"{store_url.removeprefix('memory://')}-{number}")
    elif backend == "redis":
        server, _, namespace = store_url.partition("/0?prefix=")
        yield f"{store_url}-{number}"
        delete_redis_namespace(server, f"{namespace}-{number}")
    elif backend == "postgresql":
        yield f"{store_url}_{number}"  # ...?schema=test_HEX_N: the server goes with the test
    else:
        yield f"{store_url}-{number}"  # s3://BUCKET/store-N: the bucket goes with the server
