"""Redis storage: a store in one Redis database, under a key namespace.

URL: ``redis://[:PASSWORD@]HOST[:PORT][/DB[/NAMESPACE]][?prefix=NAMESPACE]``
(``rediss://`` for TLS).  The namespace defaults to ``ckpt``; give each
store its own.  Other query parameters (``socket_timeout=5``, ...) go to
``redis.Redis.from_url``.  Needs the ``redis`` package: ``pip install
'ckpt[redis]'``.

Layout: the value of key ``k`` is the hash ``NAMESPACE:v:k`` with fields
``d`` (the bytes) and ``m`` (the mtime, from the server's clock, so that all
clients agree on it); the log at ``k`` is the list ``NAMESPACE:l:k``.

* ``put_if_absent``, ``compare_and_swap``, ``touch`` and
  ``delete_if_older`` are Lua scripts: Redis runs a script to completion
  before any other command, so each is atomic on the server.
* ``append`` is one ``RPUSH``, ``read_log`` one ``LRANGE``.
* ``list`` walks the namespace with ``SCAN``, which costs time in the size
  of the whole database, not of the listing.  So does ``list_children``:
  Redis keeps no order of keys to skip through, so it matches every key
  below the prefix on the server (with ``having``, only the keys
  ``PREFIX*/HAVING``) and keeps one name per child.

Durability is the server's: Redis acknowledges a write once it is in
memory.  ``durable`` is True only when the server reports ``appendonly
yes`` with ``appendfsync always``; otherwise a crash of the Redis server may
lose the latest writes.
"""

from __future__ import annotations

import builtins
import contextlib
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.exceptions

from ckpt.errors import CkptError, ConflictError, InvalidNameError, StorageError
from ckpt.storage.base import FolderStamp, KeyInfo, KeyNotFoundError, check_key, check_prefix

DEFAULT_NAMESPACE = "ckpt"
_NAMESPACE = re.compile(r"[A-Za-z0-9_.@+=/-]{1,200}\Z")
_SCAN_BATCH = 1000

# The server's clock as "seconds.microseconds", exact in decimal.
_NOW = "local t = redis.call('TIME') local now = t[1] .. '.' .. string.format('%06d', t[2]) "

_PUT_IF_ABSENT = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'm', now)
return 1
"""
)

# ARGV: expected present ("1"/"0"), expected, new present ("1"/"0"), new
_COMPARE_AND_SWAP = (
    _NOW
    + """
local current = redis.call('HGET', KEYS[1], 'd')
if ARGV[1] == '1' then
  if current == false or current ~= ARGV[2] then return 0 end
elseif current ~= false then
  return 0
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'd', ARGV[4], 'm', now)
else
  redis.call('DEL', KEYS[1])
end
return 1
"""
)

_TOUCH = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'm', now)
return 1
"""
)

