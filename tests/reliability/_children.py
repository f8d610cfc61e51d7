"""Child processes for the reliability tests.

Run as ``python _children.py MODE ARG...``.  Each mode prints one JSON line
with what it did as its last line of output.  Modes that race against other
processes print ``ready`` first and wait for a line on stdin, so that all of
them start at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import resource
import sys
import time
from typing import Any

import ckpt
from ckpt.errors import CkptError, ConflictError


def _emit(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def _wait_for_go() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def _peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started.

    ``VmHWM`` first: ``ru_maxrss`` survives ``exec``, so a child forked from
    a large test process would report the parent's peak as its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def writer(store: str, job_name: str, attempts: str, retry: str, seed: str) -> None:
    """Attempt ``attempts`` saves on one job; count saves that landed and conflicts."""
    rng = random.Random(int(seed))
    job = ckpt.open(store).job(job_name)
    saved: list[str] = []
    conflicts = 0
    _wait_for_go()
    for attempt in range(int(attempts)):
        value = {"writer": seed, "attempt": attempt, "pad": "x" * rng.randint(10, 4000)}
        try:
            commit = job.save(f"s{rng.randint(0, 3)}", value, retry=retry == "retry")
        except ConflictError:
            # The handle forgets the head it saw: the next attempt builds on the new one.
            conflicts += 1
            continue
        saved.append(commit.id)
    _emit({"attempts": int(attempts), "saved": saved, "conflicts": conflicts})


def saver(store: str, job_name: str, count: str) -> None:
    """Save ``count`` checkpoints on one job, going on from its head, printing ``SEQ COMMIT``
    as each save returns: what the parent holds the store to once it has killed this
    process, or crashed and restarted the store's server under it."""
    from _support import saved_value

    job = ckpt.open(store).job(job_name)
    head = job.head
    seq = 0 if head is None else int(head.meta["seq"])  # type: ignore[arg-type]
    print("ready", flush=True)
    for _ in range(int(count)):
        seq += 1
        commit = job.save(f"s{seq % 5}", saved_value(seq), meta={"seq": seq})
        print(f"{seq} {commit.id}", flush=True)
    _emit({"saved": int(count)})


def gc_writer(store: str, job_name: str, seconds: str, grace: str, seed: str) -> None:
    """Save (and roll back, and leave orphans) on one job while gc runs elsewhere.

    Every commit this writer creates is reported: the test checks that each
    one still loads afterwards.  Orphans are objects stored with no commit,
    as a killed save leaves them; some are later saved for real, so that a
    save reuses an object that gc is deciding to delete.
    """
    rng = random.Random(int(seed))
    repo = ckpt.open(store)
    job = repo.job(job_name)
    commits: list[str] = []
    orphans: list[tuple[float, bytes]] = []
    actions = {"save": 0, "orphan": 0, "reuse_orphan": 0, "rollback": 0, "pause": 0}
    failures: list[str] = []
    _wait_for_go()
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            _gc_writer_step(rng, repo, job, commits, orphans, actions, float(grace))
        except CkptError as exc:
            # A save or rollback that fails is a finding: report it, with whether
            # the object it missed is there when looked for again.
            failures.append(_diagnose(repo, exc))
            job.refresh()
    _emit({"commits": commits, "actions": actions, "failures": failures})


def _diagnose(repo: ckpt.Repository, exc: CkptError) -> str:
    oid = getattr(exc, "object_id", None)
    if oid is None:
        return f"{type(exc).__name__}: {exc}"
    again = ckpt.open(repo.location).objects.has(oid)
    return f"{type(exc).__name__}: {exc} (found when looked up again: {again})"


