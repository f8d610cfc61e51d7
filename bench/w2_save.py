"""W2 stage save: one durable save of a value of 1 KB .. 100 MB against pickle.dump + fsync.

Each repeat saves into a fresh store whose job already has one checkpoint
(so job creation is not timed), and the baseline pickles the same value to
a new file and fsyncs it.  Values are ``bytes`` (stored raw): word-level
text (compresses about 3x) and random bytes (incompressible).  1 KB saves
are timed as the median of many saves of distinct values, and also against
a durable atomic file write (temporary file, fsync, rename, fsync of the
directory: what a small save must at least do to survive power loss).
"""

from __future__ import annotations

import os
import pickle
import statistics
import time

import ckpt
from bench.common import Ratio, Section, human_bytes, human_seconds, scratch
from bench.messages import bulk_text
from ckpt.objects.ids import Kind

SIZES = {
    "1 KB": 1 << 10,
    "100 KB": 100 << 10,
    "1 MB": 1 << 20,
    "10 MB": 10 << 20,
    "100 MB": 100 << 20,
}


def _pickle_save(path: str, value: bytes) -> float:
    start = time.perf_counter()
    with open(path, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        handle.flush()
        os.fsync(handle.fileno())
    return time.perf_counter() - start


def _atomic_save(path: str, value: bytes) -> float:
    start = time.perf_counter()
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(value)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def _ckpt_save(job: ckpt.Job, value: bytes) -> float:
    start = time.perf_counter()
    job.save("output", value)
    return time.perf_counter() - start


def _object_put(repo: ckpt.Repository, value: bytes) -> float:
    start = time.perf_counter()
    repo.objects.put(Kind.BLOB, value)
    return time.perf_counter() - start


def _value(kind: str, size: int, salt: int) -> bytes:
    if kind == "random":
        return os.urandom(size)
    return salt.to_bytes(8, "big") + bulk_text(salt, size - 8)


def run(sizes: list[str], repeats: int) -> Section:
    section = Section("W2", "W2 stage save (durable)")
    for kind in ("text", "random"):
        for label in sizes:
            size = SIZES[label]
            small = size <= 64 << 10
            inner = 20 if small else 1
            ratios: list[float] = []
            object_ratios: list[float] = []
            atomic_ratios: list[float] = []
            atomic_times: list[float] = []
            mine_times: list[float] = []
            base_times: list[float] = []
            values = [_value(kind, size, rep * 1000 + i) for rep in range(1) for i in range(inner)]
            for rep in range(repeats):
                with scratch("w2") as tmp:
                    repo = ckpt.init(os.path.join(tmp, "store"))
                    job = repo.job("w2")
                    job.save("warmup", b"x")
                    ckpt_runs = []
                    pickle_runs = []
                    object_runs = []
                    atomic_runs = []
                    for i, value in enumerate(values):
                        if small:
                            value = rep.to_bytes(4, "big") + value[4:]
                        pickle_runs.append(_pickle_save(os.path.join(tmp, f"v{i}.pickle"), value))
                        if small:
                            atomic_runs.append(_atomic_save(os.path.join(tmp, f"v{i}.bin"), value))
                        ckpt_runs.append(_ckpt_save(job, value))
                    repo.close()
                    # The object layer alone (hash, chunk, compress, one pack
                    # write and fsync), into a second fresh store.
                    objects_only = ckpt.init(os.path.join(tmp, "objects-only"))
                    for value in values:
                        fresh = (rep + 1000).to_bytes(4, "big") + value[4:]
                        object_runs.append(_object_put(objects_only, fresh))
                    objects_only.close()
                mine = statistics.median(ckpt_runs)
                base = statistics.median(pickle_runs)
                mine_times.append(mine)
                base_times.append(base)
                ratios.append(mine / base)
                if atomic_runs:
                    atomic = statistics.median(atomic_runs)
                    atomic_times.append(atomic)
                    atomic_ratios.append(mine / atomic)
                object_ratios.append(statistics.median(object_runs) / base)
            target = 1.5 if size >= 1 << 20 else None
            section.rows.append(
                Ratio(
                    "W2",
                    f"save {label} ({kind})",
                    "(a) pickle.dump + fsync",
                    ratios,
                    target=target,
                    absolute=f"ckpt {human_seconds(statistics.median(mine_times))}, "
                    f"pickle {human_seconds(statistics.median(base_times))}",
                )
            )
            if size <= 1 << 10 and atomic_ratios:
                section.rows.append(
                    Ratio(
                        "W2",
                        f"save {label} ({kind})",
                        "durable atomic file write (tmp, fsync, rename, fsync dir)",
                        atomic_ratios,
                        target=1.5,
                        absolute=f"ckpt {human_seconds(statistics.median(mine_times))}, "
                        f"file {human_seconds(statistics.median(atomic_times))}",
                    )
                )
            section.rows.append(
                Ratio(
                    "W2",
                    f"object write only, {label} ({kind})",
                    "(a) pickle.dump + fsync",
                    object_ratios,
                )
            )
    section.notes.append(
        "Values are `bytes` (stored without base64); 'text' is word-level text that zstd "
        "compresses about 3x, 'random' is incompressible. Sizes: "
        + ", ".join(f"{k} = {human_bytes(v)}" for k, v in SIZES.items() if k in sizes)
        + ". The 1 KB target compares one save with one durable atomic file write; "
        "1 MB and more with pickle.dump + fsync of the same bytes."
    )
    return section