_DELETE_IF_OLDER = """
local mtime = redis.call('HGET', KEYS[1], 'm')
if mtime == false or tonumber(mtime) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\^])", r"\\\1", text)


def parse_url(url: str) -> tuple[str, str, str]:
    """Split a ckpt Redis URL into (URL for redis-py, namespace, URL to show people)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise InvalidNameError(f"not a Redis URL: {url!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    namespace = ""
    passed = []
    for name, value in query:
        if name == "prefix":
            namespace = value
        else:
            passed.append((name, value))
    path = [p for p in parts.path.split("/") if p]
    db = "0"
    if path:
        db = path.pop(0)
        if not db.isdigit():
            raise InvalidNameError(
                f"invalid Redis URL {url!r}: the path must start with a db number"
            )
    if path:
        if namespace:
            raise InvalidNameError(f"invalid Redis URL {url!r}: give the namespace once")
        namespace = "/".join(path)
    namespace = namespace.strip("/") or DEFAULT_NAMESPACE
    if not _NAMESPACE.match(namespace):
        raise InvalidNameError(f"invalid Redis key namespace {namespace!r} in {url!r}")
    client_url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", urlencode(passed), ""))
    host = parts.hostname or "localhost"
    shown_host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    shown = f"{parts.scheme}://{shown_host}{port}/{db}?prefix={namespace}"
    return client_url, namespace, shown


class RedisStorage:
    """One namespace of one Redis database.  See the module docstring for the layout."""

    atomic_delete_if_older = True

    def __init__(self, url: str) -> None:
        client_url, self.namespace, self.url = parse_url(url)
        try:
            self._redis = redis.Redis.from_url(client_url)
        except (ValueError, redis.exceptions.RedisError) as exc:
            raise CkptError(f"invalid Redis URL {self.url}: {exc}") from exc
        with self._errors("connect to", ""):
            self._redis.ping()
        self.durable = self._server_fsyncs_every_write()
        self._put_if_absent = self._redis.register_script(_PUT_IF_ABSENT)
        self._compare_and_swap = self._redis.register_script(_COMPARE_AND_SWAP)
        self._touch = self._redis.register_script(_TOUCH)
        self._delete_if_older = self._redis.register_script(_DELETE_IF_OLDER)

    def _server_fsyncs_every_write(self) -> bool:
        with self._errors("read the configuration of", ""):
            try:
                config = self._redis.config_get("append*")
            except redis.exceptions.ResponseError:
                return False  # CONFIG is disabled on many managed servers: assume the default
        settings = {_text(k): _text(v) for k, v in dict(config).items()}
        return settings.get("appendonly") == "yes" and settings.get("appendfsync") == "always"

    @contextlib.contextmanager
    def _errors(self, what: str, key: str) -> Iterator[None]:
        try:
            yield
        except redis.exceptions.AuthenticationError as exc:
            raise StorageError(f"Redis at {self.url} refused the credentials: {exc}") from exc
        except redis.exceptions.ConnectionError as exc:
            raise StorageError(f"cannot {what} Redis at {self.url}: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            target = f"{key!r} in {self.url}" if key else self.url
            raise StorageError(f"cannot {what} {target}: {exc}") from exc

    def _value_key(self, key: str) -> str:
        return f"{self.namespace}:v:{check_key(key)}"

    def _log_key(self, key: str) -> str:
        return f"{self.namespace}:l:{check_key(key)}"

    # -- reads --------------------------------------------------------------

    def get(self, key: str) -> bytes:
        name = self._value_key(key)
        with self._errors("read", key):
            data = self._redis.hget(name, "d")
        if data is None:
            raise KeyNotFoundError(key)
        return _bytes(data)

    def stat(self, key: str) -> KeyInfo | None:
        name = self._value_key(key)
        with self._errors("stat", key):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hstrlen(name, "d")
            pipe.hget(name, "m")
            size, mtime = pipe.execute()
        return None if mtime is None else KeyInfo(key, int(size), float(mtime))

    def list(self, prefix: str = "") -> Iterator[KeyInfo]:
        head = f"{self.namespace}:v:"
        with self._errors("list", prefix):
            names = sorted(
                {
                    _text(name)
                    for name in self._redis.scan_iter(
                        match=_glob_escape(head + prefix) + "*", count=_SCAN_BATCH
                    )
                }
            )
        for start in range(0, len(names), _SCAN_BATCH):
            batch = names[start : start + _SCAN_BATCH]
            with self._errors("list", prefix):
                pipe = self._redis.pipeline(transaction=False)
                for name in batch:
                    pipe.hstrlen(name, "d")
                    pipe.hget(name, "m")
                replies = pipe.execute()
            for index, name in enumerate(batch):
                size, mtime = replies[2 * index], replies[2 * index + 1]
                if mtime is not None:  # deleted since the scan
                    yield KeyInfo(name[len(head) :], int(size), float(mtime))

    def folder_stamps(self, prefix: str, inner: str) -> dict[str, FolderStamp] | None:
        """None: this backend has no cheap change stamps (see the protocol)."""
        return None

    def list_children(self, prefix: str = "", *, having: str | None = None) -> Iterator[str]:
        head = f"{self.namespace}:v:{check_prefix(prefix)}"
        pattern = _glob_escape(head) + "*"
        tail = ""
        if having is not None:
            tail = "/" + check_key(having)
            pattern += _glob_escape(tail)
        names = set()
        with self._errors("list", prefix):
            for found in self._redis.scan_iter(match=pattern, count=_SCAN_BATCH):
                rest = _text(found)[len(head) :]
                if having is None:
                    name, sep, _rest = rest.partition("/")
                    names.add(name + sep)
                elif rest.endswith(tail) and "/" not in rest[: -len(tail)]:
                    names.add(rest[: -len(tail)] + "/")
        return iter(sorted(names))

    def read_log(self, key: str) -> builtins.list[bytes]:
        name = self._log_key(key)
        with self._errors("read the log", key):
            records = self._redis.lrange(name, 0, -1)
        return [_bytes(record) for record in records]

    # -- writes -------------------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> bool:
        name = self._value_key(key)
        with self._errors("write", key):
            written = self._put_if_absent(keys=[name], args=[bytes(data)])
        return int(written) == 1

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        name = self._value_key(key)
        args = [
            b"0" if expected is None else b"1",
            b"" if expected is None else bytes(expected),
            b"0" if new is None else b"1",
            b"" if new is None else bytes(new),
        ]
        with self._errors("update", key):
            swapped = self._compare_and_swap(keys=[name], args=args)
        if int(swapped) != 1:
            raise ConflictError(f"{key} changed concurrently")

    def delete(self, key: str, *, sync: bool = True) -> bool:
        name = self._value_key(key)
        with self._errors("delete", key):
            return int(self._redis.delete(name)) == 1

    def touch(self, key: str) -> bool:
        name = self._value_key(key)
        with self._errors("touch", key):
            return int(self._touch(keys=[name])) == 1

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        name = self._value_key(key)
        with self._errors("delete", key):
            return int(self._delete_if_older(keys=[name], args=[repr(float(cutoff))])) == 1

    def append(self, key: str, record: bytes, *, sync: bool = True) -> None:
        if b"\n" in record:
            raise ValueError("log records must not contain newlines")
        name = self._log_key(key)
        with self._errors("append to", key):
            self._redis.rpush(name, bytes(record))

    def delete_log(self, key: str) -> None:
        name = self._log_key(key)
        with self._errors("delete the log", key):
            self._redis.delete(name)

    def expire_prefix(self, prefix: str, seconds: int) -> int:
        """Let Redis expire every value and log under ``prefix`` in ``seconds``.

        Returns how many Redis keys got the expiry.  It applies to what exists
        now: a key created later, or re-created after a delete, has none.
        """
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        count = 0
        with self._errors("expire", prefix):
            for kind in ("v", "l"):
                pattern = _glob_escape(f"{self.namespace}:{kind}:{prefix}") + "*"
                for name in self._redis.scan_iter(match=pattern, count=_SCAN_BATCH):
                    count += int(self._redis.expire(name, seconds))
        return count

    def close(self) -> None:
        with contextlib.suppress(redis.exceptions.RedisError):
            self._redis.close()


def _bytes(value: bytes | str) -> bytes:
    # The client is built without decode_responses, so replies are bytes.
    return value if isinstance(value, bytes) else value.encode()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
