"""Local directory storage, the default backend.

Layout: the value of key ``a/b/c`` is the file ``ROOT/a/b/c``; the log at key
``k`` is the file ``ROOT/k.log``; ``ROOT/k.lock`` is the lock file of key
``k``.  Temporary files end in ``.tmp``.

* ``put_if_absent`` writes a temporary file, fsyncs it, then hard-links it to
  the final name (``link`` fails if the name exists, so nothing is replaced)
  and fsyncs the directory.  A reader never sees half a file.
* ``compare_and_swap`` takes an exclusive ``flock`` on the key's lock file,
  re-reads the key, and if it still holds the expected bytes renames a
  fsynced temporary file over it.  The kernel drops the ``flock`` when its
  holder dies, so a killed writer never leaves a lock that blocks others.
  A swap that deletes the key removes its lock file too, still holding the
  lock (so a deleted branch leaves no ``.lock`` behind); a writer that then
  gets the lock of the unlinked file sees that its name no longer leads to
  it and takes the lock again on the file the name leads to now.
* ``append`` writes one line with ``O_APPEND`` under the same kind of lock.
* ``touch`` and ``delete_if_older`` exclude each other with a ``flock`` on
  the directory's ``.mtime.lock`` (shared for touches, exclusive for the
  mtime check and unlink of a deletion), so a touched file is never deleted
  and a deletion has no step at which a crash could leave a file hidden.
* Directories are opened with ``O_NOFOLLOW`` one component at a time, so a
  symlink planted inside the store is never followed.

Why this module is long: every operation above shares one piece of
crash-safety reasoning (temporary files, fsync order, lock files, descriptors
opened without following symlinks); split apart, no file would show it whole.

Where the system has boot ids (Linux), a durable store does not fsync each
change in place: ``put_if_absent``, ``compare_and_swap``, ``delete`` and
``delete_if_older`` first append a record of the change to ``ROOT/.journal``
and fdatasync it, then make the change without any fsync (a value over 256
KiB is still fsynced in place).  A save is then one fdatasync (its pack is
written with ``put_unsealed``, made durable by its ref's record).  Opening a
store whose journal was written under another boot (after a machine crash)
replays it first.  :mod:`ckpt.storage.journal` has the details.

With ``durable=False`` no fsync is issued: a crash of the machine (not of
the process) may then lose the latest writes.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import os
import stat as stat_mod
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from ckpt.errors import ConflictError, InvalidNameError, StorageError
from ckpt.storage import journal as journal_mod
from ckpt.storage.base import (
    RESERVED_SUFFIXES,
    FolderStamp,
    KeyInfo,
    KeyNotFoundError,
    check_key,
    check_prefix,
    is_key_component,
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK_WAIT_SECONDS = 30.0
#: Files kept open for range reads (packs read again and again), per storage.
_OPEN_FILES = 32
#: Whether this system can create unnamed files (``O_TMPFILE``) and link them by
#: ``/proc/self/fd``; cleared on the first refusal.
_UNNAMED_OK = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
_OWNER_WIDTH = 128  # bytes of a lock file's owner record ("pid@host time", padded)
#: The lock (in each directory) that orders ``touch`` against ``delete_if_older``.  Its
#: name starts with a dot, so it is never a key's lock file nor listed as a key.
_MTIME_LOCK = ".mtime"


class _OpenFile:
    """A value's file held open for range reads; closed once evicted and no longer in use."""

    def __init__(self, key: str, fd: int) -> None:
        self.key = key
        self.fd = fd
        self.users = 0
        self.evicted = False
        self.lock = threading.Lock()

    def read(self, offset: int, length: int) -> bytes | None:
        """The bytes at ``offset`` (fewer past the end), or None if the file was unlinked.

        Never asks for more than the file holds: a length read from damaged
        bytes must not make the reader allocate gigabytes.
        """
        st = os.fstat(self.fd)
        if st.st_nlink == 0:
            return None
        length = max(0, min(length, st.st_size - offset))
        data = os.pread(self.fd, length, offset)
        while len(data) < length:
            more = os.pread(self.fd, length - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            close = self.evicted and self.users == 0
        if close:
            os.close(self.fd)


class _OpenFiles:
    """At most ``limit`` open files by key, least recently used evicted first.

    A file is closed only when no read is using it, so a descriptor number is
    never closed (and possibly reused by another open) under a reader.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.files: OrderedDict[str, _OpenFile] = OrderedDict()
        self.lock = threading.Lock()

    def acquire(self, key: str, opener: Callable[[str], int]) -> _OpenFile:
        with self.lock:
            handle = self.files.get(key)
            if handle is not None:
                self.files.move_to_end(key)
                with handle.lock:
                    handle.users += 1
                return handle
        fresh = _OpenFile(key, opener(key))
        fresh.users = 1
        with self.lock:
            old = self.files.pop(key, None)
            self.files[key] = fresh
            evict = [old] if old is not None else []
            while len(self.files) > self.limit:
                evict.append(self.files.popitem(last=False)[1])
        for handle in evict:
            self._evict(handle)
        return fresh

    def forget(self, handle: _OpenFile) -> None:
        with self.lock:
            if self.files.get(handle.key) is handle:
                del self.files[handle.key]
        self._evict(handle)

    def close_all(self) -> None:
        with self.lock:
            handles = list(self.files.values())
            self.files.clear()
        for handle in handles:
            self._evict(handle)

    @staticmethod
    def _evict(handle: _OpenFile) -> None:
        with handle.lock:
            if handle.evicted:
                return
            handle.evicted = True
            close = handle.users == 0
        if close:
            os.close(handle.fd)


#: Whether ``renameat2(RENAME_EXCHANGE)`` may work here; cleared on the first refusal.
_EXCHANGE_OK = sys.platform.startswith("linux")
_RENAME_EXCHANGE = 2
_renameat2: Any = None  # libc's renameat2, found on first use


def _exchange(dir_fd: int, tmp: str, name: str) -> bool:
    """Atomically swap the files named ``tmp`` and ``name`` in ``dir_fd``; False where
    the system or file system cannot (then nothing happened).

    A ref move that does not fsync in place (journaled, or not durable) uses it
    instead of renaming over the ref: on ext4 a rename
    that replaces a file writes the new file's data out before it returns
    (``auto_da_alloc``, there for programs that rename without fsyncing), which
    costs more than the rest of the move; an exchange does not.
    """
    global _EXCHANGE_OK, _renameat2
    if not _EXCHANGE_OK:
        return False
    import ctypes

    if _renameat2 is None:
        _renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
        if _renameat2 is None:
            _EXCHANGE_OK = False
            return False
    if _renameat2(dir_fd, tmp.encode(), dir_fd, name.encode(), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        _EXCHANGE_OK = False
        return False
    raise OSError(error, os.strerror(error), name)


def _storage_error(what: str, key: str, exc: OSError) -> StorageError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    err = StorageError(exc.errno or 0, f"cannot {what} {key!r}: {reason}")
    err.__cause__ = exc
    return err


class LocalStorage:
    """Files under one directory.  See the module docstring for the write protocol."""

    atomic_delete_if_older = True

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.url = self.root
        self.durable = durable
        self._handles = _OpenFiles(_OPEN_FILES)
        # A storage dropped without close() still closes its files.
        weakref.finalize(self, self._handles.close_all)
        journal = journal_mod.Journal(self, journal_mod.current_boot_id())
        journal.recover()
        #: Durable changes go through the journal (one fdatasync each), where there is one.
        self._journal = journal if durable and journal.header is not None else None

    # -- directory handling -------------------------------------------------

    def _open_dir(self, parts: list[str], *, create: bool) -> int:
        """Open the directory ROOT/parts..., refusing symlinks; create it if asked."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    if self.durable:
                        os.fsync(fd)
                # Swap first: if close fails (it still frees the descriptor on
                # Linux), the handler below must close the child, not this one again.
                parent, fd = fd, child
                os.close(parent)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _split(self, key: str) -> tuple[list[str], str]:
        parts = check_key(key).split("/")
        return parts[:-1], parts[-1]

    def _fsync(self, fd: int) -> None:
        if self.durable:
            os.fsync(fd)

    def _write_synced(self, fd: int, data: bytes, *, sync: bool = True) -> None:
        """Write all of ``data`` to ``fd`` (os.write may write less), then fsync it
        (if ``sync`` and the storage is durable)."""
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            self._fsync(fd)

    def _journal_for(self, data: bytes | None) -> journal_mod.Journal | None:
        """The journal a change writing ``data`` goes through, or None: fsync in place."""
        if self._journal is None or (data is not None and len(data) > journal_mod.MAX_VALUE):
            return None
        return self._journal

    def _write_temp(self, dir_fd: int, name: str, data: bytes, *, sync: bool = True) -> str:
        tmp = f"{name}.{os.urandom(6).hex()}.tmp"
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=dir_fd,
        )
        try:
            self._write_synced(fd, data, sync=sync)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        os.close(fd)
        return tmp

    # -- reads --------------------------------------------------------------

    def _open_value(self, key: str) -> int:
        """A read-only descriptor on the file of ``key`` (no symlink followed on the way)."""
        dirs, name = self._split(key)
        try:
            dir_fd = self._open_dir(dirs, create=False)
        except (FileNotFoundError, NotADirectoryError):
            raise KeyNotFoundError(key) from None
        except OSError as exc:
            raise _storage_error("read", key, exc) from exc
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError):
            raise KeyNotFoundError(key) from None
        except OSError as exc:
            raise _storage_error("read", key, exc) from exc
        finally:
            os.close(dir_fd)

    def get(self, key: str) -> bytes:
        fd = self._open_value(key)
        try:
            with os.fdopen(fd, "rb") as handle:
                return handle.read()
        except IsADirectoryError:
            raise KeyNotFoundError(key) from None  # a folder of keys holds no value itself
        except OSError as exc:
            raise _storage_error("read", key, exc) from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Bytes ``offset`` .. ``offset + length`` of the value at ``key`` (fewer past its end).

        An optional capability beyond the protocol: the object database reads
        one object out of a pack with it instead of reading the whole pack.
        The file stays open for the next read of the same key (a few dozen are
        kept) while it is still linked; a file unlinked or replaced since is
        opened again by its name, so a read never sees a value that is gone.
        """
        for _attempt in range(3):
            handle = self._handles.acquire(key, self._open_value)
            try:
                data = handle.read(offset, length)
            except OSError as exc:
                raise _storage_error("read", key, exc) from exc
            finally:
                handle.release()
            if data is not None:
                return data
            # Unlinked since it was opened: read what is at the name now, if anything.
            self._handles.forget(handle)
        raise StorageError(0, f"cannot read {key!r}: it keeps being replaced")

    def stat(self, key: str) -> KeyInfo | None:
        path = os.path.join(self.root, *check_key(key).split("/"))
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _storage_error("stat", key, exc) from exc
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return KeyInfo(key, st.st_size, st.st_mtime)

    def list(self, prefix: str = "") -> Iterator[KeyInfo]:
        base_parts = [p for p in prefix.split("/")[:-1] if p] if prefix else []
        start = os.path.join(self.root, *base_parts)
        for info in self._walk(start, "/".join(base_parts)):
            if info.key.startswith(prefix):
                yield info

    def list_children(self, prefix: str = "", *, having: str | None = None) -> Iterator[str]:
        """One ``scandir`` of the prefix's directory, plus one ``lstat`` per folder with
        ``having``.  Without ``having`` a directory is listed whether or not keys remain in it.
        """
        parts = [p for p in check_prefix(prefix).split("/") if p]
        inside = None if having is None else check_key(having)
        try:
            dir_fd = self._open_dir(parts, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return iter(())
        except OSError as exc:
            raise _storage_error("list", prefix or "/", exc) from exc
        try:
            with os.scandir(dir_fd) as entries:
                found = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
            names = []
            for name, is_dir in found:
                if not is_key_component(name):
                    continue
                if inside is None:
                    names.append(f"{name}/" if is_dir else name)
                elif is_dir and self._is_file_at(dir_fd, f"{name}/{inside}"):
                    names.append(f"{name}/")
        except OSError as exc:
            raise _storage_error("list", prefix or "/", exc) from exc
        finally:
            os.close(dir_fd)
        names.sort()
        return iter(names)

    def folder_stamps(self, prefix: str, inner: str) -> dict[str, FolderStamp] | None:
        """Inode and mtime of each folder and of its ``inner`` folder: creating, renaming
        over or unlinking a file changes its directory's mtime.  The ``inner`` folder is
        looked up with ``stat`` (nothing is read through it, so a planted symlink can at
        most make a stamp change)."""
        parts = [p for p in check_prefix(prefix).split("/") if p]
        inner_path = check_prefix(inner.rstrip("/") + "/").rstrip("/")
        try:
            dir_fd = self._open_dir(parts, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except OSError as exc:
            raise _storage_error("list", prefix or "/", exc) from exc
        stamps: dict[str, FolderStamp] = {}
        try:
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    if not (is_key_component(entry.name) and entry.is_dir(follow_symlinks=False)):
                        continue
                    outer = entry.stat(follow_symlinks=False)
                    try:
                        found = os.stat(
                            f"{entry.name}/{inner_path}", dir_fd=dir_fd, follow_symlinks=False
                        )
                        below = (found.st_ino, found.st_mtime_ns)
                    except (FileNotFoundError, NotADirectoryError):
                        below = (0, 0)
                    stamps[entry.name] = (outer.st_ino, outer.st_mtime_ns, *below)
        except OSError as exc:
            raise _storage_error("list", prefix or "/", exc) from exc
        finally:
            os.close(dir_fd)
        return stamps

    @staticmethod
    def _is_file_at(dir_fd: int, path: str) -> bool:
        try:
            return stat_mod.S_ISREG(os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _walk(self, path: str, key_prefix: str) -> Iterator[KeyInfo]:
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise _storage_error("list", key_prefix or "/", exc) from exc
        for entry in entries:
            if entry.name.startswith("."):
                continue  # the journal and the lock files of directories: never keys
            key = f"{key_prefix}/{entry.name}" if key_prefix else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(entry.path, key)
            elif entry.is_file(follow_symlinks=False):
                if entry.name.endswith(RESERVED_SUFFIXES):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise _storage_error("list", key, exc) from exc
                yield KeyInfo(key, st.st_size, st.st_mtime)

    # -- writes -------------------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._put(key, data, sync=True)

    def put_unsealed(self, key: str, data: bytes) -> bool:
        """``put_if_absent``, but durable only once a later durable change of this store
        (such as the ref move of the save it belongs to) has returned.

        An optional capability beyond the protocol: a save writes its pack with it
        and then moves its ref, and the ref's single fdatasync of the journal makes
        both durable.  Where there is no journal it is ``put_if_absent``.
        """
        return self._put(key, data, sync=False)

    def _put(self, key: str, data: bytes, *, sync: bool) -> bool:
        dirs, name = self._split(key)
        journal = self._journal_for(data)
        try:
            dir_fd = self._open_dir(dirs, create=True)
            try:
                linked = self._link_unnamed(dir_fd, key, name, data, journal, sync=sync)
                if linked is not None:
                    if linked and journal is None:
                        self._fsync(dir_fd)
                    return linked
                tmp = self._write_temp(dir_fd, name, data, sync=journal is None)
                try:
                    with self._journaled(journal, journal_mod.OP_PUT, key, data, sync=sync):
                        os.link(
                            tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False
                        )
                except FileExistsError:
                    return False
                finally:
                    os.unlink(tmp, dir_fd=dir_fd)
                if journal is None:
                    self._fsync(dir_fd)
                return True
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise _storage_error("write", key, exc) from exc

    @staticmethod
    def _journaled(
        journal: journal_mod.Journal | None, op: bytes, key: str, data: bytes = b"", *, sync: bool
    ) -> contextlib.AbstractContextManager[None]:
        """The journal's record of a change around the block that makes it (nothing
        without a journal)."""
        if journal is None:
            return contextlib.nullcontext()
        return journal.change(op, key, data, sync=sync)

    def _link_unnamed(
        self,
        dir_fd: int,
        key: str,
        name: str,
        data: bytes,
        journal: journal_mod.Journal | None,
        *,
        sync: bool,
    ) -> bool | None:
        """Write ``data`` to an unnamed file (``O_TMPFILE``), fsync it (unless the journal
        records it), then link it as ``name`` unless that exists: True if linked, False if
        ``name`` existed, None where unnamed files are not supported (the caller then uses
        a named temporary file).

        Nothing is left behind if the process dies midway: an unnamed file vanishes.
        """
        global _UNNAMED_OK
        if not _UNNAMED_OK:
            return None
        try:
            fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                _UNNAMED_OK = False
                return None
            raise
        try:
            self._write_synced(fd, data, sync=journal is None)
            try:
                with self._journaled(journal, journal_mod.OP_PUT, key, data, sync=sync):
                    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
            except FileExistsError:
                return False
            except (FileNotFoundError, PermissionError):
                _UNNAMED_OK = False  # no /proc to name the file through
                return None
            return True
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _locked(self, dir_fd: int, name: str, *, shared: bool = False) -> Iterator[None]:
        """Hold a flock on ``name.lock`` (exclusive, or ``shared``); released by the kernel
        if we die.  An exclusive holder records itself in the file, for reporting."""
        lock_name = f"{name}.lock"
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        while True:
            fd = os.open(
                lock_name,
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=dir_fd,
            )
            try:
                self._flock(fd, lock_name, deadline, shared=shared)
                named = self._still_named(fd, dir_fd, lock_name)
            except BaseException:
                os.close(fd)  # and with it the lock: a failed stat must not keep it held
                raise
            if named:
                break
            # The holder before us deleted the key and its lock file: lock the current one.
            os.close(fd)
        try:
            if not shared:
                # A fixed-width record overwritten in place: truncating the file first
                # would make ext4 flush it on close (its replace-by-truncate safeguard).
                owner = f"{os.getpid()}@{os.uname().nodename} {time.time():.3f}"
                os.pwrite(fd, owner.encode()[: _OWNER_WIDTH - 1].ljust(_OWNER_WIDTH - 1) + b"\n", 0)
            yield
        finally:
            os.close(fd)

    def _flock(self, fd: int, lock_name: str, deadline: float, *, shared: bool = False) -> None:
        delay = 0.0005
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConflictError(
                        f"lock {lock_name} held by {self._lock_owner(fd)} for over "
                        f"{_LOCK_WAIT_SECONDS:.0f}s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    @staticmethod
    def _still_named(fd: int, dir_fd: int, lock_name: str) -> bool:
        """True if ``lock_name`` still leads to the file ``fd`` has open."""
        try:
            named = os.stat(lock_name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    @staticmethod
    def _lock_owner(fd: int) -> str:
        try:
            first = os.pread(fd, _OWNER_WIDTH, 0).split(b"\n", 1)[0]
            return first.decode(errors="replace").strip() or "another process"
        except OSError:
            return "another process"

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        dirs, name = self._split(key)
        try:
            dir_fd = self._open_dir(dirs, create=True)
            try:
                with self._locked(dir_fd, name):
                    current = self._read_at(dir_fd, name)
                    if current != expected:
                        raise ConflictError(f"{key} changed concurrently")
                    journal = self._journal_for(new)
                    if new is None:
                        if current is not None:
                            with self._journaled(journal, journal_mod.OP_DELETE, key, sync=True):
                                os.unlink(name, dir_fd=dir_fd)
                        # Held still: later writers find the name gone and lock anew.
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(f"{name}.lock", dir_fd=dir_fd)
                    else:
                        tmp = self._write_temp(dir_fd, name, new, sync=journal is None)
                        try:
                            with self._journaled(journal, journal_mod.OP_SET, key, new, sync=True):
                                # Not fsynced in place (journaled, or not durable): swap the
                                # names (tmp then holds the old value) rather than rename
                                # over; see _exchange.
                                swapped = (
                                    (journal is not None or not self.durable)
                                    and current is not None
                                    and _exchange(dir_fd, tmp, name)
                                )
                                if not swapped:
                                    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                        except BaseException:
                            with contextlib.suppress(OSError):
                                os.unlink(tmp, dir_fd=dir_fd)
                            raise
                        if swapped:
                            with contextlib.suppress(OSError):  # a leftover *.tmp is harmless
                                os.unlink(tmp, dir_fd=dir_fd)
                    if journal is None:
                        self._fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise _storage_error("update", key, exc) from exc

    @staticmethod
    def _read_at(dir_fd: int, name: str) -> bytes | None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def delete(self, key: str, *, sync: bool = True) -> bool:
        dirs, name = self._split(key)
        try:
            dir_fd = self._open_dir(dirs, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise _storage_error("delete", key, exc) from exc
        journal = self._journal
        try:
            if self._has_lock_file(dir_fd, name):
                # A key written by compare-and-swap: its lock file goes with it, under the lock.
                with self._locked(dir_fd, name):
                    with self._journaled(journal, journal_mod.OP_DELETE, key, sync=sync):
                        os.unlink(name, dir_fd=dir_fd)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{name}.lock", dir_fd=dir_fd)
            else:
                with self._journaled(journal, journal_mod.OP_DELETE, key, sync=sync):
                    os.unlink(name, dir_fd=dir_fd)
            if sync and journal is None:
                self._fsync(dir_fd)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _storage_error("delete", key, exc) from exc
        finally:
            os.close(dir_fd)

    @staticmethod
    def _has_lock_file(dir_fd: int, name: str) -> bool:
        try:
            os.stat(f"{name}.lock", dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def touch(self, key: str) -> bool:
        """Set the mtime to now under a shared lock of the directory's ``.mtime.lock``, which
        ``delete_if_older`` holds exclusively while it decides: the two never interleave."""
        dirs, name = self._split(key)
        try:
            dir_fd = self._open_dir(dirs, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise _storage_error("touch", key, exc) from exc
        try:
            with self._locked(dir_fd, _MTIME_LOCK, shared=True):
                # The time from time.time(), not the kernel's own: file times come from a
                # clock up to a tick behind it, and a touch made after a gc computed its
                # cutoff (with time.time()) must never look older than that cutoff.
                stamp = time.time_ns()
                os.utime(name, ns=(stamp, stamp), dir_fd=dir_fd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _storage_error("touch", key, exc) from exc
        finally:
            os.close(dir_fd)

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        """Read the mtime and unlink under an exclusive lock of the directory's
        ``.mtime.lock``, which ``touch`` takes shared.

        A ``touch`` either lands before (the mtime shows it and the file stays)
        or after (it finds no file, so its writer stores the object again).  The
        file never leaves its name before the decision, so a crash at any
        point leaves it either in place or deleted, never hidden.
        """
        dirs, name = self._split(key)
        try:
            dir_fd = self._open_dir(dirs, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise _storage_error("delete", key, exc) from exc
        try:
            with self._locked(dir_fd, _MTIME_LOCK):
                try:
                    if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mtime >= cutoff:
                        return False
                    with self._journaled(self._journal, journal_mod.OP_DELETE, key, sync=True):
                        os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    return False
            if self._journal is None:
                self._fsync(dir_fd)
            return True
        except OSError as exc:
            raise _storage_error("delete", key, exc) from exc
        finally:
            os.close(dir_fd)

    def restore_set_aside(
        self, prefix: str, complete: Callable[[str, bytes], bool]
    ) -> builtins.list[str]:
        """Put back the values an older ckpt's ``delete_if_older`` renamed aside to
        ``NAME.HEX.tmp`` and was killed before putting back or unlinking.

        Such a file may hold a value a writer touched just before the rename, so it
        is restored (at worst garbage comes back, for the next gc).  Temporary
        files of interrupted writes share that pattern, so a file is restored only
        if ``complete(key, data)`` vouches for its content, and only if its name is
        free.  Returns the keys restored.
        """
        restored: builtins.list[str] = []
        for info in self._temporaries(prefix):
            key, path = info
            try:
                with open(path, "rb") as handle:  # the walk already refused symlinks
                    data = handle.read()
            except OSError:
                continue
            if not complete(key, data):
                continue
            dirs, name = self._split(key)
            try:
                dir_fd = self._open_dir(dirs, create=False)
            except OSError:
                continue
            try:
                aside = os.path.basename(path)
                with contextlib.suppress(FileExistsError):
                    os.link(
                        aside, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False
                    )
                    restored.append(key)
                os.unlink(aside, dir_fd=dir_fd)
                self._fsync(dir_fd)
            except OSError as exc:
                raise _storage_error("restore", key, exc) from exc
            finally:
                os.close(dir_fd)
        return restored

    def _temporaries(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(key, path) of every ``KEY.HEX.tmp`` file under ``prefix`` whose KEY is valid."""
        base_parts = [p for p in check_prefix(prefix).split("/") if p]
        start = os.path.join(self.root, *base_parts)
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            for filename in filenames:
                parts = filename.split(".")
                if len(parts) != 3 or parts[2] != "tmp" or len(parts[1]) != 12:
                    continue
                path = os.path.join(dirpath, filename)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                key = f"{rel}/{parts[0]}" if rel != "." else parts[0]
                try:
                    check_key(key)
                except InvalidNameError:
                    continue
                yield key, path

    def append(self, key: str, record: bytes, *, sync: bool = True) -> None:
        if b"\n" in record:
            raise ValueError("log records must not contain newlines")
        dirs, name = self._split(key)
        try:
            dir_fd = self._open_dir(dirs, create=True)
            try:
                with self._locked(dir_fd, f"{name}.log"):
                    flags = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
                    created = False
                    try:
                        fd = os.open(f"{name}.log", flags, dir_fd=dir_fd)
                    except FileNotFoundError:
                        fd = os.open(f"{name}.log", flags | os.O_CREAT, 0o644, dir_fd=dir_fd)
                        created = True
                    try:
                        # A torn earlier line (crash mid-append) must not swallow this one.
                        size = os.fstat(fd).st_size
                        prefix = b""
                        if size and os.pread(fd, 1, size - 1) != b"\n":
                            prefix = b"\n"
                        os.write(fd, prefix + record + b"\n")
                        if sync:
                            self._fsync(fd)
                    finally:
                        os.close(fd)
                    if created or not size:
                        # Only a new file needs its directory entry made durable.
                        self._fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise _storage_error("append to", key, exc) from exc

    def read_log(self, key: str) -> builtins.list[bytes]:
        dirs, name = self._split(key)
        try:
            dir_fd = self._open_dir(dirs, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _storage_error("read", key, exc) from exc
        try:
            data = self._read_at(dir_fd, f"{name}.log")
        except OSError as exc:
            raise _storage_error("read", key, exc) from exc
        finally:
            os.close(dir_fd)
        if not data:
            return []
        return [line for line in data.split(b"\n") if line]

    def delete_log(self, key: str) -> None:
        dirs, name = self._split(key)
        try:
            dir_fd = self._open_dir(dirs, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise _storage_error("delete", key, exc) from exc
        try:
            for suffix in (".log", ".log.lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name + suffix, dir_fd=dir_fd)
            self._fsync(dir_fd)
        except OSError as exc:
            raise _storage_error("delete", key, exc) from exc
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        self._handles.close_all()

    def remove_empty_dirs(self, prefix: str) -> None:
        """Remove directories left empty under ``prefix`` (after a job is deleted)."""
        base = os.path.join(self.root, *[p for p in prefix.split("/") if p])
        for dirpath, _dirnames, _files in os.walk(base, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
