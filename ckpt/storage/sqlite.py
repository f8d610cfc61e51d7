"""SQLite storage: a whole store in one database file.

URL: ``sqlite:///abs/path/store.db`` or ``sqlite://relative/store.db``.

Layout: table ``kv(key, data, mtime)`` holds values, table ``logs(key,
seq, record)`` holds log records, numbered per log in append order.  The
file and its parent directories are created by the first write, so opening
a path where no store exists creates nothing.

* The database runs in WAL mode, so readers never block the writer, with a
  busy timeout, so that several processes (and threads) can share one file.
* Every write is one transaction.  Those that read before they write
  (``compare_and_swap``, ``delete_if_older``, ``append``) start with
  ``BEGIN IMMEDIATE``: they take the write lock first, so the value they
  read cannot change before they commit.
* Durable stores use ``synchronous=FULL`` (a committed write survives a
  power cut); ``durable=False`` uses ``NORMAL`` (a machine crash may lose
  the latest commits, never corrupt the file).

The file must be on a local filesystem: SQLite's locking is not reliable
over NFS and similar network filesystems.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator

from ckpt.errors import ConflictError, StorageError, StoreNotFoundError
from ckpt.storage.base import FolderStamp, KeyInfo, KeyNotFoundError, check_key, check_prefix

_BUSY_TIMEOUT_SECONDS = 30.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv ("
    " key TEXT PRIMARY KEY NOT NULL, data BLOB NOT NULL, mtime REAL NOT NULL"
    ") WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS logs ("
    " key TEXT NOT NULL, seq INTEGER NOT NULL, record BLOB NOT NULL, PRIMARY KEY (key, seq)"
    ") WITHOUT ROWID",
)


def _prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


#: Greater than every key (keys are ASCII).
_AFTER_ALL_KEYS = "\U0010ffff"

# One index seek per child: from each key found, jump past the child it belongs
# to (past every key below a folder ``NAME/``, or just past a key without one).
# :n is the prefix's length; ``slash`` is where the child's name ends, if in a folder.
_CHILDREN = """
WITH RECURSIVE step(k) AS (
  SELECT (SELECT key FROM kv WHERE key >= :lo AND key < :hi ORDER BY key LIMIT 1)
  UNION ALL
  SELECT (
    SELECT key FROM kv
    WHERE key >= CASE
        WHEN instr(substr(step.k, :n + 1), '/') > 0
        THEN substr(step.k, 1, :n + instr(substr(step.k, :n + 1), '/') - 1) || '0'
        ELSE step.k || char(1)
      END
      AND key < :hi
    ORDER BY key LIMIT 1
  )
  FROM step WHERE step.k IS NOT NULL
)
SELECT k FROM step
WHERE k IS NOT NULL AND (
  :having IS NULL OR (
    instr(substr(k, :n + 1), '/') > 0
    AND EXISTS (
      SELECT 1 FROM kv
      WHERE key = substr(k, 1, :n + instr(substr(k, :n + 1), '/')) || :having
    )
  )
)
"""


def _refuse_foreign_tables(db: sqlite3.Connection, url: str) -> None:
    """Refuse a database that holds tables of another program: ckpt adds none to it."""
    names = [
        str(row[0])
        for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if row[0] not in ("kv", "logs") and not str(row[0]).startswith("sqlite_")
    ]
    if names:
        shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        raise StoreNotFoundError(
            f"{url} holds tables of another program ({shown}); it is not a ckpt store"
        )


class SqliteStorage:
    """One SQLite database file.  See the module docstring for the layout and locking."""

    atomic_delete_if_older = True

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.url = f"sqlite://{self.path}"
        self.durable = durable
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    # -- connection ---------------------------------------------------------

    def _error(self, what: str, key: str, exc: sqlite3.Error) -> StorageError:
        err = StorageError(f"cannot {what} {key!r} in {self.url}: {exc}")
        err.__cause__ = exc
        return err

    def _existing(self) -> sqlite3.Connection | None:
        """The open connection, or None if the database file does not exist (yet)."""
        if self._db is None and not os.path.exists(self.path):
            return None
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        """The open connection; creates the file (and its directories) if needed."""
        if self._db is not None:
            return self._db
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the directory of {self.url}: {exc}") from exc
        try:
            db = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.url}: {exc}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_SECONDS * 1000)}")
            _refuse_foreign_tables(db, self.url)  # before anything is changed in the file
            mode = _set_wal(db)
            if str(mode).lower() != "wal":
                raise StorageError(f"{self.url}: SQLite refused WAL mode (journal_mode={mode})")
            db.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StorageError(f"{self.url} is not a usable SQLite database: {exc}") from exc
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    @contextlib.contextmanager
    def _transaction(self, what: str, key: str) -> Iterator[sqlite3.Connection]:
        """Run the body in one ``BEGIN IMMEDIATE`` transaction, committed if it returns."""
        with self._lock:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error(what, key, exc) from exc

    @contextlib.contextmanager
    def _transaction_if_exists(self, what: str, key: str) -> Iterator[sqlite3.Connection | None]:
        """Like :meth:`_transaction`, but yield None if the database file does not exist."""
        with self._lock:
            if self._existing() is None:
                yield None
                return
            with self._transaction(what, key) as db:
                yield db

    # -- reads --------------------------------------------------------------

    def get(self, key: str) -> bytes:
        check_key(key)
        with self._lock:
            db = self._existing()
            if db is None:
                raise KeyNotFoundError(key)
            try:
                row = db.execute("SELECT data FROM kv WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as exc:
                raise self._error("read", key, exc) from exc
        if row is None:
            raise KeyNotFoundError(key)
        return bytes(row[0])

    def stat(self, key: str) -> KeyInfo | None:
        check_key(key)
        with self._lock:
            db = self._existing()
            if db is None:
                return None
            try:
                row = db.execute(
                    "SELECT length(data), mtime FROM kv WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise self._error("stat", key, exc) from exc
        return None if row is None else KeyInfo(key, int(row[0]), float(row[1]))

    def list(self, prefix: str = "") -> Iterator[KeyInfo]:
        # The rows are read before the first is returned: callers (gc) delete
        # keys while they iterate, which an open cursor would not survive.
        with self._lock:
            db = self._existing()
            if db is None:
                return iter(())
            try:
                if prefix:
                    rows = db.execute(
                        "SELECT key, length(data), mtime FROM kv"
                        " WHERE key >= ? AND key < ? ORDER BY key",
                        (prefix, _prefix_upper_bound(prefix)),
                    ).fetchall()
                else:
                    rows = db.execute(
                        "SELECT key, length(data), mtime FROM kv ORDER BY key"
                    ).fetchall()
            except sqlite3.Error as exc:
                raise self._error("list", prefix, exc) from exc
        return iter([KeyInfo(str(k), int(size), float(mtime)) for k, size, mtime in rows])

    def folder_stamps(self, prefix: str, inner: str) -> dict[str, FolderStamp] | None:
        """None: this backend has no cheap change stamps (see the protocol)."""
        return None

    def list_children(self, prefix: str = "", *, having: str | None = None) -> Iterator[str]:
        """One query making one index seek per child (two with ``having``), however many
        keys lie below each; exact: a folder is listed only while a key exists below it."""
        check_prefix(prefix)
        if having is not None:
            check_key(having)
        with self._lock:
            db = self._existing()
            if db is None:
                return iter(())
            try:
                rows = db.execute(
                    _CHILDREN,
                    {
                        "lo": prefix,
                        "hi": _prefix_upper_bound(prefix) if prefix else _AFTER_ALL_KEYS,
                        "n": len(prefix),
                        "having": having,
                    },
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._error("list", prefix, exc) from exc
        names = set()
        for (key,) in rows:
            name, sep, _rest = str(key)[len(prefix) :].partition("/")
            names.add(name + sep)
        return iter(sorted(names))

    def read_log(self, key: str) -> builtins.list[bytes]:
        check_key(key)
        with self._lock:
            db = self._existing()
            if db is None:
                return []
            try:
                rows = db.execute(
                    "SELECT record FROM logs WHERE key = ? ORDER BY seq", (key,)
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._error("read the log", key, exc) from exc
        return [bytes(row[0]) for row in rows]

    # -- writes -------------------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> bool:
        check_key(key)
        with self._transaction("write", key) as db:
            changed = db.execute(
                "INSERT INTO kv (key, data, mtime) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (key, bytes(data), time.time()),
            ).rowcount
        return changed == 1

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        check_key(key)
        with self._transaction("update", key) as db:
            row = db.execute("SELECT data FROM kv WHERE key = ?", (key,)).fetchone()
            current = None if row is None else bytes(row[0])
            if current != expected:
                raise ConflictError(f"{key} changed concurrently")
            if new is None:
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO kv (key, data, mtime) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET data = excluded.data, mtime = excluded.mtime",
                    (key, bytes(new), time.time()),
                )

    def delete(self, key: str, *, sync: bool = True) -> bool:
        check_key(key)
        with self._transaction_if_exists("delete", key) as db:
            if db is None:
                return False
            changed = db.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount
        return changed == 1

    def touch(self, key: str) -> bool:
        check_key(key)
        with self._transaction_if_exists("touch", key) as db:
            if db is None:
                return False
            changed = db.execute(
                "UPDATE kv SET mtime = ? WHERE key = ?", (time.time(), key)
            ).rowcount
        return changed == 1

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        """Decide and delete in one write transaction: a ``touch`` commits either
        before it (and the row no longer matches) or after it (and finds no row)."""
        check_key(key)
        with self._transaction_if_exists("delete", key) as db:
            if db is None:
                return False
            changed = db.execute(
                "DELETE FROM kv WHERE key = ? AND mtime < ?", (key, cutoff)
            ).rowcount
        return changed == 1

    def append(self, key: str, record: bytes, *, sync: bool = True) -> None:
        check_key(key)
        if b"\n" in record:
            raise ValueError("log records must not contain newlines")
        with self._transaction("append to", key) as db:
            db.execute(
                "INSERT INTO logs (key, seq, record)"
                " SELECT ?, COALESCE(MAX(seq), 0) + 1, ? FROM logs WHERE key = ?",
                (key, bytes(record), key),
            )

    def delete_log(self, key: str) -> None:
        check_key(key)
        with self._transaction_if_exists("delete the log", key) as db:
            if db is not None:
                db.execute("DELETE FROM logs WHERE key = ?", (key,))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _set_wal(db: sqlite3.Connection) -> object:
    """Switch to WAL mode, waiting out other processes doing the same.

    Changing the journal mode can fail with "database is locked" at once,
    without SQLite's busy handler, while another connection opens the same
    new file: retry within the busy timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
    delay = 0.001
    while True:
        try:
            return db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
