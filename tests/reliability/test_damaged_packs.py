"""Guarantees 15 and 16: a forged pack index reads nothing past the pack, and a damaged pack
header is reported and set right.

* A pack index whose record claims 0xFFFFFFFF bytes, with its checksum
  recomputed so that it passes: reading through it must not ask for 4 GiB
  (``ckpt cat`` runs under a 1 GiB address-space limit); the pack is
  reported by ``verify --full`` and ``ckpt repair --from`` a clean copy heals
  the store.
* A pack whose header is damaged (magic, version or entry count): readers
  never read the header, so nothing else notices; ``verify --full`` reports
  it and ``ckpt repair`` rewrites the pack.

Before the fix the first made ``ckpt cat`` fail with MemoryError (a 4 GiB
pread), and verify reported neither.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

import ckpt
from ckpt.objects import pack

from ._support import Figures, run_ckpt

LIMIT = 1 << 30


def _store(tmp_path: Path) -> tuple[Path, Path]:
    """A store with one job (each save one pack), and a clean copy of it."""
    store = tmp_path / "store"
    job = ckpt.init(store).job("novel")
    job.save("outline", {"chapters": [f"chapter {i}" for i in range(50)]})
    job.save("draft", {"text": "once upon a time " * 200})
    clean = tmp_path / "clean"
    shutil.copytree(store, clean)
    return store, clean


def _pack_of(store: Path, stage: str) -> Path:
    repo = ckpt.open(store)
    entry = repo.job("novel").tree().get(stage)
    assert entry is not None
    where = repo.objects.locate(entry.id)
    assert where is not None and where.packed
    return store / where.key


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def test_a_forged_pack_index_reads_nothing_past_the_pack(tmp_path: Path, figures: Figures) -> None:
    store, clean = _store(tmp_path)
    path = _pack_of(store, "draft")
    data = bytearray(path.read_bytes())
    index_offset, count, _, magic = pack.TRAILER.unpack_from(data, len(data) - pack.TRAILER.size)
    for at in range(count):
        record = index_offset + at * pack.RECORD.size
        data[record + 36 : record + 40] = b"\xff\xff\xff\xff"  # every length: 4 GiB
    index_and_fanout = bytes(data[index_offset : len(data) - pack.TRAILER.size])
    digest = blake3.blake3(index_and_fanout).digest(length=16)
    pack.TRAILER.pack_into(data, len(data) - pack.TRAILER.size, index_offset, count, digest, magic)
    path.write_bytes(bytes(data))

    cat = subprocess.run(
        [sys.executable, "-m", "ckpt", "--store", str(store), "cat", "novel", "draft"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited,
    )
    assert cat.returncode == 5, cat.stderr
    assert "MemoryError" not in cat.stderr and len(cat.stderr.splitlines()) == 1

    verify = run_ckpt(store, "verify", "--full")
    assert verify.returncode == 5
    assert f"damaged-pack packs/{path.name}" in verify.stdout
    assert "points outside the pack's entries" in verify.stdout

    repair = run_ckpt(store, "repair", "--from", str(clean))
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert f"Moved packs/{path.name}, whose index was damaged, to quarantine/." in repair.stdout
    assert ckpt.open(store).job("novel").load("draft") == {"text": "once upon a time " * 200}
    assert run_ckpt(store, "verify", "--full").returncode == 0
    figures.set("forged_index_bytes_asked", 0)


@pytest.mark.parametrize(
    ("field", "offset", "value"),
    [("magic", 0, b"XKPK"), ("version", 4, b"\x09"), ("count", 8, b"\x00" * 7 + b"\x63")],
)
def test_a_damaged_pack_header_is_reported_and_rewritten(
    tmp_path: Path, field: str, offset: int, value: bytes, figures: Figures
) -> None:
    store, _ = _store(tmp_path)
    path = _pack_of(store, "outline")
    data = bytearray(path.read_bytes())
    data[offset : offset + len(value)] = value
    path.write_bytes(bytes(data))
    assert ckpt.open(store).job("novel").load("outline")  # readers never read the header

    verify = run_ckpt(store, "verify", "--full")
    assert verify.returncode == 5, verify.stdout
    assert f"damaged-pack packs/{path.name}" in verify.stdout
    assert "`ckpt repair` rewrites the pack" in verify.stdout

    repair = run_ckpt(store, "repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert f"Rewrote packs/{path.name}, whose header was damaged." in repair.stdout
    # Rewritten under a new name; or, when its entries were written in the order a
    # rewrite writes them, back in place as the very bytes its name is the hash of.
    assert not path.exists() or blake3.blake3(path.read_bytes()).hexdigest() == path.name
    assert run_ckpt(store, "verify", "--full").returncode == 0
    assert ckpt.open(store).job("novel").load("outline")
    figures.add("damaged_headers_reported", 1)
