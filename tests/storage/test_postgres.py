"""What is particular to the PostgreSQL backend: URLs, errors for people, durability, range
reads that stay small, and operations that ride out dropped connections and restarts.

Everything runs against real PostgreSQL servers (``tests/servers.py``); a broken
connection is a real one, cut by a TCP proxy on loopback.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

import ckpt
from ckpt.errors import CkptError, ConflictError, InvalidNameError, StorageError, StoreNotFoundError
from ckpt.storage import open_storage
from ckpt.storage.base import KeyNotFoundError
from ckpt.storage.postgres import PostgresStorage, parse_url
from tests.servers import PostgresServer, drop_postgres_schema


def _schema(url: str) -> str:
    return parse_url(url)[1]


def _schema_exists(server: str, schema: str) -> bool:
    with psycopg.connect(server) as conn:
        row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
        found = row.fetchone()
    return found is not None and found[0] == 1


# -- URLs ----------------------------------------------------------------------------------


def test_url_forms() -> None:
    assert parse_url("postgresql://u@h:5/db?schema=team_a") == (
        "postgresql://u@h:5/db",
        "team_a",
        8,
        "postgresql://u@h:5/db?schema=team_a",
    )
    client, schema, pool, shown = parse_url(
        "postgres://u:secret@h/db?sslmode=require&pool_size=3&password=other"
    )
    assert client == "postgresql://u:secret@h/db?sslmode=require&password=other"
    assert (schema, pool) == ("ckpt", 3)
    assert shown == "postgresql://u@h/db?schema=ckpt&sslmode=require&pool_size=3"
    assert parse_url("postgresql:///db?host=%2Frun%2Fpostgresql")[3] == (
        "postgresql:///db?schema=ckpt&host=%2Frun%2Fpostgresql"
    )
    for bad in (
        "postgresql://h/db?schema=Team",
        "postgresql://h/db?schema=pg_catalog",
        "postgresql://h/db?schema=a-b",
        "postgresql://h/db?pool_size=0",
        "mysql://h/db",
    ):
        with pytest.raises(InvalidNameError):
            parse_url(bad)


def test_url_reopens_the_store_and_hides_no_setting(postgres_store: str) -> None:
    storage = open_storage(postgres_store + "&connect_timeout=5")
    try:
        assert storage.url == postgres_store + "&connect_timeout=5"
        storage.put_if_absent("k", b"v")
        again = open_storage(storage.url)
        assert again.get("k") == b"v"
        again.close()
    finally:
        storage.close()


# -- errors a person sees ------------------------------------------------------------------


def test_unreachable_server_is_one_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(StorageError) as info:
            open_storage(f"postgresql://ckpt@127.0.0.1:{port}/postgres")
    message = str(info.value)
    assert message.startswith(
        f"cannot connect to PostgreSQL at postgresql://ckpt@127.0.0.1:{port}/postgres?schema=ckpt: "
    )
    assert "refused" in message
    assert "\n" not in message


def test_unknown_role_and_missing_database(postgres_server: str) -> None:
    base = postgres_server.rpartition("/")[0]
    with pytest.raises(StorageError, match=r"refused the credentials: .*no_such_role"):
        open_storage(base.replace("ckpt@", "no_such_role@") + "/postgres")
    with pytest.raises(StoreNotFoundError, match=r"no such database at .*no_such_db"):
        ckpt.open(base + "/no_such_db")


def test_an_invalid_libpq_parameter_is_one_clear_error(postgres_server: str) -> None:
    with pytest.raises(CkptError, match=r'invalid PostgreSQL URL .*: .*"no_such_option"') as info:
        open_storage(postgres_server + "?no_such_option=1")
    assert "\n" not in str(info.value)


def test_opening_a_missing_store_creates_nothing(postgres_server: str) -> None:
    schema = f"test_{uuid.uuid4().hex}"
    url = f"{postgres_server}?schema={schema}"
    with pytest.raises(StoreNotFoundError):
        ckpt.open(url)
    assert not _schema_exists(postgres_server, schema)
    storage = open_storage(url)
    try:
        assert list(storage.list()) == []
        assert storage.read_log("log") == []
        assert storage.touch("k") is False and storage.delete("k") is False
        assert not _schema_exists(postgres_server, schema)
        ckpt.init(url).close()
        assert _schema_exists(postgres_server, schema)
    finally:
        storage.close()
        drop_postgres_schema(postgres_server, schema)


def test_schemas_are_separate_stores(postgres_server: str) -> None:
    first = open_storage(f"{postgres_server}?schema=test_one_{uuid.uuid4().hex}")
    second = open_storage(f"{postgres_server}?schema=test_two_{uuid.uuid4().hex}")
    try:
        first.put_if_absent("k", b"one")
        first.append("log", b"one")
        second.put_if_absent("other", b"two")
        assert second.stat("k") is None
        assert second.read_log("log") == []
        assert [info.key for info in second.list()] == ["other"]
        assert [info.key for info in first.list()] == ["k"]
    finally:
        for storage in (first, second):
            assert isinstance(storage, PostgresStorage)
            storage.close()
            drop_postgres_schema(postgres_server, storage.schema)


# -- durability ----------------------------------------------------------------------------


def _session_setting(storage: PostgresStorage, name: str) -> str:
    def work(conn: psycopg.Connection[Any], _ambiguous: bool) -> str:
        row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
        assert row is not None
        return str(row[0])

    return storage._run("read a setting of", "", work)


@pytest.mark.parametrize("durable", [True, False])
def test_durability_follows_the_request_and_the_server(postgres_store: str, durable: bool) -> None:
    storage = open_storage(postgres_store, durable=durable)
    assert isinstance(storage, PostgresStorage)
    try:
        # The test server runs with fsync=off: nothing it holds is durable.
        assert storage.durable is False
        assert _session_setting(storage, "synchronous_commit") == ("on" if durable else "off")
    finally:
        storage.close()


# -- range reads ---------------------------------------------------------------------------


def test_range_reads(postgres_store: str) -> None:
    storage = open_storage(postgres_store)
    assert isinstance(storage, PostgresStorage)
    value = os.urandom(300_000)
    try:
        storage.put_if_absent("packs/p", value)
        assert storage.get_range("packs/p", 0, 10) == value[:10]
        assert storage.get_range("packs/p", 123_456, 70_000) == value[123_456:193_456]
        assert storage.get_range("packs/p", 299_990, 100) == value[299_990:]
        assert storage.get_range("packs/p", 400_000, 5) == b""
        assert storage.get_range("packs/p", 7, 0) == b""
        with pytest.raises(KeyNotFoundError):
            storage.get_range("packs/missing", 0, 1)
        with pytest.raises(ValueError):
            storage.get_range("packs/p", -1, 1)
    finally:
        storage.close()


def _blocks_touched(storage: PostgresStorage, key: str, offset: int, length: int) -> int:
    """Buffer pages (table, index and out-of-line storage) that the backend's range read
    visits on the server, as ``EXPLAIN (ANALYZE, BUFFERS)`` counts them."""
    query = b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + storage._queries.get_range

    def work(conn: psycopg.Connection[Any], _ambiguous: bool) -> int:
        row = conn.execute(query, (offset + 1, length, key)).fetchone()
        assert row is not None
        plan = row[0][0]["Plan"]
        return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])

    return storage._run("explain", key, work)


def test_a_range_read_visits_only_the_pages_it_needs(postgres_store: str) -> None:
    """An object read out of an 8 MB pack costs a few pages, not the pack's thousand."""
    storage = open_storage(postgres_store)
    assert isinstance(storage, PostgresStorage)
    size = 8 << 20
    try:
        storage.put_if_absent("packs/big", os.urandom(size))
        few = _blocks_touched(storage, "packs/big", size // 2, 4096)
        whole = _blocks_touched(storage, "packs/big", 0, size)
        assert few <= 20, few
        assert whole >= 1000, whole
    finally:
        storage.close()


# -- connections that break ----------------------------------------------------------------


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 to a PostgreSQL server.  After :meth:`cut_next_reply` it
    swallows the next reply the server sends to a statement and closes that connection:
    to the client the connection broke while its statement ran, although the server
    carried it out.  (Replies during a connection's handshake are never cut: the pool may
    be connecting in the background.)"""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.cuts = 0
        self._armed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_reply(self) -> None:
        with self._lock:
            self._armed = True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, server]
            state = {"statement": False}
            for source, sink, replies in ((client, server, False), (server, client, True)):
                threading.Thread(
                    target=self._pump, args=(source, sink, replies, state), daemon=True
                ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, replies: bool, state: dict[str, bool]
    ) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if not replies:
                    # Parse, Bind or Query: the client sent a statement (not a handshake).
                    state["statement"] = data[:1] in (b"P", b"B", b"Q")
                elif state["statement"]:
                    with self._lock:
                        cut, self._armed = self._armed, False
                    if cut:
                        self.cuts += 1
                        break
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            for end in self._sockets:
                with contextlib.suppress(OSError):
                    end.close()


@pytest.fixture
def proxied(postgres_store: str) -> Iterator[tuple[PostgresStorage, CuttingProxy]]:
    """A store reached through a :class:`CuttingProxy`, its pool's connection made."""
    port = int(postgres_store.split("@127.0.0.1:")[1].split("/")[0])
    proxy = CuttingProxy(port)
    storage = open_storage(postgres_store.replace(f":{port}/", f":{proxy.port}/"))
    assert isinstance(storage, PostgresStorage)
    storage.put_if_absent("warm", b"up")
    try:
        yield storage, proxy
    finally:
        storage.close()
        proxy.close()


def test_a_swap_whose_reply_was_lost_is_not_a_conflict(
    proxied: tuple[PostgresStorage, CuttingProxy],
) -> None:
    storage, proxy = proxied
    proxy.cut_next_reply()
    storage.compare_and_swap("refs/main", None, b"c1")
    proxy.cut_next_reply()
    storage.compare_and_swap("refs/main", b"c1", b"c2")
    assert proxy.cuts == 2
    assert storage.get("refs/main") == b"c2"
    proxy.cut_next_reply()
    storage.compare_and_swap("refs/main", b"c2", None)
    assert storage.stat("refs/main") is None
    # A real conflict is still one, reply lost or not.
    storage.compare_and_swap("refs/main", None, b"c3")
    proxy.cut_next_reply()
    with pytest.raises(ConflictError):
        storage.compare_and_swap("refs/main", b"c1", b"c4")
    assert proxy.cuts == 4
    assert storage.get("refs/main") == b"c3"


def test_an_append_whose_reply_was_lost_is_added_once(
    proxied: tuple[PostgresStorage, CuttingProxy],
) -> None:
    storage, proxy = proxied
    storage.append("jobs/j/reflog", b"one")
    proxy.cut_next_reply()
    storage.append("jobs/j/reflog", b"two")
    storage.append("jobs/j/reflog", b"three")
    assert proxy.cuts == 1
    assert storage.read_log("jobs/j/reflog") == [b"one", b"two", b"three"]


def test_writes_and_reads_whose_reply_was_lost_report_what_they_did(
    proxied: tuple[PostgresStorage, CuttingProxy],
) -> None:
    storage, proxy = proxied
    proxy.cut_next_reply()
    assert storage.put_if_absent("objects/a", b"data") is True
    proxy.cut_next_reply()
    assert storage.put_if_absent("objects/a", b"other") is False
    proxy.cut_next_reply()
    assert storage.get("objects/a") == b"data"
    proxy.cut_next_reply()
    assert storage.delete("objects/a") is True
    proxy.cut_next_reply()
    assert storage.read_log("nothing") == []
    assert proxy.cuts == 5
    assert storage.stat("objects/a") is None


def test_operations_ride_out_server_restarts(private_postgres_server: PostgresServer) -> None:
    storage = open_storage(private_postgres_server.url)
    try:
        storage.compare_and_swap("refs/main", None, b"c1")
        for mode in ("fast", "immediate"):
            private_postgres_server.restart(mode)
            assert storage.get("refs/main") == b"c1"
        private_postgres_server.stop("immediate")
        # Down for a second: an operation waits for it, then goes through.
        restart = threading.Timer(1.0, private_postgres_server.start)
        restart.start()
        try:
            storage.compare_and_swap("refs/main", b"c1", b"c2")
        finally:
            restart.join()
        assert storage.get("refs/main") == b"c2"
    finally:
        storage.close()


def test_a_server_down_for_longer_than_the_retries_is_one_clear_error(
    private_postgres_server: PostgresServer,
) -> None:
    storage = PostgresStorage(private_postgres_server.url, retry_seconds=1.0)
    try:
        storage.put_if_absent("k", b"v")
        private_postgres_server.stop("fast")
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            storage.get("k")
        assert time.monotonic() - started < 15
        message = str(info.value)
        assert message.startswith(f"cannot read PostgreSQL at {storage.url}: "), message
        assert "\n" not in message
    finally:
        storage.close()


def test_a_closed_store_says_so(postgres_store: str) -> None:
    storage = open_storage(postgres_store)
    storage.close()
    with pytest.raises(StorageError, match=r"cannot read 'k': postgresql://.* was closed"):
        storage.get("k")


# -- the same errors on the command line ---------------------------------------------------


def test_the_cli_says_in_one_line_what_is_wrong(postgres_server: str) -> None:
    from click.testing import CliRunner

    from ckpt.cli.exits import ExitCode
    from ckpt.cli.main import cli

    def run(url: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["--store", url, "jobs"])
        return result.exit_code, result.stderr

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        code, stderr = run(f"postgresql://ckpt@127.0.0.1:{port}/postgres")
    assert code == ExitCode.ERROR
    assert stderr.startswith(
        f"Error: cannot connect to PostgreSQL at postgresql://ckpt@127.0.0.1:{port}/postgres"
        "?schema=ckpt: connection failed: "
    )
    assert stderr.count("\n") == 1 and "Connection refused" in stderr
    assert run(f"{postgres_server}?schema=Novels") == (
        ExitCode.USAGE,
        "Error: invalid schema name 'Novels' in a PostgreSQL URL "
        "(lower-case letters, digits and _, not starting with a digit or pg_)\n",
    )
    base = postgres_server.rpartition("/")[0]
    code, stderr = run(f"{base}/no_such_db")
    assert code == ExitCode.NO_STORE
    # Between the part ckpt writes and the server's reason, libpq says where it connected.
    assert stderr.startswith(f"Error: no such database at {base}/no_such_db?schema=ckpt: ")
    assert stderr.endswith(
        'database "no_such_db" does not exist (create it first: createdb NAME)\n'
    )
    assert stderr.count("\n") == 1
    code, stderr = run(f"{postgres_server}?schema=nothing_here")
    assert code == ExitCode.NO_STORE
    assert stderr.startswith("Error: no ckpt store at ")
