"""Guarantee 5: a writer killed while holding a lock does not block the others.

The local backend locks a key with ``flock(2)`` on ``KEY.lock`` (see
docs/format.md, *Locking*).  A child process starts a save and stops for
good while it holds the lock of the branch ref (inside the compare-and-swap,
before the rename) or of the reflog (inside the append).  While it lives:

* the lock file names it as ``PID@HOST TIME``;
* another writer waits, then gets ConflictError naming that holder (the
  wait is shortened here from its default 30 s).

Once it is killed with SIGKILL, the kernel has released its lock: the next
save succeeds at once, without any lock being broken by hand, and the store
verifies clean.  The lock file stays behind and blocks nothing.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

import ckpt
from ckpt.errors import ConflictError
from ckpt.storage import local

from ._support import Figures, spawn, storage_root

LOCKS = {"ref": "jobs/locked/refs/heads/main.lock", "reflog": "jobs/locked/reflog.log.lock"}


@pytest.mark.parametrize("where", sorted(LOCKS))
def test_killed_lock_holder_blocks_nobody(
    tmp_path: Path, where: str, figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    repo = ckpt.init(store)
    before = repo.job("locked").save("first", {"n": 1})
    holder = spawn("lock-holder", store, "locked", where)
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line.startswith("holding"), f"the holder did not reach the lock: {line!r}"
        pid = int(line.split()[1])

        # The lock file names the live holder.
        lock_file = storage_root(repo) / LOCKS[where]
        owner, stamp = lock_file.read_text().split()
        assert owner == f"{pid}@{socket.gethostname()}"
        assert float(stamp) > 0

        # A second writer waits for the lock, then reports who holds it.
        monkeypatch.setattr(local, "_LOCK_WAIT_SECONDS", 1.0)
        blocked = ckpt.open(store).job("locked")
        if where == "ref":
            with pytest.raises(ConflictError, match=f"held by {pid}@"):
                blocked.save("second", {"n": 2})
        else:
            with pytest.raises(ConflictError, match=f"held by {pid}@"):
                blocked.refs.log("refs/heads/main", before.id, before.id, "probe")
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        if holder.stdin is not None:
            holder.stdin.close()
    assert holder.returncode == -signal.SIGKILL

    # The holder is dead: its flock went with it, and nothing needs breaking.
    monkeypatch.setattr(local, "_LOCK_WAIT_SECONDS", 1.0)
    after = ckpt.open(store)
    job = after.job("locked")
    head = job.head
    assert head is not None
    if where == "ref":
        assert head.id == before.id  # killed before its commit point
    saved = job.save("third", {"n": 3})
    assert job.load("third") == {"n": 3}
    assert saved.parent == head.id
    assert after.verify(full=True).ok
    assert lock_file.exists()  # left in place by design; it does not block
    figures.add("lock_holders_killed")
    figures.set("stale_lock_breaks_needed", 0)
