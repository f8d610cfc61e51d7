"""S3 storage: a store under a prefix of an S3 (or S3-compatible) bucket.

URL: ``s3://BUCKET[/PREFIX][?single_writer=1]``.  Credentials, region and
endpoint come from the usual AWS configuration (``AWS_ACCESS_KEY_ID``,
``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` for MinIO, Ceph, R2 and the like).  Needs boto3:
``pip install 'ckpt[s3]'``.  The bucket must exist.

Layout: the value of key ``k`` is the object ``PREFIX/k``; the log at
``k`` is one immutable object per record under ``PREFIX/k.log/``, named
``TIME_NS-RANDOM`` so that concurrent writers never overwrite each other's
records and a listing sorts them by time.

Consistency model (S3 is strongly consistent for reads and lists after
writes):

* ``put_if_absent`` is a PUT with ``If-None-Match: *``: the server refuses
  it if the key exists.
* ``compare_and_swap`` reads the current value and its ETag, then PUTs with
  ``If-Match: ETAG`` (``If-None-Match: *`` when creating, a DELETE with
  ``If-Match`` when deleting): a writer that lost a race gets 412
  Precondition Failed (or 409), which becomes ``ConflictError``.
* ``touch`` copies the object onto itself, which sets its LastModified.
* ``delete_if_older`` is **not atomic on S3**: it reads LastModified with a
  HEAD, then deletes with ``If-Match`` on the ETag.  A ``touch`` does not
  change the ETag, so a touch landing between the HEAD and the DELETE is
  lost and the object deleted.  gc only deletes objects unreachable for a
  whole grace period, so this needs a writer that reuses a long-dead object
  in that window of a few milliseconds; ``ckpt verify`` reports the damage.
* S3 keeps LastModified to the second.  ``stat`` and ``list`` report it as
  is; ``delete_if_older`` counts an object as modified at the end of its
  second, so it never deletes an object touched at or after ``cutoff``.
* Log records from different machines are ordered by their writers'
  clocks.

At open the store checks that the endpoint honours conditional writes (a
probe object written twice with ``If-None-Match: *`` must fail the second
time) and refuses to run if not.  ``?single_writer=1`` skips the check and
the conditions: for endpoints without conditional writes, when one process
at a time writes to the store; concurrent writers could then lose updates.
"""

from __future__ import annotations

import builtins
import contextlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

import boto3
import botocore.exceptions

from ckpt.errors import (
    CkptError,
    ConflictError,
    InvalidNameError,
    StorageError,
    StoreNotFoundError,
)
from ckpt.storage.base import (
    FolderStamp,
    KeyInfo,
    KeyNotFoundError,
    check_key,
    check_prefix,
    is_key_component,
)

_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]\Z")
#: LastModified has whole seconds.
MTIME_RESOLUTION = 1.0
_CONFLICT_RETRIES = 5
_LOG_READERS = 8
#: Concurrent HEAD requests of ``list_children(having=...)``.
_EXISTENCE_CHECKERS = 16
_DELETE_BATCH = 1000
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_PRECONDITION = frozenset({"PreconditionFailed", "412"})
_CONCURRENT = frozenset({"ConditionalRequestConflict", "409"})
_UNSUPPORTED = frozenset({"NotImplemented", "501", "InvalidArgument", "InvalidRequest", "400"})
_PROBE_ETAG = '"00000000000000000000000000000000"'


_SESSION_LOCK = threading.Lock()
_SESSION: Any = None
_LOG_CLOCK_LOCK = threading.Lock()
_last_log_ns = 0


def _client() -> Any:
    """A new S3 client from one shared session, which loads botocore's models only once."""
    global _SESSION
    with _SESSION_LOCK:  # a boto3 session is not safe to use from several threads at once
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client("s3")


def _log_stamp() -> int:
    """Nanoseconds since the epoch, increasing within this process even if the clock steps back."""
    global _last_log_ns
    with _LOG_CLOCK_LOCK:
        _last_log_ns = max(time.time_ns(), _last_log_ns + 1)
        return _last_log_ns


