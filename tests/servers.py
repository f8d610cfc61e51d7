"""Real servers on loopback for the Redis, S3 and PostgreSQL backends: the tests' fixtures
and bench use them.

:func:`redis_server` starts Debian's ``redis-server`` without persistence;
:func:`s3_server` starts moto's S3 server, serving one request at a time;
:func:`postgres_server` runs ``initdb`` and ``postgres`` from Debian's
``postgresql`` package in a temporary directory (as an unprivileged user
when run as root, since PostgreSQL refuses to run as root).  All bind
127.0.0.1 on a free port, are context managers that stop the server on
exit, and raise :class:`ServerUnavailable` when the program or Python
package they need is not installed.  A fixture that meets such a
missing program calls :func:`unavailable`: the test is skipped, except
under CI, where it fails.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

SERVER_START_SECONDS = 60.0

# moto's S3 server, one request at a time.  moto checks a conditional write
# and then applies it without a lock, so under a threaded server two racing
# If-Match writes could both succeed; served one by one, each request is
# applied whole, as a real S3 endpoint guarantees.
_MOTO_SERVER = """
import sys
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app,
)
from werkzeug.serving import make_server

server = make_server(
    "127.0.0.1", 0, DomainDispatcherApplication(create_backend_app),
    threaded=False, request_handler=MotoRequestHandler,
)
with open(sys.argv[1] + ".part", "w") as handle:
    handle.write(str(server.port))
import os
os.rename(sys.argv[1] + ".part", sys.argv[1])
server.serve_forever()
"""


class ServerUnavailable(Exception):
    """The server's program or client package is not installed (the message says which)."""


class ServerFailed(Exception):
    """The server was installed but did not start (the message holds its log)."""


