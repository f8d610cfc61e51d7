"""The local backend's write-ahead journal: one fsync makes a save durable.

Without it, a durable change of a file costs two fsyncs (the file, then its
directory), so a save (a new pack, then the branch ref) costs four.  With it,
each change is first appended to one file, ``ROOT/.journal``, and the change
itself is made without any fsync: a new pack is linked, a ref renamed over,
a key unlinked, all left for the kernel to write back when it likes.  A
change is durable once its journal record is: one ``fdatasync`` of the
journal, which also makes every record before it durable (the journal is
one file, appended in order).  So a save appends its pack without a sync and
its ref move with one, and the pack is durable no later than the ref that
names it.

What is not yet on disk is still in the kernel's page cache, which every
process of this machine reads: a crash of a process loses nothing.  Only a
crash of the machine can, and a machine crash means a new boot, with a new
boot id (``/proc/sys/kernel/random/boot_id``).  The journal starts with the
boot id it was written under.  Opening a store whose journal names another
boot replays it: every record, in order (a value written again where it is
missing or differs, a key unlinked), then fsyncs what it changed and starts
an empty journal under the current boot.  Replay is idempotent, so a crash
during replay is repaired by the next open.

The journal is emptied (checkpointed) once it holds :data:`CHECKPOINT_BYTES`:
every file and directory it names is fsynced (most were written back by the
kernel long before), then an empty journal replaces it.  Values over
:data:`MAX_VALUE` are not copied into it: they are written and fsynced in
place as before, which costs little next to writing them.

Records and the changes they describe are made under the journal's lock, so
the order of records is the order of the changes, and a checkpoint never
falls between a record and its change.  Lock order: a key's own lock (or its
directory's ``.mtime`` lock), then the journal's.

A record: ``op`` (one byte: ``P`` put, ``S`` set, ``D`` delete), the key's
length (2 bytes, big-endian), the value's length (4 bytes), the key, the
value, and a CRC-32 of all of it (4 bytes).  A torn or damaged record ends
the journal: the records after it are not replayed (none of them had been
synced, or a later sync would have covered it).
"""

from __future__ import annotations

import contextlib
import os
import struct
import weakref
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from ckpt.errors import StorageError

if TYPE_CHECKING:
    from ckpt.storage.local import LocalStorage

#: File name of the journal in the store's root (a dot name: never a key).
NAME = ".journal"
MAGIC = b"ckpt journal 1\n"
#: Values up to this size are copied into the journal; larger ones are fsynced in place.
MAX_VALUE = 256 << 10
#: A journal that holds this many bytes is checkpointed before the next record.
CHECKPOINT_BYTES = 8 << 20

OP_PUT = b"P"
OP_SET = b"S"
OP_DELETE = b"D"
_OPS = (OP_PUT, OP_SET, OP_DELETE)
_HEAD = struct.Struct(">cHI")
_CRC = struct.Struct(">I")
_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_boot_id: bytes | bool | None = False  # False: not read yet


class Record(NamedTuple):
    op: bytes
    key: str
    value: bytes


def current_boot_id() -> bytes | None:
    """This boot's id, or None where the system has none (no journal is written there)."""
    global _boot_id
    if _boot_id is False:
        try:
            with open(_BOOT_ID_PATH, "rb") as handle:
                found = handle.read().strip()
            _boot_id = found if 0 < len(found) <= 64 and b"\n" not in found else None
        except OSError:
            _boot_id = None
    return _boot_id  # type: ignore[return-value]


def header(boot: bytes) -> bytes:
    return MAGIC + b"boot " + boot + b"\n"


def encode(op: bytes, key: str, value: bytes = b"") -> bytes:
    raw_key = key.encode()
    body = _HEAD.pack(op, len(raw_key), len(value)) + raw_key + value
    return body + _CRC.pack(zlib.crc32(body))


def decode(data: bytes) -> tuple[bytes | None, list[Record]]:
    """The boot id a journal names and its whole records (up to the first torn one)."""
    if not data.startswith(MAGIC):
        return None, []
    line_end = data.find(b"\n", len(MAGIC))
    if line_end < 0 or not data.startswith(b"boot ", len(MAGIC)):
        return None, []
    boot = data[len(MAGIC) + 5 : line_end]
    records: list[Record] = []
    pos = line_end + 1
    view = memoryview(data)
    while pos + _HEAD.size <= len(data):
        op, key_len, value_len = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + key_len + value_len
        if op not in _OPS or end + _CRC.size > len(data):
            break
        (crc,) = _CRC.unpack_from(data, end)
        if zlib.crc32(view[pos:end]) != crc:
            break
        key_start = pos + _HEAD.size
        try:
            key = data[key_start : key_start + key_len].decode()
        except UnicodeDecodeError:
            break
        records.append(Record(op, key, data[key_start + key_len : end]))
        pos = end + _CRC.size
    return boot, records


