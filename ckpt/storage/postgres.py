"""PostgreSQL storage: a store in one schema of a PostgreSQL database.

URL: ``postgresql://[USER[:PASSWORD]@][HOST][:PORT][/DBNAME][?schema=NAME][&pool_size=N]``
(``postgres://`` too).  The schema (default ``ckpt``) holds one store; give
each store its own.  Every other query parameter (``sslmode=require``,
``connect_timeout=5``, ``host=/run/postgresql`` for a unix socket, ...) goes
to libpq, and so does libpq's environment (``PGHOST``, ``PGUSER``,
``PGPASSWORD``, ``~/.pgpass``, ...).  Needs psycopg 3 and psycopg_pool:
``pip install 'ckpt[postgres]'``.

Layout: table ``SCHEMA.ckpt_values(key, data, mtime)`` holds values (the
mtime from the *server's* clock, so that all clients agree on it), table
``SCHEMA.ckpt_logs(key, seq, token, record)`` log records, numbered in
append order by a sequence.  The schema and tables are created by the
first write, so opening a database where no store exists creates nothing.

* Every operation is one statement in its own transaction (READ COMMITTED),
  so each is atomic, and the row it changes is locked until it commits:
  ``compare_and_swap`` is an ``UPDATE ... WHERE key = K AND data = EXPECTED``
  (``INSERT ... ON CONFLICT DO NOTHING`` to create, ``DELETE ... WHERE data =
  EXPECTED`` to delete): of two racing writers the second waits for the
  first's row lock, then finds the value changed and changes nothing.
  ``delete_if_older`` is a ``DELETE ... WHERE mtime < CUTOFF`` that a
  concurrent ``touch`` (an ``UPDATE`` of the same row) either precedes, and
  the row no longer matches, or follows, and finds no row.
* ``data`` is stored uncompressed out of line (``STORAGE EXTERNAL``: ckpt's
  bytes are compressed already), so ``get_range`` reads only the pages it
  asks for with ``substring``: one object out of a pack, never the pack.
* Connections come from a pool (``pool_size``, default 8).  A statement that
  fails because the connection dropped, the server restarts or is starting
  up, or on a serialization failure or deadlock, is run again on a new
  connection for up to ``retry_seconds`` (default 30).  A write whose
  outcome is unknown (the connection dropped while it ran) is retried so
  that it applies once: a swap that finds its own new value in place has
  succeeded, and each log record carries a random token so that a retried
  append never adds it twice.

Durability: a durable store (the default) runs its sessions with
``synchronous_commit = on``, so a write that returns is in the server's
write-ahead log on disk; ``durable`` is True only if the server also runs
with ``fsync = on``.  ``durable=False`` uses ``synchronous_commit = off``: a
crash of the server may lose the latest writes, never corrupt the store.
"""

from __future__ import annotations

import builtins
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ckpt.errors import CkptError, ConflictError, InvalidNameError, StorageError, StoreNotFoundError
from ckpt.storage.base import FolderStamp, KeyInfo, KeyNotFoundError, check_key, check_prefix

DEFAULT_SCHEMA = "ckpt"
DEFAULT_POOL_SIZE = 8
#: How long an operation keeps retrying a dropped connection or a restarting server.
DEFAULT_RETRY_SECONDS = 30.0
#: libpq waits for ever for a host that does not answer; this unless the URL says otherwise.
DEFAULT_CONNECT_TIMEOUT = 10
_FIRST_DELAY = 0.02
_MAX_DELAY = 1.0
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
#: Greater than every key (keys are ASCII below DEL).
_AFTER_ALL_KEYS = "\x7f"
#: The advisory lock that serializes creating a store's tables.
_CREATE_LOCK = int.from_bytes(b"ckptschm", "big")
#: SQLSTATEs of a statement that surely did not run: serialization failure, deadlock.
_ROLLED_BACK_STATES = frozenset({"40001", "40P01"})
#: SQLSTATEs of a lost or refused connection (besides class 08, connection exceptions): the
#: server was shut down or crashed, is starting up or stopping, or is out of connections.
_CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_NO_TABLE_STATES = frozenset({"42P01", "3F000"})  # undefined table, invalid schema name
_AUTH_STATES = frozenset({"28000", "28P01"})
_CONNECT_REFUSALS = (
    ("28P01", re.compile(r"password authentication failed|authentication failed|pg_hba\.conf")),
    ("28000", re.compile(r'role ".*" does not exist')),
    ("3D000", re.compile(r'database ".*" does not exist')),
)
_NOW = "extract(epoch FROM clock_timestamp())::float8"

