"""Store statistics: logical vs unique vs stored bytes, per-job sizes."""

from __future__ import annotations

from pathlib import Path

import ckpt
from ckpt.maintenance.stats import job_sizes, store_stats
from ckpt.objects.ids import Kind


def test_an_empty_store(tmp_path: Path) -> None:
    with ckpt.init(tmp_path / "s") as repo:
        stats = store_stats(repo)
    assert stats.objects == 0
    assert stats.dedup_ratio is None
    assert stats.compression_ratio is None
    assert stats.to_json()["jobs"] == []


def test_dedup_and_sizes(tmp_path: Path) -> None:
    text = "a long, repetitive chapter. " * 400
    with ckpt.init(tmp_path / "s", durable=False) as repo:
        job = repo.job("novel")
        for step in range(5):
            job.save("chapter", text)  # the same value every time: stored once
            job.save("step", step)
        other = repo.job("other")
        other.save("chapter", text)
        stats = store_stats(repo)
        sizes = job_sizes(repo)
        unique_bytes = 0
        for obj in repo.objects:
            kind, length = ckpt.objects.codec.read_header(repo.objects.read_stored(obj.id), obj.id)
            assert kind in Kind
            unique_bytes += length
    chapter_size = len(ckpt.values.serialize.dumps(text))
    assert stats.objects == sum(stats.objects_by_kind.values())
    assert stats.objects_by_kind["commit"] == 11
    assert stats.unique_bytes == unique_bytes
    # Every one of novel's 10 checkpoints holds the chapter in full, logically.
    assert sizes["novel"].logical_bytes > 10 * chapter_size
    assert stats.logical_bytes == sizes["novel"].logical_bytes + sizes["other"].logical_bytes
    assert stats.dedup_ratio is not None and stats.dedup_ratio > 5
    assert stats.compression_ratio is not None and stats.compression_ratio > 1
    assert stats.stored_bytes < stats.unique_bytes
    # The chapter blob is shared, so neither job holds it alone.
    assert sizes["novel"].exclusive_bytes < sizes["novel"].stored_bytes
    assert sizes["other"].exclusive_bytes < sizes["other"].stored_bytes
    assert stats.unreachable_objects == 0
    assert [j.job for j in stats.jobs] == ["novel", "other"]


def test_unreachable_objects_after_a_job_is_deleted(tmp_path: Path) -> None:
    with ckpt.init(tmp_path / "s", durable=False) as repo:
        repo.job("keep").save("a", 1)
        repo.job("drop").save("b", {"only": "here"})
        repo.delete_job("drop")
        stats = store_stats(repo)
    assert stats.unreachable_objects == 3  # drop's blob, tree and commit
    assert stats.unreachable_bytes > 0
    assert [j.job for j in stats.jobs] == ["keep"]


def test_stored_bytes_are_the_packs_on_disk(tmp_path: Path) -> None:
    """'Stored (on disk)' agrees with the files: every pack (with its index, and objects
    not yet collected) and every loose object."""
    root = tmp_path / "s"
    with ckpt.init(root, durable=False) as repo:
        job = repo.job("novel")
        for step in range(4):
            job.save("outline", {"title": "Vell", "step": step})
        job.checkout("HEAD~2")  # two checkpoints left for gc: still on disk
        stats = store_stats(repo)
    on_disk = sum(
        path.stat().st_size
        for folder in ("packs", "objects")
        if (root / folder).is_dir()
        for path in (root / folder).rglob("*")
        if path.is_file() and not path.name.endswith((".lock", ".tmp"))
    )
    assert stats.stored_bytes == on_disk
    assert stats.packs == len(list((root / "packs").iterdir()))
    assert stats.object_bytes < stats.stored_bytes  # the packs' indexes are on disk too
    assert stats.to_json()["stored_bytes"] == on_disk
