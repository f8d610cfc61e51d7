"""Byte storage backends behind one protocol, chosen by a store URL.

``open_storage`` maps a URL to a backend:

* a plain path or ``file://PATH``: :class:`~ckpt.storage.local.LocalStorage`
* ``memory://NAME``: :class:`~ckpt.storage.memory.MemoryStorage`
* ``sqlite:///PATH/store.db``: :class:`~ckpt.storage.sqlite.SqliteStorage`
* ``redis://HOST:PORT/DB``: :class:`~ckpt.storage.redis.RedisStorage` (``ckpt[redis]``)
* ``s3://BUCKET/PREFIX``: :class:`~ckpt.storage.s3.S3Storage` (``ckpt[s3]``)
* ``postgresql://USER@HOST:PORT/DBNAME?schema=NAME``:
  :class:`~ckpt.storage.postgres.PostgresStorage` (``ckpt[postgres]``)

Backends are imported only when used, so that ``import ckpt`` stays fast
and the optional client libraries (boto3, redis, psycopg) are needed only by the
stores that use them.  ``docs/backends.md`` describes each backend's
guarantees.
"""

from __future__ import annotations

import os

from ckpt.storage.base import KeyInfo, KeyNotFoundError, Storage, check_key

__all__ = [
    "KeyInfo",
    "KeyNotFoundError",
    "Storage",
    "check_key",
    "is_url",
    "open_storage",
    "shown_url",
]

#: URL scheme -> (pip extra, client libraries) of the backends that need one.
_EXTRAS = {
    "redis": ("redis", ("redis",)),
    "rediss": ("redis", ("redis",)),
    "s3": ("s3", ("boto3", "botocore")),
    "postgresql": ("postgres", ("psycopg", "psycopg_pool")),
    "postgres": ("postgres", ("psycopg", "psycopg_pool")),
}


def is_url(location: str) -> bool:
    """True if ``location`` is a URL with a scheme other than ``file``."""
    scheme, sep, _rest = location.partition("://")
    return bool(sep) and scheme.isalnum() and scheme != "file"


def shown_url(url: str) -> str:
    """``url`` as shown to people: a password in it is replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def open_storage(location: str, *, durable: bool = True) -> Storage:
    """Return the backend for ``location`` (a path or a URL).

    ``durable=False`` lets a backend that can choose skip flushing each write
    to stable storage (local files, SQLite, PostgreSQL); S3 is always durable,
    Redis as durable as its server is configured to be.
    """
    from ckpt.errors import CkptError

    if location.startswith("file://"):
        location = location[len("file://") :]
    if not is_url(location):
        from ckpt.storage.local import LocalStorage

        return LocalStorage(location, durable=durable)
    scheme, _, rest = location.partition("://")
    try:
        return _open_url(scheme, rest, location, durable=durable)
    except ModuleNotFoundError as exc:
        extra, libraries = _EXTRAS.get(scheme, ("", ()))
        if exc.name not in libraries:
            raise
        raise CkptError(
            f"{scheme}:// stores need the {exc.name} package: pip install 'ckpt[{extra}]'"
        ) from None


def absolute_location(location: str) -> str:
    """``location`` with a relative file path in it made absolute (against the current
    directory): a plain path, ``file://PATH`` and ``sqlite://PATH``.  Other URLs name
    servers and come back as they are.  A location kept for later (a remote) must not
    depend on the directory a later command runs in."""
    if location.startswith("file://"):
        return os.path.abspath(location[len("file://") :])
    if not is_url(location):
        return os.path.abspath(location)
    scheme, _, rest = location.partition("://")
    if scheme == "sqlite" and rest and not rest.startswith("/"):
        return f"sqlite://{os.path.abspath(rest)}"
    return location


def _open_url(scheme: str, rest: str, location: str, *, durable: bool) -> Storage:
    from ckpt.errors import CkptError

    if scheme == "memory":
        from ckpt.storage.memory import MemoryStorage

        return MemoryStorage(rest)
    if scheme == "sqlite":
        from ckpt.storage.sqlite import SqliteStorage

        if not rest:
            raise CkptError(f"no database file in {location!r} (use sqlite:///path/to/store.db)")
        return SqliteStorage(rest, durable=durable)
    if scheme in ("redis", "rediss"):
        from ckpt.storage.redis import RedisStorage

        return RedisStorage(location)
    if scheme == "s3":
        from ckpt.storage.s3 import S3Storage

        return S3Storage(location)
    if scheme in ("postgresql", "postgres"):
        from ckpt.storage.postgres import PostgresStorage

        return PostgresStorage(location, durable=durable)
    raise CkptError(
        f"unknown store URL scheme {scheme!r} in {location!r} "
        "(use a path, file://, memory://, sqlite://, redis://, s3:// or postgresql://)"
    )