# psycopg_pool logs each broken connection it discards and each failed reconnection as a
# warning.  ckpt reports what matters through its errors; without this handler Python
# would print those lines on stderr when the application has not configured logging.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

T = TypeVar("T")
Connection = psycopg.Connection[Any]


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _retry_kind(exc: psycopg.Error) -> str | None:
    """``"connection"`` if the statement may or may not have run (the connection broke),
    ``"rolled back"`` if it surely did not, None if running it again would not help."""
    state = exc.sqlstate
    if state in _ROLLED_BACK_STATES:
        return "rolled back"
    if _connection_lost(exc):
        return "connection"
    return None


def _connection_lost(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    if state is None:  # raised by the client: the connection broke, or could not be made
        return isinstance(exc, psycopg.OperationalError)
    return state in _CONNECTION_STATES or state.startswith("08")


def parse_url(url: str) -> tuple[str, str, int, str]:
    """Split a ckpt PostgreSQL URL into (URL for libpq, schema, pool size, URL to show people).

    The URL shown has no password, and names the schema even when it is the default.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise InvalidNameError(f"not a PostgreSQL URL: {url!r}")
    schema = DEFAULT_SCHEMA
    pool_size = DEFAULT_POOL_SIZE
    passed: list[tuple[str, str]] = []
    shown_query: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "schema":
            schema = value
        elif name == "pool_size":
            if not value.isdigit() or not 1 <= int(value) <= 1000:
                raise InvalidNameError(f"invalid pool_size={value} in a PostgreSQL URL")
            pool_size = int(value)
            shown_query.append((name, value))
        else:
            passed.append((name, value))
            if name not in ("password", "sslpassword"):
                shown_query.append((name, value))
    if not _SCHEMA_NAME.match(schema) or schema.startswith("pg_"):
        raise InvalidNameError(
            f"invalid schema name {schema!r} in a PostgreSQL URL "
            "(lower-case letters, digits and _, not starting with a digit or pg_)"
        )
    client_url = _join(parts.netloc, parts.path, passed)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, _secret = parts.netloc.rpartition("@")[0].partition(":")
        netloc = f"{user}@{parts.netloc.rpartition('@')[2]}"
    shown = _join(netloc, parts.path, [("schema", schema), *shown_query])
    return client_url, schema, pool_size, shown


def _join(netloc: str, path: str, query: builtins.list[tuple[str, str]]) -> str:
    # Not urlunsplit: it drops the "//" of an empty host (postgresql:///db, a unix socket).
    return f"postgresql://{netloc}{path}" + (f"?{urlencode(query)}" if query else "")


class PostgresStorage:
    """One schema of one PostgreSQL database.  See the module docstring for the guarantees."""

    atomic_delete_if_older = True

    def __init__(
        self,
        url: str,
        *,
        durable: bool = True,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        conninfo, self.schema, pool_size, self.url = parse_url(url)
        self.retry_seconds = retry_seconds
        self._conninfo = conninfo
        self._kwargs: dict[str, Any] = {"autocommit": True}
        try:
            params = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise CkptError(f"invalid PostgreSQL URL {self.url}: {_first_line(exc)}") from None
        if "connect_timeout" not in params:
            self._kwargs["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
        self._synchronous_commit = "on" if durable else "off"
        fsync, self._queries = self._probe()
        self.durable = durable and fsync
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            conninfo,
            kwargs=self._kwargs,
            min_size=1,
            max_size=pool_size,
            configure=self._configure,
            name=f"ckpt {self.url}",
            timeout=self.retry_seconds,
            open=True,
        )

    # -- connections and errors -------------------------------------------------

    def _connect(self) -> Connection:
        connection: Connection = psycopg.connect(self._conninfo, **self._kwargs)
        return connection

    def _probe(self) -> tuple[bool, _Queries]:
        """Connect once, so that a wrong URL or a server that is down is one clear error at
        open; return whether the server fsyncs its write-ahead log, and the statements."""
        try:
            with self._connect() as conn:
                row = conn.execute("SELECT current_setting('fsync')").fetchone()
                queries = _Queries(self.schema, conn)
        except psycopg.Error as exc:
            raise self._error("connect to", "", exc) from exc
        return row is not None and row[0] == "on", queries

    def _configure(self, conn: Connection) -> None:
        conn.execute(
            sql.SQL("SET synchronous_commit = {}").format(sql.Literal(self._synchronous_commit))
        )

    def _error(self, what: str, key: str, exc: psycopg.Error) -> CkptError:
        """The one-line error a person reads for ``exc``, raised while doing ``what``."""
        state = exc.sqlstate
        reason = _first_line(exc)
        err: CkptError
        if state is None:
            # libpq gives no SQLSTATE for a refused connection: the server's message says why.
            state = next((code for code, text in _CONNECT_REFUSALS if text.search(reason)), None)
        if state in _AUTH_STATES:
            err = StorageError(f"PostgreSQL at {self.url} refused the credentials: {reason}")
        elif state == "3D000":
            err = StoreNotFoundError(
                f"no such database at {self.url}: {reason} (create it first: createdb NAME)"
            )
        elif state is None or _connection_lost(exc):
            err = StorageError(f"cannot {what} PostgreSQL at {self.url}: {reason}")
        else:
            target = f"{key!r} in {self.url}" if key else self.url
            err = StorageError(f"cannot {what} {target}: {reason}")
        return err

    def _unreachable(self, what: str, key: str) -> CkptError:
        """The error for a pool that gave no connection in time: why a new one fails, or,
        if one can be had, that every pooled connection stayed busy."""
        try:
            self._connect().close()
        except psycopg.Error as exc:
            return self._error(what, key, exc)
        return StorageError(
            f"cannot {what} {key!r} in {self.url}: no free connection in "
            f"{self.retry_seconds:g} s (every one of the pool's {self._pool.max_size} was busy; "
            "raise pool_size in the URL)"
        )

    def _run(
        self,
        what: str,
        key: str,
        work: Callable[[Connection, bool], T],
        *,
        write: bool = False,
        missing: Callable[[], T] | None = None,
    ) -> T:
        """Run ``work(connection, ambiguous)`` on a pooled connection, again on a transient
        failure until ``retry_seconds`` have passed.  ``ambiguous`` is True once a write
        attempt broke off with its outcome unknown.  Where the store's tables do not exist
        yet a read returns ``missing()`` and a write creates them first."""
        deadline = time.monotonic() + self.retry_seconds
        delay = _FIRST_DELAY
        ambiguous = False
        created = False
        while True:
            try:
                with self._pool.connection(timeout=max(deadline - time.monotonic(), 0.5)) as conn:
                    try:
                        return work(conn, ambiguous)
                    except psycopg.Error as exc:
                        if exc.sqlstate not in _NO_TABLE_STATES:
                            raise
                        if missing is not None:
                            return missing()
                        if created:
                            raise
                        self._create_tables(conn)
                        created = True
                        continue
            except PoolTimeout:
                raise self._unreachable(what, key) from None
            except PoolClosed:
                raise StorageError(f"cannot {what} {key!r}: {self.url} was closed") from None
            except psycopg.Error as exc:
                kind = _retry_kind(exc)
                if kind is None or time.monotonic() + delay > deadline:
                    raise self._error(what, key, exc) from exc
                ambiguous = ambiguous or (write and kind == "connection")
            time.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    def _create_tables(self, conn: Connection) -> None:
        """Create the schema and tables (once, however many processes try at once)."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            for statement in self._queries.create:
                conn.execute(statement)

    # -- reads --------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        check_key(key)

        def work(conn: Connection, _ambiguous: bool) -> bytes | None:
            row = conn.execute(self._queries.get, (key,), binary=True).fetchone()
            return None if row is None else bytes(row[0])

        data = self._run("read", key, work, missing=lambda: None)
        if data is None:
            raise KeyNotFoundError(key)
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Bytes ``offset`` .. ``offset + length`` of the value at ``key`` (fewer past its end).

        An optional capability beyond the protocol: the object database reads
        one object out of a pack with it.  The server reads only the pages of
        the value that hold those bytes.
        """
        check_key(key)
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")

        def work(conn: Connection, _ambiguous: bool) -> bytes | None:
            row = conn.execute(
                self._queries.get_range, (offset + 1, length, key), binary=True
            ).fetchone()
            return None if row is None else bytes(row[0])

        data = self._run("read", key, work, missing=lambda: None)
        if data is None:
            raise KeyNotFoundError(key)
        return data

    def stat(self, key: str) -> KeyInfo | None:
        check_key(key)

        def work(conn: Connection, _ambiguous: bool) -> KeyInfo | None:
            row = conn.execute(self._queries.stat, (key,), binary=True).fetchone()
            return None if row is None else KeyInfo(key, int(row[0]), float(row[1]))

        return self._run("stat", key, work, missing=lambda: None)

    def list(self, prefix: str = "") -> Iterator[KeyInfo]:
        # The rows are read before the first is returned: callers (gc) delete
        # keys while they iterate, and a pooled connection is not held meanwhile.
        if prefix:
            check_prefix(prefix)
        bounds = (prefix, _prefix_upper_bound(prefix) if prefix else _AFTER_ALL_KEYS)

        def work(conn: Connection, _ambiguous: bool) -> builtins.list[KeyInfo]:
            rows = conn.execute(self._queries.list, bounds, binary=True).fetchall()
            return [KeyInfo(str(k), int(size), float(mtime)) for k, size, mtime in rows]

        return iter(self._run("list", prefix, work, missing=lambda: []))

    def folder_stamps(self, prefix: str, inner: str) -> dict[str, FolderStamp] | None:
        """None: this backend has no cheap change stamps (see the protocol)."""
        return None

    def list_children(self, prefix: str = "", *, having: str | None = None) -> Iterator[str]:
        """One query making one index seek per child (two with ``having``), however many
        keys lie below each; exact: a folder is listed only while a key exists below it."""
        check_prefix(prefix)
        if having is not None:
            check_key(having)
        params = {
            "lo": prefix,
            "hi": _prefix_upper_bound(prefix) if prefix else _AFTER_ALL_KEYS,
            "n": len(prefix),
            "having": having,
        }

        def work(conn: Connection, _ambiguous: bool) -> builtins.list[str]:
            return [str(row[0]) for row in conn.execute(self._queries.children, params)]

        names = set()
        for key in self._run("list", prefix, work, missing=lambda: []):
            name, sep, _rest = key[len(prefix) :].partition("/")
            names.add(name + sep)
        return iter(sorted(names))

    def read_log(self, key: str) -> builtins.list[bytes]:
        check_key(key)

        def work(conn: Connection, _ambiguous: bool) -> builtins.list[bytes]:
            rows = conn.execute(self._queries.read_log, (key,), binary=True).fetchall()
            return [bytes(row[0]) for row in rows]

        return self._run("read the log", key, work, missing=lambda: [])

    # -- writes -------------------------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> bool:
        check_key(key)
        data = bytes(data)

        def work(conn: Connection, ambiguous: bool) -> bool:
            if conn.execute(self._queries.insert, (key, data)).rowcount == 1:
                return True
            # An earlier attempt that broke off may have written it: then the bytes match.
            return ambiguous and self._holds(conn, key, data)

        return self._run("write", key, work, write=True)

    def _holds(self, conn: Connection, key: str, data: bytes | None) -> bool:
        """True if ``key`` holds ``data`` (None: nothing)."""
        row = conn.execute(self._queries.get, (key,), binary=True).fetchone()
        return (None if row is None else bytes(row[0])) == data

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        check_key(key)
        expected = None if expected is None else bytes(expected)
        new = None if new is None else bytes(new)

        def work(conn: Connection, ambiguous: bool) -> bool:
            if expected is None and new is None:
                return conn.execute(self._queries.exists, (key,)).fetchone() is None
            if expected is None:
                swapped = conn.execute(self._queries.insert, (key, new)).rowcount == 1
            elif new is None:
                swapped = conn.execute(self._queries.delete_if, (key, expected)).rowcount == 1
            else:
                swapped = conn.execute(self._queries.swap, (new, key, expected)).rowcount == 1
            # An earlier attempt that broke off may have swapped already: then `new` is there.
            return swapped or (ambiguous and expected != new and self._holds(conn, key, new))

        if not self._run("update", key, work, write=True):
            raise ConflictError(f"{key} changed concurrently")

    def delete(self, key: str, *, sync: bool = True) -> bool:
        """Remove ``key``; True if it existed (or if an attempt that broke off may have
        removed it and it is gone)."""
        check_key(key)

        def work(conn: Connection, ambiguous: bool) -> bool:
            return conn.execute(self._queries.delete, (key,)).rowcount == 1 or ambiguous

        return self._run("delete", key, work, write=True, missing=lambda: False)

    def touch(self, key: str) -> bool:
        check_key(key)

        def work(conn: Connection, _ambiguous: bool) -> bool:
            return conn.execute(self._queries.touch, (key,)).rowcount == 1

        return self._run("touch", key, work, write=True, missing=lambda: False)

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        """Decide and delete in one statement: see the module docstring for why a
        ``touch`` never loses to it."""
        check_key(key)
        params = (key, float(cutoff))

        def work(conn: Connection, ambiguous: bool) -> bool:
            if conn.execute(self._queries.delete_if_older, params).rowcount == 1:
                return True
            return ambiguous and conn.execute(self._queries.exists, (key,)).fetchone() is None

        return self._run("delete", key, work, write=True, missing=lambda: False)

    def append(self, key: str, record: bytes, *, sync: bool = True) -> None:
        check_key(key)
        if b"\n" in record:
            raise ValueError("log records must not contain newlines")
        params = (key, uuid.uuid4(), bytes(record))

        def work(conn: Connection, _ambiguous: bool) -> None:
            # The token is unique: a retry of an append that did land adds nothing.
            conn.execute(self._queries.append, params)

        self._run("append to", key, work, write=True)

    def delete_log(self, key: str) -> None:
        check_key(key)

        def work(conn: Connection, _ambiguous: bool) -> None:
            conn.execute(self._queries.delete_log, (key,))

        self._run("delete the log", key, work, write=True, missing=lambda: None)

    def close(self) -> None:
        self._pool.close()


def _prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _Queries:
    """The statements of one store, its schema's name quoted into them once (``conn`` quotes
    it), as bytes ready to send."""

    def __init__(self, schema: str, conn: Connection) -> None:
        names = {
            "schema": sql.Identifier(schema),
            "values": sql.Identifier(schema, "ckpt_values"),
            "logs": sql.Identifier(schema, "ckpt_logs"),
            "now": sql.SQL(_NOW),
        }

        def q(text: str) -> bytes:
            return sql.SQL(text).format(**names).as_bytes(conn)

        self.create = [
            q("CREATE SCHEMA IF NOT EXISTS {schema}"),
            q(
                'CREATE TABLE IF NOT EXISTS {values} (key text COLLATE "C" PRIMARY KEY,'
                " data bytea NOT NULL, mtime double precision NOT NULL)"
            ),
            # ckpt's values are compressed already: keep them uncompressed out of line,
            # so that substring() reads only the pages of the range asked for.
            q("ALTER TABLE {values} ALTER COLUMN data SET STORAGE EXTERNAL"),
            q(
                'CREATE TABLE IF NOT EXISTS {logs} (key text COLLATE "C" NOT NULL,'
                " seq bigint GENERATED ALWAYS AS IDENTITY, token uuid NOT NULL UNIQUE,"
                " record bytea NOT NULL, PRIMARY KEY (key, seq))"
            ),
        ]
        self.get = q("SELECT data FROM {values} WHERE key = %s")
        self.get_range = q(
            "SELECT substring(data FROM %s::integer FOR %s::integer) FROM {values} WHERE key = %s"
        )
        self.stat = q("SELECT octet_length(data), mtime FROM {values} WHERE key = %s")
        self.exists = q("SELECT 1 FROM {values} WHERE key = %s")
        self.list = q(
            "SELECT key, octet_length(data), mtime FROM {values}"
            " WHERE key >= %s AND key < %s ORDER BY key"
        )
        self.children = q(_CHILDREN)
        self.read_log = q("SELECT record FROM {logs} WHERE key = %s ORDER BY seq")
        self.insert = q(
            "INSERT INTO {values} (key, data, mtime) VALUES (%s, %s, {now})"
            " ON CONFLICT (key) DO NOTHING"
        )
        self.swap = q("UPDATE {values} SET data = %s, mtime = {now} WHERE key = %s AND data = %s")
        self.delete_if = q("DELETE FROM {values} WHERE key = %s AND data = %s")
        self.delete = q("DELETE FROM {values} WHERE key = %s")
        self.touch = q("UPDATE {values} SET mtime = {now} WHERE key = %s")
        self.delete_if_older = q("DELETE FROM {values} WHERE key = %s AND mtime < %s")
        self.append = q(
            "INSERT INTO {logs} (key, token, record) VALUES (%s, %s, %s)"
            " ON CONFLICT (token) DO NOTHING"
        )
        self.delete_log = q("DELETE FROM {logs} WHERE key = %s")


# One index seek per child: from each key found, jump past the child it belongs to (past
# every key below a folder ``NAME/``: ``NAME0`` follows them, '0' coming after '/'; or just
# past a key without one).  %(n)s is the prefix's length.  (The loose index scan of the
# PostgreSQL wiki.)
_CHILDREN = """
WITH RECURSIVE step(k) AS (
  SELECT (
    SELECT key FROM {values} WHERE key >= %(lo)s AND key < %(hi)s ORDER BY key LIMIT 1
  )
  UNION ALL
  SELECT (
    SELECT key FROM {values}
    WHERE key >= CASE
        WHEN strpos(substr(step.k, %(n)s::integer + 1), '/') > 0
        THEN substr(step.k, 1, %(n)s::integer + strpos(substr(step.k, %(n)s::integer + 1), '/') - 1)
          || '0'
        ELSE step.k || chr(1)
      END
      AND key < %(hi)s
    ORDER BY key LIMIT 1
  )
  FROM step WHERE step.k IS NOT NULL
)
SELECT k FROM step
WHERE k IS NOT NULL AND (
  %(having)s::text IS NULL OR (
    strpos(substr(k, %(n)s::integer + 1), '/') > 0
    AND EXISTS (
      SELECT 1 FROM {values}
      WHERE key = substr(k, 1, %(n)s::integer + strpos(substr(k, %(n)s::integer + 1), '/'))
        || %(having)s::text
    )
  )
)
"""
