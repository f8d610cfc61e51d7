"""Guarantees 1 and 3 on PostgreSQL, against a real server.

* Concurrent writers (several processes, one job): every save lands or raises
  ConflictError; none is lost or duplicated; refs and reflog stay whole.
* A writer SIGKILLed at random moments mid-save: every save that returned is
  in history with its value, HEAD is the last returned save or the one in
  flight, ``verify(full=True)`` finds nothing wrong, the next writer goes on.
* The server crashes (immediate shutdown) or restarts under a writer: the
  writer rides it out and every save that returned is there afterwards,
  exactly once.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

import ckpt
from ckpt.objects.ids import CommitId
from tests.servers import PostgresServer

from ._support import CHILDREN, Figures, result, saved_value, spawn, wait_ready
from .test_concurrent_writers import _check_refs_and_reflog

JOB = "run"
SHARED_WRITERS = 4
OWN_WRITERS = 2
ATTEMPTS = 40
KILLS = int(os.environ.get("CKPT_POSTGRES_KILLS", "25"))
RESTARTS = ("immediate", "fast", "immediate", "immediate")
SAVES_PER_ROUND = 60


@pytest.mark.slow
def test_postgres_concurrent_writers_lose_nothing(postgres_store: str, figures: Figures) -> None:
    with ckpt.init(postgres_store) as repo:
        first = repo.job("shared").save("start", {"n": 0})
    children = [
        spawn("writer", postgres_store, "shared", ATTEMPTS, "retry" if i % 2 else "once", i)
        for i in range(SHARED_WRITERS)
    ]
    children += [
        spawn("writer", postgres_store, f"own-{i}", ATTEMPTS, "once", 100 + i)
        for i in range(OWN_WRITERS)
    ]
    wait_ready(children)
    results = [result(child) for child in children]
    shared, own = results[:SHARED_WRITERS], results[SHARED_WRITERS:]

    with ckpt.open(postgres_store) as repo:
        report = repo.verify(full=True)
        assert report.ok, [p.message for p in report.problems]
        history = [commit.id for commit in repo.job("shared").log()]
        assert history[-1] == first.id
        landed = history[:-1]
        returned = [oid for r in shared for oid in r["saved"]]
        conflicts = sum(r["conflicts"] for r in shared)
        attempts = sum(r["attempts"] for r in shared)
        assert attempts == len(landed) + conflicts
        assert Counter(returned) == Counter(landed), "a returned save is missing, or a phantom"
        _check_refs_and_reflog(repo, "shared", history)
        for index, r in enumerate(own):
            assert r["conflicts"] == 0
            own_history = [c.id for c in repo.job(f"own-{index}").log()]
            assert list(reversed(own_history)) == r["saved"]
            _check_refs_and_reflog(repo, f"own-{index}", own_history)
    figures.add("processes", len(children))
    figures.add("saves_attempted_on_shared_job", attempts)
    figures.add("commits_on_shared_job", len(landed))
    figures.add("conflicts_reported", conflicts)
    figures.set("lost_updates", 0)


def _start_saver(store: str, count: int) -> subprocess.Popen[bytes]:
    """Start a ``saver`` child; return it once it has opened the store."""
    child = subprocess.Popen(
        [sys.executable, str(CHILDREN), "saver", store, JOB, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    first = child.stdout.readline()
    if first.strip() != b"ready":
        _out, err = child.communicate(timeout=60)
        pytest.fail(f"the saver did not start: {first!r} {err.decode(errors='replace')}")
    return child


def _read_for(fd: int, seconds: float) -> bytes:
    """What the child writes in ``seconds`` (read, so that it never blocks on a full pipe)."""
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


def _returned(output: bytes) -> list[tuple[int, CommitId]]:
    """The saves a ``saver`` child reported in ``output`` (whole lines only)."""
    lines = [line.split() for line in output.decode().split("\n")[:-1]]
    return [(int(fields[0]), CommitId(fields[1])) for fields in lines if fields[0].isdigit()]


def _check_history(store: str, returned: list[tuple[int, CommitId]]) -> int:
    """The job's history is saves 1, 2, ... without a gap or a duplicate, each holding its
    value, and each save that returned is there as the commit it returned.  Return the
    history's length."""
    with ckpt.open(store) as repo:
        report = repo.verify(full=True)
        assert report.ok, [problem.message for problem in report.problems]
        job = repo.job(JOB)
        commits = list(reversed(job.log()))
        seqs = [int(commit.meta["seq"]) for commit in commits]  # type: ignore[arg-type]
        assert seqs == list(range(1, len(commits) + 1)), "history has a gap or a duplicate"
        by_seq = {seq: commit.id for seq, commit in zip(seqs, commits, strict=True)}
        for seq, commit_id in returned:
            assert by_seq.get(seq) == commit_id, f"save {seq} returned but is not in history"
        for commit, seq in zip(commits, seqs, strict=True):
            assert job.load(commit.stage or "", at=commit.id) == saved_value(seq)
        return len(commits)


@pytest.mark.slow
def test_postgres_writer_sigkilled_mid_save_loses_nothing(
    postgres_store: str, figures: Figures
) -> None:
    ckpt.init(postgres_store).close()
    rng = random.Random(int(os.environ.get("CKPT_CRASH_SEED", "20240611")))
    returned: list[tuple[int, CommitId]] = []
    length = 0
    for _kill in range(KILLS):
        child = _start_saver(postgres_store, 100_000)
        assert child.stdout is not None
        output = _read_for(child.stdout.fileno(), rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        output += child.stdout.read()
        child.wait()
        assert child.returncode == -signal.SIGKILL
        these = _returned(output)
        returned += these
        # The child went on from save `length`: what it reported is there, and at most
        # the one save it had in flight besides.
        new_length = _check_history(postgres_store, returned)
        in_flight = new_length - (length + len(these))
        assert in_flight in (0, 1), f"{in_flight} saves more than returned"
        figures.add("saves_returned_before_kill", len(these))
        figures.add("in_flight_saves_found_committed", in_flight)
        figures.add("in_flight_saves_rolled_back", 1 - in_flight)
        length = new_length
    figures.set("kills_survived", KILLS)
    figures.set("returned_saves_lost", 0)


@pytest.mark.slow
def test_postgres_server_crash_or_restart_mid_run_loses_nothing_returned(
    private_postgres_server: PostgresServer, figures: Figures
) -> None:
    store = f"{private_postgres_server.url}?schema=restarts"
    ckpt.init(store).close()
    child = _start_saver(store, SAVES_PER_ROUND * (len(RESTARTS) + 1))
    assert child.stdout is not None
    output = b""
    try:
        for round_, mode in enumerate(RESTARTS, 1):
            while len(_returned(output)) < round_ * SAVES_PER_ROUND:
                assert child.poll() is None, "the saver stopped"
                output += _read_for(child.stdout.fileno(), 0.05)
            private_postgres_server.restart(mode)
            figures.add(f"server_{mode}_restarts", 1)
        rest, errors = child.communicate(timeout=600)
        output += rest
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, errors.decode(errors="replace")
    returned = _returned(output)
    saves = SAVES_PER_ROUND * (len(RESTARTS) + 1)
    assert [seq for seq, _ in returned] == list(range(1, saves + 1))
    assert _check_history(store, returned) == saves
    figures.set("saves_returned", len(returned))
    figures.set("returned_saves_lost", 0)
