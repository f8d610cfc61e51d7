"""WF files: saving and loading a large file (``ckpt.File``), against ``cp``.

Every round writes a fresh file of random bytes (video-like: incompressible)
and measures, in the same round:

* ``cp`` of the file and an ``fsync`` of the copy (the baseline), then a
  durable save of the file as a stage (``job.save("video", ckpt.File(path))``),
  timed inside a fresh interpreter that also reports its peak RSS;
* a load that writes the file out of the store (``materialize(to=DIR)``) and
  reads it again through ``open()``, in another fresh interpreter;
* a re-save after 1% of the file's bytes changed (in 100 places): the bytes
  the store grew by, against the file's size.

Peak RSS (``VmHWM``: the process's own, which ``ru_maxrss`` is not after a
fork) is reported above the peak of an interpreter that runs the same code
on a file of one byte (the baseline), as a fraction of 100 MB.
"""

from __future__ import annotations

import json
import os
import random
import shutil

from bench.common import (
    Ratio,
    Section,
    apparent_size,
    human_bytes,
    human_seconds,
    run_child,
    scratch,
    timed,
)

MEMORY_BUDGET = 100 << 20

_CHILD = """
import json, os, resource, sys, time
import ckpt
from ckpt.values import filehooks, serialize
store, action, path = sys.argv[1], sys.argv[2], sys.argv[3]
seconds = 0.0
if action == "save":
    repo = ckpt.open(store)
    started = time.perf_counter()
    repo.job("wf").save("video", ckpt.File(path))
    seconds = time.perf_counter() - started
elif action == "load":
    repo = ckpt.open(store)
    started = time.perf_counter()
    loaded = repo.job("wf").load("video")
    loaded.materialize(to=path)
    seconds = time.perf_counter() - started
    with loaded.open() as stream:
        while stream.read(1 << 20):
            pass
elif action == "baseline":  # the same code run on a file of one byte
    os.makedirs(path)
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
print(json.dumps({"peak": peak, "seconds": seconds}))
"""


def _child(*args: str) -> dict[str, float]:
    out = run_child(_CHILD, *args, timeout=1800)
    parsed: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return parsed


def _write_random(path: str, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as out:
        for at in range(0, size, 8 << 20):
            out.write(rng.randbytes(min(8 << 20, size - at)))


def _change_one_percent(path: str, size: int, seed: int) -> None:
    rng = random.Random(seed)
    piece = max(1, size // 100 // 100)
    with open(path, "r+b") as handle:
        for _ in range(100):
            handle.seek(rng.randrange(0, max(1, size - piece)))
            handle.write(rng.randbytes(piece))


def _cp_fsync(source: str, target: str) -> None:
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(size: int, repeats: int) -> Section:
    section = Section("WF", f"WF files ({human_bytes(size)} file)")
    saves, loads, changed = [], [], []
    save_peaks, load_peaks = [], []
    seconds: dict[str, list[float]] = {"cp": [], "save": [], "load": []}
    for round_ in range(repeats):
        with scratch("wf") as tmp:
            import ckpt

            source = os.path.join(tmp, "video.mp4")
            _write_random(source, size, round_)
            store = os.path.join(tmp, "store")
            ckpt.init(store).close()
            baseline = _child(store, "baseline", os.path.join(tmp, "baseline"))["peak"]
            copy = os.path.join(tmp, "copy.mp4")
            cp = timed(lambda: _cp_fsync(source, copy))  # noqa: B023 - called at once
            os.unlink(copy)
            saved = _child(store, "save", source)
            loaded = _child(store, "load", os.path.join(tmp, "out"))
            packs = os.path.join(store, "packs")
            before = apparent_size(packs)
            _change_one_percent(source, size, round_)
            _child(store, "save", source)
            grown = apparent_size(packs) - before
        saves.append(saved["seconds"] / cp)
        loads.append(loaded["seconds"] / cp)
        changed.append(grown / size)
        save_peaks.append((saved["peak"] - baseline) / MEMORY_BUDGET)
        load_peaks.append((loaded["peak"] - baseline) / MEMORY_BUDGET)
        seconds["cp"].append(cp)
        seconds["save"].append(saved["seconds"])
        seconds["load"].append(loaded["seconds"])
    name = human_bytes(size)
    section.rows.extend(
        [
            Ratio(
                "WF",
                f"save a {name} file (random)",
                "cp + fsync",
                saves,
                target=1.5,
                absolute=f"ckpt {human_seconds(min(seconds['save']))}, "
                f"cp {human_seconds(min(seconds['cp']))} (fastest)",
            ),
            Ratio(
                "WF",
                f"peak RSS saving a {name} file, above baseline",
                "100 MB",
                save_peaks,
                target=1.0,
                absolute=f"{human_bytes(max(save_peaks) * MEMORY_BUDGET)} max",
            ),
            Ratio(
                "WF",
                f"load a {name} file (written out)",
                "cp + fsync",
                loads,
                absolute=f"ckpt {human_seconds(min(seconds['load']))} (fastest)",
            ),
            Ratio(
                "WF",
                f"peak RSS loading a {name} file, above baseline",
                "100 MB",
                load_peaks,
                target=1.0,
                absolute=f"{human_bytes(max(load_peaks) * MEMORY_BUDGET)} max",
            ),
            Ratio(
                "WF",
                "re-save with 1% of the bytes changed: bytes stored",
                "file size",
                changed,
                target=0.03,
                absolute=f"{human_bytes(max(changed) * size)} max",
            ),
        ]
    )
    section.notes.append(
        "The file is random bytes (video-like: nothing to compress). The save is durable "
        "(packs fsynced as they fill, then the commit) and is timed inside a fresh "
        "interpreter; the load writes the file out of the store, checked chunk by chunk. "
        "The 1% change is 100 random places of 0.01% each."
    )
    return section
