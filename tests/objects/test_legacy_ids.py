"""A store written by an earlier ckpt (tests/data/store-v1) reads back, and ids do not change.

The store was written before canonical bytes came from a C encoder; every
value, tree and commit in it must get the very same id from today's code,
or dedup against old stores and the ids users noted down would break.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import ckpt
from ckpt.objects.ids import Kind, ObjectId, object_id
from ckpt.objects.model import Tree, decode_commit, encode_commit
from ckpt.values import serialize
from tests.data.legacy_values import GROWTH, TYPES, values

DATA = Path(__file__).resolve().parent.parent / "data"
MANIFEST = json.loads((DATA / "store-v1.manifest.json").read_text())["saves"]


def _expected(name: str) -> Any:
    if name.startswith("messages[:"):
        return values()["messages"][: int(name[len("messages[:") : -1])]
    return values()[name]


def _blob_bytes(name: str) -> bytes:
    value = _expected(name)
    if isinstance(value, bytes):
        return value
    return serialize.dumps(value, as_type=TYPES.get(name))


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    shutil.copytree(DATA / "store-v1", path)
    return path


def test_manifest_covers_every_value() -> None:
    names = {save["value"] for save in MANIFEST}
    assert names == {n for n in values() if n != "messages"} | {
        f"messages[:{count}]" for count in GROWTH
    }


@pytest.mark.parametrize("save", MANIFEST, ids=[s["value"] for s in MANIFEST])
def test_values_encode_to_their_old_ids(save: dict[str, str]) -> None:
    assert object_id(Kind.BLOB, _blob_bytes(save["value"])) == save["blob"]


def test_old_store_reads_back_and_verifies(old_store: Path) -> None:
    with ckpt.open(str(old_store)) as repo:
        assert repo.verify(full=True).ok
        for save in MANIFEST:
            job = repo.job(save["job"])
            name = save["value"]
            stored = job.load_raw(save["stage"], at=save["commit"])
            assert stored == _blob_bytes(name)
            loaded = job.load(save["stage"], TYPES.get(name), at=save["commit"])
            expected = _expected(name)
            if isinstance(expected, bytes):
                assert loaded == expected
            else:
                # NaN != NaN: compare what the values encode to.
                assert serialize.dumps(loaded, as_type=TYPES.get(name)) == stored


def test_trees_and_commits_reencode_to_their_ids(old_store: Path) -> None:
    with ckpt.open(str(old_store)) as repo:
        objects = repo.objects
        for save in MANIFEST:
            tree_bytes = objects.get(ObjectId(save["tree"]), Kind.TREE)
            tree = Tree.decode(tree_bytes, save["tree"])
            assert object_id(Kind.TREE, tree.encode()) == save["tree"]
            commit = decode_commit(
                objects.get(ObjectId(save["commit"]), Kind.COMMIT), save["commit"]
            )
            assert object_id(Kind.COMMIT, encode_commit(commit)) == save["commit"]


def _resave(repo: ckpt.Repository, suffix: str) -> list[dict[str, str]]:
    out = []
    all_values = values()
    job = repo.job(f"values{suffix}")
    for name, value in all_values.items():
        if name != "messages":
            commit = job.save(name, value, type=TYPES.get(name), cost=0.1 + 0.2, tokens=3)
            entry = job.tree(commit.id).get(name)
            assert entry is not None
            out.append({"value": name, "blob": entry.id, "tree": commit.tree})
    growing = repo.job(f"growing{suffix}")
    for count in GROWTH:
        commit = growing.save("messages", all_values["messages"][:count])
        entry = growing.tree(commit.id).get("messages")
        assert entry is not None
        out.append({"value": f"messages[:{count}]", "blob": entry.id, "tree": commit.tree})
    return out


def _old_ids() -> list[dict[str, str]]:
    return [{k: save[k] for k in ("value", "blob", "tree")} for save in MANIFEST]


def test_saving_the_same_values_again_gives_the_same_ids(tmp_path: Path) -> None:
    with ckpt.init(str(tmp_path / "fresh")) as repo:
        assert _resave(repo, "") == _old_ids()


def test_saving_into_the_old_store_dedups(old_store: Path) -> None:
    with ckpt.open(str(old_store)) as repo:
        before = {item.id for item in repo.objects}
        assert _resave(repo, "-again") == _old_ids()
        new = {item.id for item in repo.objects} - before
        kinds = {repo.objects.kind_of(oid) for oid in new}
        # Only the new jobs' commits are new: every value and tree was stored already.
        assert kinds == {Kind.COMMIT}
        assert repo.verify(full=True).ok
