"""Writing stored files and directories out, never outside the place asked for.

File names come from a store and are untrusted.  Before anything is
written, every name is checked (:func:`check_name`, :func:`check_relpath`):
one path component of 1-255 bytes of UTF-8, not ``.`` or ``..``, without
``/`` or NUL; a directory entry's path is such components joined by ``/``,
never absolute.  Then, below the destination (which the caller chose and
which is trusted), every directory is opened relative to its parent with
``O_NOFOLLOW``: a symbolic link planted there, or a file in the way, is
refused, never followed.  A file is written under a fresh temporary name
(``O_CREAT | O_EXCL | O_NOFOLLOW``), its mode set, then renamed over its
final name, which replaces whatever entry had that name (a symbolic link
included) instead of writing through it.  A reader sees the old file or the
whole new one.  Directories are created private and get their stored mode
once their content is written, so that a read-only directory can be filled.

**Cache.**  ``File.path`` materializes a stored file into a cache: the
store's ``cache/`` directory for a local store, else a temporary directory
removed when the process exits.  An item lives in ``cache/KEY/NAME`` (KEY a
digest of its description: content ids, names, modes), built in a temporary
directory and renamed into place, with ``cache/KEY.stamp`` recording the
size, modification time and inode of every file written.  A cached copy is
used only while the stamp still matches, so a copy someone edited is
written again.  The cache can be deleted at any time.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import attrs

from ckpt.errors import InvalidNameError, StorageError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_NAME_BYTES = 255

Pieces = Callable[[], Iterable[bytes]]


def check_name(name: object, where: str = "stored value") -> str:
    """``name`` if it is a safe single file name, else raise InvalidNameError."""
    if not isinstance(name, str):
        raise InvalidNameError(f"{where}: a file name must be a string, not {name!r}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidNameError(f"{where}: file name {name!r} is not valid UTF-8") from None
    if name in ("", ".", "..") or "/" in name or "\0" in name or size > _MAX_NAME_BYTES:
        raise InvalidNameError(
            f"{where}: refusing the file name {name!r} (a name must be one path component "
            f"of 1-{_MAX_NAME_BYTES} bytes, not '.' or '..', without '/' or NUL)"
        )
    return name


def check_relpath(path: object, where: str = "stored value") -> tuple[str, ...]:
    """The components of a relative '/'-separated path, each checked; raise InvalidNameError."""
    if not isinstance(path, str) or not path:
        raise InvalidNameError(f"{where}: a path in a directory must be a non-empty string")
    if path.startswith("/"):
        raise InvalidNameError(f"{where}: refusing the absolute path {path!r}")
    return tuple(check_name(part, where) for part in path.split("/"))


@attrs.frozen
class TreeItem:
    """One item to write below a directory: its path's components, mode, and for a file
    where its bytes come from (``None`` for a directory)."""

    parts: tuple[str, ...]
    mode: int
    pieces: Pieces | None


def _error(action: str, path: str, exc: OSError) -> StorageError:
    return StorageError(exc.errno or 0, f"cannot {action} {path!r}: {exc.strerror}")


def _open_dir(parent: int, name: str, shown: str) -> int:
    """Open (creating it, private) directory ``name`` in ``parent``; never through a link."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=parent)
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        st = _lstat(parent, name)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise InvalidNameError(
                f"refusing to write into {shown!r}: it is a symbolic link (never followed)"
            ) from None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise InvalidNameError(
                f"cannot write into {shown!r}: a file of that name is in the way"
            ) from None
        raise _error("open directory", shown, exc) from None
    # Writable while it is filled; its stored mode is set at the end.
    os.fchmod(fd, 0o700)
    return fd


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return None


def _write_file(parent: int, name: str, mode: int, pieces: Pieces, shown: str) -> None:
    """Write a file under a temporary name in ``parent``, then rename it to ``name``."""
    temp = f".{os.urandom(6).hex()}.ckpt-tmp"
    try:
        fd = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=parent,
        )
    except OSError as exc:
        raise _error("write", shown, exc) from None
    try:
        try:
            with os.fdopen(fd, "wb", closefd=True) as out:
                for piece in pieces():
                    out.write(piece)
                os.fchmod(out.fileno(), mode)
        except OSError as exc:
            raise _error("write", shown, exc) from None
        try:
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except IsADirectoryError:
            raise InvalidNameError(
                f"cannot write the file {shown!r}: a directory of that name is in the way"
            ) from None
        except OSError as exc:
            raise _error("write", shown, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=parent)
        raise


