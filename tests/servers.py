"""Real servers on loopback for the Redis and S3 backends: the tests' fixtures and bench use them.

:func:`redis_server` starts Debian's ``redis-server`` without persistence;
:func:`s3_server` starts moto's S3 server, serving one request at a time.
Both bind 127.0.0.1 on a free port, are context managers that stop the
server on exit, and raise :class:`ServerUnavailable` when the program or
Python package they need is not installed.  A fixture that meets such a
missing program calls :func:`unavailable`: the test is skipped, except
under CI, where it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

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
