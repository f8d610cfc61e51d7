"""What is particular to one backend: URLs, configuration, and errors for people."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

import ckpt
from ckpt.errors import CkptError, InvalidNameError, StorageError, StoreNotFoundError
from ckpt.storage import open_storage


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(CkptError, match="unknown store URL scheme 'ftp'"):
        open_storage("ftp://example/store")


@pytest.mark.parametrize(
    ("url", "module", "library", "extra"),
    [
        ("s3://bucket/prefix", "ckpt.storage.s3", "boto3", "s3"),
        ("redis://127.0.0.1:1/0", "ckpt.storage.redis", "redis", "redis"),
        ("postgresql://127.0.0.1:1/db", "ckpt.storage.postgres", "psycopg", "postgres"),
        ("postgres://127.0.0.1:1/db", "ckpt.storage.postgres", "psycopg_pool", "postgres"),
    ],
)
def test_a_missing_client_library_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, library: str, extra: str
) -> None:
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, library, None)  # makes `import LIBRARY` fail
    with pytest.raises(CkptError) as info:
        open_storage(url)
    assert str(info.value) == (
        f"{url.partition(':')[0]}:// stores need the {library} package: pip install 'ckpt[{extra}]'"
    )


def test_import_ckpt_loads_no_backend_library() -> None:
    import subprocess

    code = (
        "import sys, ckpt, ckpt.storage, ckpt.repository; "
        "print(sorted(m for m in ('boto3', 'botocore', 'redis', 'psycopg', 'psycopg_pool')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- SQLite -------------------------------------------------------------------------


def test_sqlite_opening_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'sub' / 'store.db'}"
    with pytest.raises(StoreNotFoundError):
        ckpt.open(url)
    assert not (tmp_path / "sub").exists()
    ckpt.init(url).close()
    assert (tmp_path / "sub" / "store.db").is_file()


def test_sqlite_uses_wal_and_the_asked_durability(tmp_path: Path) -> None:
    from ckpt.storage.sqlite import SqliteStorage

    path = tmp_path / "store.db"
    for durable, level in ((True, 2), (False, 1)):  # synchronous = FULL, NORMAL
        storage = open_storage(f"sqlite://{path}", durable=durable)
        assert isinstance(storage, SqliteStorage)
        storage.put_if_absent(f"k{level}", b"x")
        assert storage.durable is durable
        assert storage._connect().execute("PRAGMA synchronous").fetchone()[0] == level
        storage.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_relative_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_storage("sqlite://rel/store.db")
    storage.put_if_absent("k", b"v")
    storage.close()
    assert storage.url == f"sqlite://{tmp_path / 'rel' / 'store.db'}"
    assert (tmp_path / "rel" / "store.db").is_file()


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not sqlite" * 100)
    storage = open_storage(f"sqlite://{path}")
    with pytest.raises(StorageError, match="is not a usable SQLite database"):
        storage.get("config")


# -- Redis ---------------------------------------------------------------------------


def test_redis_url_forms() -> None:
    from ckpt.storage.redis import parse_url

    assert parse_url("redis://h:1/2?prefix=team/a") == (
        "redis://h:1/2",
        "team/a",
        "redis://h:1/2?prefix=team/a",
    )
    assert parse_url("redis://h:1/3/team/b")[1:] == ("team/b", "redis://h:1/3?prefix=team/b")
    assert parse_url("redis://h")[1:] == ("ckpt", "redis://h/0?prefix=ckpt")
    client_url, _namespace, shown = parse_url("rediss://:secret@h:1/0?socket_timeout=5")
    assert client_url == "rediss://:secret@h:1/0?socket_timeout=5"
    assert "secret" not in shown
    for bad in ("redis://h/x", "redis://h/0/a?prefix=b", "redis://h/0?prefix=a*b"):
        with pytest.raises(InvalidNameError):
            parse_url(bad)


def test_redis_unreachable_server_is_one_clear_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(
            StorageError, match=f"cannot connect to Redis at redis://127.0.0.1:{port}"
        ):
            open_storage(f"redis://127.0.0.1:{port}/0")


def test_redis_namespaces_are_separate(redis_server: str) -> None:
    first = open_storage(f"{redis_server}/0?prefix=ns-one")
    second = open_storage(f"{redis_server}/0/ns-two")
    try:
        first.put_if_absent("k", b"one")
        first.append("log", b"one")
        assert second.stat("k") is None
        assert second.read_log("log") == []
        assert [info.key for info in second.list()] == []
        assert [info.key for info in first.list()] == ["k"]
    finally:
        for storage in (first, second):
            storage.delete("k")
            storage.delete_log("log")
            storage.close()


def test_redis_reports_the_servers_durability(redis_server: str) -> None:
    storage = open_storage(f"{redis_server}/0?prefix=durability")
    try:
        assert storage.durable is False  # the test server runs with appendonly no
    finally:
        storage.close()


def test_redis_expire_prefix(redis_server: str) -> None:
    import redis

    from ckpt.storage.redis import RedisStorage

    storage = open_storage(f"{redis_server}/0?prefix=expiry")
    assert isinstance(storage, RedisStorage)
    client = redis.Redis.from_url(redis_server)
    try:
        storage.put_if_absent("jobs/a/HEAD", b"main")
        storage.append("jobs/a/reflog", b"r")
        storage.put_if_absent("jobs/b/HEAD", b"main")
        assert storage.expire_prefix("jobs/a/", 3600) == 2
        assert 0 < client.ttl("expiry:v:jobs/a/HEAD") <= 3600
        assert 0 < client.ttl("expiry:l:jobs/a/reflog") <= 3600
        assert client.ttl("expiry:v:jobs/b/HEAD") == -1
        with pytest.raises(ValueError):
            storage.expire_prefix("jobs/", 0)
    finally:
        client.delete("expiry:v:jobs/a/HEAD", "expiry:l:jobs/a/reflog", "expiry:v:jobs/b/HEAD")
        client.close()
        storage.close()


# -- S3 --------------------------------------------------------------------------------


def test_s3_url_forms() -> None:
    from ckpt.storage.s3 import parse_url

    assert parse_url("s3://bucket") == ("bucket", "", False)
    assert parse_url("s3://bucket/a/b/") == ("bucket", "a/b/", False)
    assert parse_url("s3://bucket/p?single_writer=1") == ("bucket", "p/", True)
    for bad in ("s3://b/p", "s3://bucket/../x", "s3://bucket/p?other=1", "s3://bu cket/p"):
        with pytest.raises(InvalidNameError):
            parse_url(bad)


def test_s3_missing_bucket_is_store_not_found(s3_server: str) -> None:
    with pytest.raises(StoreNotFoundError, match="S3 bucket 'no-such-bucket-here' does not exist"):
        ckpt.open("s3://no-such-bucket-here/store")


def test_s3_unreachable_endpoint_is_one_clear_error(
    s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        with pytest.raises(StorageError, match=f"cannot reach the S3 endpoint {endpoint}"):
            open_storage("s3://bucket/store")


def test_s3_probe_leaves_nothing_behind_and_finds_conditional_deletes(s3_bucket: str) -> None:
    import boto3

    from ckpt.storage.s3 import S3Storage

    storage = open_storage(f"s3://{s3_bucket}/store")
    assert isinstance(storage, S3Storage)
    assert storage.conditional_delete is True  # moto honours If-Match on DELETE
    assert storage.durable is True
    listing = boto3.client("s3").list_objects_v2(Bucket=s3_bucket)
    assert listing.get("Contents", []) == []
    storage.close()


def test_s3_log_records_are_separate_objects(s3_bucket: str) -> None:
    import boto3

    storage = open_storage(f"s3://{s3_bucket}/store")
    for record in (b"one", b"two", b"three"):
        storage.append("jobs/j/reflog", record)
    storage.close()
    listing = boto3.client("s3").list_objects_v2(Bucket=s3_bucket)
    names = sorted(item["Key"] for item in listing["Contents"])
    assert len(names) == 3
    assert all(name.startswith("store/jobs/j/reflog.log/") for name in names)


def test_s3_single_writer_mode(s3_bucket: str) -> None:
    """Without conditional requests the store still detects what a lone writer can see."""
    from ckpt.errors import ConflictError

    storage = open_storage(f"s3://{s3_bucket}/store?single_writer=1")
    assert storage.url == f"s3://{s3_bucket}/store?single_writer=1"
    assert storage.put_if_absent("k", b"1") is True
    assert storage.put_if_absent("k", b"2") is False
    storage.compare_and_swap("k", b"1", b"3")
    with pytest.raises(ConflictError):
        storage.compare_and_swap("k", b"1", b"4")
    with pytest.raises(ConflictError):
        storage.compare_and_swap("k", None, b"4")
    assert storage.get("k") == b"3"
    storage.close()


# -- Local ----------------------------------------------------------------------------


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-file", "named-temp"])
def test_local_put_if_absent_leaves_only_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    from ckpt.storage import local

    if unnamed and not local._UNNAMED_OK:
        pytest.skip("this system has no O_TMPFILE")
    monkeypatch.setattr(local, "_UNNAMED_OK", unnamed)
    storage = local.LocalStorage(tmp_path)
    assert storage.put_if_absent("packs/a", b"first") is True
    assert storage.put_if_absent("packs/a", b"second") is False  # never replaced
    assert storage.get("packs/a") == b"first"
    assert sorted(p.name for p in (tmp_path / "packs").iterdir()) == ["a"]
    assert (tmp_path / "packs" / "a").stat().st_mode & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current


def test_local_lock_owner_record_is_rewritten_in_place(tmp_path: Path) -> None:
    import os
    import socket

    from ckpt.storage.local import LocalStorage

    storage = LocalStorage(tmp_path)
    (tmp_path / "refs").mkdir()
    # A lock file left with a longer record (another host, an older ckpt) is overwritten
    # without truncation: the first line names the latest holder.
    (tmp_path / "refs" / "main.lock").write_bytes(b"x" * 300 + b"\n")
    storage.compare_and_swap("refs/main", None, b"v1\n")
    first_line = (tmp_path / "refs" / "main.lock").read_bytes().split(b"\n")[0].decode()
    assert first_line.split()[0] == f"{os.getpid()}@{socket.gethostname()}"
    assert storage.get("refs/main") == b"v1\n"


def test_local_deleted_keys_leave_no_lock_file(tmp_path: Path) -> None:
    from ckpt.storage.local import LocalStorage

    storage = LocalStorage(tmp_path)
    storage.compare_and_swap("refs/heads/fix/ending", None, b"a\n")
    storage.compare_and_swap("refs/tags/v1", None, b"b\n")
    assert (tmp_path / "refs" / "heads" / "fix" / "ending.lock").exists()
    storage.compare_and_swap("refs/heads/fix/ending", b"a\n", None)  # what branch -d does
    assert storage.delete("refs/tags/v1")  # what deleting a job does
    left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert left in ([], [".journal", ".journal.lock"])  # the store's journal, not the keys'
    storage.compare_and_swap("refs/heads/fix/ending", None, b"again\n")  # locks anew
    assert storage.get("refs/heads/fix/ending") == b"again\n"


def test_branch_and_tag_deletion_leave_no_lock_files(tmp_path: Path) -> None:
    import ckpt

    with ckpt.init(tmp_path / "store") as repo:
        job = repo.job("novel")
        job.save("outline", 1)
        job.branch("try/terse")
        job.tag("v1")
        job.delete_branch("try/terse")
        job.delete_tag("v1")
        repo.job("other").save("outline", 2)
        repo.delete_job("other")
    locks = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.lock"))
    assert locks == [
        "store/.journal.lock",
        "store/config.lock",
        "store/jobs/novel/HEAD.lock",
        "store/jobs/novel/meta.lock",
        "store/jobs/novel/reflog.log.lock",
        "store/jobs/novel/refs/heads/main.lock",
    ]


def test_local_range_reads_see_a_replaced_or_removed_value(tmp_path: Path) -> None:
    from ckpt.storage.base import KeyNotFoundError
    from ckpt.storage.local import LocalStorage

    storage = LocalStorage(tmp_path)
    storage.put_if_absent("packs/p", b"0123456789")
    assert storage.get_range("packs/p", 2, 3) == b"234"  # the file now stays open
    storage.delete("packs/p")
    storage.put_if_absent("packs/p", b"abcdefghij")
    assert storage.get_range("packs/p", 2, 3) == b"cde"  # not the unlinked file's bytes
    storage.delete("packs/p")
    with pytest.raises(KeyNotFoundError):
        storage.get_range("packs/p", 0, 1)
    storage.close()


def test_local_range_reads_keep_a_bounded_number_of_files_open(tmp_path: Path) -> None:
    import os

    from ckpt.storage import local

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    storage = local.LocalStorage(tmp_path)
    for n in range(3 * local._OPEN_FILES):
        storage.put_if_absent(f"packs/p{n}", b"x" * 10)
        assert storage.get_range(f"packs/p{n}", 0, 1) == b"x"
    assert open_files() - before == local._OPEN_FILES
    storage.close()
    assert open_files() == before
    again = local.LocalStorage(tmp_path)
    again.get_range("packs/p0", 0, 1)
    del again  # dropped without close(): its files are closed too
    import gc

    gc.collect()
    assert open_files() == before


def test_a_dropped_local_storage_closes_its_files_at_once(tmp_path: Path) -> None:
    """Nothing keeps a dropped storage alive until the cyclic gc runs (its journal refers
    to it weakly): a process that opens stores again and again does not pile up files."""
    import gc
    import os

    from ckpt.storage.local import LocalStorage

    LocalStorage(tmp_path).put_if_absent("packs/p", b"x" * 10)  # the journal exists
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(20):
            storage = LocalStorage(tmp_path)
            assert storage.get_range("packs/p", 0, 1) == b"x"
            storage.compare_and_swap("refs/r", None, b"a\n")
            storage.compare_and_swap("refs/r", b"a\n", None)
            del storage
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()
