"""Writers for the storage race tests, run as separate processes (or threads).

Run as ``python _workers.py MODE URL KEY N WRITER``.  A worker opens the
store, prints ``ready``, waits for a line on stdin (so that all workers
start racing at once), does its work and prints one JSON result line.
"""

from __future__ import annotations

import json
import sys

from ckpt.errors import ConflictError
from ckpt.storage import Storage, open_storage
from ckpt.storage.base import KeyNotFoundError


def increment(storage: Storage, key: str, times: int) -> dict[str, int]:
    """Add 1 to the decimal counter at ``key`` ``times`` times, retrying lost races."""
    swaps = conflicts = 0
    while swaps < times:
        try:
            current: bytes | None = storage.get(key)
        except KeyNotFoundError:
            current = None
        new = str(int(current or b"0") + 1).encode()
        try:
            storage.compare_and_swap(key, current, new)
        except ConflictError:
            conflicts += 1
            continue
        swaps += 1
    return {"swaps": swaps, "conflicts": conflicts}


def cycle(storage: Storage, key: str, times: int) -> dict[str, int]:
    """``times`` swaps of ``key`` through absent -> 1 -> 2 -> 3 -> absent (a delete), retrying
    lost races: ups - 3 * resets must equal the final value if no swap was lost."""
    ups = resets = conflicts = 0
    while ups + resets < times:
        try:
            current: bytes | None = storage.get(key)
        except KeyNotFoundError:
            current = None
        value = int(current or b"0")
        new = None if value == 3 else str(value + 1).encode()
        try:
            storage.compare_and_swap(key, current, new)
        except ConflictError:
            conflicts += 1
            continue
        if new is None:
            resets += 1
        else:
            ups += 1
    return {"ups": ups, "resets": resets, "conflicts": conflicts}


def append(storage: Storage, key: str, times: int, writer: str) -> dict[str, int]:
    """Append ``times`` records ``WRITER-I`` to the log at ``key``."""
    for index in range(times):
        storage.append(key, f"{writer}-{index}".encode())
    return {"appended": times}


def create(storage: Storage, key: str, writer: str) -> dict[str, int]:
    """Try once to create ``key`` holding ``WRITER``."""
    return {"created": int(storage.put_if_absent(key, writer.encode()))}


def run(mode: str, storage: Storage, key: str, times: int, writer: str) -> dict[str, int]:
    if mode == "increment":
        return increment(storage, key, times)
    if mode == "cycle":
        return cycle(storage, key, times)
    if mode == "append":
        return append(storage, key, times, writer)
    if mode == "create":
        return create(storage, key, writer)
    raise SystemExit(f"unknown mode {mode!r}")


def main() -> None:
    mode, url, key, times, writer = sys.argv[1:6]
    storage = open_storage(url)
    print("ready", flush=True)
    sys.stdin.readline()
    result = run(mode, storage, key, int(times), writer)
    storage.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