def _gc_writer_step(
    rng: random.Random,
    repo: ckpt.Repository,
    job: ckpt.Job,
    commits: list[str],
    orphans: list[tuple[float, bytes]],
    actions: dict[str, int],
    grace: float,
) -> None:
    """One action of a gc writer: save, pause, leave an orphan, reuse one, or roll back."""
    from ckpt.objects.ids import Kind

    roll = rng.random()
    old = [item for item in orphans if time.time() - item[0] > grace]
    if roll < 0.04:
        # Pipelines checkpoint in bursts; in the pauses objects age past the grace period.
        time.sleep(rng.uniform(0.5, 2.0) * grace)
        actions["pause"] += 1
    elif roll < 0.12:
        data = rng.randbytes(rng.randint(100, 20000))
        repo.objects.put(Kind.BLOB, data)
        orphans.append((time.time(), data))
        actions["orphan"] += 1
    elif roll < 0.25 and old:
        _, data = old[rng.randrange(len(old))]
        commits.append(job.save(f"s{rng.randint(0, 3)}", data).id)
        actions["reuse_orphan"] += 1
    elif roll < 0.3 and len(commits) > 3:
        job.checkout("HEAD~2")
        actions["rollback"] += 1
    else:
        value = rng.randbytes(rng.randint(100, 30000))
        commits.append(job.save(f"s{rng.randint(0, 3)}", value).id)
        actions["save"] += 1


_ORPHAN_SECONDS = 600.0


def gc_loop(store: str, grace: str, stop_file: str) -> None:
    """Run gc with a tiny grace period over and over until ``stop_file`` exists."""
    from ckpt.maintenance.gc import collect

    runs = deleted = errors = 0
    messages: list[str] = []
    _wait_for_go()
    # Bounded even if the parent dies without creating the stop file (or its
    # directory is removed): an orphaned loop must end by itself.
    deadline = time.monotonic() + _ORPHAN_SECONDS
    while not os.path.exists(stop_file):
        if time.monotonic() > deadline or not os.path.isdir(os.path.dirname(stop_file) or "."):
            break
        try:
            report = collect(ckpt.open(store), grace=dt.timedelta(seconds=float(grace)))
        except CkptError as exc:
            errors += 1
            if len(messages) < 5:
                cause = exc.__cause__ if isinstance(exc.__cause__, CkptError) else exc
                messages.append(_diagnose(ckpt.open(store), cause))
            continue
        runs += 1
        deleted += report.deleted
    _emit({"runs": runs, "deleted": deleted, "errors": errors, "messages": messages[:5]})


def gc_once(store: str, grace: str) -> None:
    """Run gc once (paused at each deletion when ``CKPT_TEST_GC_PAUSE_DIR`` is set)."""
    from ckpt.maintenance.gc import collect

    report = collect(ckpt.open(store), grace=dt.timedelta(seconds=float(grace)))
    _emit({"deleted": report.deleted})


def save_last_version(store: str, job_name: str, wait: str = "") -> None:
    """Save the last of ``reused_versions()`` as one checkpoint of ``job_name`` (with
    ``wait``: once told to go, so that the save starts at a moment of the test's choosing)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _support import reused_versions

    values = reused_versions()[-1]
    job = ckpt.open(store).job(job_name)
    if wait:
        _wait_for_go()
    _emit({"commit": job.save_many(values).id})


def gc_stepped(store: str) -> None:
    """Run gc, stopping at each system call of its first ``delete_if_older``.

    At each one it prints ``at N FUNCTION`` and reads a line: ``go`` runs the
    call, ``kill`` makes the process SIGKILL itself before it.  After that
    first deletion gc runs on by itself.
    """
    import signal

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _support import Call, FaultPlan, install_faults

    from ckpt.maintenance.gc import collect

    first: list[str] = []

    def step(call: Call) -> None:
        if call.operation != "delete_if_older":
            return
        if not first:
            first.append(call.key)
        if call.key != first[0]:
            plan.hook = None
            return
        first.append(call.function)
        print(f"at {len(first) - 1} {call.function}", flush=True)
        if sys.stdin.readline().strip() == "kill":
            os.kill(os.getpid(), signal.SIGKILL)

    plan = FaultPlan(hook=step)
    install_faults(plan)
    report = collect(ckpt.open(store), grace=dt.timedelta(0))
    print("done", flush=True)
    _emit({"deleted": report.deleted})


def keep_saving(store: str, job_name: str, limit: str) -> None:
    """Save (rebuilding on the head on a conflict) until a save fails for a reason other
    than the storage being unreachable, or ``limit`` seconds pass; print each save."""
    from ckpt.errors import StorageError

    job = ckpt.open(store).job(job_name)
    deadline = time.monotonic() + float(limit)
    saved = 0
    while time.monotonic() < deadline:
        try:
            job.save("step", {"n": saved}, retry=True)
        except StorageError:
            time.sleep(0.05)  # the server is down: try again
            continue
        except CkptError as exc:
            _emit({"saved": saved, "error": type(exc).__name__, "message": str(exc)})
            return
        saved += 1
        print(f"saved {saved}", flush=True)
        time.sleep(0.02)
    _emit({"saved": saved, "error": None, "message": ""})


def lock_holder(store: str, job_name: str, where: str) -> None:
    """Save, and stop for good while holding the lock of ``where`` (``ref`` or ``reflog``)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _support import Call, FaultPlan, install_faults, key_kind

    def hold(call: Call) -> None:
        # The first write under the lock: the ref's temporary file, or the reflog line.
        if call.function == "write" and key_kind(call.key) == where:
            print(f"holding {os.getpid()}", flush=True)
            while True:
                time.sleep(60)

    plan = FaultPlan(hook=hold)
    install_faults(plan)
    ckpt.open(store).job(job_name).save("held", {"by": os.getpid()})
    _emit({"error": "the save finished without reaching the lock"})


