"""The storage contract (see ``ckpt/storage/base.py``), run against every backend.

Each test gets a fresh, empty store of one backend through the ``storage``
and ``store_url`` fixtures of ``tests/conftest.py``.  A backend is correct
when it passes this file; the layers above rely on nothing else.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pytest

from ckpt.errors import ConflictError, InvalidNameError
from ckpt.storage import Storage, open_storage
from ckpt.storage.base import KeyInfo, KeyNotFoundError, check_key

WORKERS = Path(__file__).with_name("_workers.py")
RACE_WRITERS = 4
RACE_TIMES = 50
#: moto serves one request at a time, at some 30 ms each: fewer rounds on S3.
RACE_TIMES_S3 = 20
RACE_TIMEOUT_SECONDS = 600


def wait_past(moment: float, resolution: float) -> None:
    """Return once the clock is far enough past ``moment`` for mtimes to tell them apart."""
    while time.time() <= moment + resolution:
        time.sleep(min(0.05, resolution))


def keys(infos: Iterable[KeyInfo]) -> list[str]:
    return sorted(info.key for info in infos)


# -- values ------------------------------------------------------------------


def test_backend_satisfies_the_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)
    assert isinstance(storage.durable, bool)
    assert isinstance(storage.url, str) and storage.url


def test_get_of_a_missing_key_raises(storage: Storage) -> None:
    with pytest.raises(KeyNotFoundError) as info:
        storage.get("nothing/here")
    assert info.value.key == "nothing/here"
    assert storage.stat("nothing/here") is None


def test_put_if_absent_stores_once_and_never_replaces(storage: Storage) -> None:
    assert storage.put_if_absent("objects/ab/cdef", b"first") is True
    assert storage.put_if_absent("objects/ab/cdef", b"second") is False
    assert storage.get("objects/ab/cdef") == b"first"


def test_values_round_trip_any_bytes(storage: Storage) -> None:
    every_byte = bytes(range(256)) * 3 + b"\n\r\x00end"
    assert storage.put_if_absent("bin", every_byte)
    assert storage.get("bin") == every_byte
    assert storage.put_if_absent("empty", b"")
    assert storage.get("empty") == b""
    empty = storage.stat("empty")
    assert empty is not None and empty.size == 0


def test_stat_reports_size_and_mtime(storage: Storage, mtime_resolution: float) -> None:
    before = time.time()
    storage.put_if_absent("a/value", b"12345")
    after = time.time()
    info = storage.stat("a/value")
    assert info is not None
    assert info.key == "a/value"
    assert info.size == 5
    # Seconds since the epoch, from a clock that agrees with ours.
    assert before - mtime_resolution - 1 <= info.mtime <= after + 1


def test_url_reopens_the_same_store(storage: Storage) -> None:
    storage.put_if_absent("config", b"{}")
    storage.append("events", b"one")
    again = open_storage(storage.url)
    try:
        assert again.get("config") == b"{}"
        assert again.read_log("events") == [b"one"]
    finally:
        again.close()


# -- compare-and-swap ----------------------------------------------------------


def test_compare_and_swap_creates_swaps_and_deletes(storage: Storage) -> None:
    storage.compare_and_swap("refs/main", None, b"c1")
    assert storage.get("refs/main") == b"c1"
    storage.compare_and_swap("refs/main", b"c1", b"c2")
    assert storage.get("refs/main") == b"c2"
    storage.compare_and_swap("refs/main", b"c2", None)
    assert storage.stat("refs/main") is None
    with pytest.raises(KeyNotFoundError):
        storage.get("refs/main")
    storage.compare_and_swap("refs/main", None, b"c3")
    assert storage.get("refs/main") == b"c3"


def test_compare_and_swap_conflicts_change_nothing(storage: Storage) -> None:
    storage.compare_and_swap("ref", None, b"old")
    with pytest.raises(ConflictError):
        storage.compare_and_swap("ref", None, b"new")  # expected absent, but it exists
    with pytest.raises(ConflictError):
        storage.compare_and_swap("ref", b"stale", b"new")
    with pytest.raises(ConflictError):
        storage.compare_and_swap("ref", b"stale", None)
    with pytest.raises(ConflictError):
        storage.compare_and_swap("ref", b"ol", b"new")  # a prefix of the value is not the value
    assert storage.get("ref") == b"old"
    with pytest.raises(ConflictError):
        storage.compare_and_swap("missing", b"old", b"new")
    assert storage.stat("missing") is None


def test_compare_and_swap_can_write_an_empty_value(storage: Storage) -> None:
    storage.compare_and_swap("k", None, b"")
    assert storage.get("k") == b""
    storage.compare_and_swap("k", b"", b"x")
    assert storage.get("k") == b"x"


# -- delete, touch, delete_if_older ----------------------------------------------


def test_delete(storage: Storage) -> None:
    storage.put_if_absent("a/b", b"x")
    assert storage.delete("a/b") is True
    assert storage.delete("a/b") is False
    assert storage.delete("never/was") is False
    with pytest.raises(KeyNotFoundError):
        storage.get("a/b")
    assert storage.put_if_absent("a/b", b"again") is True


def test_touch_updates_mtime_and_keeps_the_value(storage: Storage, mtime_resolution: float) -> None:
    storage.put_if_absent("objects/x", b"payload")
    first = storage.stat("objects/x")
    assert first is not None
    wait_past(max(first.mtime, time.time()), mtime_resolution)
    assert storage.touch("objects/x") is True
    second = storage.stat("objects/x")
    assert second is not None
    assert second.mtime > first.mtime
    assert storage.get("objects/x") == b"payload"


def test_touch_of_a_missing_key_creates_nothing(storage: Storage) -> None:
    assert storage.touch("objects/missing") is False
    assert storage.stat("objects/missing") is None
    assert keys(storage.list()) == []


def test_delete_if_older_respects_the_cutoff(storage: Storage, mtime_resolution: float) -> None:
    storage.put_if_absent("objects/old", b"x")
    info = storage.stat("objects/old")
    assert info is not None
    assert storage.delete_if_older("objects/old", info.mtime) is False
    assert storage.delete_if_older("objects/old", info.mtime - 3600) is False
    assert storage.get("objects/old") == b"x"
    wait_past(max(info.mtime, time.time()), mtime_resolution)
    assert storage.delete_if_older("objects/old", time.time()) is True
    assert storage.stat("objects/old") is None
    assert storage.delete_if_older("objects/old", time.time()) is False


def test_a_key_touched_after_the_listing_is_not_deleted(
    storage: Storage, mtime_resolution: float
) -> None:
    """What gc does: list, pick keys older than the cutoff, delete_if_older them.

    A writer that reuses (touches) one of them after the listing must win.
    """
    for name in ("objects/a", "objects/b"):
        storage.put_if_absent(name, name.encode())
    newest = max(info.mtime for info in storage.list("objects/"))
    wait_past(max(newest, time.time()), mtime_resolution)
    cutoff = time.time()
    candidates = [info.key for info in storage.list("objects/") if info.mtime < cutoff]
    assert sorted(candidates) == ["objects/a", "objects/b"]
    wait_past(cutoff, mtime_resolution)
    assert storage.touch("objects/a") is True
    deleted = [key for key in candidates if storage.delete_if_older(key, cutoff)]
    assert deleted == ["objects/b"]
    assert storage.get("objects/a") == b"objects/a"


# -- listing ----------------------------------------------------------------------


def test_list_gives_the_keys_under_a_prefix(storage: Storage) -> None:
    values = {
        "a/x": b"1",
        "a/y/z": b"22",
        "ab/x": b"333",
        "b": b"4444",
        "jobs/j1/HEAD": b"ref",
    }
    for key, value in values.items():
        storage.put_if_absent(key, value)
    everything = list(storage.list())
    assert keys(everything) == sorted(values)
    assert {info.key: info.size for info in everything} == {k: len(v) for k, v in values.items()}
    assert keys(storage.list("")) == sorted(values)
    assert keys(storage.list("a/")) == ["a/x", "a/y/z"]
    assert keys(storage.list("a/y/")) == ["a/y/z"]
    assert keys(storage.list("ab/")) == ["ab/x"]
    assert keys(storage.list("jobs/")) == ["jobs/j1/HEAD"]
    assert keys(storage.list("c/")) == []


def test_list_shows_no_logs_locks_or_temporary_files(storage: Storage) -> None:
    storage.compare_and_swap("jobs/j/refs/main", None, b"c1")
    storage.compare_and_swap("jobs/j/refs/main", b"c1", b"c2")
    storage.append("jobs/j/reflog", b"moved")
    storage.append("jobs/j/refs/main", b"a log next to a value")
    storage.put_if_absent("jobs/j/HEAD", b"main")
    storage.touch("jobs/j/HEAD")
    listed = keys(storage.list())
    assert listed == ["jobs/j/HEAD", "jobs/j/refs/main"]
    for key in listed:
        check_key(key)
    assert keys(storage.list("jobs/j/")) == listed


def test_list_of_an_empty_store_is_empty(storage: Storage) -> None:
    assert keys(storage.list()) == []
    assert keys(storage.list("objects/")) == []


def test_list_children_gives_one_level(storage: Storage) -> None:
    for key in (
        "config",
        "jobs/a/HEAD",
        "jobs/a/meta",
        "jobs/a/refs/heads/main",
        "jobs/b-x/refs/heads/main",
        "jobs/b/HEAD",
        "jobs/c.d/HEAD",
        "jobs/c/meta",
        "jobs/top",
        "packs/" + "1" * 64,
        "packs/" + "2" * 64,
    ):
        storage.put_if_absent(key, b"x")
    storage.append("jobs/d/reflog", b"a log makes no key")
    storage.append("jobs/a/reflog", b"nor here")
    assert list(storage.list_children()) == ["config", "jobs/", "packs/"]
    # A folder holding only a log (d/) MAY be listed: only `having` promises a key below.
    listed = list(storage.list_children("jobs/"))
    assert [name for name in listed if name != "d/"] == ["a/", "b-x/", "b/", "c.d/", "c/", "top"]
    assert list(storage.list_children("jobs/a/")) == ["HEAD", "meta", "refs/"]
    assert list(storage.list_children("jobs/a/refs/heads/")) == ["main"]
    assert list(storage.list_children("packs/")) == ["1" * 64, "2" * 64]
    assert list(storage.list_children("nothing/")) == []
    assert list(storage.list_children("jobs/top/")) == []


def test_list_children_having_a_key(storage: Storage) -> None:
    for key in ("jobs/a/HEAD", "jobs/b/meta", "jobs/c/HEAD", "jobs/c/refs/heads/main", "jobs/x"):
        storage.put_if_absent(key, b"x")
    storage.append("jobs/d/reflog", b"record")
    assert list(storage.list_children("jobs/", having="HEAD")) == ["a/", "c/"]
    assert list(storage.list_children("jobs/", having="refs/heads/main")) == ["c/"]
    assert list(storage.list_children(having="a/HEAD")) == ["jobs/"]
    assert list(storage.list_children("nothing/", having="HEAD")) == []


def test_list_children_after_deletes(storage: Storage) -> None:
    """Every backend drops a key once deleted; ``having`` drops its folder too, while a
    plain listing MAY keep the emptied folder (a local directory stays behind)."""
    storage.compare_and_swap("jobs/gone/HEAD", None, b"ref")
    storage.put_if_absent("jobs/gone/meta", b"{}")
    storage.put_if_absent("jobs/kept/HEAD", b"ref")
    storage.append("jobs/gone/reflog", b"moved")
    storage.delete("jobs/gone/meta")
    assert list(storage.list_children("jobs/gone/")) == ["HEAD"]
    storage.compare_and_swap("jobs/gone/HEAD", b"ref", None)
    assert list(storage.list_children("jobs/gone/")) == []
    assert list(storage.list_children("jobs/", having="HEAD")) == ["kept/"]
    assert set(storage.list_children("jobs/")) - {"gone/"} == {"kept/"}


@pytest.mark.parametrize("prefix", ["jobs", "/jobs/", "jobs//", "../", "a.lock/", "x/.."])
def test_list_children_refuses_an_invalid_prefix(storage: Storage, prefix: str) -> None:
    storage.put_if_absent("jobs/a/HEAD", b"x")
    with pytest.raises(InvalidNameError):
        list(storage.list_children(prefix))
    with pytest.raises(InvalidNameError):
        list(storage.list_children("jobs/", having=prefix.strip("/") + "/"))


# -- logs --------------------------------------------------------------------------


def test_append_and_read_log_keep_order(storage: Storage) -> None:
    assert storage.read_log("jobs/j/reflog") == []
    records = [f"record {i} \x00\xff".encode("latin-1") for i in range(25)]
    for record in records:
        storage.append("jobs/j/reflog", record)
    assert storage.read_log("jobs/j/reflog") == records


def test_logs_and_values_are_separate(storage: Storage) -> None:
    storage.append("k", b"logged")
    with pytest.raises(KeyNotFoundError):
        storage.get("k")
    storage.put_if_absent("k", b"value")
    assert storage.read_log("k") == [b"logged"]
    assert storage.get("k") == b"value"
    storage.delete("k")
    assert storage.read_log("k") == [b"logged"]


def test_log_records_must_not_contain_newlines(storage: Storage) -> None:
    with pytest.raises(ValueError):
        storage.append("log", b"two\nlines")
    assert storage.read_log("log") == []


def test_delete_log(storage: Storage) -> None:
    storage.append("a/log", b"one")
    storage.append("a/log", b"two")
    storage.append("a/other", b"kept")
    storage.delete_log("a/log")
    assert storage.read_log("a/log") == []
    assert storage.read_log("a/other") == [b"kept"]
    storage.delete_log("a/log")
    storage.delete_log("never/logged")
    storage.append("a/log", b"fresh")
    assert storage.read_log("a/log") == [b"fresh"]


# -- names --------------------------------------------------------------------------

BAD_KEYS = [
    "",
    "../x",
    "a/../b",
    "/abs",
    "a//b",
    "a/",
    ".hidden",
    "x.lock",
    "a/b.log",
    "a/b.log/c",
    "c.tmp",
    "sp ace",
    "back\\slash",
    "nul\x00",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_invalid_keys_are_refused(storage: Storage, key: str) -> None:
    operations = [
        lambda: storage.get(key),
        lambda: storage.stat(key),
        lambda: storage.put_if_absent(key, b"x"),
        lambda: storage.compare_and_swap(key, None, b"x"),
        lambda: storage.delete(key),
        lambda: storage.touch(key),
        lambda: storage.delete_if_older(key, time.time()),
        lambda: storage.append(key, b"x"),
        lambda: storage.read_log(key),
        lambda: storage.delete_log(key),
    ]
    for operation in operations:
        with pytest.raises(InvalidNameError):
            operation()
    assert keys(storage.list()) == []


# -- races between writers --------------------------------------------------------


def _load_workers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ckpt_storage_test_workers", WORKERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def race_times(url: str) -> int:
    return RACE_TIMES_S3 if url.startswith("s3://") else RACE_TIMES


def race(url: str, mode: str, key: str, *, writers: int, times: int) -> list[dict[str, int]]:
    """Run ``writers`` workers of ``mode`` at once; return their results.

    Workers are processes, except for the in-memory backend, whose store lives
    in one process: there they are threads.
    """
    if url.startswith("memory://"):
        workers = _load_workers()
        barrier = threading.Barrier(writers)
        results: list[dict[str, int]] = [{} for _ in range(writers)]

        def work(index: int) -> None:
            storage = open_storage(url)
            barrier.wait()
            results[index] = workers.run(mode, storage, key, times, f"w{index}")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKERS), mode, url, key, str(times), f"w{index}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(writers)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.strip() != "ready":
                _out, err = process.communicate(timeout=RACE_TIMEOUT_SECONDS)
                pytest.fail(f"a worker failed to start: {line}{err}")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outcomes = []
        for process in processes:
            out, err = process.communicate(timeout=RACE_TIMEOUT_SECONDS)
            assert process.returncode == 0, err
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
        return outcomes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_concurrent_compare_and_swap_loses_no_update(store_url: str) -> None:
    """Several processes increment one counter with compare-and-swap, retrying on conflict.

    Every swap that returned must be counted: a lost update (two writers both
    succeeding from the same old value) leaves the counter short.

    On S3 this runs against moto, which serves the test one request at a time
    (see ``tests/conftest.py``): moto checks ``If-Match`` and then writes
    without a lock, so it cannot show that an endpoint applies conditional
    writes atomically under truly parallel requests (AWS S3 guarantees that;
    ``docs/backends.md``).  What it does show is the client side: that every
    write is conditional on the ETag that was read, that a 412 becomes a
    ConflictError rather than a lost update, and that no failed write is
    reported as a success.  Without the conditions the racing processes
    would overwrite each other and this test would fail.
    """
    times = race_times(store_url)
    results = race(store_url, "increment", "counter", writers=RACE_WRITERS, times=times)
    swaps = sum(result["swaps"] for result in results)
    assert swaps == RACE_WRITERS * times
    storage = open_storage(store_url)
    try:
        assert storage.get("counter") == str(swaps).encode()
    finally:
        storage.close()


def test_concurrent_swaps_that_delete_the_key_lose_no_update(store_url: str) -> None:
    """Racing writers cycle a key through absent, 1, 2, 3 and absent again (a swap to None
    deletes it, and on local disk its lock file with it): no swap may be lost, so every
    increment and every delete that returned is in the final value."""
    times = race_times(store_url)
    results = race(store_url, "cycle", "cycled", writers=RACE_WRITERS, times=times)
    ups = sum(result["ups"] for result in results)
    resets = sum(result["resets"] for result in results)
    assert ups + resets == RACE_WRITERS * times and resets > 0
    storage = open_storage(store_url)
    try:
        try:
            final = int(storage.get("cycled"))
        except KeyNotFoundError:
            final = 0
        assert final == ups - 3 * resets
    finally:
        storage.close()


def test_concurrent_put_if_absent_has_one_winner(store_url: str) -> None:
    """Racing creators of one key: exactly one succeeds and its value is the one stored.

    On S3 (moto, one request at a time) this shows that creation is
    conditional on absence (``If-None-Match: *``), not server-side atomicity.
    """
    results = race(store_url, "create", "objects/contested", writers=RACE_WRITERS, times=1)
    winners = [f"w{index}" for index, result in enumerate(results) if result["created"]]
    assert len(winners) == 1
    storage = open_storage(store_url)
    try:
        assert storage.get("objects/contested") == winners[0].encode()
    finally:
        storage.close()


def test_concurrent_appends_lose_no_record(store_url: str) -> None:
    """Several processes append to one log: every record is there, each writer's in order."""
    times = race_times(store_url)
    race(store_url, "append", "jobs/j/reflog", writers=RACE_WRITERS, times=times)
    storage = open_storage(store_url)
    try:
        records = [record.decode() for record in storage.read_log("jobs/j/reflog")]
    finally:
        storage.close()
    assert len(records) == RACE_WRITERS * times
    for index in range(RACE_WRITERS):
        mine = [record for record in records if record.startswith(f"w{index}-")]
        assert mine == [f"w{index}-{i}" for i in range(times)]
