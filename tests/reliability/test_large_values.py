"""Guarantee 8: large values fit in memory, and unserializable values write nothing.

A 1 GiB ``bytes`` value (random, so incompressible: the worst case) is saved
by one child process and loaded back by another; each reports its peak
resident memory (``ru_maxrss``).  The peak must stay under 3x the value's
size (the value itself is 1x of that).  The figures are recorded for
docs/reliability.md; timings are recorded, never asserted.

A value that cannot be serialized fails the save with SerializationError
naming the stage and the type, before anything at all is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ckpt
from ckpt.errors import SerializationError

from ._support import Figures, result, snapshot, spawn

SIZE = int(os.environ.get("CKPT_LARGE_VALUE_BYTES", str(1 << 30)))


@pytest.mark.slow
def test_one_gib_value_saves_and_loads_under_three_times_its_size(
    tmp_path: Path, figures: Figures
) -> None:
    store = tmp_path / "store"
    ckpt.init(store)
    saved = result(spawn("large-value", store, SIZE, "save"), timeout=900)
    loaded = result(spawn("large-value", store, SIZE, "load"), timeout=900)
    assert "error" not in loaded, loaded
    # The load hash-checked the whole value; a quick verify checks the rest.
    assert ckpt.open(store).verify(full=False).ok
    figures.set("value_bytes", SIZE)
    figures.set("save_peak_rss_x_value", round(saved["peak"] / SIZE, 2))
    figures.set("load_peak_rss_x_value", round(loaded["peak"] / SIZE, 2))
    figures.set("save_seconds", round(saved["seconds"], 1))
    figures.set("load_seconds", round(loaded["seconds"], 1))
    assert saved["peak"] < 3 * SIZE, f"save peaked at {saved['peak'] / SIZE:.2f}x the value"
    assert loaded["peak"] < 3 * SIZE, f"load peaked at {loaded['peak'] / SIZE:.2f}x the value"


class NotSerializable:
    """A class cattrs cannot turn into primitives."""

    def __init__(self) -> None:
        self.handle = object()


@pytest.mark.parametrize(
    "value",
    [NotSerializable(), {"fine": 1, "bad": object()}, [1, 2, lambda: 3], {("tuple", "key"): 1}],
    ids=["class", "nested-object", "lambda-in-list", "tuple-key"],
)
def test_unserializable_value_fails_before_writing(
    tmp_path: Path, value: object, figures: Figures
) -> None:
    store = tmp_path / "store"
    repo = ckpt.init(store)
    job = repo.job("j")
    job.save("before", {"ok": 1})
    before = snapshot(store)
    with pytest.raises(SerializationError) as raised:
        repo.job("j").save("broken", value)
    assert "'broken'" in str(raised.value)
    with pytest.raises(SerializationError):
        repo.job("new-job").save("broken", value)
    assert snapshot(store) == before
    figures.add("unserializable_values_refused")