def unavailable(what: str) -> NoReturn:
    """Skip the test for want of ``what``; under CI (``$CI`` set) fail it instead: CI must
    never pass by silently skipping a backend or the browser tests."""
    import pytest  # here, not at the top: bench uses this module without pytest

    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI must run every test", pytrace=False)
    pytest.skip(what)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` (kill it if it does not exit within 10 s) and reap it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A private redis-server on 127.0.0.1 (no persistence); yields its base URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable("redis-server is not installed (apt-get install redis-server)")
    try:
        import redis
    except ImportError:
        raise ServerUnavailable(
            "the redis package is not installed (pip install 'ckpt[test]')"
        ) from None
    for _attempt in range(5):
        port = free_port()
        command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        command += ["--appendonly", "no", "--dir", str(workdir)]
        with open(workdir / "server.log", "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + SERVER_START_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        client.close()
        if process.poll() is None:
            break
        # Most likely another process took the port between the probe and the bind.
    else:
        log_text = (workdir / "server.log").read_text(errors="replace")
        raise ServerFailed(f"redis-server did not start:\n{log_text}")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(process)


def s3_environment(endpoint: str, workdir: Path) -> dict[str, str]:
    """The environment that points boto3 at ``endpoint`` with fake credentials, and keeps it
    away from the machine's own AWS configuration (``AWS_PROFILE`` must be unset as well)."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(workdir / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-credentials"),
    }


@contextlib.contextmanager
def s3_server(workdir: Path) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; yields its endpoint URL.

    The caller points boto3 at it with :func:`s3_environment`.
    """
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        raise ServerUnavailable(
            "boto3 or moto[server] is not installed (pip install 'ckpt[test]')"
        ) from None
    port_file = workdir / "port"
    with open(workdir / "server.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _MOTO_SERVER, str(port_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not port_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not port_file.exists():
        stop(process)
        log_text = (workdir / "server.log").read_text(errors="replace")
        raise ServerFailed(f"moto's S3 server did not start:\n{log_text}")
    try:
        yield f"http://127.0.0.1:{port_file.read_text()}"
    finally:
        stop(process)


@contextlib.contextmanager
def s3_environ(endpoint: str, workdir: Path) -> Iterator[None]:
    """``os.environ`` pointed at ``endpoint`` (see :func:`s3_environment`), restored on exit."""
    saved = dict(os.environ)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(s3_environment(endpoint, workdir))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def new_bucket() -> str:
    """Create an empty bucket on the S3 server boto3 is pointed at; return its name."""
    import boto3

    bucket = f"ckpt-{uuid.uuid4().hex[:16]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    client.close()
    return bucket


def delete_redis_namespace(server: str, namespace: str) -> None:
    """Delete every key of ``namespace`` on the Redis server at ``server``."""
    import redis

    client = redis.Redis.from_url(server)
    with contextlib.closing(client):
        names = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if names:
            client.delete(*names)


# -- PostgreSQL ------------------------------------------------------------------------

#: The database superuser that ``initdb`` creates, and the database the tests use.
POSTGRES_USER = "ckpt"
POSTGRES_DATABASE = "postgres"
#: Settings of the test server: room for the tests' connections, and by default no fsync
#: (its data need not survive a crash of the machine, only one of the server, which the
#: page cache outlives).
_POSTGRES_SETTINGS = {"max_connections": "200", "shared_buffers": "32MB"}
_NO_FSYNC = {"fsync": "off", "full_page_writes": "off"}


def postgres_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: from ``$PATH`` if there, else the
    newest ``/usr/lib/postgresql/VERSION/bin`` (where Debian puts them, off ``$PATH``)."""
    candidates = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in path.parent.name.split(".") if part.isdigit())

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


class PostgresServer:
    """A private PostgreSQL cluster in ``root``, served on 127.0.0.1:``port``.

    Run as root, its files belong to, and its programs run as, the ``postgres`` user
    (``nobody`` if there is none): PostgreSQL refuses to run as root.
    """

    def __init__(
        self, binaries: Path, root: Path, owner: pwd.struct_passwd | None, *, fsync: bool
    ) -> None:
        self.binaries = binaries
        self.settings = _POSTGRES_SETTINGS if fsync else {**_POSTGRES_SETTINGS, **_NO_FSYNC}
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.owner = owner
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL of the test database, as the superuser (no password: trust on loopback)."""
        return f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/{POSTGRES_DATABASE}"

    def _as_owner(self) -> dict[str, Any]:
        if self.owner is None:
            return {}
        return {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}

    def initdb(self) -> None:
        command = [str(self.binaries / "initdb"), "-D", str(self.data), "-U", POSTGRES_USER]
        command += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=self.root, **self._as_owner()
        )
        if done.returncode != 0:
            raise ServerFailed(f"initdb failed:\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        """Start the server (on the same port as before, if it ran before) and wait until it
        accepts connections: after a crash, until it has replayed its write-ahead log."""
        import psycopg

        for _attempt in range(5):
            if not self.port:
                self.port = free_port()
            command = [str(self.binaries / "postgres"), "-D", str(self.data)]
            command += ["-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.root)]
            for name, value in self.settings.items():
                command += ["-c", f"{name}={value}"]
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                    **self._as_owner(),
                )
            deadline = time.monotonic() + SERVER_START_SECONDS
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    psycopg.connect(self.url, connect_timeout=2).close()
                    return
                except psycopg.OperationalError:
                    time.sleep(0.05)
            self.stop("immediate")
            # Most likely another process took the port between the probe and the bind.
            self.port = 0
        log_text = self.log.read_text(errors="replace")
        raise ServerFailed(f"postgres did not start:\n{log_text}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (SIGINT: clients are disconnected, a checkpoint is
        written) or ``immediate`` (SIGQUIT: every process quits at once, as in a crash;
        the next start recovers from the write-ahead log)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()


@contextlib.contextmanager
def postgres_server(workdir: Path, *, fsync: bool = False) -> Iterator[PostgresServer]:
    """A private PostgreSQL server on 127.0.0.1, stopped and deleted on exit; ``fsync=True``
    makes it flush its write-ahead log to disk at each commit, as a production server does.

    Its files live in ``workdir``, or, when run as root, in a new directory in the system's
    temporary directory owned by the server's user (pytest's directories are private to
    root, and the server's user must reach its data).
    """
    binaries = postgres_binaries()
    if binaries is None:
        raise ServerUnavailable(
            "PostgreSQL is not installed (apt-get install postgresql: initdb and postgres)"
        )
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise ServerUnavailable(
            "psycopg or psycopg_pool is not installed (pip install 'ckpt[test]')"
        ) from None
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = pwd.getpwnam("nobody")
        root = Path(tempfile.mkdtemp(prefix="ckpt-postgres-"))
        os.chown(root, owner.pw_uid, owner.pw_gid)
    else:
        root = Path(tempfile.mkdtemp(prefix="postgres-", dir=workdir))
    server = PostgresServer(binaries, root, owner, fsync=fsync)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def drop_postgres_schema(server: str, schema: str) -> None:
    """Drop the schema ``schema`` (a store) and everything in it on the server at ``server``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
