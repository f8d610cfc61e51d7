"""Guarantee 2: a save whose disk call fails reports it, leaves the store consistent, and retries.

The local backend's ``os`` and ``fcntl`` calls are routed through a fault
plan (see ``_support.FaultPlan``).  A clean save is run first to count the
calls it makes; then, on a fresh copy of the same store each time, the n-th
call of each function is made to fail with ENOSPC and with EIO, for every n:
writes, fsyncs of files and directories, links, renames, the ref's lock and
compare-and-swap, the reflog append.  After each failure:

* the error reaches the caller as a CkptError naming the stage (and the OS error);
* ``verify(full=True)`` finds nothing wrong;
* HEAD is the previous commit if the failure came before the ref moved, or
  else the new commit, complete (as after a crash at that point);
* retrying the same save on the same handle succeeds.

Three kinds of save are covered: the first save of a new job (creates HEAD
and the job record), a save of a new value, and a save of a value already
stored (the object is touched, not written).
"""

from __future__ import annotations

import errno
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ckpt
from ckpt.errors import CkptError
from ckpt.storage import journal as journal_mod

from ._support import Call, FaultPlan, Figures, install_faults, value_bytes

ERRORS = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO}
#: Calls that can report a full disk (they allocate blocks or directory entries,
#: or report a deferred write).  EIO is injected into every call.
CAN_FILL_DISK = frozenset({"open", "write", "pwrite", "fsync", "link", "rename", "mkdir", "close"})
SCENARIOS = ("first-save-of-job", "new-value", "existing-value")


def _template(root: Path, scenario: str) -> tuple[Path, str, str, bytes]:
    """A store to copy for each case; return it, the job, the stage and the value to save."""
    store = root / f"template-{scenario}"
    repo = ckpt.init(store)
    old = repo.job("history")
    old.save("a", value_bytes(1, 3000))
    if scenario == "first-save-of-job":
        return store, "fresh", "a", value_bytes(2, 5000)
    job = repo.job("work")
    job.save("a", value_bytes(3, 5000))
    job.save("b", value_bytes(4, 7000))
    if scenario == "new-value":
        return store, "work", "c", value_bytes(5, 9000)
    # Same bytes as the job's stage "a": the blob exists and is only touched.
    return store, "work", "c", value_bytes(3, 5000)


def _ref_moved_before(calls: list[Call], failed: Call) -> bool:
    """True if the branch ref was renamed into place before the failing call."""
    for call in calls:
        if call is failed:
            return False
        if (call.function, call.operation) == ("rename", "compare_and_swap") and (
            "/refs/heads/" in call.key
        ):
            return True
    return False


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_failing_disk_call_of_a_save(
    fast_tmp_path: Path, scenario: str, figures: Figures
) -> None:
    tmp_path = fast_tmp_path
    template, job_name, stage, value = _template(tmp_path, scenario)

    # Count the calls a clean save makes.
    clean = tmp_path / "clean"
    shutil.copytree(template, clean)
    counting = FaultPlan()
    undo = install_faults(counting)
    try:
        ckpt.open(clean).job(job_name).save(stage, value)
    finally:
        undo()
    counts = Counter(call.function for call in counting.calls)
    steps: Counter[str] = Counter()
    violations: list[str] = []
    case = 0
    for function, total in sorted(counts.items()):
        for number in range(1, total + 1):
            for error_name, error in ERRORS.items():
                if error == errno.ENOSPC and function not in CAN_FILL_DISK:
                    continue
                case += 1
                store = tmp_path / f"case{case}"
                shutil.copytree(template, store)
                try:
                    injected = _inject(store, job_name, stage, value, (function, number), error)
                except Violation as exc:
                    violations.append(str(exc))
                    figures.add(f"faults_injected_{error_name}")
                else:
                    if injected is None:
                        figures.add("faults_not_reached")
                    else:
                        steps[injected.step] += 1
                        figures.add(f"faults_injected_{error_name}")
                shutil.rmtree(store)
    figures.add("faults_injected", sum(steps.values()) + len(violations))
    figures.set("calls_in_a_clean_save", dict(sorted(counts.items())))
    figures.set("steps_failed", dict(sorted(steps.items())))
    figures.set("violations", len(violations))
    assert not violations, f"{len(violations)} violations:\n" + "\n".join(violations)
    assert sum(steps.values()) >= len(counting.calls)


class Violation(Exception):
    """A guarantee that did not hold for one injected fault."""


