"""One runner per job: a run holds a lease on its job, renewed while it is alive, on every
backend.  A second runner fails at once naming the holder (host, pid, since) unless told to
wait; a SIGKILLed runner does not block the job past its lease; `ckpt status` shows the
holder."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

import ckpt
from ckpt.pipeline.lease import (
    Lease,
    LeaseHeldError,
    LeaseHolder,
    LeaseLostError,
    lease_key,
    read_lease,
)
from ckpt.pipeline.runner import Pipeline
from ckpt.storage import Storage, open_storage

from ._support import (
    FANOUT_CHILD,
    ckpt_status,
    read_log,
    run_fanout_child,
    start_blocked,
    stop,
    wait_for,
)


def test_a_second_holder_fails_at_once_naming_the_first(storage: Storage) -> None:
    first = Lease(storage, "job", seconds=30)
    holder = first.acquire()
    try:
        assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
        second = Lease(storage, "job", seconds=30)
        started = time.monotonic()
        with pytest.raises(LeaseHeldError, match=f"pid {os.getpid()} on ") as caught:
            second.acquire()
        assert time.monotonic() - started < 5  # at once, not after a timeout
        assert caught.value.holder.owner == holder.owner
        assert "since" in str(caught.value)
        assert read_lease(storage, "job") == first.holder
    finally:
        first.release()
    assert read_lease(storage, "job") is None
    again = Lease(storage, "job", seconds=30)
    again.acquire()
    again.release()


def test_an_expired_lease_of_another_machine_is_taken_over(storage: Storage) -> None:
    moment = dt.datetime.now(dt.UTC)
    gone = LeaseHolder(
        owner="elsewhere",
        host="other-host",
        pid=1,
        since=moment - dt.timedelta(minutes=5),
        renewed=moment - dt.timedelta(minutes=2),
        expires=moment + dt.timedelta(seconds=0.6),
        machine="another machine",
        process_start="1",
    )
    storage.compare_and_swap(lease_key("job"), None, gone.encode())
    lease = Lease(storage, "job", seconds=30)
    with pytest.raises(LeaseHeldError, match="pid 1 on other-host"):
        lease.acquire()
    holder = lease.acquire(wait=30)  # waits for the lease to lapse, then takes it
    try:
        assert holder.pid == os.getpid()
    finally:
        lease.release()


def test_the_lease_is_renewed_while_the_holder_lives(storage: Storage) -> None:
    lease = Lease(storage, "job", seconds=0.6)
    first = lease.acquire()
    try:
        wait_for(
            lambda: (read_lease(storage, "job") or first).renewed > first.renewed,
            "a renewal",
        )
        time.sleep(1.0)  # past the first expiry: still held, since it was renewed
        with pytest.raises(LeaseHeldError):
            Lease(storage, "job", seconds=0.6).acquire()
    finally:
        lease.release()


def test_a_lost_lease_refuses_the_next_checkpoint(storage: Storage) -> None:
    lease = Lease(storage, "job", seconds=30)
    lease.acquire()
    raw = storage.get(lease_key("job"))
    thief = attrs.evolve(LeaseHolder.decode(raw), owner="thief")  # type: ignore[arg-type]
    storage.compare_and_swap(lease_key("job"), raw, thief.encode())
    with pytest.raises(LeaseLostError, match="taken over"):
        lease.renew()
    with pytest.raises(LeaseLostError):
        lease.check()
    lease.release()
    assert read_lease(storage, "job") == thief  # a lost lease is not given back


# -- real processes, on the backends several processes can share ---------------------

SHARED = ["local", "sqlite", "redis", "s3"]  # memory:// is one process's own


@pytest.fixture
def shared_url(store_url: str) -> str:
    ckpt.init(store_url).close()
    return store_url


@pytest.mark.slow
@pytest.mark.parametrize("store_url", SHARED, indirect=True)
def test_a_second_runner_fails_at_once_and_status_names_the_holder(
    shared_url: str, tmp_path: Path
) -> None:
    child = start_blocked(shared_url, tmp_path, ["a"])  # type: ignore[arg-type]
    try:
        pipeline = Pipeline([("a", lambda input: 1)], store=shared_url)
        started = time.monotonic()
        with pytest.raises(LeaseHeldError, match=f"pid {child.pid} on {socket.gethostname()}"):
            pipeline.run("job", 1)
        assert time.monotonic() - started < 10
        runner = ckpt_status(shared_url, "job", as_json=True)["runner"]
        assert (runner["pid"], runner["host"], runner["alive"]) == (
            child.pid,
            socket.gethostname(),
            True,
        )
        text = ckpt_status(shared_url, "job")
        assert f"Runner:    pid {child.pid} on {socket.gethostname()}, since " in text
    finally:
        stop(child, signal.SIGKILL)
    # Killed: on this machine its lease is seen to be dead at once.
    text = ckpt_status(shared_url, "job")
    assert f"Runner:    none (pid {child.pid} on" in text
    read_log(tmp_path)
    result = run_fanout_child(shared_url, tmp_path)  # type: ignore[arg-type]
    assert result["output"] == 40
    assert read_lease(open_storage(shared_url), "job") is None


@pytest.mark.slow
def test_a_killed_runner_of_another_machine_blocks_only_until_its_lease_expires(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    child = start_blocked(store, tmp_path, ["a"], {"lease_seconds": 1.0})
    stop(child, signal.SIGKILL)
    storage = open_storage(str(store))
    raw = storage.get(lease_key("job"))
    holder = LeaseHolder.decode(raw)
    assert holder is not None and holder.pid == child.pid
    # As if it had run on another machine, and had renewed its lease just now.
    elsewhere = attrs.evolve(
        holder,
        machine="another machine",
        expires=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3),
    )
    storage.compare_and_swap(lease_key("job"), raw, elsewhere.encode())
    with pytest.raises(LeaseHeldError, match=f"job 'job' is being run by pid {child.pid} on"):
        Pipeline([("a", lambda input: 0)], store=store).run("job")
    read_log(tmp_path)
    result = run_fanout_child(store, tmp_path, {"wait": 60})  # until the lease lapses
    assert result["output"] == 40
    assert read_log(tmp_path)[0] == "a"


@pytest.mark.slow
def test_wait_runs_once_the_holder_finishes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    holder = start_blocked(store, tmp_path, ["book"])
    waiter = subprocess.Popen(
        [sys.executable, str(FANOUT_CHILD), str(store), str(tmp_path), '{"wait": true}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        assert waiter.poll() is None  # waiting, not failed
        (tmp_path / "block").unlink()  # the holder goes on and completes
        assert holder.wait(60) == 0
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
    finally:
        for process in (holder, waiter):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert json.loads(out.strip().splitlines()[-1])["output"] == 40
    assert read_log(tmp_path).count("a") == 1  # the waiter found everything done


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
def test_a_paused_runner_that_lost_its_lease_writes_nothing_more(
    shared_url: str, tmp_path: Path
) -> None:
    # On Redis a compare-and-swap holds no lock in the client: a process stopped at any
    # moment blocks no other writer (a local store's lock file would stay locked).
    store = shared_url
    paused = start_blocked(store, tmp_path, ["a"], {"lease_seconds": 1.0})
    job = ckpt.open(store).job("job")
    wait_for(lambda: job.exists and "b" in job.stages(), "b's checkpoint", paused)
    os.kill(paused.pid, signal.SIGSTOP)  # as a machine that hangs, or a debugger
    try:
        (tmp_path / "block").unlink()
        result = run_fanout_child(store, tmp_path, {"lease_seconds": 1.0, "wait": 60})
        assert result["output"] == 40
        finished = job.head
        assert finished is not None and finished.status == "completed"
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    code, err = stop(paused, signal.SIGCONT)
    assert code != 0 and "LeaseLostError" in err and "taken over" in err
    job.refresh()
    assert job.head == finished  # the paused runner wrote nothing when it woke up
