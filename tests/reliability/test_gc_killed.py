"""Guarantee 10: a gc killed at any instruction of a deletion loses nothing a save touched.

gc removes a pack with the backend's ``delete_if_older``, which must never
remove a pack a writer touched (the writer relies on what it holds) and must
not leave the pack hidden if gc dies midway.  Here gc runs in a child process
whose system calls inside its first ``delete_if_older`` are stepped one by
one.  For every pair of steps (k, m), k <= m: while gc is stopped at step k,
another process saves a value whose objects are in that very pack (it
touches the pack); then gc runs on and is killed with SIGKILL at step m.
The save must load, ``verify --full`` must be clean, no file may be left
hidden, and the next gc must keep it all.

Before the fix the local backend renamed the pack aside, re-read its mtime
and linked it back if it had been touched: a gc killed between the rename
and the link-back left a touched pack as ``packs/NAME.*.tmp``, which readers
ignore, and the save that touched it was lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import ckpt
from ckpt.errors import CkptError

from ._support import Figures, result, reused_versions, spawn

#: How long the saving process gets to touch the pack while gc is stopped.
TOUCH_WINDOW = 0.5


def _template(tmp_path: Path) -> Path:
    """A store whose only job's three saves are garbage (its job deleted)."""
    root = tmp_path / "template"
    repo = ckpt.init(root)
    job = repo.job("old")
    for version in reused_versions():
        for stage, value in version.items():
            job.save(stage, value)
    repo.delete_job("old")
    repo.close()
    time.sleep(0.2)  # past the file system's mtime tick
    return root


def _steps(child: subprocess.Popen[str]) -> str | None:
    """The next step gc stopped at, or None once it finished its first deletion."""
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.startswith("at "):
        return line.split()[2]
    return None


def _tell(child: subprocess.Popen[str], word: str) -> None:
    assert child.stdin is not None
    child.stdin.write(word + "\n")
    child.stdin.flush()


def _finish(child: subprocess.Popen[str]) -> dict[str, Any]:
    """The child's JSON result, read through the same buffer as its earlier lines
    (``communicate`` would bypass it and miss lines already buffered)."""
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    rest = child.stdout.read()
    child.wait(60)
    lines = [line for line in rest.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"child exited with {child.returncode}: {rest[-2000:]}")
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def _probe(store: Path) -> list[str]:
    child = spawn("gc-stepped", store)
    steps = []
    while (function := _steps(child)) is not None:
        steps.append(function)
        _tell(child, "go")
    _finish(child)
    return steps


def _hidden(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "packs").iterdir() if p.name.endswith(".tmp"))


@pytest.mark.slow
def test_gc_killed_at_each_step_of_a_deletion_loses_nothing_touched(
    tmp_path: Path, figures: Figures
) -> None:
    template = _template(tmp_path)
    steps = _probe(shutil.copytree(template, tmp_path / "probe"))
    assert len(steps) >= 3, steps
    expected = reused_versions()[-1]
    runs = kills = 0
    for touch_at in range(len(steps)):
        for kill_at in range(touch_at, len(steps)):
            store = shutil.copytree(template, tmp_path / f"store-{touch_at}-{kill_at}")
            writer = spawn("save-last-version", store, "new", "wait")
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready"
            gc = spawn("gc-stepped", store)
            killed = False
            for step in range(kill_at + 1):
                if _steps(gc) is None:
                    break  # a pack found touched is kept: its deletion ends sooner
                if step == touch_at:
                    _tell(writer, "go")
                    # Let the save touch the pack (it may wait for gc's lock instead).
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        writer.wait(TOUCH_WINDOW)
                killed = step == kill_at
                _tell(gc, "kill" if killed else "go")
            if killed:
                gc.wait(60)
                assert gc.returncode == -9
            else:
                _finish(gc)
            commit = result(writer)["commit"]
            where = f"touched at {steps[touch_at]} (step {touch_at}), killed at {steps[kill_at]}"
            repo = ckpt.open(store)
            for stage, value in expected.items():
                assert repo.job("new").load(stage, at=commit) == value, where
            assert _hidden(store) == [], where
            assert repo.verify(full=True).ok, where
            repo.gc(grace=dt.timedelta(0))
            for stage, value in expected.items():
                assert repo.job("new").load(stage, at=commit) == value, where
            repo.close()
            runs += 1
            kills += killed
    figures.set("deletion_steps", len(steps))
    figures.set("runs", runs)
    figures.set("kills", kills)
    figures.set("touched_packs_lost", 0)


def test_gc_restores_what_an_older_gc_left_hidden(tmp_path: Path) -> None:
    """A store an older ckpt's gc left with a pack renamed aside (killed between its
    rename and its link-back): the next gc puts the pack back before it marks.  A
    temporary file of an interrupted write (not a whole pack) stays where it is."""
    store = _template(tmp_path)
    repo = ckpt.open(store)
    commit = repo.job("new").save_many(reused_versions()[-1])
    blob = repo.objects.get_tree(commit.tree).get("big")
    assert blob is not None
    where = repo.objects.locate(blob.id)
    assert where is not None
    pack = store / where.key
    hidden = pack.with_name(pack.name + ".0123456789ab.tmp")
    pack.rename(hidden)
    partial = pack.with_name(pack.name[:-1] + "0.ba9876543210.tmp")
    partial.write_bytes(hidden.read_bytes()[:100])
    repo.close()
    repo = ckpt.open(store)
    with pytest.raises(CkptError):
        repo.job("new").load("big", at=commit.id)
    repo.gc(grace=dt.timedelta(0))
    assert not hidden.exists()  # put back (then rewritten without its garbage)
    assert partial.exists()
    for stage, value in reused_versions()[-1].items():
        assert repo.job("new").load(stage, at=commit.id) == value
    assert repo.verify(full=True).ok