def _inject(
    store: Path,
    job_name: str,
    stage: str,
    value: bytes,
    target: tuple[str, int],
    error: int,
) -> Call | None:
    """Fail call ``target`` of a save and check the aftermath; return the failed call.

    Raises Violation, saying which step failed how, if a guarantee did not hold.
    """
    repo = ckpt.open(store)
    job = repo.job(job_name)
    before = job.head
    before_id = before.id if before else None
    plan = FaultPlan(target=target, error=error)
    undo = install_faults(plan)
    try:
        job.save(stage, value)
    except CkptError as exc:
        failure: CkptError | None = exc
    except Exception as exc:
        undo()
        step = plan.injected.step if plan.injected else str(target)
        raise Violation(f"{step} {target}: not a CkptError: {exc!r}") from exc
    else:
        failure = None
    finally:
        undo()
    failed = plan.injected
    if failed is None:
        return None
    where = f"{failed.step} (call {failed.function} #{failed.number}) failing with "
    where += errno.errorcode[error]

    def check(condition: bool, what: str) -> None:
        if not condition:
            raise Violation(f"{where}: {what}")

    after = ckpt.open(store)
    report = after.verify(full=True)
    check(report.ok, f"verify found {[p.message for p in report.problems]}")
    head = after.job(job_name).head
    if failure is None:
        # Only the cleanup of a temporary file may fail unreported; the save is complete.
        check(failed.function in ("unlink", "close"), "the save returned without an error")
        check(head is not None and head.parent == before_id, "the returned save is not HEAD")
        return failed
    message = str(failure)
    check(f"stage {stage!r}" in message, f"error does not name the stage: {message}")
    check(f"job {job_name!r}" in message, f"error does not name the job: {message}")
    check(ckpt_errno(failure) == error, f"error lost the OS error: {failure!r}")
    if _ref_moved_before(plan.calls, failed):
        check(head is not None and head.parent == before_id, "HEAD is not the new commit")
        check(after.job(job_name).load(stage) == value, "the new commit's value differs")
    else:
        check(
            (head.id if head else None) == before_id,
            "HEAD moved although the save failed before its commit point",
        )
    try:
        retried = job.save(stage, value)
    except CkptError as exc:
        raise Violation(f"{where}: retrying the save failed: {exc!r}") from exc
    final = ckpt.open(store)
    check(final.verify(full=True).ok, "verify found problems after the retry")
    final_job = final.job(job_name)
    check(final_job.head is not None and final_job.head.id == retried.id, "retry is not HEAD")
    check(final_job.load(stage) == value, "the retried value differs")
    return failed


def ckpt_errno(exc: BaseException) -> int | None:
    """The OS error number behind a CkptError, looking through its causes."""
    seen: BaseException | None = exc
    while seen is not None:
        number = getattr(seen, "errno", None)
        if number:
            return int(number)
        seen = seen.__cause__
    return None


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (needs root; skipped where mounting is not allowed)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_real_full_disk(tiny_filesystem: Path, figures: Figures) -> None:
    """Fill a real 2 MiB filesystem: ENOSPC reaches the caller, nothing breaks, a retry works."""
    repo = ckpt.init(tiny_filesystem / "store")
    job = repo.job("filling")
    last = None
    seq = 0
    with pytest.raises(CkptError) as raised:
        while True:
            seq += 1
            last = job.save(f"s{seq % 3}", value_bytes(seq, 150_000))
    assert ckpt_errno(raised.value) == errno.ENOSPC
    assert f"stage 's{seq % 3}'" in str(raised.value)
    after = ckpt.open(tiny_filesystem / "store")
    assert after.verify(full=True).ok
    head = after.job("filling").head
    assert last is not None and head is not None and head.id == last.id
    # Make room, and the same save goes through on the same handle.
    subprocess.run(
        ["mount", "-o", "remount,size=8m", str(tiny_filesystem)], check=True, capture_output=True
    )
    retried = job.save(f"s{seq % 3}", value_bytes(seq, 150_000))
    final = ckpt.open(tiny_filesystem / "store")
    assert final.verify(full=True).ok
    assert final.job("filling").head.id == retried.id  # type: ignore[union-attr]
    figures.set("saves_before_disk_full", seq - 1)


def _fsync_steps(store: Path, action: Callable[[ckpt.Repository], object]) -> list[str]:
    plan = FaultPlan()
    repo = ckpt.open(store)
    undo = install_faults(plan)
    try:
        action(repo)
    finally:
        undo()
        repo.close()
    # Pack names are content hashes: keep the folder.
    return [
        re.sub(r"packs/[0-9a-f]+", "packs/", call.step)
        for call in plan.calls
        if call.function in ("fsync", "fdatasync")
    ]


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "no-boot-id"])
def test_the_fsyncs_of_a_save_and_of_a_checkout(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal: bool
) -> None:
    """A save makes its pack and its ref durable, in that order: with the journal, one
    fdatasync of the ref's record, which also covers the pack's record before it; on a
    system without boot ids (no journal), four fsyncs (the pack and its directory, the
    ref and its directory).  Its reflog line rides on the next synced one (losing it
    loses no commit: the ref holds the new commit, whose parent is the old).  A
    checkout, which may leave commits reachable only from the reflog, syncs its line."""
    if not journal:
        monkeypatch.setattr(journal_mod, "_boot_id", None)
    store = fast_tmp_path / "store"
    repo = ckpt.init(store)
    job = repo.job("work")
    job.save("a", value_bytes(1, 3000))
    job.save("b", value_bytes(2, 3000))
    repo.close()

    steps = _fsync_steps(store, lambda repo: repo.job("work").save("c", value_bytes(3, 3000)))
    ref_move = (
        ["compare_and_swap(ref): fdatasync"]
        if journal
        else ["compare_and_swap(ref): fsync", "compare_and_swap(ref): fsync(dir)"]
    )
    pack = [] if journal else ["put_unsealed(packs/): fsync", "put_unsealed(packs/): fsync(dir)"]
    assert steps == pack + ref_move
    steps = _fsync_steps(store, lambda repo: repo.job("work").checkout("a"))
    assert steps == [*ref_move, "append(reflog): fsync"]
    entries = ckpt.open(store).job("work").reflog()
    assert [entry.reason.split(":")[0] for entry in entries[:2]] == ["checkout", "save"]