class Journal:
    """The journal of one :class:`~ckpt.storage.local.LocalStorage` (see the module doc).

    ``boot``: this boot's id, or None on a system without one, where nothing is
    journaled and a journal found is replayed and removed.
    """

    def __init__(self, storage: LocalStorage, boot: bytes | None) -> None:
        # Not a strong reference: the storage holds its journal, and a cycle would keep
        # a dropped storage (and the files it holds open) alive until the cyclic gc ran.
        self._storage = weakref.ref(storage)
        self.header = None if boot is None else header(boot)
        #: Whether this process appended a put or set that is not synced yet.
        self._unsynced = False

    @property
    def storage(self) -> LocalStorage:
        storage = self._storage()
        if storage is None:  # pragma: no cover - the storage calls its own journal
            raise StorageError(0, "the journal's storage is gone")
        return storage

    @contextlib.contextmanager
    def change(self, op: bytes, key: str, value: bytes = b"", *, sync: bool) -> Iterator[None]:
        """Append the record of a change, fdatasync it if ``sync``, then run the block,
        which makes the change, all under the journal's lock.

        If the append or the sync fails, the block does not run.  If the block
        fails, the record is taken back (the journal is cut to its length before
        it), so that a change that did not happen is never replayed.  A deletion
        is synced whenever this process has an unsynced put or set: an unlink may
        reach the disk before it, and what it deletes may be what that replaces.
        """
        sync = sync or (op == OP_DELETE and self._unsynced)
        record = encode(op, key, value)
        root_fd = self.storage._open_dir([], create=False)
        try:
            with self.storage._locked(root_fd, NAME):
                fd = self._open_for_append(root_fd)
                try:
                    size = os.fstat(fd).st_size
                    try:
                        self.storage._write_synced(fd, record, sync=False)
                        if sync:
                            os.fdatasync(fd)
                            self._unsynced = False
                        elif op != OP_DELETE:
                            self._unsynced = True
                    except BaseException:
                        _cut(fd, size)
                        raise
                    try:
                        yield
                    except BaseException:
                        _cut(fd, size)
                        raise
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)

    def _open_for_append(self, root_fd: int) -> int:
        """The journal open for appending (made, or checkpointed when full, first)."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(NAME, flags, dir_fd=root_fd)
        except FileNotFoundError:
            self._start(root_fd)
            return os.open(NAME, flags, dir_fd=root_fd)
        if os.fstat(fd).st_size >= CHECKPOINT_BYTES:
            os.close(fd)
            self._checkpoint(root_fd)
            return os.open(NAME, flags, dir_fd=root_fd)
        return fd

    def _start(self, root_fd: int) -> None:
        """Durably replace the journal with an empty one of this boot (or remove it, on a
        system without boot ids)."""
        if self.header is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(NAME, dir_fd=root_fd)
        else:
            tmp = self.storage._write_temp(root_fd, NAME, self.header, sync=True)
            try:
                os.rename(tmp, NAME, src_dir_fd=root_fd, dst_dir_fd=root_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=root_fd)
                raise
        os.fsync(root_fd)

    def _checkpoint(self, root_fd: int) -> None:
        """Fsync what the journal's records changed, then start an empty journal."""
        records = self._read_records(root_fd)
        self._sync_keys({record.key for record in records})
        self._start(root_fd)

    def _read_records(self, root_fd: int) -> list[Record]:
        data = self.storage._read_at(root_fd, NAME)
        return [] if data is None else decode(data)[1]

    def _sync_keys(self, keys: set[str]) -> None:
        """Fsync each key's file (where it exists) and each directory holding one."""
        folders: dict[tuple[str, ...], list[str]] = {}
        for key in keys:
            parts = key.split("/")
            folders.setdefault(tuple(parts[:-1]), []).append(parts[-1])
        for folder, names in sorted(folders.items()):
            try:
                dir_fd = self.storage._open_dir(list(folder), create=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                for name in names:
                    try:
                        fd = os.open(
                            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
                        )
                    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                        continue
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -- recovery -------------------------------------------------------------

    def recover(self) -> None:
        """Replay the journal if it was written under another boot (a machine crash may
        have lost what it records), then start an empty one.  One small read when there
        is nothing to do."""
        try:
            root_fd = self.storage._open_dir([], create=False)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(exc.errno or 0, f"cannot open {self.storage.root}: {exc}") from exc
        try:
            try:
                needed = self._needs_replay(root_fd)
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise StorageError(
                    exc.errno or 0,
                    f"cannot read the journal {os.path.join(self.storage.root, NAME)}: {reason}",
                ) from exc
            if not needed:
                return
            with self.storage._locked(root_fd, NAME):
                if not self._needs_replay(root_fd):
                    return  # replayed by another process meanwhile
                records = self._read_records(root_fd)
                changed = {record.key for record in records if _replay(self.storage, record)}
                self._sync_keys(changed)
                self._start(root_fd)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StorageError(
                exc.errno or 0,
                f"cannot recover the store at {self.storage.root} after a machine restart "
                f"(replaying its journal {NAME}): {reason}",
            ) from exc
        finally:
            os.close(root_fd)

    def _needs_replay(self, root_fd: int) -> bool:
        try:
            fd = os.open(NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
        except FileNotFoundError:
            return False
        try:
            start = os.pread(fd, 128, 0)
        finally:
            os.close(fd)
        return self.header is None or not start.startswith(self.header)


def _replay(storage: LocalStorage, record: Record) -> bool:
    """Make the state of ``record.key`` what the record says; True if anything changed."""
    parts = record.key.split("/")
    try:
        dir_fd = storage._open_dir(parts[:-1], create=record.op != OP_DELETE)
    except (FileNotFoundError, NotADirectoryError):
        return False  # deleting from a folder that is not there
    name = parts[-1]
    try:
        if record.op == OP_DELETE:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                return False
            return True
        if storage._read_at(dir_fd, name) == record.value:
            return False
        tmp = storage._write_temp(dir_fd, name, record.value, sync=False)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return True
    finally:
        os.close(dir_fd)


def _cut(fd: int, size: int) -> None:
    """Take back a record appended after ``size`` (best effort: the caller is failing)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, size)
        os.fdatasync(fd)
