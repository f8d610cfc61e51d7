"""W4 maintenance: ``verify --full`` and ``gc`` throughput on a large store.

The store holds large values (a quarter word-level text, the rest random
bytes, chunked into many objects) and many small checkpoints.  Throughput is the
store's stored bytes (and objects) per second, against the raw speed of
reading the same stored bytes, zstd-decompressing every frame (a delta with
its base as dictionary) and blake3-hashing the result on every core.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

import blake3

import ckpt
from bench.common import Ratio, Section, human_bytes, human_seconds, scratch
from bench.messages import bulk_text
from ckpt.objects import codec, delta, pack
from ckpt.objects.store import OBJECTS_PREFIX, PACKS_PREFIX


def build(path: str, big_bytes: int, small_saves: int) -> None:
    """Large values of 1 MB (a quarter text, the rest random) plus small checkpoints, no fsync."""
    repo = ckpt.init(path, durable=False)
    text = bulk_text(7, 8 << 20)
    rng = random.Random(7)
    values = big_bytes >> 20
    for n in range(values):
        job = repo.job(f"big-{n % 8}")
        if n % 4:
            value = os.urandom(1 << 20)
        else:
            start = rng.randrange(0, len(text) - (1 << 20))
            value = n.to_bytes(8, "big") + text[start : start + (1 << 20) - 8]
        job.save(f"value-{n % 4}", value)
    for n in range(small_saves):
        repo.job(f"small-{n % 50}").save("state", {"n": n, "note": f"checkpoint {n}"})
    repo.close()


def raw_throughput(path: str) -> tuple[float, int, int]:
    """Seconds to read + decompress + hash every stored frame on all cores; bytes, frames.

    A delta frame is decompressed with its base's payload as dictionary (the
    base decoded again from its pack, as a reader must), after the packs.
    """
    repo = ckpt.open(path)
    keys = [info.key for info in repo.storage.list(PACKS_PREFIX)]
    loose = [info.key for info in repo.storage.list(OBJECTS_PREFIX)]
    repo.close()
    where: dict[str, tuple[str, int, int]] = {}
    deltas: list[tuple[str, bytes]] = []

    def one_pack(key: str) -> tuple[int, int]:
        with open(os.path.join(path, key), "rb") as handle:
            data = handle.read()
        tail = data[-min(len(data), pack.TAIL_READ) :]
        index = pack.PackIndex(key, len(data), tail)
        frames = 0
        for entry in index.entries(pack.slicer(data)):
            where.setdefault(entry.id, (key, entry.offset, entry.length))
            stored = data[entry.offset : entry.offset + entry.length]
            header = codec.parse_header(stored, entry.id)
            if header.base is None:
                out = codec.decompress_plain(stored, header, entry.id)
                blake3.blake3(out).digest()
                frames += 1
            else:
                deltas.append((entry.id, stored))
        return len(data), frames

    decoded: dict[str, bytes] = {}  # each base decoded once, as verify does

    def payload(oid: str, stored: bytes) -> bytes:
        if oid in decoded:
            return decoded[oid]
        header = codec.parse_header(stored, oid)
        if header.base is None:
            out = codec.decompress_plain(stored, header, oid)
        else:
            key, offset, length = where[header.base]
            with open(os.path.join(path, key), "rb") as handle:
                handle.seek(offset)
                base = payload(header.base, handle.read(length))
            frame = memoryview(stored)[header.size :]
            out = delta.decompress(frame, header.payload_length, base, oid)
        decoded[oid] = out
        return out

    def one_loose(key: str) -> tuple[int, int]:
        with open(os.path.join(path, key), "rb") as handle:
            data = handle.read()
        codec.decode(data, key)
        return len(data), 1

    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        results = list(pool.map(one_pack, keys)) + list(pool.map(one_loose, loose))
    for oid, stored in deltas:
        blake3.blake3(payload(oid, stored)).digest()
    elapsed = time.perf_counter() - start
    return elapsed, sum(r[0] for r in results), sum(r[1] for r in results) + len(deltas)


def run(big_bytes: int, small_saves: int, repeats: int) -> Section:
    section = Section("W4", "W4 maintenance")
    with scratch("w4") as tmp:
        path = os.path.join(tmp, "store")
        start = time.perf_counter()
        build(path, big_bytes, small_saves)
        built = time.perf_counter() - start
        repo = ckpt.open(path)
        objects = sum(1 for _ in repo.objects)
        repo.close()
        verify_ratios, gc_ratios = [], []
        facts: dict[str, float] = {}
        for rep in range(repeats):
            raw_seconds, stored, frames = raw_throughput(path)
            with ckpt.open(path) as repo:
                start = time.perf_counter()
                report = repo.verify(full=True)
                verify_seconds = time.perf_counter() - start
                assert report.ok, report.problems[:3]
            with ckpt.open(path) as repo:
                if rep == 0:
                    # Some garbage for gc to find: drop a few jobs.
                    for name in ("big-0", "small-0", "small-1"):
                        repo.delete_job(name)
                start = time.perf_counter()
                repo.gc(grace=dt.timedelta(0))
                gc_seconds = time.perf_counter() - start
            # Throughput ratio = raw seconds / our seconds over the same store.
            verify_ratios.append(raw_seconds / verify_seconds)
            gc_ratios.append(raw_seconds / gc_seconds)
            if rep == 0:
                facts = dict(
                    raw=raw_seconds,
                    stored=stored,
                    frames=frames,
                    verify=verify_seconds,
                    gc=gc_seconds,
                )
        mb = facts["stored"] / 1e6
        section.rows.append(
            Ratio(
                "W4",
                "verify --full throughput",
                "raw read+decompress+blake3, all cores",
                verify_ratios,
                target=0.7,
                at_least=True,
                absolute=f"{mb / facts['verify']:.0f} MB/s, {objects / facts['verify']:.0f} obj/s "
                f"vs raw {mb / facts['raw']:.0f} MB/s",
            )
        )
        section.rows.append(
            Ratio(
                "W4",
                "gc throughput",
                "raw read+decompress+blake3, all cores",
                gc_ratios,
                target=0.5,
                at_least=True,
                absolute=f"{mb / facts['gc']:.0f} MB/s, {objects / facts['gc']:.0f} obj/s",
            )
        )
        section.notes.append(
            f"Store: {human_bytes(facts['stored'])} stored in {objects} objects "
            f"(built in {human_seconds(built)}); {os.cpu_count()} cores. Ratios are throughput "
            "relative to the raw baseline (higher is better; targets: verify at least 0.7, "
            "gc at least 0.5)."
        )
    return section