def load_stage(store: str, job_name: str, stage: str) -> None:
    """Load one stage; report the error class (if any) and the peak memory."""
    try:
        ckpt.open(store).job(job_name).load(stage)
    except CkptError as exc:
        _emit({"error": type(exc).__name__, "message": str(exc), "peak": _peak_rss_bytes()})
        return
    _emit({"error": None, "peak": _peak_rss_bytes()})


def verify_store(store: str) -> None:
    """Run a full verify; report the problems and the peak memory."""
    report = ckpt.open(store).verify(full=True)
    problems = [[p.kind, p.subject, p.message] for p in report.problems]
    _emit({"problems": problems, "peak": _peak_rss_bytes()})


def read_hostile(store: str, marker: str) -> None:
    """Do everything a user does with a store someone else wrote; report what got imported."""
    from ckpt.maintenance.gc import collect
    from ckpt.transfer.exchange import export_job

    done: list[str] = []
    repo = ckpt.open(store)
    for job in repo.jobs():
        job.log()
        job.reflog()
        job.status  # noqa: B018 - reading the property is the point
        for stage in job.stages():
            try:
                job.load(stage)
            except CkptError as exc:
                done.append(f"load {stage}: {type(exc).__name__}")
            else:
                done.append(f"load {stage}: ok")
            try:
                job.load(stage, dict)
            except CkptError as exc:
                done.append(f"load {stage} as dict: {type(exc).__name__}")
            job.load_raw(stage)
        export_job(job)
    repo.verify(full=True)
    collect(repo, dry_run=True)
    suspicious = sorted(name for name in sys.modules if "payload" in name or "evil" in name)
    _emit({"done": done, "marker_exists": os.path.exists(marker), "modules": suspicious})


def large_value(store: str, size: str, action: str) -> None:
    """Save or load a value of ``size`` bytes; report peak memory, before and after."""
    size_bytes = int(size)
    repo = ckpt.open(store)
    job = repo.job("large")
    if action == "save":
        value = os.urandom(size_bytes)
        baseline = _peak_rss_bytes()
        started = time.perf_counter()
        job.save("value", value)
        seconds = time.perf_counter() - started
    else:
        baseline = _peak_rss_bytes()
        started = time.perf_counter()
        value = job.load("value")
        seconds = time.perf_counter() - started
        if len(value) != size_bytes:
            _emit({"error": f"loaded {len(value)} bytes, expected {size_bytes}"})
            return
    _emit({"baseline": baseline, "peak": _peak_rss_bytes(), "seconds": seconds})


MODES = {
    "writer": writer,
    "saver": saver,
    "gc-writer": gc_writer,
    "gc-loop": gc_loop,
    "gc-once": gc_once,
    "save-last-version": save_last_version,
    "gc-stepped": gc_stepped,
    "keep-saving": keep_saving,
    "lock-holder": lock_holder,
    "load-stage": load_stage,
    "verify": verify_store,
    "read-hostile": read_hostile,
    "large-value": large_value,
}


if __name__ == "__main__":
    MODES[sys.argv[1]](*sys.argv[2:])
