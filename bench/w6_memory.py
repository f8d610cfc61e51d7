"""W6 memory: peak RSS of a process saving, then one loading, a large value.

Each side runs in a fresh interpreter; the peak is ``ru_maxrss`` of that
process (it includes the interpreter and the value itself), divided by the
value's size.
"""

from __future__ import annotations

import os

from bench.common import Ratio, Section, human_bytes, run_child, scratch

_SAVE = """
import os, resource, sys, ckpt
size = int(sys.argv[2])
value = os.urandom(size)
repo = ckpt.init(sys.argv[1])
repo.job("w6").save("value", value)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

_LOAD = """
import resource, sys, ckpt
repo = ckpt.open(sys.argv[1])
value = repo.job("w6").load("value")
assert len(value) == int(sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

_BASE = """
import os, resource, sys
value = os.urandom(int(sys.argv[2]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def run(size: int, repeats: int) -> Section:
    section = Section("W6", f"W6 memory ({human_bytes(size)} value)")
    saves, loads, bases = [], [], []
    for _ in range(repeats):
        with scratch("w6") as tmp:
            store = os.path.join(tmp, "store")
            bases.append(int(run_child(_BASE, store, str(size))))
            saves.append(int(run_child(_SAVE, store, str(size))))
            loads.append(int(run_child(_LOAD, store, str(size))))
    for what, peaks in (("peak RSS saving", saves), ("peak RSS loading", loads)):
        section.rows.append(
            Ratio(
                "W6",
                what,
                "value size",
                [p / size for p in peaks],
                target=2.0,
                absolute=f"{human_bytes(max(peaks))} max",
            )
        )
    section.notes.append(
        f"A process that only creates the value peaks at {human_bytes(max(bases))}. "
        "The value is random bytes (incompressible: the worst case for compressed copies)."
    )
    return section
