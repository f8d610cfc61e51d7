"""ckpt.File and ckpt.Directory as checkpoint values: round trips of real files and
trees, values that hold them, bad input refused with one clear error, and stored
names that try to write outside the place asked for."""

from __future__ import annotations

import dataclasses
import os
import random
import stat
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ckpt
from ckpt.errors import (
    CkptError,
    CorruptObjectError,
    FileValueError,
    InvalidNameError,
    SerializationError,
)
from ckpt.objects.ids import Kind, object_id
from ckpt.values import serialize
from ckpt.values.filelisting import file_changes, stored_files, write_out
from ckpt.values.materialize import remove_tree
from tests.objects._helpers import flip

relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=30)


# -- helpers -------------------------------------------------------------------


def _tree(root: Path) -> dict[str, tuple[str, int, bytes | None]]:
    """Every item under ``root``: relative path -> (kind, mode, bytes of a file)."""
    found: dict[str, tuple[str, int, bytes | None]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(folder, name)
            st_ = full.lstat()
            relative = full.relative_to(root).as_posix()
            if stat.S_ISDIR(st_.st_mode):
                found[relative] = ("dir", stat.S_IMODE(st_.st_mode), None)
            else:
                found[relative] = ("file", stat.S_IMODE(st_.st_mode), full.read_bytes())
    return found


def _content(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def repo(tmp_path: Path) -> ckpt.Repository:
    return ckpt.init(tmp_path / "store")


# -- round trips -----------------------------------------------------------------

_names = st.text(
    alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
).filter(lambda name: name not in (".", "..") and len(name.encode()) <= 255)
_sizes = st.one_of(
    st.integers(0, 2000), st.sampled_from([0, 65535, 65536, 70_000, 300_000, 3_000_000])
)
_file_modes = st.sampled_from([0o644, 0o600, 0o755, 0o444, 0o640, 0o700, 0o400, 0o664])
_dir_modes = st.sampled_from([0o755, 0o700, 0o750, 0o555, 0o775])
_trees = st.recursive(
    st.tuples(_sizes, _file_modes, st.integers(0, 2**16)),
    lambda children: st.tuples(st.dictionaries(_names, children, max_size=4), _dir_modes),
    max_leaves=10,
)


def _build(where: Path, spec: Any) -> None:
    """Make the tree ``spec`` describes at ``where`` (modes set once the content is in)."""
    if isinstance(spec[0], dict):
        where.mkdir()
        for name, child in spec[0].items():
            _build(where / name, child)
        os.chmod(where, spec[1])
    else:
        size, mode, seed = spec
        where.write_bytes(_content(seed, size))
        os.chmod(where, mode)


@relaxed
@given(
    children=st.dictionaries(_names, _trees, max_size=5),
    mode=_dir_modes,
    name=_names,
)
def test_directory_trees_round_trip(
    tmp_path_factory: pytest.TempPathFactory, children: dict[str, Any], mode: int, name: str
) -> None:
    tmp = tmp_path_factory.mktemp("tree")
    try:
        source = tmp / "work" / name
        source.parent.mkdir()
        _build(source, (children, mode))
        repo = ckpt.init(tmp / "store")
        job = repo.job("trees")
        job.save("out", {"tree": ckpt.Directory(source), "n": 1})
        loaded = job.load("out")["tree"]
        assert isinstance(loaded, ckpt.Directory) and loaded.name == name
        expected = _tree(source)
        written = loaded.materialize(to=tmp / "out")
        assert written == tmp / "out" / name
        assert _tree(written) == expected
        assert stat.S_IMODE(written.stat().st_mode) == mode
        cached = loaded.path
        assert _tree(cached) == expected and stat.S_IMODE(cached.stat().st_mode) == mode
        assert loaded.path == cached  # the cached copy is reused while unchanged
        assert sorted(e.path for e in loaded.entries) == sorted(expected)
        assert repo.verify(full=True).ok
    finally:
        remove_tree(tmp)


@relaxed
@given(size=_sizes, mode=_file_modes, seed=st.integers(0, 2**16), name=_names)
def test_files_round_trip(
    tmp_path_factory: pytest.TempPathFactory, size: int, mode: int, seed: int, name: str
) -> None:
    tmp = tmp_path_factory.mktemp("file")
    data = _content(seed, size)
    source = tmp / name
    source.write_bytes(data)
    os.chmod(source, mode)
    repo = ckpt.init(tmp / "store")
    job = repo.job("files")
    job.save("out", ckpt.File(source), type=ckpt.File)
    loaded = job.load("out", ckpt.File)
    assert (loaded.name, loaded.size, loaded.mode) == (name, size, mode)
    assert loaded.id == object_id(Kind.BLOB, data)
    with loaded.open() as stream:
        assert stream.read() == data
    path = loaded.path
    assert path.name == name and path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == mode
    other = loaded.materialize(to=tmp / "elsewhere")
    assert other.read_bytes() == data and stat.S_IMODE(other.stat().st_mode) == mode
    with open(loaded, "rb") as stream:  # a path-like object
        assert stream.read() == data


@attrs.frozen
class Render:
    video: ckpt.File
    scenes: ckpt.Directory
    seconds: float


@dataclasses.dataclass
class Cut:
    clip: ckpt.File
    label: str


def _scene_dir(tmp: Path) -> Path:
    scenes = tmp / "scenes"
    (scenes / "empty").mkdir(parents=True)
    (scenes / "001.png").write_bytes(b"png one")
    (scenes / "002.png").write_bytes(_content(2, 200_000))
    return scenes


def test_files_as_fields_of_attrs_classes_dataclasses_and_dicts(
    repo: ckpt.Repository, tmp_path: Path
) -> None:
    video = tmp_path / "final.mp4"
    video.write_bytes(_content(1, 1_000_000))
    scenes = _scene_dir(tmp_path)
    job = repo.job("render")
    job.save("attrs", Render(ckpt.File(video), ckpt.Directory(scenes), 61.2))
    job.save("dataclass", Cut(ckpt.File(video, name="clip.mp4"), "intro"))
    job.save("dict", {"video": ckpt.File(video), "duration": 61.2, "all": [ckpt.File(video)]})
    render = job.load("attrs", Render)
    assert render.video.read_bytes() == video.read_bytes() and render.seconds == 61.2
    assert render.scenes.open("002.png").read() == (scenes / "002.png").read_bytes()
    cut = job.load("dataclass", Cut)
    assert cut.clip.name == "clip.mp4" and cut.clip.path.read_bytes() == video.read_bytes()
    plain = job.load("dict")
    assert isinstance(plain["video"], ckpt.File) and plain["duration"] == 61.2
    assert plain["all"][0] == plain["video"]
    # The tree entry names the contents, which is how gc and transfers reach them.
    entry = job.tree().get("dict")
    assert entry is not None and entry.files == (plain["video"].id,)
    assert len(job.tree().get("attrs").files) == 3  # type: ignore[union-attr]


def test_saving_the_same_file_again_writes_nothing_new(
    repo: ckpt.Repository, tmp_path: Path
) -> None:
    video = tmp_path / "final.mp4"
    video.write_bytes(_content(1, 3_000_000))
    job = repo.job("again")
    job.save("v", ckpt.File(video))
    packs = {info.key for info in repo.objects.packs()}
    loaded = job.load("v")
    job.save("copy", {"again": loaded})  # a loaded file is not read again
    new = {info.key for info in repo.objects.packs()} - packs
    assert sum(repo.storage.stat(key).size for key in new) < 10_000  # type: ignore[union-attr]


def test_a_loaded_file_saved_into_another_store_is_copied(tmp_path: Path) -> None:
    video = tmp_path / "final.mp4"
    video.write_bytes(_content(5, 2_000_000))
    first = ckpt.init(tmp_path / "one").job("a")
    first.save("v", ckpt.File(video))
    loaded = first.load("v")
    second = ckpt.init(tmp_path / "two")
    second.job("b").save("v", {"video": loaded})
    video.unlink()
    first.repo.close()
    assert second.job("b").load("v")["video"].read_bytes() == _content(5, 2_000_000)
    assert second.verify(full=True).ok


def test_serializing_outside_a_save_gives_the_stored_bytes(
    repo: ckpt.Repository, tmp_path: Path
) -> None:
    video = tmp_path / "v.bin"
    video.write_bytes(_content(3, 100_000))
    value = {"video": ckpt.File(video)}
    job = repo.job("same")
    job.save("v", value)
    assert serialize.dumps(value) == job.load_raw("v")
    assert serialize.normalize(value)["video"] is value["video"]


def test_listing_and_comparing_the_files_of_values(repo: ckpt.Repository, tmp_path: Path) -> None:
    scenes = _scene_dir(tmp_path)
    job = repo.job("list")
    job.save("v", {"scenes": ckpt.Directory(scenes)})
    before = serialize.parse_json(job.load_raw("v"))
    (scenes / "001.png").write_bytes(b"png one, redrawn")
    (scenes / "002.png").unlink()
    (scenes / "003.png").write_bytes(b"new")
    job.save("v", {"scenes": ckpt.Directory(scenes)})
    after = serialize.parse_json(job.load_raw("v"))
    assert [(f.path, f.size) for f in stored_files(after)] == [
        ("scenes/001.png", 16),
        ("scenes/003.png", 3),
    ]
    assert [(c.change, c.path) for c in file_changes(before, after)] == [
        ("changed", "scenes/001.png"),
        ("removed", "scenes/002.png"),
        ("added", "scenes/003.png"),
    ]


def test_write_out_puts_each_file_under_its_name(repo: ckpt.Repository, tmp_path: Path) -> None:
    video = tmp_path / "final.mp4"
    video.write_bytes(b"video")
    job = repo.job("out")
    job.save("v", {"video": ckpt.File(video), "scenes": ckpt.Directory(_scene_dir(tmp_path))})
    written = write_out(job.load("v"), tmp_path / "dest")
    assert sorted(p.name for p in written) == ["final.mp4", "scenes"]
    assert (tmp_path / "dest" / "scenes" / "002.png").read_bytes() == _content(2, 200_000)
    job.save("twice", {"a": ckpt.File(video), "b": ckpt.File(video, name="final.mp4")})
    (tmp_path / "other.mp4").write_bytes(b"other")
    other = ckpt.File(tmp_path / "other.mp4", name="final.mp4")
    job.save("clash", {"a": ckpt.File(video), "b": other})
    write_out(job.load("twice"), tmp_path / "twice")  # the same file twice is written once
    with pytest.raises(FileValueError, match=r"named 'final.mp4'"):
        write_out(job.load("clash"), tmp_path / "clash")
    assert not (tmp_path / "clash").exists()
    with pytest.raises(FileValueError, match=r"holds no ckpt.File"):
        write_out({"a": 1}, tmp_path / "none")


# -- bad input -------------------------------------------------------------------


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileValueError, match="no such file"):
        ckpt.File(tmp_path / "missing.mp4")
    with pytest.raises(FileValueError, match="no such file"):
        ckpt.Directory(tmp_path / "missing")


def test_a_file_removed_before_the_save_is_refused(repo: ckpt.Repository, tmp_path: Path) -> None:
    path = tmp_path / "gone.mp4"
    path.write_bytes(b"x")
    value = ckpt.File(path)
    path.unlink()
    with pytest.raises(FileValueError, match=r"gone.mp4.*no such file") as caught:
        repo.job("j").save("v", value)
    assert "stage 'v' of job 'j'" in str(caught.value)
    assert not repo.job("j").exists


def test_a_directory_is_not_a_file_nor_a_file_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(FileValueError, match=r"it is a directory.*use ckpt.Directory"):
        ckpt.File(tmp_path)
    with pytest.raises(FileValueError, match=r"it is a regular file.*use ckpt.File"):
        ckpt.Directory(tmp_path / "f")


def test_special_files_are_refused(repo: ckpt.Repository, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileValueError, match="it is a fifo"):
        ckpt.File(fifo)
    with pytest.raises(FileValueError, match="it is a character device"):
        ckpt.File("/dev/null")
    folder = tmp_path / "dir"
    folder.mkdir()
    os.mkfifo(folder / "pipe")
    # Refused without blocking on the fifo (no writer will ever come).
    with pytest.raises(FileValueError, match=r"pipe.*it is a fifo"):
        repo.job("j").save("v", ckpt.Directory(folder))


def test_a_symbolic_link_inside_a_directory_is_refused(
    repo: ckpt.Repository, tmp_path: Path
) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "link").symlink_to("/etc/passwd")
    with pytest.raises(FileValueError, match=r"link.*symbolic link"):
        repo.job("j").save("v", ckpt.Directory(folder))


