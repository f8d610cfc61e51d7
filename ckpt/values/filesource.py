"""Reading the files and directories a user stores, safely and a block at a time.

A ``ckpt.File`` names a regular file; a ``ckpt.Directory`` a directory of
regular files and directories.  Anything else is refused with a
:class:`~ckpt.errors.FileValueError` that names the path and says why: a
missing path, a directory given as a file (or the reverse), a fifo, socket
or device (opened without blocking, so that a fifo cannot hang a save), a
symbolic link inside a directory (its target may lie anywhere), a name that
is not valid UTF-8.

A file is read in blocks into a :class:`~ckpt.objects.stream.BlobSink`.
Its size, modification and change times are taken when it is opened and
again after the last byte: if they moved, or the bytes read differ from the
size, the file changed while it was being read and the save fails (the
sink's blob is abandoned, so nothing half-read is kept).
"""

from __future__ import annotations

import os
import stat

import attrs

from ckpt.errors import FileValueError
from ckpt.objects.ids import ObjectId
from ckpt.objects.stream import BLOCK_SIZE, BlobSink

#: The permission bits a stored file or directory keeps.
MODE_BITS = 0o777

_KINDS = (
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a symbolic link"),
)


def what_is(mode: int) -> str:
    """A person's word for the kind of file ``mode`` describes."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    for test, word in _KINDS:
        if test(mode):
            return word
    return "a special file"


def check_utf8(name: str, path: str) -> None:
    """Refuse a file name that is not valid UTF-8 (Python shows its bytes as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise FileValueError(
            f"cannot store {path!r}: its name is not valid UTF-8; rename it first"
        ) from None


def stat_source(path: str, want_dir: bool) -> os.stat_result:
    """Stat the path a user gave (following a symbolic link, as ``open`` would)."""
    what = "ckpt.Directory" if want_dir else "ckpt.File"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileValueError(
            f"cannot store {path!r} as a {what}: no such file or directory"
        ) from None
    except OSError as exc:
        raise FileValueError(f"cannot store {path!r} as a {what}: {exc.strerror}") from None
    if want_dir and not stat.S_ISDIR(st.st_mode):
        hint = " (use ckpt.File for a file)" if stat.S_ISREG(st.st_mode) else ""
        raise FileValueError(
            f"cannot store {path!r} as a ckpt.Directory: it is {what_is(st.st_mode)}{hint}"
        )
    if not want_dir and not stat.S_ISREG(st.st_mode):
        hint = " (use ckpt.Directory for a directory)" if stat.S_ISDIR(st.st_mode) else ""
        raise FileValueError(
            f"cannot store {path!r} as a ckpt.File: it is {what_is(st.st_mode)}, "
            f"not a regular file{hint}"
        )
    return st


@attrs.frozen
class StoredFacts:
    """What reading a file gave: its content id, size and permission bits."""

    id: ObjectId
    size: int
    mode: int


def stream_file(path: str, sink: BlobSink, *, follow: bool = True) -> StoredFacts:
    """Read the regular file at ``path`` into ``sink``; see the module docstring.

    ``follow=False`` refuses a symbolic link at ``path`` itself (used for the
    files of a directory).  Raises FileValueError for anything but an
    unchanging regular file.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileValueError(f"cannot store {path!r}: no such file") from None
    except OSError as exc:
        if not follow and os.path.islink(path):
            raise FileValueError(
                f"cannot store {path!r}: it is a symbolic link; a ckpt.Directory holds "
                "regular files and directories only"
            ) from None
        raise FileValueError(f"cannot store {path!r}: {exc.strerror}") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise FileValueError(
                f"cannot store {path!r}: it is {what_is(before.st_mode)}, not a regular file"
            )
        blob = sink.stream(before.st_size)
        try:
            remaining = before.st_size
            while True:
                try:
                    data = os.read(fd, BLOCK_SIZE)
                except OSError as exc:
                    raise FileValueError(f"cannot read {path!r}: {exc.strerror}") from None
                if not data:
                    break
                if len(data) > remaining:
                    raise _changed(path)
                blob.write(data)
                remaining -= len(data)
            after = os.fstat(fd)
            if remaining or _moved(before, after):
                raise _changed(path)
            oid = blob.finish()
        except BaseException:
            blob.abandon()
            raise
    finally:
        os.close(fd)
    return StoredFacts(oid, before.st_size, stat.S_IMODE(before.st_mode) & MODE_BITS)


def _moved(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns, before.st_ctime_ns) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )


def _changed(path: str) -> FileValueError:
    return FileValueError(
        f"{path!r} changed while it was being stored; nothing was saved. "
        "Save it again once it is complete"
    )


@attrs.frozen
class LocalEntry:
    """One item under a directory being stored: its path relative to the directory
    ('/'-separated), whether it is a directory, and where it is on disk."""

    path: str
    is_dir: bool
    source: str
    mode: int


def walk_directory(root: str) -> list[LocalEntry]:
    """Every file and directory under ``root``, sorted by relative path.

    Raises FileValueError for a symbolic link, a special file or a name that
    is not valid UTF-8 anywhere below ``root``.
    """
    found: list[LocalEntry] = []
    _walk(root, "", found)
    found.sort(key=lambda entry: entry.path)
    return found


def _walk(directory: str, prefix: str, found: list[LocalEntry]) -> None:
    try:
        with os.scandir(directory) as listing:
            items = list(listing)
    except OSError as exc:
        raise FileValueError(f"cannot read directory {directory!r}: {exc.strerror}") from None
    for item in items:
        check_utf8(item.name, item.path)
        relative = f"{prefix}{item.name}"
        try:
            st = item.stat(follow_symlinks=False)
        except FileNotFoundError:
            raise _changed(item.path) from None
        mode = stat.S_IMODE(st.st_mode) & MODE_BITS
        if stat.S_ISDIR(st.st_mode):
            found.append(LocalEntry(relative, True, item.path, mode))
            _walk(item.path, relative + "/", found)
        elif stat.S_ISREG(st.st_mode):
            found.append(LocalEntry(relative, False, item.path, mode))
        else:
            raise FileValueError(
                f"cannot store {item.path!r}: it is {what_is(st.st_mode)}; a ckpt.Directory "
                "holds regular files and directories only"
            )
