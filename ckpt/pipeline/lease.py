"""One runner per job: a lease taken when a run starts, renewed while it is alive.

The lease is one storage key, ``jobs/JOB/lease``, holding a JSON record of
its holder (host, pid, when it took the lease, when it last renewed it and
when the lease expires).  It is taken, renewed and given back only by the
backend's ``compare_and_swap``, so it works alike on every backend, and two
runners can never both believe they hold it.

* A run takes the lease before it reads or writes anything.  If another
  runner holds it, the run fails at once with :class:`LeaseHeldError`, which
  names the holder, unless it was told to wait.
* A thread renews the lease every third of its duration.  A runner killed
  with SIGKILL stops renewing: its lease expires and the next runner takes
  it over.  On the same machine a dead holder is recognised at once (its
  process is gone), so a crashed run can be resumed without waiting.
* A runner that could not renew in time and finds the lease taken over has
  lost it (:class:`LeaseLostError`): its next checkpoint is refused, so that
  the two never write the same job.
* The lease is given back when the run ends (completed, failed or
  interrupted).

Expiry is judged on wall-clock time, so machines sharing a store should
keep their clocks in sync (NTP); the default lease lasts 60 seconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
import uuid

import attrs

from ckpt.errors import ConflictError, CorruptRefError, StorageError
from ckpt.history.refs import job_prefix, now
from ckpt.pipeline.fingerprint import digest
from ckpt.storage.base import KeyNotFoundError, Storage

DEFAULT_LEASE_SECONDS = 60.0
_POLL_SECONDS = 0.5


def lease_key(job: str) -> str:
    return f"{job_prefix(job)}lease"


@attrs.frozen
class LeaseHolder:
    """Who holds a job's lease, since when, and until when unless renewed."""

    owner: str
    host: str
    pid: int
    since: dt.datetime
    renewed: dt.datetime
    expires: dt.datetime
    machine: str = ""
    process_start: str = ""

    def is_expired(self, at: dt.datetime | None = None) -> bool:
        return self.expires <= (at or now())

    def describe(self) -> str:
        """``pid 4242 on build-7, since 2026-01-17 10:30:00 UTC``."""
        since = self.since.astimezone(dt.UTC)
        return f"pid {self.pid} on {self.host}, since {since:%Y-%m-%d %H:%M:%S} UTC"

    def to_json(self) -> dict[str, object]:
        return {
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "since": self.since.isoformat(),
            "renewed": self.renewed.isoformat(),
            "expires": self.expires.isoformat(),
            "machine": self.machine,
            "process_start": self.process_start,
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True).encode("utf-8")

    @classmethod
    def decode(cls, raw: bytes) -> LeaseHolder | None:
        """The holder recorded in ``raw``; None if it is garbled (then anyone may take over)."""
        try:
            doc = json.loads(raw)
            return cls(
                owner=str(doc["owner"]),
                host=str(doc["host"]),
                pid=int(doc["pid"]),
                since=dt.datetime.fromisoformat(str(doc["since"])),
                renewed=dt.datetime.fromisoformat(str(doc["renewed"])),
                expires=dt.datetime.fromisoformat(str(doc["expires"])),
                machine=str(doc.get("machine", "")),
                process_start=str(doc.get("process_start", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


class LeaseHeldError(ConflictError):
    """Another runner holds the job's lease (``holder`` says who)."""

    def __init__(self, job: str, holder: LeaseHolder, waited: float | None = None) -> None:
        self.job = job
        self.holder = holder
        after = "" if waited is None else f" (waited {waited:.0f} s)"
        super().__init__(
            f"job {job!r} is being run by {holder.describe()}{after}; wait for it to finish, "
            f"pass wait=True to wait for it, or, if that runner is gone, run again after its "
            f"lease expires at {holder.expires.astimezone(dt.UTC):%H:%M:%S} UTC"
        )


class LeaseLostError(ConflictError):
    """This runner could not renew its lease in time and another runner took the job over."""


def read_lease(storage: Storage, job: str) -> LeaseHolder | None:
    """The job's lease holder as recorded (expired or not); None if there is none."""
    try:
        raw = storage.get(lease_key(job))
    except KeyNotFoundError:
        return None
    return LeaseHolder.decode(raw)


def holder_gone(holder: LeaseHolder) -> bool:
    """True if ``holder`` ran on this machine and its process no longer exists."""
    if not holder.machine or holder.machine != machine_id():
        return False
    return _process_start(holder.pid) != holder.process_start


def machine_id() -> str:
    """An id of this machine and process namespace: where a pid means the same process."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            with open(path, encoding="ascii") as handle:
                parts.append(handle.read().strip())
        except OSError:
            parts.append("")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    return digest(*parts)


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` (Linux: from /proc), "" if no such process.

    Telling a process from a later one given the same pid.  Where /proc is
    missing, a live process gives "alive" instead.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
        return stat.rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return ""
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ""
    except OSError:
        pass
    return "alive"


class Lease:
    """This process's lease on one job: take it with :meth:`acquire`, give it back with
    :meth:`release` (or use it as a context manager)."""

    def __init__(self, storage: Storage, job: str, *, seconds: float = DEFAULT_LEASE_SECONDS):
        if not seconds > 0:
            raise ValueError(f"a lease must last a positive time, not {seconds!r}")
        self.storage = storage
        self.job = job
        self.key = lease_key(job)
        self.seconds = float(seconds)
        self.holder: LeaseHolder | None = None
        self._raw: bytes | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost: str | None = None

    def acquire(self, wait: bool | float = False) -> LeaseHolder:
        """Take the lease.  ``wait``: False fails at once if it is held (LeaseHeldError),
        True waits as long as it takes, a number waits that many seconds at most."""
        started = time.monotonic()
        limit = None if wait is True else (0.0 if wait is False else float(wait))
        while True:
            try:
                raw: bytes | None = self.storage.get(self.key)
            except KeyNotFoundError:
                raw = None
            holder = None if raw is None else LeaseHolder.decode(raw)
            if raw is None or holder is None or holder.is_expired() or holder_gone(holder):
                mine = self._record(None)
                encoded = mine.encode()
                try:
                    self.storage.compare_and_swap(self.key, raw, encoded)
                except ConflictError:
                    continue  # someone else moved first: look again
                with self._lock:
                    self.holder, self._raw, self._lost = mine, encoded, None
                self._start_renewing()
                return mine
            waited = time.monotonic() - started
            if limit is not None and waited >= limit:
                raise LeaseHeldError(self.job, holder, waited if wait is not False else None)
            pause = min(_POLL_SECONDS, max(0.01, (holder.expires - now()).total_seconds()))
            if limit is not None:
                pause = min(pause, max(0.01, limit - waited))
            time.sleep(pause)

    def _record(self, previous: LeaseHolder | None) -> LeaseHolder:
        moment = now()
        return LeaseHolder(
            owner=uuid.uuid4().hex if previous is None else previous.owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            since=moment if previous is None else previous.since,
            renewed=moment,
            expires=moment + dt.timedelta(seconds=self.seconds),
            machine=machine_id() if previous is None else previous.machine,
            process_start=_process_start(os.getpid())
            if previous is None
            else previous.process_start,
        )

    def renew(self) -> None:
        """Push the expiry out by the lease's duration; LeaseLostError if it was taken over."""
        with self._lock:
            if self._lost is not None:
                raise LeaseLostError(self._lost)
            if self.holder is None or self._raw is None:
                raise LeaseLostError(f"job {self.job!r}: this runner holds no lease")
            fresh = self._record(self.holder)
            encoded = fresh.encode()
            try:
                self.storage.compare_and_swap(self.key, self._raw, encoded)
            except ConflictError:
                taken = read_lease(self.storage, self.job)
                by = "" if taken is None else f" by {taken.describe()}"
                self._lost = (
                    f"job {self.job!r}: this runner's lease was not renewed in time and was "
                    f"taken over{by}; its work since the last checkpoint is not saved"
                )
                raise LeaseLostError(self._lost) from None
            self.holder, self._raw = fresh, encoded

    def check(self) -> None:
        """Raise LeaseLostError if the lease was lost (called before every checkpoint)."""
        with self._lock:
            if self._lost is not None:
                raise LeaseLostError(self._lost)
        holder = self.holder
        if holder is not None and holder.is_expired():
            # The renewing thread fell behind (a paused process): renew now, or learn it is lost.
            self.renew()

    def _start_renewing(self) -> None:
        self._stop.clear()
        thread = threading.Thread(
            target=self._renew_loop, name=f"ckpt-lease-{self.job}", daemon=True
        )
        self._thread = thread
        thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except LeaseLostError:
                return
            except (StorageError, CorruptRefError, OSError):
                continue  # a passing storage failure: try again at the next tick

    def release(self) -> None:
        """Give the lease back (nothing happens if it was lost or the job was deleted)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            raw, self._raw, self.holder = self._raw, None, None
            if raw is None or self._lost is not None:
                return
            with contextlib.suppress(ConflictError, KeyNotFoundError):
                self.storage.compare_and_swap(self.key, raw, None)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "Lease",
    "LeaseHeldError",
    "LeaseHolder",
    "LeaseLostError",
    "holder_gone",
    "lease_key",
    "read_lease",
]
