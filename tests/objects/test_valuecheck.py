"""Large values checked in worker processes: same verdicts, damage found as without them."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import ckpt
from ckpt.errors import CkptError
from ckpt.objects import scan, valuecheck
from ckpt.objects.ids import Kind, ObjectId
from ckpt.objects.scan import StoreScan
from ckpt.objects.store import ObjectStore
from ckpt.storage.local import LocalStorage

from ._helpers import flip, word_text


class _Recorder:
    """Records what the workers confirmed (and that they ran at all)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.values: set[str] = set()
        self.chunks: set[str] = set()
        self.runs = 0
        finish = valuecheck.ValueWorkers.finish

        def recording(workers: valuecheck.ValueWorkers) -> tuple[set[str], set[str]]:
            values, chunks = finish(workers)
            self.runs += 1
            self.values |= values
            self.chunks |= chunks
            return values, chunks

        monkeypatch.setattr(valuecheck.ValueWorkers, "finish", recording)


def _verdicts(store: ObjectStore, monkeypatch: pytest.MonkeyPatch, *, workers: bool) -> dict:
    monkeypatch.setattr(scan, "PROCESS_VALUE_BYTES", 0 if workers else 1 << 60)
    verdicts, _ = StoreScan(store, workers=2).check_all()
    return {oid: str(v) if isinstance(v, CkptError) else v for oid, v in verdicts.items()}


def _store(tmp_path: Path) -> tuple[LocalStorage, ObjectStore, list[ObjectId]]:
    (tmp_path / "store").mkdir()
    storage = LocalStorage(tmp_path / "store", durable=False)
    store = ObjectStore(storage)
    text = word_text(21, 600_000)
    blobs = [
        store.put(Kind.BLOB, random.Random(1).randbytes(700_000)),
        store.put(Kind.BLOB, text),
        store.put(Kind.BLOB, text + b" with another ending"),  # shares the text's chunks
    ]
    blobs.append(store.put(Kind.BLOB, text + b" grown further", base=blobs[1]))
    with store.batch() as batch:
        batch.put(Kind.COMMIT, b'{"v":1,"x":"commit"}')
        batch.put(Kind.BLOB, b"small")
    return storage, store, blobs


def test_workers_confirm_the_values_and_chunks_of_a_local_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, store, blobs = _store(tmp_path)
    recorder = _Recorder(monkeypatch)
    without = _verdicts(store, monkeypatch, workers=False)
    assert recorder.runs == 0
    with_workers = _verdicts(store, monkeypatch, workers=True)
    assert recorder.runs == 1
    assert with_workers == without
    assert all(verdict in Kind for verdict in with_workers.values())
    assert recorder.values == set(blobs)
    chunks = {cid for blob in blobs for cid in store.references(blob) if cid not in blobs}
    assert recorder.chunks == chunks


@pytest.mark.parametrize("damage", ["chunk", "missing-chunk", "value-list"])
def test_damage_is_found_and_named_as_without_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    storage, store, blobs = _store(tmp_path)
    shared = store.references(blobs[1])[1]
    if damage == "chunk":
        flip(storage, store, shared, at=-5)
    elif damage == "missing-chunk":
        assert store.delete(shared)
    else:
        flip(storage, store, blobs[2], at=-2)
    recorder = _Recorder(monkeypatch)
    without = _verdicts(store, monkeypatch, workers=False)
    with_workers = _verdicts(store, monkeypatch, workers=True)
    assert with_workers == without
    bad = {oid for oid, verdict in with_workers.items() if isinstance(verdict, str)}
    expected = {blobs[2]} if damage == "value-list" else {blobs[1], blobs[2], blobs[3]}
    if damage == "chunk":
        expected.add(shared)
    assert bad == expected
    assert not recorder.values & bad
    assert (shared in recorder.chunks) is (damage == "value-list")
    assert blobs[0] in recorder.values  # the undamaged value was still the workers'


def test_a_failing_worker_leaves_every_value_to_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, store, blobs = _store(tmp_path)
    flip(storage, store, store.references(blobs[0])[0], at=-3)
    recorder = _Recorder(monkeypatch)
    without = _verdicts(store, monkeypatch, workers=False)
    monkeypatch.setattr(valuecheck, "_BOOT", "import sys; sys.exit(3)")
    assert _verdicts(store, monkeypatch, workers=True) == without
    assert recorder.runs == 1 and not recorder.values and not recorder.chunks


@pytest.mark.parametrize("damaged", [False, True])
def test_verify_reports_the_same_with_and_without_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damaged: bool
) -> None:
    # With workers, the jobs are walked while they check the large values (and
    # walked again if one of those turns out damaged).
    path = str(tmp_path / "repo")
    repo = ckpt.init(path, durable=False)
    job = repo.job("big")
    for n in range(3):
        job.save("value", os.urandom(300_000) + word_text(n, 300_000))
    repo.close()
    with ckpt.open(path) as repo:
        head = repo.job("big").log()[1]
        value = repo.objects.get_tree(head.tree).entries[0].id
        chunk = repo.objects.references(value)[2]
        if damaged:
            flip(repo.storage, repo.objects, chunk, at=-4)
    reports = []
    for limit in (1 << 60, 0):
        monkeypatch.setattr(scan, "PROCESS_VALUE_BYTES", limit)
        with ckpt.open(path) as repo:
            reports.append(repo.verify(full=True).to_json())
    assert reports[0] == reports[1]
    assert reports[1]["ok"] is not damaged
    if damaged:
        subjects = {p["subject"] for p in reports[1]["problems"]}  # type: ignore[attr-defined]
        assert subjects >= {chunk, value}
        health = reports[1]["jobs"]["big"]  # type: ignore[index]
        assert head.id in health["broken_commits"]
