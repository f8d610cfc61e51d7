"""Helpers for the reliability tests: fault injection, finding stored bytes, tree snapshots.

This module is imported by the tests and by the child programs in
``_children.py`` (which run it from their own directory), so it imports
nothing from the test package.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import stat
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from ckpt.objects.ids import ObjectId
from ckpt.repository import Repository

#: The ``os`` functions of the local backend that touch the disk.  A fault plan
#: can make any call of any of them fail.
FAULTABLE_OS = (
    "open",
    "write",
    "pwrite",
    "pread",
    "fsync",
    "fdatasync",
    "rename",
    "link",
    "unlink",
    "mkdir",
    "utime",
    "ftruncate",
    "fstat",
    "stat",
    "lstat",
    "scandir",
    "close",
)
#: Every test's figures, by section (see conftest.py, which writes them out).
FIGURES: dict[str, dict[str, Any]] = {}


class Figures:
    """The figures of one test, under one section name."""

    def __init__(self, section: str) -> None:
        self.section = FIGURES.setdefault(section, {})

    def add(self, name: str, amount: float = 1) -> None:
        self.section[name] = self.section.get(name, 0) + amount

    def set(self, name: str, value: Any) -> None:
        self.section[name] = value

    def max(self, name: str, value: float) -> None:
        self.section[name] = max(self.section.get(name, value), value)


def value_bytes(seed: int, size: int) -> bytes:
    """``size`` pseudo-random bytes determined by ``seed`` (incompressible, reproducible)."""
    return random.Random(seed).randbytes(size)


def saved_value(seq: int) -> bytes:
    """The value of the ``seq``-th save of the ``saver`` child: mostly a few KB, one in
    twenty up to 1 MB."""
    rng = random.Random(-seq)
    size = rng.randint(64 << 10, 1 << 20) if rng.random() < 0.05 else rng.randint(1 << 10, 16 << 10)
    return value_bytes(seq, size)


def reused_versions() -> list[dict[str, bytes]]:
    """Three versions of two stages, each stored as a delta against the one before.

    ``big`` is chunked (some of its new chunks are deltas too), ``small`` is
    not.  A save of the last version, once the versions are garbage, relies
    on objects spread over every pack the three saves wrote.
    """
    big = value_bytes(7, 300_000)
    small = b"".join(b"line %d of a growing text\n" % i for i in range(400))
    versions = []
    for step in range(3):
        big += value_bytes(100 + step, 3_000)
        small += b"one more line, %d\n" % step
        versions.append({"big": big, "small": small})
    return versions


# -- fault injection -------------------------------------------------------


@attrs.define
class Call:
    """One system call the backend made: which function, its number, and where."""

    function: str
    number: int
    operation: str
    key: str
    directory: bool = False

    @property
    def step(self) -> str:
        """A readable name for the step, e.g. ``compare_and_swap(ref): fsync(dir)``."""
        what = self.function + ("(dir)" if self.directory else "")
        return f"{self.operation}({key_kind(self.key)}): {what}"


def key_kind(key: str) -> str:
    """What a storage key holds, for labelling steps (objects, refs, HEAD, reflog...)."""
    if key.startswith("objects/"):
        return "object"
    if key.endswith("/HEAD"):
        return "HEAD"
    if "/refs/" in key:
        return "ref"
    if key.endswith("/reflog"):
        return "reflog"
    if key.endswith("/meta"):
        return "job record"
    return key or "?"


@attrs.define
class FaultPlan:
    """Counts the backend's system calls and makes one chosen call fail.

    ``target`` is ``(function, n)``: the n-th call of that function raises
    ``OSError(error)`` instead of running (``close`` closes first, as Linux
    does even when close reports an error).  With no target nothing fails and
    the plan only records the calls.
    """

    target: tuple[str, int] | None = None
    error: int = errno.EIO
    calls: list[Call] = attrs.field(factory=list)
    counts: dict[str, int] = attrs.field(factory=dict)
    injected: Call | None = None
    #: Called with each call before it runs (to stop or stall a process at a step).
    hook: Callable[[Call], None] | None = None

    def wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "close" and _read_only(args[0]):
                # close(2) can report a deferred write error only for a descriptor
                # that wrote; closing a directory or a file opened for reading
                # does not fail, so those closes are not fault points.
                return real(*args, **kwargs)
            number = self.counts.get(name, 0) + 1
            self.counts[name] = number
            operation, key = _storage_operation()
            directory = name == "fsync" and _is_directory(args[0])
            record = Call(name, number, operation, key, directory)
            self.calls.append(record)
            if self.hook is not None:
                self.hook(record)
            if self.target == (name, number):
                self.injected = record
                if name == "close":
                    real(*args, **kwargs)
                raise OSError(self.error, os.strerror(self.error))
            return real(*args, **kwargs)

        return call


class _FaultyModule(types.ModuleType):
    """A stand-in for ``os`` or ``fcntl`` whose disk functions go through a FaultPlan."""

    def __init__(self, real: types.ModuleType, plan: FaultPlan, names: tuple[str, ...]) -> None:
        super().__init__(real.__name__)
        self._real = real
        self._plan = plan
        self._names = frozenset(names)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._real, name)
        if name in self._names:
            return self._plan.wrap(name, value)
        return value


def install_faults(plan: FaultPlan) -> Callable[[], None]:
    """Route the local backend's ``os`` and ``fcntl`` calls through ``plan``; return an undo."""
    import fcntl

    from ckpt.storage import journal, local

    saved_os, saved_fcntl = local.os, local.fcntl
    local.os = _FaultyModule(os, plan, FAULTABLE_OS)  # type: ignore[assignment]
    local.fcntl = _FaultyModule(fcntl, plan, ("flock",))  # type: ignore[assignment]
    journal.os = local.os  # type: ignore[attr-defined]
    saved_exchange = local._exchange
    local._exchange = plan.wrap("rename", saved_exchange)  # type: ignore[assignment]

    def undo() -> None:
        local.os = saved_os
        local.fcntl = saved_fcntl
        journal.os = saved_os  # type: ignore[attr-defined]
        local._exchange = saved_exchange  # type: ignore[assignment]

    return undo


