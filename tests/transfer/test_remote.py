"""Remotes: push, pull, clone, fast-forward rules, and a push killed halfway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ckpt
from ckpt.errors import ConflictError, NotFoundError
from ckpt.transfer.remote import add_remote, clone, pull, push, remotes, remove_remote


def _stores(tmp_path: Path) -> tuple[ckpt.Repository, ckpt.Repository]:
    local = ckpt.init(tmp_path / "local")
    remote = ckpt.init(tmp_path / "remote")
    add_remote(local, "origin", str(tmp_path / "remote"))
    return local, remote


def _fill(job: ckpt.Job, stages: int, start: int = 0) -> None:
    for i in range(start, start + stages):
        job.save(f"s{i}", {"i": i, "text": "x" * i}, cost=0.5, tokens=10)


def test_remote_registry(tmp_path: Path) -> None:
    local, _ = _stores(tmp_path)
    assert remotes(local) == {"origin": str(tmp_path / "remote")}
    with pytest.raises(ConflictError, match="remote 'origin' already exists"):
        add_remote(local, "origin", "elsewhere")
    remove_remote(local, "origin")
    assert remotes(local) == {}
    with pytest.raises(NotFoundError, match="no remote named 'origin'"):
        push(local, "origin")


def test_push_copies_only_missing_objects_and_is_idempotent(tmp_path: Path) -> None:
    local, remote = _stores(tmp_path)
    _fill(local.job("novel"), 4)
    report = push(local, "origin")
    assert [u.status for u in report.updates] == ["created"]
    assert report.objects_copied == len(list(local.objects))
    assert remote.job("novel").stages() == ["s0", "s1", "s2", "s3"]
    assert remote.job("novel").head.total_cost == 2.0
    again = push(local, "origin")
    assert again.objects_copied == 0
    assert [u.status for u in again.updates] == ["up-to-date"]
    _fill(local.job("novel"), 1, start=4)
    third = push(local, "origin")
    assert third.objects_copied == 3  # blob, tree, commit of the new stage
    assert [u.status for u in third.updates] == ["fast-forward"]
    assert remote.verify(full=True).ok


def test_non_fast_forward_is_refused_unless_forced(tmp_path: Path) -> None:
    local, remote = _stores(tmp_path)
    job = local.job("novel")
    _fill(job, 3)
    push(local, "origin")
    job.checkout("HEAD~1")
    job.save("s2", {"i": "alternative"})
    report = push(local, "origin")
    assert [(u.status, u.reason) for u in report.updates] == [
        ("diverged", "both sides have checkpoints the other lacks")
    ]
    assert report.rejected == list(report.updates)
    assert remote.job("novel").load("s2") == {"i": 2, "text": "xx"}
    forced = push(local, "origin", force=True)
    assert [u.status for u in forced.updates] == ["forced"]
    assert remote.job("novel").load("s2") == {"i": "alternative"}


def test_clone_resume_and_push_back(tmp_path: Path) -> None:
    local, remote = _stores(tmp_path)
    job = local.job("novel")
    _fill(job, 2)
    job.tag("first", "s0")
    push(local, "origin")
    clone_repo, report = clone(str(tmp_path / "remote"), str(tmp_path / "clone"))
    assert {u.ref for u in report.updates} == {"refs/heads/main", "refs/tags/first"}
    cloned = clone_repo.job("novel")
    assert cloned.stages() == ["s0", "s1"]
    _fill(cloned, 1, start=2)  # resume the job on the clone
    assert [u.status for u in push(clone_repo).updates if u.ref == "refs/heads/main"] == [
        "fast-forward"
    ]
    assert [u.status for u in pull(local).updates if u.ref == "refs/heads/main"] == ["fast-forward"]
    assert local.job("novel").stages() == ["s0", "s1", "s2"]
    assert local.job("novel").head.total_cost == 1.5
    assert local.verify(full=True).ok and remote.verify(full=True).ok


def test_push_killed_midway_leaves_both_sides_consistent_and_resumes(tmp_path: Path) -> None:
    local, remote = _stores(tmp_path)
    job = local.job("big")
    for i in range(40):
        job.save(f"s{i}", os.urandom(200_000), cost=0.1)
    script = tmp_path / "push.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import ckpt
            from ckpt.transfer.remote import push
            repo = ckpt.open({str(tmp_path / "local")!r})

            def report(event):
                if event.phase == "copying objects" and event.done:
                    print("obj", event.done, flush=True)

            push(repo, "origin", workers=1, progress=report)
            """
        )
    )
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    copied = 0
    deadline = time.monotonic() + 60
    while copied < 10 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.startswith("obj"):
            copied = int(line.split()[1])  # objects durably copied so far
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert copied >= 10
    assert not remote.job("big").exists or remote.job("big").head is None
    assert remote.verify(full=True).ok
    assert local.verify(full=True).ok
    report = push(local, "origin")
    assert 0 < report.objects_copied <= len(list(local.objects)) - copied
    assert [u.status for u in report.updates] == ["created"]
    assert remote.job("big").load("s39", type=bytes) == job.load("s39", type=bytes)
    assert remote.verify(full=True).ok


