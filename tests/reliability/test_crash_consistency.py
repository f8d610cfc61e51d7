"""Guarantee 1: a save killed at any moment loses nothing that was returned.

A child process saves checkpoints of 1 KB to 4 MB in a loop (durable saves:
every returned save has been fsynced) and reports each returned save to the
parent through a pipe.  The parent kills it with SIGKILL at a random moment,
then checks the store as the next user would find it: ``verify(full=True)``
finds nothing wrong, HEAD loads, HEAD is the last save the child reported or
the one it had in flight (whose value must then be complete), every reported
save is still in history with its value, and the next writer is not blocked.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from pathlib import Path

import pytest

import ckpt
from ckpt.objects.ids import CommitId
from ckpt.storage import local

from ._support import Figures, leftovers, value_bytes

KILLS = int(os.environ.get("CKPT_CRASH_KILLS", "200"))
KILLS_PER_STORE = 5
STAGES = 5
JOB = "crash"


def size_for(seq: int) -> int:
    """The size of the seq-th save's value: mostly a few KB, sometimes up to 4 MB."""
    rng = random.Random(seq)
    roll = rng.random()
    if roll < 0.02:
        return 4 << 20
    if roll < 0.06:
        return rng.randint(1 << 20, 4 << 20)
    if roll < 0.15:
        return rng.randint(64 << 10, 1 << 20)
    return rng.randint(1 << 10, 16 << 10)


def value_for(seq: int) -> bytes:
    return value_bytes(seq, size_for(seq))


def save_next(job: ckpt.Job, seq: int) -> ckpt.Commit:
    return job.save(f"s{seq % STAGES}", value_for(seq), meta={"seq": seq})


def _child(store: str, pipe: int) -> None:
    """Save forever, writing ``SEQ COMMIT-ID`` to ``pipe`` after each save returns.

    Runs in a forked copy of the test process and never returns: it is
    killed, or it reports its error on the pipe and exits.
    """
    try:
        job = ckpt.open(store).job(JOB)
        head = job.head
        seq = 0 if head is None else int(head.meta["seq"])  # type: ignore[arg-type]
        while True:
            seq += 1
            commit = save_next(job, seq)
            os.write(pipe, f"{seq} {commit.id}\n".encode())
    except BaseException as exc:
        os.write(pipe, f"error {exc!r}\n".encode()[:4000])
    finally:
        os._exit(1)


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _kill_delay(rng: random.Random) -> float:
    # Mostly short (the first saves of a fresh process, HEAD creation), some long.
    return rng.uniform(0.0, 0.08) if rng.random() < 0.5 else rng.uniform(0.08, 0.4)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(
    tmp_path: Path, figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lock left by a dead writer would make the parent's save wait; fail fast instead.
    monkeypatch.setattr(local, "_LOCK_WAIT_SECONDS", 5.0)
    rng = random.Random(int(os.environ.get("CKPT_CRASH_SEED", "20240611")))
    kills = 0
    store = ""
    durable_head: CommitId | None = None
    while kills < KILLS:
        if kills % KILLS_PER_STORE == 0:
            if store:
                _check_whole_history(store, figures)
            store = str(tmp_path / f"store{kills // KILLS_PER_STORE}")
            ckpt.init(store)
            durable_head = None
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            _child(store, write_end)
        os.close(write_end)
        # Let the child run for a random time, reading its reports meanwhile.
        early = _read_for(read_end, _kill_delay(rng))
        os.kill(pid, signal.SIGKILL)
        _, wait_status = os.waitpid(pid, 0)
        output = early + _read_all(read_end)
        os.close(read_end)
        lines = output.decode().splitlines()
        errors = [line for line in lines if line.startswith("error")]
        assert not errors, f"child failed before it was killed: {errors}"
        assert os.WIFSIGNALED(wait_status) and os.WTERMSIG(wait_status) == signal.SIGKILL
        kills += 1
        returned = [(int(s), CommitId(c)) for s, c in (line.split() for line in lines)]
        durable_head = _check_after_kill(store, durable_head, returned, figures)
        temps, temp_bytes, locks = leftovers(Path(store))
        figures.max("max_tmp_files_left_in_a_store", temps)
        figures.max("max_tmp_bytes_left_in_a_store", temp_bytes)
        figures.max("max_lock_files_in_a_store", locks)
    _check_whole_history(store, figures)
    figures.set("kills_survived", kills)
    figures.set("bytes_lost", 0)
    figures.set("returned_saves_lost", 0)


def _read_for(fd: int, seconds: float) -> bytes:
    """Read what the child writes for ``seconds`` (so that it never blocks on a full pipe)."""
    deadline = time.monotonic() + seconds
    data = bytearray()
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            data += chunk
    return bytes(data)


def _check_after_kill(
    store: str,
    durable_head: CommitId | None,
    returned: list[tuple[int, CommitId]],
    figures: Figures,
) -> CommitId:
    """Check the store after a kill; save once more as the next writer; return the new head."""
    repo = ckpt.open(store)
    report = repo.verify(full=True)
    assert report.ok, [problem.message for problem in report.problems]
    job = repo.job(JOB)
    head = job.head  # loads HEAD (raises if it is damaged)
    last_returned = returned[-1][1] if returned else durable_head
    # The chain back from HEAD: [in flight?] + returned saves (newest first) + durable head.
    expected = [commit for _, commit in reversed(returned)]
    if durable_head is not None:
        expected.append(durable_head)
    if head is None:
        assert last_returned is None, "a returned save was lost: the branch has no head"
        in_flight = False
    elif head.id == last_returned:
        in_flight = False
    else:
        assert head.parent == last_returned, (
            f"HEAD {head.id} is neither the last returned save {last_returned} "
            "nor the one in flight after it"
        )
        in_flight = True
    chain = job.log(limit=len(expected) + 1) if head is not None else []
    ids = [commit.id for commit in chain]
    if in_flight:
        ids = ids[1:]
    assert ids[: len(expected)] == expected, "a returned save is missing from history"
    if head is not None:
        seq = int(head.meta["seq"])  # type: ignore[arg-type]
        assert job.load(head.stage or "") == value_for(seq)
    figures.add("saves_returned_before_kill", len(returned))
    figures.add("bytes_returned_before_kill", sum(size_for(s) for s, _ in returned))
    figures.add("in_flight_saves_found_committed", int(in_flight))
    figures.add("in_flight_saves_rolled_back", int(not in_flight))
    # The next writer: a fresh handle builds on HEAD without waiting for any lock.
    next_seq = 1 if head is None else int(head.meta["seq"]) + 1  # type: ignore[arg-type]
    commit = save_next(repo.job(JOB), next_seq)
    figures.add("saves_after_kill", 1)
    return commit.id


def _check_whole_history(store: str, figures: Figures) -> None:
    """Every commit of the store still holds exactly the value that was saved."""
    job = ckpt.open(store).job(JOB)
    commits = job.log()
    seqs = [int(commit.meta["seq"]) for commit in commits]  # type: ignore[arg-type]
    assert seqs == list(range(len(commits), 0, -1)), "history has a gap"
    for commit in commits:
        seq = int(commit.meta["seq"])  # type: ignore[arg-type]
        assert job.load(commit.stage or "", at=commit.id) == value_for(seq)
    figures.add("commits_checked_value_by_value", len(commits))
    figures.add("stores", 1)
