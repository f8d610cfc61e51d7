"""A damaged pack is named once, with the objects it held, not as one missing object each;
and ``ckpt repair`` then heals it from a clean copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import ckpt
from ckpt.cli.main import cli
from ckpt.objects import pack
from ckpt.objects.salvage import salvage


def _pack_ids(data: bytes) -> set[str]:
    index = pack.PackIndex.load("p", len(data), pack.slicer(data))
    return {entry.id for entry in index.entries(pack.slicer(data))}


@pytest.fixture
def truncated(tmp_path: Path) -> tuple[Path, str, set[str]]:
    """A store whose biggest pack (8 stages saved at once) lost its end: its key and ids."""
    store = tmp_path / "store"
    with ckpt.init(store) as repo:
        job = repo.job("novel")
        job.save_many({f"chapter{i}": f"text {i} " * (40 * i + 1) for i in range(8)})
        job.save("summary", {"chapters": 8})
        biggest = max(repo.objects.packs(), key=lambda info: info.size)
    shutil.copytree(store, tmp_path / "clean")  # a clean copy, for repair --from
    path = store / biggest.key
    data = path.read_bytes()
    held = _pack_ids(data)
    path.chmod(0o644)
    path.write_bytes(data[: len(data) // 3])
    return store, biggest.key, held


def test_verify_names_a_truncated_pack_once_with_the_objects_it_held(
    truncated: tuple[Path, str, set[str]],
) -> None:
    store, key, held = truncated
    with ckpt.open(store) as repo:
        report = repo.verify(full=True)
    assert [p.kind for p in report.problems] == ["damaged-pack"]
    (problem,) = report.problems
    assert problem.subject == key
    assert problem.message.startswith(f"pack {key} (")
    assert problem.message.endswith(
        f"bytes) is damaged: pack is too short for its index; it held {len(held)} objects "
        "(its header says), none of them readable through it now; `ckpt repair` moves it to "
        "quarantine/ (add --from REMOTE to copy its objects back)"
    )
    assert problem.objects and set(problem.objects) <= held
    assert problem.jobs == ("novel",)
    assert len(problem.commits) == 2  # both checkpoints need what the pack held


def test_the_cli_shows_the_pack_and_its_objects(truncated: tuple[Path, str, set[str]]) -> None:
    store, key, _ = truncated
    result = CliRunner().invoke(cli, ["--store", str(store), "verify"])
    assert result.exit_code == 5
    lines = result.stdout.splitlines()
    assert lines[0] == f"damaged-pack {key}"
    assert lines[2].startswith("  objects it held, now missing (")
    assert sum("missing-object" in line for line in lines) == 0
    assert result.stderr == (
        "Error: verify found 1 problem; it breaks job novel; run `ckpt repair` (add --from "
        "REMOTE to copy clean copies from a remote), then re-run the damaged stages or roll "
        "back to the last good checkpoints shown above\n"
    )


def test_salvage_reads_whole_entries_from_the_front(tmp_path: Path) -> None:
    with ckpt.init(tmp_path / "s") as repo:
        repo.job("j").save_many({f"s{i}": "x" * (100 * i) for i in range(6)})
        (info,) = [i for i in repo.objects.packs()]
        data = repo.storage.get(info.key)
    whole = salvage(data)
    assert set(whole.ids) == _pack_ids(data)
    assert (whole.declared, whole.unidentified, whole.lost) == (len(whole.ids), 0, 0)
    cut = salvage(data[:200])  # the header and the first entries only
    assert set(cut.ids) < set(whole.ids)
    assert cut.lost == len(whole.ids) - len(cut.ids)
    assert salvage(b"not a pack at all").declared is None
    assert salvage(data[:10]).ids == ()


def test_repair_from_a_clean_copy_heals_the_truncated_pack(
    truncated: tuple[Path, str, set[str]], tmp_path: Path
) -> None:
    store, key, _ = truncated
    clean = tmp_path / "clean"
    with ckpt.open(store) as repo:
        assert not repo.verify(full=True).ok
    result = CliRunner().invoke(cli, ["--store", str(store), "repair", "--from", str(clean)])
    assert result.exit_code == 0, result.output
    assert f"Moved {key}, whose index was damaged, to quarantine/." in result.stdout
    with ckpt.open(store) as repo:
        assert repo.verify(full=True).ok
        assert repo.job("novel").load("chapter7") == "text 7 " * 281
