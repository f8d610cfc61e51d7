"""Guarantee 6: every kind of corruption is caught, named, listed, isolated and healed.

A template store holds job ``j`` with three commits (stages ``a``, ``b``,
``c``; each commit carries the earlier stages) and an unrelated job.  Each
test damages a fresh copy of it on disk: byte flips, truncation, zero-length
files, a wrong header, an unknown format version, garbage or nothing behind
a ref, a garbled ref, HEAD or reflog line.  Then:

* reading the damaged thing raises a specific error naming the object or ref;
* ``verify`` lists everything broken and, per branch, the newest intact commit;
* the rest of the store keeps working (other stages, other jobs, new saves);
* a corrupt object can be quarantined, and a clean copy - from re-saving the
  same value, or from a clean store - heals the store.

Objects are found on disk by their stored bytes (``_support.locate``), so the
tests hold whatever the object layout (loose files or packs).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

import ckpt
from ckpt.errors import CkptError, CorruptObjectError, CorruptRefError, ObjectNotFoundError
from ckpt.maintenance.repair import repair
from ckpt.objects.ids import ObjectId

from ._support import Figures, locate, object_ids, storage_root

VALUES = {
    "a": {"text": "first stage " * 20, "n": 1},
    "b": {"text": "second stage " * 30, "n": 2},
    "c": {"text": "third stage " * 40, "n": 3},
}


@attrs.frozen
class Template:
    path: Path
    commits: tuple[ObjectId, ObjectId, ObjectId]
    blobs: dict[str, ObjectId]
    trees: tuple[ObjectId, ObjectId, ObjectId]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("corruption") / "template"
    repo = ckpt.init(path)
    repo.job("other").save("x", {"other": True})
    job = repo.job("j")
    commits = tuple(job.save(stage, value).id for stage, value in VALUES.items())
    head_tree = repo.objects.get_tree(job.head.tree)  # type: ignore[union-attr]
    blobs = {entry.name: entry.id for entry in head_tree}
    trees = tuple(repo.objects.get_commit(c).tree for c in commits)
    return Template(path, commits, blobs, trees)  # type: ignore[arg-type]


@pytest.fixture
def copy(template: Template, tmp_path: Path) -> Path:
    target = tmp_path / "store"
    shutil.copytree(template.path, target)
    return target


# -- damage to objects -----------------------------------------------------


def _flip_frame(data: bytes) -> bytes:
    at = len(data) - 3  # inside the compressed frame, not the header
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]


def _flip_length(data: bytes) -> bytes:
    return data[:15] + bytes([data[15] ^ 0x01]) + data[16:]


def _bad_magic(data: bytes) -> bytes:
    return b"XXXX" + data[4:]


def _unknown_version(data: bytes) -> bytes:
    return data[:4] + bytes([99]) + data[5:]


def _garbage(data: bytes) -> bytes:
    return random.Random(len(data)).randbytes(len(data))


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "byte-flip": _flip_frame,
    "flipped-length": _flip_length,
    "wrong-header": _bad_magic,
    "unknown-version": _unknown_version,
    "garbage": _garbage,
}


def _damage(repo: ckpt.Repository, oid: ObjectId, how: str) -> set[ObjectId]:
    """Damage ``oid`` on disk; return the objects the damage may take with it.

    Damage inside an object's bytes hurts that object only.  Truncating or
    emptying its file hurts every object the file holds (a pack holds all
    the objects of one save).
    """
    where = locate(repo, oid)
    if how in DAMAGE:
        where.patch(0, DAMAGE[how](where.read()))
        return {oid}
    sharing = {other for other in object_ids(repo) if locate(repo, other).path == where.path}
    if how == "truncated":
        with open(where.path, "r+b") as handle:
            handle.truncate(where.offset + where.length // 2)
    elif how == "zero-length":
        where.path.write_bytes(b"")
    else:
        raise AssertionError(how)
    return sharing


def _targets(template: Template) -> dict[str, tuple[ObjectId, str, ObjectId | None]]:
    """What to damage: object, a stage whose load at HEAD reads it, the newest intact commit."""
    c1, c2, c3 = template.commits
    return {
        "blob-b": (template.blobs["b"], "b", c1),
        "tree-of-head": (template.trees[2], "a", c2),
        "head-commit": (c3, "a", c2),
    }


HOW = (*DAMAGE, "truncated", "zero-length")


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("target", ["blob-b", "tree-of-head", "head-commit"])
def test_damaged_object_is_named_listed_isolated_and_healed(
    template: Template, copy: Path, target: str, how: str, figures: Figures
) -> None:
    oid, stage, last_good = _targets(template)[target]
    hurt = _damage(ckpt.open(copy), oid, how)
    repo = ckpt.open(copy)
    job = repo.job("j")

    # A specific error naming the object (or the object its file took with it).
    with pytest.raises((CorruptObjectError, ObjectNotFoundError)) as raised:
        job.load(stage)
    assert any(other in str(raised.value) for other in hurt), str(raised.value)

    # verify lists it, names what it breaks, and the newest intact commit.
    report = repo.verify(full=True)
    # A pack that lost its index is named once, with the objects it held.
    named = [p for p in report.problems if p.subject in hurt or hurt & set(p.objects)]
    assert named, [p.to_json() for p in report.problems]
    # A truncated or emptied pack is reported itself too (its index is gone).
    objects = [p for p in report.problems if p.kind != "damaged-pack"]
    assert all(p.kind in ("corrupt-object", "missing-object") for p in objects)
    assert all(p.jobs == ("j",) for p in objects)
    assert report.jobs["j"].last_good["main"] == last_good
    assert report.jobs["other"].ok

    # The rest of the store keeps working.
    assert repo.job("other").load("x") == {"other": True}
    repo.job("other").save("y", {"still": "working"})
    if target == "blob-b":
        assert job.load("a") == VALUES["a"]

    # Quarantine, then heal: a blob by saving its value again, anything from a clean store.
    repaired = repair(repo)
    assert set(repaired.unhealed) <= hurt and repaired.unhealed
    if target == "blob-b" and hurt == {oid}:
        job.save("b", VALUES["b"])
    else:
        repair(repo, remote=str(template.path))
    healed = ckpt.open(copy)
    after = healed.verify(full=True)
    assert after.ok, [p.to_json() for p in after.problems]
    assert healed.job("j").load(stage, at=template.commits[2]) == VALUES[stage]
    figures.add("objects_damaged")
    figures.add("objects_healed")


def test_every_single_byte_flip_is_caught(copy: Path, template: Template, figures: Figures) -> None:
    """Flip each byte of a stored commit, three ways, one at a time.

    Every flip raises CorruptObjectError naming the commit, or (for a bit
    the zstd decoder does not use) still yields exactly the same commit:
    wrong data is never returned.
    """
    oid = template.commits[1]
    where = locate(ckpt.open(copy), oid)
    clean = where.read()
    original = ckpt.open(copy).objects.get_commit(oid)
    flips = caught = harmless = 0
    for position in range(len(clean)):
        for mask in (0x01, 0x80, 0xFF):
            where.patch(position, bytes([clean[position] ^ mask]))
            flips += 1
            try:
                read = ckpt.open(copy).objects.get_commit(oid)
            except CorruptObjectError as exc:
                assert exc.object_id == oid
                caught += 1
            else:
                assert read == original, f"flip {mask:#x} at byte {position} changed the commit"
                harmless += 1
        where.patch(position, clean[position : position + 1])
    assert ckpt.open(copy).objects.get_commit(oid) == original
    assert caught > 0.9 * flips
    figures.add("byte_flips_tried", flips)
    figures.add("byte_flips_caught", caught)
    figures.add("byte_flips_that_changed_nothing_read", harmless)


# -- damage to refs, HEAD and the reflog -----------------------------------


def _job_file(copy: Path, *parts: str) -> Path:
    return copy.joinpath("jobs", "j", *parts)


def test_missing_commit_behind_a_ref(copy: Path, template: Template) -> None:
    repo = ckpt.open(copy)
    head = template.commits[2]
    assert repo.objects.delete(head)
    job = ckpt.open(copy).job("j")
    with pytest.raises(ObjectNotFoundError) as raised:
        job.head  # noqa: B018 - reading the property is the point
    assert head in str(raised.value)
    report = ckpt.open(copy).verify(full=True)
    assert [(p.kind, p.subject) for p in report.problems] == [("missing-object", head)]
    assert report.jobs["j"].last_good["main"] == template.commits[1]
    # Roll back to what verify names, and carry on.
    job.checkout(template.commits[1])
    assert job.load("b") == VALUES["b"]
    job.save("c", VALUES["c"])
    assert repair(ckpt.open(copy), remote=str(template.path)).after.ok


@pytest.mark.parametrize(
    "content", [b"", b"garbage\n", b"0" * 63 + b"\n", b"\x00\xff" * 40], ids=repr
)
def test_garbled_branch_ref(copy: Path, template: Template, content: bytes) -> None:
    _job_file(copy, "refs", "heads", "main").write_bytes(content)
    job = ckpt.open(copy).job("j")
    with pytest.raises(CorruptRefError) as raised:
        job.head  # noqa: B018
    assert "refs/heads/main" in str(raised.value) and "j" in str(raised.value)
    report = ckpt.open(copy).verify(full=True)
    assert ("bad-ref", "j:refs/heads/main") in [(p.kind, p.subject) for p in report.problems]
    # The reflog still knows where the branch pointed.
    assert report.jobs["j"].last_good["main"] == template.commits[2]
    assert ckpt.open(copy).job("other").load("x") == {"other": True}


def test_garbled_head(copy: Path) -> None:
    _job_file(copy, "HEAD").write_bytes(b"ref: refs/heads/../../../etc\n")
    with pytest.raises(CorruptRefError, match="HEAD"):
        ckpt.open(copy).job("j").branch_name  # noqa: B018
    report = ckpt.open(copy).verify(full=True)
    assert ("bad-head", "j:HEAD") in [(p.kind, p.subject) for p in report.problems]


@pytest.mark.parametrize("line", [b"not json", b'{"ref": "x"}', b"\x00" * 30, b'{"old": 1'])
def test_garbled_reflog_line(copy: Path, template: Template, line: bytes) -> None:
    reflog = _job_file(copy, "reflog.log")
    lines = reflog.read_bytes().splitlines()
    lines.insert(1, line)
    reflog.write_bytes(b"\n".join(lines) + b"\n")
    job = ckpt.open(copy).job("j")
    assert [e.new for e in job.reflog()][:3] == list(reversed(template.commits))
    report = ckpt.open(copy).verify(full=True)
    assert [(p.kind, p.subject) for p in report.problems] == [("bad-reflog", "j:reflog:2")]
    # Saving goes on; the garbled line stays reported, nothing else is lost.
    job.save("d", {"n": 4})
    assert len(ckpt.open(copy).job("j").reflog()) == 4


def test_torn_reflog_tail(copy: Path) -> None:
    """A line cut short by a crash mid-append: reported, and the next append is intact."""
    reflog = _job_file(copy, "reflog.log")
    reflog.write_bytes(reflog.read_bytes() + b'{"new": "abc')
    job = ckpt.open(copy).job("j")
    job.save("d", {"n": 4})
    entries = ckpt.open(copy).job("j").reflog()
    assert entries[0].reason == "save: d"
    report = ckpt.open(copy).verify(full=True)
    assert [p.kind for p in report.problems] == ["bad-reflog"]


def test_unknown_store_version(copy: Path) -> None:
    config = copy / "config"
    config.write_text(config.read_text().replace('"version": 1', '"version": 99'))
    with pytest.raises(CkptError, match="version 99"):
        ckpt.open(copy)


def test_verify_lists_everything_broken_at_once(
    copy: Path, template: Template, figures: Figures
) -> None:
    repo = ckpt.open(copy)
    repo.job("j").branch("side", at=template.commits[0])
    _damage(repo, template.blobs["b"], "byte-flip")
    _job_file(copy, "refs", "heads", "side").write_bytes(b"garbage\n")
    reflog = _job_file(copy, "reflog.log")
    reflog.write_bytes(reflog.read_bytes() + b"garbage\n")
    assert (storage_root(repo) / "config").exists()
    other_head = ckpt.open(copy).job("other").head
    assert other_head is not None
    ckpt.open(copy).objects.delete(other_head.id)
    report = ckpt.open(copy).verify(full=True)
    found = {(p.kind, p.subject) for p in report.problems}
    assert found == {
        ("corrupt-object", template.blobs["b"]),
        ("bad-ref", "j:refs/heads/side"),
        ("bad-reflog", "j:reflog:5"),
        ("missing-object", other_head.id),
    }
    broken_by_blob = next(p for p in report.problems if p.subject == template.blobs["b"])
    assert set(broken_by_blob.commits) == set(template.commits[1:])
    assert report.jobs["j"].last_good["main"] == template.commits[0]
    assert report.jobs["other"].last_good["main"] is None
    figures.set("problems_listed_in_one_verify", len(report.problems))