def test_a_name_that_is_not_utf8_is_refused(repo: ckpt.Repository, tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    fd = os.open(os.path.join(os.fsencode(folder), b"bad\xffname"), os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    with pytest.raises(FileValueError, match="not valid UTF-8"):
        repo.job("j").save("v", ckpt.Directory(folder))
    with pytest.raises(FileValueError, match="not valid UTF-8"):
        ckpt.File(os.fsdecode(os.path.join(os.fsencode(folder), b"bad\xffname")))


def test_a_file_that_changes_while_it_is_saved_is_refused_and_nothing_is_kept(
    repo: ckpt.Repository, tmp_path: Path
) -> None:
    job = repo.job("j")
    job.save("before", 1)
    packs = {info.key for info in repo.objects.packs()}
    path = tmp_path / "growing.bin"
    path.write_bytes(_content(9, 48 << 20))
    value = ckpt.File(path)
    stop = threading.Event()

    def append() -> None:
        with open(path, "ab") as out:
            while not stop.is_set():
                out.write(b"more")
                out.flush()
                time.sleep(0.0005)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        with pytest.raises(FileValueError, match="changed while it was being stored"):
            job.save("v", value)
    finally:
        stop.set()
        writer.join()
    assert job.stages() == ["before"]
    assert {info.key for info in repo.objects.packs()} == packs
    assert repo.verify(full=True).ok


def test_a_file_that_shrinks_while_it_is_read_is_refused(tmp_path: Path) -> None:
    from ckpt.objects.stream import ContentDigest
    from ckpt.values.filesource import stream_file

    path = tmp_path / "shrinking.bin"
    path.write_bytes(_content(4, 5 << 20))

    class Shrinking(ContentDigest):
        def stream(self, length: int) -> Any:
            os.truncate(path, 1000)  # another program rewrites it as it is read
            return super().stream(length)

    with pytest.raises(FileValueError, match="changed while it was being stored"):
        stream_file(str(path), Shrinking())


# -- stored names are untrusted -------------------------------------------------------


def _hostile(job: ckpt.Job, doc: dict[str, Any]) -> None:
    """Store ``doc`` (which mimics a stored File or Directory) as a plain value."""
    job.save("evil", {"value": doc})


@pytest.mark.parametrize(
    "name", ["../../escape", "/etc/passwd", "..", ".", "", "a/b", "nul\0byte", "x" * 300]
)
def test_a_hostile_file_name_is_refused_before_anything_is_written(
    repo: ckpt.Repository, tmp_path: Path, name: str
) -> None:
    blob = repo.objects.put(Kind.BLOB, b"payload")
    job = repo.job("j")
    _hostile(job, {"$ckpt": "file", "id": blob, "mode": 0o644, "name": name, "size": 7})
    with pytest.raises((InvalidNameError, SerializationError)):
        job.load("evil")
    with pytest.raises((InvalidNameError, SerializationError)):
        job.load("evil", dict[str, ckpt.File])


@pytest.mark.parametrize(
    "entries",
    [
        [["../escape", 0o644, 7, "ID"]],
        [["a/../../escape", 0o644, 7, "ID"]],
        [["/tmp/escape", 0o644, 7, "ID"]],
        [["a", 0o644, 7, "ID"], ["a/b", 0o644, 7, "ID"]],
        [["a", 0o755], ["a", 0o644, 7, "ID"]],
        [["a//b", 0o644, 7, "ID"]],
        [["a", 0o4755]],
    ],
)
def test_hostile_directory_entries_are_refused(
    repo: ckpt.Repository, tmp_path: Path, entries: list[list[Any]]
) -> None:
    blob = repo.objects.put(Kind.BLOB, b"payload")
    job = repo.job("j")
    entries = [[blob if part == "ID" else part for part in entry] for entry in entries]
    _hostile(job, {"$ckpt": "directory", "entries": entries, "mode": 0o755, "name": "d"})
    with pytest.raises((InvalidNameError, SerializationError)):
        job.load("evil")
    assert not any(path.name == "escape" for path in tmp_path.rglob("*"))


def test_a_symbolic_link_in_the_destination_is_never_followed(
    repo: ckpt.Repository, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "src" / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f").write_bytes(b"payload")
    (folder / "top").write_bytes(b"top")
    job = repo.job("j")
    job.save("v", ckpt.Directory(folder))
    loaded = job.load("v")
    dest = tmp_path / "dest"
    (dest / "d").mkdir(parents=True)
    (dest / "d" / "sub").symlink_to(outside)
    with pytest.raises(InvalidNameError, match="symbolic link"):
        loaded.materialize(to=dest)
    assert list(outside.iterdir()) == []
    # A link where a file goes is replaced, not written through.
    os.unlink(dest / "d" / "sub")
    (dest / "d" / "top").symlink_to(outside / "target")
    loaded.materialize(to=dest)
    assert not (outside / "target").exists()
    assert (dest / "d" / "top").read_bytes() == b"top" and not (dest / "d" / "top").is_symlink()


def test_a_link_planted_in_the_cache_is_not_used(repo: ckpt.Repository, tmp_path: Path) -> None:
    video = tmp_path / "v.bin"
    video.write_bytes(b"the real bytes")
    job = repo.job("j")
    job.save("v", ckpt.File(video))
    loaded = job.load("v")
    path = loaded.path
    path.unlink()
    (tmp_path / "planted").write_bytes(b"someone else's bytes")
    path.symlink_to(tmp_path / "planted")
    again = loaded.path
    assert not again.is_symlink() and again.read_bytes() == b"the real bytes"


def test_damaged_content_is_reported_and_never_materialized(
    repo: ckpt.Repository, tmp_path: Path
) -> None:
    video = tmp_path / "v.bin"
    video.write_bytes(_content(8, 1_000_000))
    job = repo.job("j")
    job.save("v", ckpt.File(video))
    loaded = job.load("v")
    assert loaded.id is not None
    flip(repo.storage, repo.objects, repo.objects.references(loaded.id)[-1])
    with pytest.raises(CorruptObjectError, match=loaded.id):
        loaded.read_bytes()
    with pytest.raises(CorruptObjectError):
        loaded.materialize(to=tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    report = repo.verify(full=True)
    assert not report.ok and report.jobs["j"].broken_commits


def test_a_value_rebuilt_outside_a_load_says_so(tmp_path: Path) -> None:
    doc = {"$ckpt": "file", "id": "0" * 64, "mode": 0o644, "name": "x", "size": 1}
    loose = serialize.structure(doc, ckpt.File)
    with pytest.raises(CkptError, match="bound to no store"):
        loose.open()


def test_a_stored_size_that_lies_is_caught_before_a_byte_is_used(
    repo: ckpt.Repository, tmp_path: Path
) -> None:
    blob = repo.objects.put(Kind.BLOB, b"payload")
    job = repo.job("j")
    _hostile(job, {"$ckpt": "file", "id": blob, "mode": 0o644, "name": "f", "size": 3})
    lying = job.load("evil")["value"]
    with pytest.raises(CorruptObjectError, match="another size"):
        lying.read_bytes()
    with pytest.raises(CorruptObjectError, match="another size"):
        lying.materialize(to=tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