@contextlib.contextmanager
def _destination(to: str | os.PathLike[str]) -> Iterator[int]:
    """The destination directory (created if missing; the caller's choice, so trusted)."""
    path = os.fspath(to)
    try:
        os.makedirs(path, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _error("write into", path, exc) from None
    try:
        yield fd
    finally:
        os.close(fd)


def write_file(to: str | os.PathLike[str], name: str, mode: int, pieces: Pieces) -> Path:
    """Write one file as ``to/name`` with ``mode``; return its path."""
    check_name(name)
    with _destination(to) as fd:
        _write_file(fd, name, mode, pieces, os.path.join(os.fspath(to), name))
    return Path(to, name)


def write_tree(to: str | os.PathLike[str], name: str, mode: int, items: Iterable[TreeItem]) -> Path:
    """Write a directory ``to/name`` (mode ``mode``) holding ``items``; return its path.

    Items are written in order: a directory's own item must come before
    what it holds (a sorted listing does that).  Existing files of the same
    names are replaced, other existing files are left alone.
    """
    check_name(name)
    top = os.path.join(os.fspath(to), name)
    with _destination(to) as root:
        fds: dict[tuple[str, ...], int] = {(): _open_dir(root, name, top)}
        modes: list[tuple[tuple[str, ...], int]] = [((), mode)]
        try:
            for item in items:
                parent = fds.get(item.parts[:-1])
                if parent is None:
                    parent = _open_parents(fds, item.parts[:-1], top)
                shown = os.path.join(top, *item.parts)
                if item.pieces is None:
                    fds[item.parts] = _open_dir(parent, item.parts[-1], shown)
                    modes.append((item.parts, item.mode))
                else:
                    _write_file(parent, item.parts[-1], item.mode, item.pieces, shown)
            # Deepest first, so that a read-only directory is closed after its children.
            for parts, dir_mode in sorted(modes, key=lambda m: -len(m[0])):
                os.fchmod(fds[parts], dir_mode)
        finally:
            for fd in fds.values():
                os.close(fd)
    return Path(top)


def _open_parents(fds: dict[tuple[str, ...], int], parts: tuple[str, ...], top: str) -> int:
    """Open the directories of ``parts`` that no item listed (a listing without them)."""
    for depth in range(1, len(parts) + 1):
        key = parts[:depth]
        if key not in fds:
            fds[key] = _open_dir(fds[key[:-1]], key[-1], os.path.join(top, *key))
    return fds[parts]


# -- the cache -----------------------------------------------------------------

_temporary_roots: list[str] = []


def temporary_cache() -> Path:
    """A cache directory for this process (stores without a directory of their own)."""
    if not _temporary_roots:
        import tempfile  # here: `ckpt log` never materializes a file

        _temporary_roots.append(tempfile.mkdtemp(prefix="ckpt-files-"))
        atexit.register(remove_tree, _temporary_roots[0])
    return Path(_temporary_roots[0])


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove a directory tree written here, read-only directories included (no link followed)."""
    path = os.fspath(path)
    for directory, subdirs, _files in os.walk(path):
        for sub in subdirs:
            full = os.path.join(directory, sub)
            if not os.path.islink(full):
                with contextlib.suppress(OSError):
                    os.chmod(full, 0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def cached(root: Path, key: str, name: str, fill: Callable[[Path], Path]) -> Path:
    """``root/key/name``, written by ``fill(directory)`` unless a matching copy is there.

    See the module docstring for the layout and the stamp.
    """
    target = root / key
    stamp = root / f"{key}.stamp"
    for _attempt in range(3):
        if _stamp_matches(target, stamp):
            return target / name
        try:
            root.mkdir(parents=True, exist_ok=True)
            import tempfile

            building = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:16]}-", dir=root))
        except OSError as exc:
            raise _error("write into", str(root), exc) from None
        try:
            fill(building)
            record = json.dumps(_stamp_of(building))
            if target.exists() or target.is_symlink():
                aside = root / f".old-{key[:16]}-{os.urandom(4).hex()}"
                with contextlib.suppress(FileNotFoundError):
                    os.rename(target, aside)
                remove_tree(aside)
            try:
                os.rename(building, target)
            except OSError:
                continue  # another process installed it meanwhile: check its stamp
            temp = root / f".tmp-{key[:16]}-{os.urandom(4).hex()}.stamp"
            temp.write_text(record, encoding="utf-8")
            os.replace(temp, stamp)
            return target / name
        finally:
            if building.exists():
                remove_tree(building)
    raise StorageError(0, f"cannot materialize {name!r} in {str(root)!r}: it keeps changing")


def _stamp_of(directory: Path) -> dict[str, list[int]]:
    record: dict[str, list[int]] = {}
    for folder, _subdirs, files in os.walk(directory):
        for file_name in files:
            full = os.path.join(folder, file_name)
            st = os.lstat(full)
            record[os.path.relpath(full, directory)] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return record


def _stamp_matches(target: Path, stamp: Path) -> bool:
    """True if ``target`` holds exactly the files ``stamp`` records, unchanged, and no link."""
    try:
        record = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or os.path.islink(target) or not os.path.isdir(target):
        return False
    seen = 0
    for folder, subdirs, files in os.walk(target):
        for entry in (*subdirs, *files):
            full = os.path.join(folder, entry)
            try:
                st = os.lstat(full)
            except OSError:
                return False
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                return False
            if record.get(os.path.relpath(full, target)) != [
                st.st_size,
                st.st_mtime_ns,
                st.st_ino,
            ]:
                return False
            seen += 1
    return seen == len(record)
