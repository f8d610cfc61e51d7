"""Guarantee 13: one garbled ref locks no one out of the rest of the job.

With junk in ``refs/heads/side``, every command that does not need that
branch works; the ones that do say what is wrong and how to fix it;
``verify`` names the ref with the fix; ``ckpt repair`` restores it from the
reflog, and ``ckpt branch JOB -d side`` (the natural repair) deletes it.
Every ``ckpt`` command runs in its own process.

Before the fix ``log``, ``show``, ``branch``, ``checkout`` (to a branch or
tag), creating a branch and even ``branch -d side`` failed for the whole
job, and nothing repaired the ref.
"""

from __future__ import annotations

from pathlib import Path

import ckpt

from ._support import Figures, run_ckpt

#: Commands that do not need the garbled branch, each of which must succeed.
UNAFFECTED = (
    ("log", "novel"),
    ("show", "novel"),
    ("branch", "novel"),
    ("tag", "novel"),
    ("status", "novel"),
    ("jobs",),
    ("reflog", "novel"),
    ("diff", "novel", "HEAD~1"),
    ("cat", "novel", "outline"),
    ("log", "novel", "v1"),
    ("branch", "novel", "other"),
    ("checkout", "novel", "v1"),
)


def _store(tmp_path: Path) -> tuple[Path, str]:
    store = tmp_path / "store"
    job = ckpt.init(store).job("novel")
    job.save("outline", {"chapters": 3})
    side = job.save("draft", {"text": "once upon a time"})
    job.branch("side")
    job.save("edit", {"text": "Once upon a time."})
    job.tag("v1")
    (store / "jobs" / "novel" / "refs" / "heads" / "side").write_bytes(b"junk\n")
    return store, side.id


def test_a_garbled_branch_locks_no_one_out(tmp_path: Path, figures: Figures) -> None:
    store, side = _store(tmp_path)
    for args in UNAFFECTED:
        result = run_ckpt(store, *args)
        assert result.returncode == 0, (args, result.stderr)
        figures.add("commands_that_work", 1)

    switch = run_ckpt(store, "switch", "novel", "side")
    assert switch.returncode == 5
    assert "refs/heads/side is garbled" in switch.stderr
    assert "`ckpt repair`" in switch.stderr and "`ckpt branch novel -d side`" in switch.stderr

    verify = run_ckpt(store, "verify")
    assert verify.returncode == 5
    assert "bad-ref novel:refs/heads/side" in verify.stdout
    assert f"`ckpt repair` restores it to {side[:12]}" in verify.stdout

    repair = run_ckpt(store, "repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert f"Restored branch side of job novel to {side[:12]}" in repair.stdout
    assert ckpt.open(store).job("novel").branches()["side"] == side
    assert run_ckpt(store, "switch", "novel", "side").returncode == 0


def test_a_garbled_branch_can_be_deleted(tmp_path: Path) -> None:
    store, side = _store(tmp_path)
    deleted = run_ckpt(store, "branch", "novel", "-d", "side")
    assert deleted.returncode == 0, deleted.stderr
    assert f"(was {side[:12]})" in deleted.stdout
    assert f"Undo with: ckpt --store {store} branch novel side {side[:12]}" in deleted.stdout
    assert "side" not in ckpt.open(store).job("novel").branches()
    assert run_ckpt(store, "verify", "--full").returncode == 0
