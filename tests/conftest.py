"""Fixtures shared by the whole suite: a fresh store of every storage backend.

``store_url`` yields the URL of a new, empty store for each backend in
:data:`BACKENDS`; ``storage`` yields that store opened.  The Redis and S3
backends run against real servers started once per session on 127.0.0.1:
Debian's ``redis-server`` and moto's S3 server.  Where one of them is not
installed its tests are skipped, except under CI (``$CI`` set), where they
fail: CI must never pass by silently skipping a backend.
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

import pytest

from ckpt.storage import Storage, open_storage

BACKENDS = ("local", "memory", "sqlite", "redis", "s3")
SERVER_START_SECONDS = 60.0

#: Coarsest clock step of each backend's mtimes (S3 keeps whole seconds;
#: file mtimes come from the kernel's coarse clock, a tick behind time.time()).
MTIME_RESOLUTION = {"s3": 1.0}
DEFAULT_MTIME_RESOLUTION = 0.02

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


def _missing(what: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI must run every storage backend", pytrace=False)
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on 127.0.0.1 (no persistence); yields its base URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server is not installed (apt-get install redis-server)")
    try:
        import redis
    except ImportError:
        _missing("the redis package is not installed (pip install 'ckpt[test]')")
    workdir = tmp_path_factory.mktemp("redis")
    for _attempt in range(5):
        port = _free_port()
        command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        command += ["--appendonly", "no", "--dir", str(workdir)]
        with open(workdir / "server.log", "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
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
        pytest.fail(f"redis-server did not start:\n{log_text}")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, with fake credentials pointed at it in the environment."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        _missing("boto3 or moto[server] is not installed (pip install 'ckpt[test]')")
    workdir = tmp_path_factory.mktemp("moto")
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
        _stop(process)
        log_text = (workdir / "server.log").read_text(errors="replace")
        pytest.fail(f"moto's S3 server did not start:\n{log_text}")
    endpoint = f"http://127.0.0.1:{port_file.read_text()}"
    environment = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
        # Never read the machine's own AWS configuration.
        "AWS_CONFIG_FILE": str(workdir / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-credentials"),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_PROFILE", raising=False)
        for name, value in environment.items():
            patch.setenv(name, value)
        try:
            yield endpoint
        finally:
            _stop(process)


def new_bucket() -> str:
    """Create an empty bucket on the test S3 server (needs ``s3_server``); return its name."""
    import boto3

    bucket = f"ckpt-{uuid.uuid4().hex[:16]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    client.close()
    return bucket


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A new, empty bucket on the test S3 server."""
    return new_bucket()


def _delete_redis_namespace(server: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(server)
    with contextlib.closing(client):
        names = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if names:
            client.delete(*names)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty store, once per storage backend."""
    backend: str = request.param
    if backend == "local":
        root = tmp_path / "store"
        root.mkdir()
        yield str(root)
    elif backend == "memory":
        from ckpt.storage.memory import forget

        name = f"test-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        forget(name)
    elif backend == "sqlite":
        yield f"sqlite://{tmp_path / 'store.db'}"
    elif backend == "redis":
        server = request.getfixturevalue("redis_server")
        namespace = f"test-{uuid.uuid4().hex}"
        yield f"{server}/0?prefix={namespace}"
        _delete_redis_namespace(server, namespace)
    elif backend == "s3":
        request.getfixturevalue("s3_server")
        yield f"s3://{new_bucket()}/store"
    else:
        raise AssertionError(f"unknown backend {backend}")


@pytest.fixture
def backend(store_url: str) -> str:
    """The name of the backend under test, as in :data:`BACKENDS`."""
    return _backend_of(store_url)


def _backend_of(url: str) -> str:
    scheme, sep, _rest = url.partition("://")
    return scheme if sep else "local"


@pytest.fixture
def mtime_resolution(store_url: str) -> float:
    """How far apart two events must be for the backend's mtimes to order them."""
    return MTIME_RESOLUTION.get(_backend_of(store_url), DEFAULT_MTIME_RESOLUTION)


@pytest.fixture
def storage(store_url: str) -> Iterator[Storage]:
    """The store of ``store_url``, opened."""
    opened = open_storage(store_url)
    try:
        yield opened
    finally:
        opened.close()