def _code(exc: botocore.exceptions.ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


def parse_url(url: str) -> tuple[str, str, bool]:
    """Split ``s3://BUCKET/PREFIX?single_writer=1`` into (bucket, key prefix, single writer)."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise InvalidNameError(f"not an S3 URL: {url!r}")
    bucket = parts.netloc
    if not _BUCKET.match(bucket):
        raise InvalidNameError(f"invalid S3 bucket name {bucket!r} in {url!r}")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except InvalidNameError:
            raise InvalidNameError(f"invalid key prefix {prefix!r} in {url!r}") from None
        prefix += "/"
    single_writer = False
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "single_writer" or value not in ("0", "1", "true", "false"):
            raise InvalidNameError(
                f"unknown option {name}={value} in {url!r} (the only one is single_writer=1)"
            )
        single_writer = value in ("1", "true")
    return bucket, prefix, single_writer


class S3Storage:
    """Keys under one prefix of one bucket.  See the module docstring for the guarantees."""

    durable = True
    #: HEAD then DELETE: a touch in between is lost, so gc collects in two phases.
    atomic_delete_if_older = False

    def __init__(self, url: str) -> None:
        self.bucket, self.prefix, self.single_writer = parse_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix.rstrip('/')}".rstrip("/")
        if self.single_writer:
            self.url += "?single_writer=1"
        try:
            self._s3: Any = _client()
        except botocore.exceptions.BotoCoreError as exc:
            raise CkptError(f"cannot set up the S3 client for {self.url}: {exc}") from exc
        self.endpoint = str(self._s3.meta.endpoint_url)
        self._check_bucket()
        self.conditional_delete = False
        if not self.single_writer:
            self._probe_conditional_writes()

    # -- errors -------------------------------------------------------------

    def _raise(self, what: str, key: str, exc: Exception) -> NoReturn:
        """Turn a boto error into the ckpt error a caller can act on."""
        target = f"{key!r} in {self.url}" if key else self.url
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            raise CkptError(
                f"no AWS credentials for {self.url}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            ) from exc
        if isinstance(exc, botocore.exceptions.EndpointConnectionError):
            raise StorageError(f"cannot reach the S3 endpoint {self.endpoint}: {exc}") from exc
        if isinstance(exc, botocore.exceptions.ClientError):
            code = _code(exc)
            if code == "NoSuchBucket":
                raise StoreNotFoundError(f"S3 bucket {self.bucket!r} does not exist") from exc
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StorageError(
                    f"cannot {what} {target}: access denied ({code}); check the AWS credentials"
                ) from exc
            message = exc.response.get("Error", {}).get("Message") or code
            raise StorageError(f"cannot {what} {target}: {message} ({code})") from exc
        if isinstance(exc, botocore.exceptions.ParamValidationError) and "If" in str(exc):
            raise CkptError(
                f"this boto3 is too old for conditional writes ({exc}): "
                "pip install --upgrade 'ckpt[s3]'"
            ) from exc
        raise StorageError(f"cannot {what} {target}: {exc}") from exc

    @contextlib.contextmanager
    def _errors(self, what: str, key: str) -> Iterator[None]:
        try:
            yield
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            self._raise(what, key, exc)

    # -- opening ------------------------------------------------------------

    def _check_bucket(self) -> None:
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise StoreNotFoundError(
                    f"S3 bucket {self.bucket!r} does not exist at {self.endpoint} (create it first)"
                ) from exc
            self._raise("open", "", exc)
        except botocore.exceptions.BotoCoreError as exc:
            self._raise("open", "", exc)

    def _probe_conditional_writes(self) -> None:
        """Refuse an endpoint that ignores ``If-None-Match``; learn if DELETE honours ``If-Match``.

        The probe key has a name no ckpt key can have, so listings never show it.
        """
        probe = f"{self.prefix}ckpt-probe.tmp/{uuid.uuid4().hex}"
        refused = False
        with self._errors("probe", ""):
            try:
                self._s3.put_object(Bucket=self.bucket, Key=probe, Body=b"1", IfNoneMatch="*")
                try:
                    self._s3.put_object(Bucket=self.bucket, Key=probe, Body=b"2", IfNoneMatch="*")
                except botocore.exceptions.ClientError as exc:
                    if _code(exc) not in _PRECONDITION | _CONCURRENT:
                        raise
                    refused = True
                if refused:
                    try:
                        self._s3.delete_object(Bucket=self.bucket, Key=probe, IfMatch=_PROBE_ETAG)
                    except botocore.exceptions.ClientError as exc:
                        if _code(exc) in _PRECONDITION:
                            self.conditional_delete = True
                        elif _code(exc) not in _UNSUPPORTED:
                            raise
                    except botocore.exceptions.ParamValidationError:
                        pass  # a botocore without conditional deletes: plain deletes it is
            except botocore.exceptions.ClientError as exc:
                if _code(exc) not in _UNSUPPORTED:
                    raise
            finally:
                self._s3.delete_object(Bucket=self.bucket, Key=probe)
        if not refused:
            raise CkptError(
                f"the S3 endpoint {self.endpoint} does not honour conditional writes "
                "(If-None-Match), so concurrent writers to "
                f"{self.url} could overwrite each other; use an endpoint that supports them, "
                "or add ?single_writer=1 to the URL if only one process at a time writes"
            )

    # -- helpers ------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _read(self, key: str) -> tuple[bytes, str] | None:
        """The value of ``key`` and its ETag, or None."""
        try:
            reply = self._s3.get_object(Bucket=self.bucket, Key=self._name(key))
            return bytes(reply["Body"].read()), str(reply["ETag"])
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            self._raise("read", key, exc)
        except botocore.exceptions.BotoCoreError as exc:
            self._raise("read", key, exc)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            reply: dict[str, Any] = self._s3.head_object(Bucket=self.bucket, Key=self._name(key))
            return reply
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            self._raise("stat", key, exc)
        except botocore.exceptions.BotoCoreError as exc:
            self._raise("stat", key, exc)

    def _conditional_put(
        self, what: str, key: str, data: bytes, *, name: str | None = None, **condition: str
    ) -> bool:
        """PUT ``data`` at ``key`` (or at the raw object ``name``) under ``condition``;
        False if the condition failed.  A 409 (another conditional write to the object
        was in flight) is retried, as AWS advises."""
        target = self._name(key) if name is None else name
        if self.single_writer:
            condition = {}
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._s3.put_object(Bucket=self.bucket, Key=target, Body=data, **condition)
                return True
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if code in _PRECONDITION or (code in _NOT_FOUND and "IfMatch" in condition):
                    return False
                if code not in _CONCURRENT:
                    self._raise(what, key, exc)
                time.sleep(0.01 * 2**attempt)
            except botocore.exceptions.BotoCoreError as exc:
                self._raise(what, key, exc)
        raise ConflictError(
            f"cannot {what} {key!r} in {self.url}: other writers kept it busy "
            f"({_CONFLICT_RETRIES} times 409 ConditionalRequestConflict)"
        )

    def _conditional_delete(self, what: str, key: str, etag: str) -> bool:
        """DELETE if the object still has ``etag`` (when the endpoint can check); False if not."""
        condition = {"IfMatch": etag} if self.conditional_delete else {}
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._name(key), **condition)
            return True
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _PRECONDITION | _CONCURRENT | _NOT_FOUND:
                return False
            self._raise(what, key, exc)
        except botocore.exceptions.BotoCoreError as exc:
            self._raise(what, key, exc)

    def _list(self, what: str, prefix: str) -> Iterator[dict[str, Any]]:
        with self._errors(what, prefix):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                yield from page.get("Contents", ())

    # -- reads --------------------------------------------------------------

    def get(self, key: str) -> bytes:
        found = self._read(key)
        if found is None:
            raise KeyNotFoundError(key)
        return found[0]

    def stat(self, key: str) -> KeyInfo | None:
        head = self._head(key)
        if head is None:
            return None
        return KeyInfo(key, int(head["ContentLength"]), head["LastModified"].timestamp())

    def list(self, prefix: str = "") -> Iterator[KeyInfo]:
        for item in self._list("list", prefix):
            key = str(item["Key"])[len(self.prefix) :]
            try:
                check_key(key)
            except InvalidNameError:
                continue  # log records, probes: not keys of this store
            yield KeyInfo(key, int(item["Size"]), item["LastModified"].timestamp())

    def folder_stamps(self, prefix: str, inner: str) -> dict[str, FolderStamp] | None:
        """None: this backend has no cheap change stamps (see the protocol)."""
        return None

    def list_children(self, prefix: str = "", *, having: str | None = None) -> Iterator[str]:
        """``ListObjectsV2`` with ``Delimiter="/"``: one request per 1,000 children.  With
        ``having``, one HEAD request per folder on top (16 at a time)."""
        check_prefix(prefix)
        if having is not None:
            check_key(having)
        start = len(self.prefix) + len(prefix)
        names = set()
        with self._errors("list", prefix):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/"
            )
            for page in pages:
                for item in page.get("CommonPrefixes", ()):
                    names.add(str(item["Prefix"])[start:])
                if having is None:
                    for item in page.get("Contents", ()):
                        names.add(str(item["Key"])[start:])
        # Log records and probes live in folders whose names are not key components.
        found = sorted(name for name in names if is_key_component(name.removesuffix("/")))
        if having is None:
            return iter(found)
        folders = [name for name in found if name.endswith("/")]
        if not folders:
            return iter(())
        with ThreadPoolExecutor(max_workers=min(_EXISTENCE_CHECKERS, len(folders))) as pool:
            present = builtins.list(
                pool.map(lambda name: self._head(prefix + name + having) is not None, folders)
            )
        return iter([name for name, there in zip(folders, present, strict=True) if there])

    def read_log(self, key: str) -> builtins.list[bytes]:
        check_key(key)
        names = sorted(str(item["Key"]) for item in self._list("read the log", f"{key}.log/"))
        if not names:
            return []

        def fetch(name: str) -> bytes | None:
            with self._errors("read the log", key):
                try:
                    reply = self._s3.get_object(Bucket=self.bucket, Key=name)
                except botocore.exceptions.ClientError as exc:
                    if _code(exc) in _NOT_FOUND:
                        return None  # removed by a concurrent delete_log
                    raise
                return bytes(reply["Body"].read())

        with ThreadPoolExecutor(max_workers=min(_LOG_READERS, len(names))) as pool:
            records = builtins.list(pool.map(fetch, names))
        return [record for record in records if record is not None]

    # -- writes -------------------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if self.single_writer and self._head(key) is not None:
            return False
        return self._conditional_put("write", key, bytes(data), IfNoneMatch="*")

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        if expected is None:
            if new is None:
                swapped = self._head(key) is None
            else:
                if self.single_writer and self._head(key) is not None:
                    raise ConflictError(f"{key} changed concurrently")
                swapped = self._conditional_put("update", key, bytes(new), IfNoneMatch="*")
        else:
            current = self._read(key)
            if current is None or current[0] != expected:
                raise ConflictError(f"{key} changed concurrently")
            etag = current[1]
            if new is None:
                swapped = self._conditional_delete("update", key, etag)
            else:
                swapped = self._conditional_put("update", key, bytes(new), IfMatch=etag)
        if not swapped:
            raise ConflictError(f"{key} changed concurrently")

    def delete(self, key: str, *, sync: bool = True) -> bool:
        """Remove ``key``.  S3 does not say whether a DELETE removed anything, so
        the answer comes from a HEAD just before."""
        if self._head(key) is None:
            return False
        with self._errors("delete", key):
            self._s3.delete_object(Bucket=self.bucket, Key=self._name(key))
        return True

    def touch(self, key: str) -> bool:
        """Copy the object onto itself (same bytes, new LastModified).  Meant for
        immutable objects: a copy racing a write to the same key may undo it."""
        name = self._name(key)
        try:
            self._s3.copy_object(
                Bucket=self.bucket,
                Key=name,
                CopySource={"Bucket": self.bucket, "Key": name},
                MetadataDirective="REPLACE",
            )
            return True
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return False
            self._raise("touch", key, exc)
        except botocore.exceptions.BotoCoreError as exc:
            self._raise("touch", key, exc)

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        """Best effort on S3: see the module docstring for the race this cannot close."""
        head = self._head(key)
        if head is None:
            return False
        if head["LastModified"].timestamp() + MTIME_RESOLUTION > cutoff:
            return False
        return self._conditional_delete("delete", key, str(head["ETag"]))

    def append(self, key: str, record: bytes, *, sync: bool = True) -> None:
        if b"\n" in record:
            raise ValueError("log records must not contain newlines")
        check_key(key)
        for _attempt in range(_CONFLICT_RETRIES):
            name = f"{self.prefix}{key}.log/{_log_stamp():020d}-{secrets.token_hex(4)}"
            if self._conditional_put("append to", key, bytes(record), name=name, IfNoneMatch="*"):
                return
        raise StorageError(f"cannot append to {key!r} in {self.url}: no free record name")

    def delete_log(self, key: str) -> None:
        check_key(key)
        names = [str(item["Key"]) for item in self._list("delete the log", f"{key}.log/")]
        for start in range(0, len(names), _DELETE_BATCH):
            batch = names[start : start + _DELETE_BATCH]
            with self._errors("delete the log", key):
                reply = self._s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
            errors = reply.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"cannot delete the log {key!r} in {self.url}: "
                    f"{first.get('Message') or first.get('Code')} ({len(errors)} records left)"
                )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._s3.close()