def test_repair_quarantines_and_heals_from_remote(tmp_path: Path) -> None:
    from ckpt.maintenance.repair import repair
    from ckpt.objects.ids import Kind

    local, _remote = _stores(tmp_path)
    job = local.job("novel")
    _fill(job, 3)
    push(local, "origin")
    blob = job.tree().get("s1")
    assert blob is not None
    where = local.objects.locate(blob.id)
    assert where is not None
    path = tmp_path / "local" / where.key
    data = bytearray(path.read_bytes())
    data[where.offset + where.length - 1 if where.packed else -1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not local.verify(full=True).ok
    report = repair(local, remote="origin")
    assert report.quarantined == (blob.id,)
    assert report.healed == (blob.id,)
    assert report.after.ok
    assert job.load("s1") == {"i": 1, "text": "x"}
    assert local.objects.kind_of(blob.id) is Kind.BLOB


def test_resaving_the_same_value_heals_a_quarantined_blob(tmp_path: Path) -> None:
    from ckpt.maintenance.repair import repair

    local, _ = _stores(tmp_path)
    job = local.job("novel")
    _fill(job, 2)
    blob = job.tree().get("s0")
    assert blob is not None
    local.objects.delete(blob.id)
    report = repair(local)
    assert report.unhealed == (blob.id,) and not report.after.ok
    local.job("other").save("copy", {"i": 0, "text": ""})
    assert local.verify(full=True).ok


def test_pull_when_local_is_ahead_is_up_to_date_and_push_when_behind_is_refused(
    tmp_path: Path,
) -> None:
    local, remote = _stores(tmp_path)
    job = local.job("novel")
    _fill(job, 2)
    push(local, "origin")
    _fill(job, 1, start=2)
    assert [(u.status, u.old, u.new) for u in pull(local, "origin").updates] == [
        ("up-to-date", job.head.id, job.head.id)  # type: ignore[union-attr]
    ]
    assert job.stages() == ["s0", "s1", "s2"]
    push(local, "origin")
    _fill(remote.job("novel"), 1, start=3)
    refused = push(local, "origin")
    assert [(u.status, u.reason) for u in refused.updates] == [
        ("rejected", "the remote has newer checkpoints; pull first (or use --force)")
    ]
    assert [u.status for u in pull(local, "origin").updates] == ["fast-forward"]
    assert local.job("novel").stages() == ["s0", "s1", "s2", "s3"]


def test_push_a_history_that_retention_cut(tmp_path: Path) -> None:
    """The walk stops at the cut (the commits before it are gone), and the remote's job is
    cut there too wherever it lacks what came before; a remote that has the older history
    keeps it."""
    import datetime as dt

    from ckpt.maintenance.gc import collect
    from ckpt.maintenance.retention import apply_retention

    local, remote = _stores(tmp_path)
    job = local.job("novel")
    _fill(job, 3)
    add_remote(local, "full", str(tmp_path / "full"))
    push(local, "full")  # this one gets the whole history before retention
    _fill(job, 2, start=3)
    apply_retention(local, keep_last=2)
    collect(local, grace=dt.timedelta(0))
    report = push(local, "origin")
    assert [u.status for u in report.updates] == ["created"]
    assert report.objects_copied == 9  # two commits and trees, the five stage values
    pushed = remote.job("novel")
    assert [c.stage for c in pushed.log()] == ["s4", "s3"]
    assert pushed.record.cut == job.record.cut
    assert remote.verify(full=True).ok
    ahead = push(local, "full")
    assert [u.status for u in ahead.updates] == ["fast-forward"]
    with ckpt.open(tmp_path / "full") as full:
        assert [c.stage for c in full.job("novel").log()] == ["s4", "s3", "s2", "s1", "s0"]
        assert full.job("novel").record.cut == frozenset()
        assert full.verify(full=True).ok
