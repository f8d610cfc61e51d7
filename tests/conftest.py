"""Fixtures shared by the whole suite: a fresh store of every storage backend.

``store_url`` yields the URL of a new, empty store for each backend in
:data:`BACKENDS`; ``storage`` yields that store opened.  The Redis, S3 and
PostgreSQL backends run against real servers started once per session on
127.0.0.1: Debian's ``redis-server``, moto's S3 server and Debian's
PostgreSQL.  Where one of them is not installed its tests are skipped,
except under CI (``$CI`` set), where they fail: CI must never pass by
silently skipping a backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import ckpt
from ckpt.storage import Storage, open_storage
from tests import servers
from tests.servers import delete_redis_namespace, drop_postgres_schema, new_bucket

BACKENDS = ("local", "memory", "sqlite", "redis", "s3", "postgresql")

#: Coarsest clock step of each backend's mtimes (S3 keeps whole seconds;
#: file mtimes come from the kernel's coarse clock, a tick behind time.time()).
MTIME_RESOLUTION = {"s3": 1.0}
DEFAULT_MTIME_RESOLUTION = 0.02


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on 127.0.0.1 (no persistence); yields its base URL."""
    try:
        with servers.redis_server(tmp_path_factory.mktemp("redis")) as url:
            yield url
    except servers.ServerUnavailable as exc:
        servers.unavailable(str(exc))
    except servers.ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, with fake credentials pointed at it in the environment."""
    workdir = tmp_path_factory.mktemp("moto")
    try:
        with servers.s3_server(workdir) as endpoint, pytest.MonkeyPatch.context() as patch:
            patch.delenv("AWS_PROFILE", raising=False)
            for name, value in servers.s3_environment(endpoint, workdir).items():
                patch.setenv(name, value)
            yield endpoint
    except servers.ServerUnavailable as exc:
        servers.unavailable(str(exc))
    except servers.ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private PostgreSQL server on 127.0.0.1; yields the URL of its database."""
    try:
        with servers.postgres_server(tmp_path_factory.mktemp("postgres")) as server:
            yield server.url
    except servers.ServerUnavailable as exc:
        servers.unavailable(str(exc))
    except servers.ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture
def private_postgres_server(tmp_path: Path) -> Iterator[servers.PostgresServer]:
    """A PostgreSQL server of the test's own, for tests that stop or restart it."""
    try:
        with servers.postgres_server(tmp_path) as server:
            yield server
    except servers.ServerUnavailable as exc:
        servers.unavailable(str(exc))
    except servers.ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture
def postgres_store(postgres_server: str) -> Iterator[str]:
    """The URL of a fresh, empty store (a new schema) on the session's PostgreSQL server."""
    schema = f"test_{uuid.uuid4().hex}"
    yield f"{postgres_server}?schema={schema}"
    drop_postgres_schema(postgres_server, schema)


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A new, empty bucket on the test S3 server."""
    return new_bucket()


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
        delete_redis_namespace(server, namespace)
    elif backend == "s3":
        request.getfixturevalue("s3_server")
        yield f"s3://{new_bucket()}/store"
    elif backend == "postgresql":
        yield request.getfixturevalue("postgres_store")
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


# -- a store for the API tests (tests/history, tests/maintenance) ----------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def repo(root: Path) -> Iterator[ckpt.Repository]:
    with ckpt.init(root, durable=False) as opened:
        yield opened


@pytest.fixture
def history(repo: ckpt.Repository) -> tuple[ckpt.Job, list[ckpt.Commit]]:
    job = repo.job("novel")
    commits = [
        job.save("outline", "o1"),
        job.save("draft", "d1"),
        job.save("outline", "o2"),
        job.save("review", "r1"),
    ]
    return job, commits