def _is_directory(fd: object) -> bool:
    try:
        return isinstance(fd, int) and stat.S_ISDIR(os.fstat(fd).st_mode)
    except OSError:
        return False


def _read_only(fd: object) -> bool:
    import fcntl

    try:
        return isinstance(fd, int) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    except OSError:
        return False


def _storage_operation() -> tuple[str, str]:
    """The local backend's public method (and its key) on the current call stack.

    Any method of ``storage/local.py`` whose name has no leading underscore
    counts, so new backend operations are labelled without changes here.
    """
    frame = sys._getframe(2)
    found = ("?", "")
    while frame is not None:
        code = frame.f_code
        if code.co_filename.endswith(os.path.join("storage", "local.py")):
            if not code.co_name.startswith("_"):
                key = frame.f_locals.get("key", frame.f_locals.get("prefix", ""))
                found = (code.co_name, str(key))
        elif found[0] != "?":
            break
        frame = frame.f_back  # type: ignore[assignment]
    return found


# -- child processes ------------------------------------------------------

CHILDREN = Path(__file__).with_name("_children.py")


def spawn(mode: str, *args: object, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``_children.py MODE ARGS`` with pipes on stdin and stdout."""
    return subprocess.Popen(
        [sys.executable, str(CHILDREN), mode, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_ckpt(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ckpt --store STORE ARGS...`` in its own process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "ckpt", "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )


def wait_ready(children: list[subprocess.Popen[str]]) -> None:
    """Wait until each child has printed ``ready``; then let them all go at once."""
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"child did not start: {line!r}")
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


def result(child: subprocess.Popen[str], timeout: float = 300.0) -> dict[str, Any]:
    """The JSON result line a child printed last (raises if it failed)."""
    out, _ = child.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.strip()]
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"child exited with {child.returncode}: {out[-2000:]}")
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


# -- where an object's bytes are -------------------------------------------


@attrs.frozen
class StoredBytes:
    """Where the stored form of one object sits on disk: file, offset and length."""

    path: Path
    offset: int
    length: int

    def read(self) -> bytes:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            return handle.read(self.length)

    def patch(self, position: int, data: bytes) -> None:
        """Overwrite bytes at ``position`` within the object's stored form."""
        with open(self.path, "r+b") as handle:
            handle.seek(self.offset + position)
            handle.write(data)

    def replace(self, data: bytes) -> None:
        """Make the object's stored form ``data`` (only for an object alone in its file)."""
        if self.offset != 0 or self.path.stat().st_size != self.length:
            raise ValueError(f"{self.path} holds more than one object")
        self.path.write_bytes(data)


def storage_root(repo: Repository) -> Path:
    root = getattr(repo.storage, "root", None)
    if root is None:
        raise TypeError("these tests need a local store")
    return Path(root)


def locate(repo: Repository, oid: ObjectId) -> StoredBytes:
    """Find the file holding ``oid``'s stored bytes, whatever the object layout."""
    stored = repo.objects.read_stored(oid)
    root = storage_root(repo)
    for info in repo.storage.list(""):
        path = root / info.key
        data = path.read_bytes()
        at = data.find(stored)
        if at >= 0:
            return StoredBytes(path, at, len(stored))
    raise LookupError(f"no file holds object {oid}")


def object_ids(repo: Repository) -> set[ObjectId]:
    return {stored.id for stored in repo.objects}


# -- directory snapshots ---------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root``: relative path -> (type, content digest or link target)."""
    out: dict[str, tuple[str, str]] = {}
    if not root.exists():
        return out
    for path in sorted(_walk(root)):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", "")
        else:
            out[rel] = ("file", hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest())
    return out


def _walk(root: Path) -> Iterator[Path]:
    for entry in os.scandir(root):
        path = Path(entry.path)
        yield path
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(path)


def leftovers(root: Path) -> tuple[int, int, int]:
    """Temporary files under ``root``: how many and their bytes; and how many lock files."""
    temps = temp_bytes = locks = 0
    for path in _walk(root):
        if path.name.endswith(".tmp"):
            temps += 1
            temp_bytes += path.lstat().st_size
        elif path.name.endswith(".lock"):
            locks += 1
    return temps, temp_bytes, locks
