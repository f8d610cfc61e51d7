"""In-memory storage: for tests and throwaway runs.  Nothing survives the process.

``memory://NAME`` URLs name a store shared by every ``open`` in the process,
so that ``ckpt.init("memory://x")`` followed by ``ckpt.open("memory://x")``
sees the same data.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Iterator

from ckpt.errors import ConflictError
from ckpt.storage.base import FolderStamp, KeyInfo, KeyNotFoundError, check_key, check_prefix


class _Space:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, tuple[bytes, float]] = {}
        self.logs: dict[str, list[bytes]] = {}


_SPACES: dict[str, _Space] = {}
_SPACES_LOCK = threading.Lock()


class MemoryStorage:
    """A dict behind a lock, with the same semantics as the durable backends."""

    durable = True
    atomic_delete_if_older = True

    def __init__(self, name: str = "") -> None:
        self.url = f"memory://{name}"
        with _SPACES_LOCK:
            if name:
                self._space = _SPACES.setdefault(name, _Space())
            else:
                self._space = _Space()

    def get(self, key: str) -> bytes:
        check_key(key)
        with self._space.lock:
            try:
                return self._space.values[key][0]
            except KeyError:
                raise KeyNotFoundError(key) from None

    def stat(self, key: str) -> KeyInfo | None:
        check_key(key)
        with self._space.lock:
            item = self._space.values.get(key)
        return None if item is None else KeyInfo(key, len(item[0]), item[1])

    def put_if_absent(self, key: str, data: bytes) -> bool:
        check_key(key)
        with self._space.lock:
            if key in self._space.values:
                return False
            self._space.values[key] = (bytes(data), time.time())
            return True

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        check_key(key)
        with self._space.lock:
            item = self._space.values.get(key)
            current = None if item is None else item[0]
            if current != expected:
                raise ConflictError(f"{key} changed concurrently")
            if new is None:
                self._space.values.pop(key, None)
            else:
                self._space.values[key] = (bytes(new), time.time())

    def delete(self, key: str, *, sync: bool = True) -> bool:
        check_key(key)
        with self._space.lock:
            return self._space.values.pop(key, None) is not None

    def touch(self, key: str) -> bool:
        check_key(key)
        with self._space.lock:
            item = self._space.values.get(key)
            if item is None:
                return False
            self._space.values[key] = (item[0], time.time())
            return True

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        check_key(key)
        with self._space.lock:
            item = self._space.values.get(key)
            if item is None or item[1] >= cutoff:
                return False
            del self._space.values[key]
            return True

    def list(self, prefix: str = "") -> Iterator[KeyInfo]:
        with self._space.lock:
            items = [
                KeyInfo(k, len(v), t)
                for k, (v, t) in self._space.values.items()
                if k.startswith(prefix)
            ]
        items.sort(key=lambda info: info.key)
        return iter(items)

    def folder_stamps(self, prefix: str, inner: str) -> dict[str, FolderStamp] | None:
        """None: this backend has no cheap change stamps (see the protocol)."""
        return None

    def list_children(self, prefix: str = "", *, having: str | None = None) -> Iterator[str]:
        """Exact: a folder is listed only while a key exists below it.  Costs a pass over
        every key in memory."""
        check_prefix(prefix)
        inside = None if having is None else "/" + check_key(having)
        with self._space.lock:
            found = set()
            for key in self._space.values:
                if not key.startswith(prefix):
                    continue
                name, sep, _rest = key[len(prefix) :].partition("/")
                if inside is None or (sep and prefix + name + inside in self._space.values):
                    found.add(name + sep)
        return iter(sorted(found))

    def append(self, key: str, record: bytes, *, sync: bool = True) -> None:
        check_key(key)
        if b"\n" in record:
            raise ValueError("log records must not contain newlines")
        with self._space.lock:
            self._space.logs.setdefault(key, []).append(bytes(record))

    def read_log(self, key: str) -> builtins.list[bytes]:
        check_key(key)
        with self._space.lock:
            return list(self._space.logs.get(key, []))

    def delete_log(self, key: str) -> None:
        check_key(key)
        with self._space.lock:
            self._space.logs.pop(key, None)

    def close(self) -> None:
        pass


def forget(name: str) -> None:
    """Drop the named in-memory store (tests use this to start clean)."""
    with _SPACES_LOCK:
        _SPACES.pop(name, None)
