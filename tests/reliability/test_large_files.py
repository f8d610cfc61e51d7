"""Large files in constant memory, and a save of one killed halfway.

Each side of the memory test runs in a fresh interpreter that reports its
own peak resident memory (``VmHWM``); a third one, which runs the same code
on a file of one byte, is the baseline.  Saving and loading a file
several times larger than the bound must stay under
:data:`MEMORY_BOUND` above that baseline.

A child saving a 500 MB file is killed with SIGKILL once its first packs
are on disk: the job keeps its previous head, the store verifies clean,
gc takes the unreferenced packs, and saving again works.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import ckpt

from ._support import Figures

#: Bytes above the baseline a save or a load of a large file may peak at.
MEMORY_BOUND = 100 << 20
FILE_SIZE = int(os.environ.get("CKPT_LARGE_FILE_BYTES", str(256 << 20)))
KILLED_SIZE = 500 << 20

_CHILD = r"""
import json, os, resource, sys, time
import ckpt
from ckpt.values import filehooks, serialize  # what a save or a load imports
store, action, path = sys.argv[1], sys.argv[2], sys.argv[3]
started = time.monotonic()
if action == "save":
    ckpt.open(store).job("big").save("video", ckpt.File(path))
elif action == "load":
    loaded = ckpt.open(store).job("big").load("video")
    written = loaded.materialize(to=path)
    with loaded.open() as stream:
        while stream.read(1 << 20):
            pass
elif action == "baseline":  # the same code run on a file of one byte
    with open(os.path.join(path, "tiny"), "wb") as tiny:
        tiny.write(b"x")
    job = ckpt.open(store).job("baseline")
    job.save("video", ckpt.File(os.path.join(path, "tiny")))
    job.load("video").materialize(to=os.path.join(path, "out"))
def peak_rss():
    # VmHWM: this process's own peak (ru_maxrss may carry the parent's from before exec).
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
peak = peak_rss()
print(json.dumps({"peak": peak, "seconds": time.monotonic() - started}))
"""


def _write_random(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as out:
        for _ in range(0, size, 8 << 20):
            out.write(rng.randbytes(min(8 << 20, size - out.tell())))


def _child(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return parsed


def test_saving_and_loading_a_large_file_stays_in_constant_memory(
    tmp_path: Path, figures: Figures
) -> None:
    source = tmp_path / "video.bin"
    _write_random(source, FILE_SIZE, 1)
    store = tmp_path / "store"
    ckpt.init(store).close()
    baseline = _child(str(store), "baseline", str(tmp_path))["peak"]
    saved = _child(str(store), "save", str(source))
    loaded = _child(str(store), "load", str(tmp_path / "out"))
    assert (tmp_path / "out" / "video.bin").read_bytes() == source.read_bytes()
    above_save, above_load = saved["peak"] - baseline, loaded["peak"] - baseline
    figures.set("file_bytes", FILE_SIZE)
    figures.set("save_peak_above_baseline_mib", round(above_save / 2**20, 1))
    figures.set("load_peak_above_baseline_mib", round(above_load / 2**20, 1))
    figures.set("save_seconds", round(saved["seconds"], 1))
    assert above_save < MEMORY_BOUND, f"saving peaked {above_save / 2**20:.0f} MiB above baseline"
    assert above_load < MEMORY_BOUND, f"loading peaked {above_load / 2**20:.0f} MiB above baseline"


_SAVER = r"""
import sys
import ckpt
ckpt.open(sys.argv[1]).job("film").save("video", {"video": ckpt.File(sys.argv[2])})
print("saved")
"""


def test_a_save_killed_halfway_leaves_the_job_and_the_store_intact(
    tmp_path: Path, figures: Figures
) -> None:
    source = tmp_path / "video.bin"
    _write_random(source, KILLED_SIZE, 2)
    store = tmp_path / "store"
    with ckpt.init(store) as repo:
        before = repo.job("film").save("plan", {"scenes": 12})
        packs_before = {info.key for info in repo.objects.packs()}
    child = subprocess.Popen([sys.executable, "-c", _SAVER, str(store), str(source)])
    deadline = time.monotonic() + 300
    try:
        while len(os.listdir(store / "packs")) < len(packs_before) + 2:
            assert child.poll() is None, "the save finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    with ckpt.open(store) as repo:
        job = repo.job("film")
        assert job.head == before and job.stages() == ["plan"]
        assert repo.verify(full=True).ok
        left = {info.key for info in repo.objects.packs()} - packs_before
        assert left  # whole packs of the killed save, referenced by nothing
        report = repo.gc(grace=dt.timedelta(0))
        assert report.deleted > 0
        figures.set("packs_left_by_the_kill", len(left))
        figures.set("objects_gc_deleted", report.deleted)
        assert {info.key for info in repo.objects.packs()} <= packs_before | left
        assert not ({info.key for info in repo.objects.packs()} & left)
        job.save("video", {"video": ckpt.File(source)})
        loaded = job.load("video")["video"]
        with loaded.open() as stream, open(source, "rb") as original:
            while piece := stream.read(8 << 20):
                assert piece == original.read(len(piece))
        assert repo.verify(full=True).ok
