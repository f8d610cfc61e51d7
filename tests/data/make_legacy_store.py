"""Write ``tests/data/store-v1`` and its manifest (run once; the result is committed).

    python tests/data/make_legacy_store.py

The store was written by the encoder ckpt had before the C-speed one
(``json.dumps`` over a Python walk of the value).  ``manifest.json`` lists
every save: job, stage, value name, and the blob, tree and commit ids.
tests/objects/test_legacy_ids.py checks that today's code reads every value
back and gives every object the same id.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import ckpt  # noqa: E402
from tests.data.legacy_values import GROWTH, TYPES, values  # noqa: E402


def main() -> None:
    path = os.path.join(HERE, "store-v1")
    shutil.rmtree(path, ignore_errors=True)
    repo = ckpt.init(path, durable=False)
    saves = []

    def record(job: ckpt.Job, stage: str, name: str, commit: ckpt.Commit) -> None:
        entry = job.tree(commit.id).get(stage)
        assert entry is not None
        saves.append(
            {
                "job": job.name,
                "stage": stage,
                "value": name,
                "blob": entry.id,
                "tree": commit.tree,
                "commit": commit.id,
            }
        )

    all_values = values()
    scalars = repo.job("values")
    for name, value in all_values.items():
        if name == "messages":
            continue
        commit = scalars.save(
            name,
            value,
            type=TYPES.get(name),
            cost=0.1 + 0.2,
            tokens=3,
            meta={"f": 1.5, "n": 2**60, "s": "ü"},
        )
        record(scalars, name, name, commit)
    scalars.tag("all-values")
    scalars.complete("done")
    growing = repo.job("growing")
    for count in GROWTH:
        commit = growing.save("messages", all_values["messages"][:count], cost=0.0021)
        record(growing, "messages", f"messages[:{count}]", commit)
    repo.close()
    with open(os.path.join(HERE, "store-v1.manifest.json"), "w", encoding="utf-8") as handle:
        json.dump({"saves": saves}, handle, indent=1)
        handle.write("\n")


if __name__ == "__main__":
    main()
