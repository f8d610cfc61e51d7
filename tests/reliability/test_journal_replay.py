"""The local journal: a machine crash loses no returned save (docs/format.md, "Local journal").

A machine crash is simulated the only way a test can: after real saves, every
file whose change the journal records (and which was therefore never fsynced
in place) is damaged the ways a lost page cache leaves it (gone, empty, or
holding other bytes), a deleted file comes back, the journal gets a torn
record at its end, and the boot id changes.  Opening the store must then
give back exactly what the saves returned.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ckpt
from ckpt.errors import CkptError
from ckpt.storage import journal

from ._support import Figures, value_bytes


def _other_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "_boot_id", b"00000000-0000-4000-8000-000000000000")


def _records(store: Path) -> list[journal.Record]:
    boot, records = journal.decode((store / journal.NAME).read_bytes())
    assert boot == journal.current_boot_id()
    return records


def _lose_unsynced_changes(store: Path, rng: random.Random) -> int:
    """Damage every file the journal says was changed without an fsync; return how many."""
    damaged = 0
    for key in sorted({record.key for record in _records(store) if record.op != journal.OP_DELETE}):
        path = store / key
        if not path.exists():
            continue
        how = rng.choice(["gone", "empty", "garbled"])
        if how == "gone":
            path.unlink()
        elif how == "empty":
            path.write_bytes(b"")
        else:
            path.write_bytes(bytes(rng.randrange(256) for _ in range(path.stat().st_size or 1)))
        damaged += 1
    with (store / journal.NAME).open("ab") as handle:
        handle.write(journal.encode(journal.OP_SET, "torn/record", b"x" * 100)[:-7])
    return damaged


def test_a_machine_crash_loses_no_returned_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures: Figures
) -> None:
    store = tmp_path / "store"
    repo = ckpt.init(store)
    expected: dict[tuple[str, str], object] = {}
    for seq in range(40):  # enough saves for packs to be merged (and the merged ones deleted)
        job = repo.job(f"job{seq % 2}")
        value = {"seq": seq, "text": value_bytes(seq, 2000).hex()}
        job.save(f"s{seq % 3}", value)
        expected[(job.name, f"s{seq % 3}")] = value
    repo.job("job0").branch("side")
    repo.job("job0").tag("v1")
    repo.job("gone").save("a", 1)
    repo.delete_job("gone")
    heads = {name: repo.job(name).head.id for name in ("job0", "job1")}  # type: ignore[union-attr]
    repo.close()
    assert journal.current_boot_id() is not None, "this test needs a system with boot ids"
    assert any(r.op == journal.OP_DELETE for r in _records(store))

    damaged = _lose_unsynced_changes(store, random.Random(7))
    assert damaged > 10
    # The same boot would replay nothing: the damage is there to be repaired.
    with pytest.raises(CkptError):
        ckpt.open(store)

    _other_boot(monkeypatch)
    after = ckpt.open(store)
    assert after.verify(full=True).ok
    assert {name: after.job(name).head.id for name in heads} == heads  # type: ignore[union-attr]
    for (name, stage), value in expected.items():
        assert after.job(name).load(stage) == value
    assert after.job("job0").branches() == {"main": heads["job0"], "side": heads["job0"]}
    assert "gone" not in [job.name for job in after.jobs()]
    # The journal starts afresh under the new boot, and the store takes new saves.
    assert journal.decode((store / journal.NAME).read_bytes()) == (journal._boot_id, [])
    after.job("job1").save("s0", {"after": True})
    assert after.job("job1").load("s0") == {"after": True}
    figures.set("files_damaged_then_replayed", damaged)
    figures.set("returned_saves_lost", 0)


def test_a_deleted_job_stays_deleted_after_a_machine_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    repo = ckpt.init(store)
    repo.job("kept").save("a", 1)
    repo.job("gone").save("a", 2)
    ref = store / "jobs" / "gone" / "refs" / "heads" / "main"
    head = ref.read_bytes()
    repo.delete_job("gone")
    repo.close()
    # The unlink never reached the disk: the ref is back, naming a commit gc may take.
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_bytes(head)
    _other_boot(monkeypatch)
    after = ckpt.open(store)
    assert not ref.exists()
    assert after.job("kept").load("a") == 1


def test_a_store_without_a_journal_opens_as_before(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with ckpt.init(store, durable=False) as repo:
        repo.job("j").save("a", 1)
    assert not (store / journal.NAME).exists()
    assert ckpt.open(store).job("j").load("a") == 1


def test_without_boot_ids_a_found_journal_is_replayed_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    with ckpt.init(store) as repo:
        repo.job("j").save("a", {"v": 1})
    assert (store / journal.NAME).exists()
    monkeypatch.setattr(journal, "_boot_id", None)
    reopened = ckpt.open(store)
    assert not (store / journal.NAME).exists()
    assert reopened.job("j").load("a") == {"v": 1}
    reopened.job("j").save("a", {"v": 2})  # fsynced in place, as without a journal
    assert not (store / journal.NAME).exists()
    assert ckpt.open(store).job("j").load("a") == {"v": 2}


_keys = st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,3}", fullmatch=True)
_records_strategy = st.lists(
    st.tuples(
        st.sampled_from([journal.OP_PUT, journal.OP_SET, journal.OP_DELETE]),
        _keys,
        st.binary(max_size=300),
    ),
    max_size=8,
)


@given(_records_strategy)
def test_journal_records_round_trip(records: list[tuple[bytes, str, bytes]]) -> None:
    data = journal.header(b"boot-a") + b"".join(journal.encode(*record) for record in records)
    assert journal.decode(data) == (b"boot-a", [journal.Record(*record) for record in records])


@given(_records_strategy, st.integers(min_value=1, max_value=400))
def test_a_torn_journal_keeps_the_whole_records_before_the_tear(
    records: list[tuple[bytes, str, bytes]], cut: int
) -> None:
    encoded = [journal.encode(*record) for record in records]
    data = journal.header(b"b") + b"".join(encoded)
    torn = data[: max(len(journal.header(b"b")), len(data) - cut)]
    _boot, found = journal.decode(torn)
    whole = 0
    size = len(journal.header(b"b"))
    for record in encoded:
        size += len(record)
        if size <= len(torn):
            whole += 1
    assert found == [journal.Record(*record) for record in records[:whole]]


@given(st.binary(max_size=600))
def test_any_bytes_decode_without_crashing(data: bytes) -> None:
    boot, records = journal.decode(journal.MAGIC + b"boot x\n" + data)
    assert boot == b"x"
    assert all(
        record.op in (journal.OP_PUT, journal.OP_SET, journal.OP_DELETE) for record in records
    )
