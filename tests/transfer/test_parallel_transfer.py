"""A parallel push writes many packs at once; the destination must end up whole."""

from __future__ import annotations

import os
from pathlib import Path

import ckpt
from ckpt.transfer.remote import push


def test_a_parallel_push_of_many_checkpoints_loses_no_object(tmp_path: Path) -> None:
    # Enough small packs that the destination merges them while other workers
    # are still writing and merging (two merges can produce the same pack).
    source = ckpt.init(tmp_path / "source", durable=False)
    job = source.job("big")
    for i in range(40):
        job.save_many({"state": os.urandom(64 << 10), "meta": {"step": i, "text": "x" * i}})
    ckpt.init(tmp_path / "dest", durable=False).close()
    report = push(source, str(tmp_path / "dest"), workers=8)
    assert report.objects_copied == 160
    with ckpt.open(tmp_path / "dest") as dest:
        verified = dest.verify(full=True)
        assert verified.ok, verified.problems[:3]
        assert dest.job("big").load("state", type=bytes) == job.load("state", type=bytes)
