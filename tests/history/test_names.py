"""Names from users (jobs, branches, tags, stages) are untrusted: refuse bad ones early.

A refused name raises InvalidNameError and creates nothing on disk; an
accepted one matches the documented pattern (ckpt.history.names) and everything it
creates stays inside the store.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ckpt
from ckpt.errors import ConflictError, InvalidNameError
from ckpt.history import names

#: Refused for every kind of name.
BAD_NAMES: list[Any] = [
    "",
    "../x",
    "..",
    ".",
    "/abs",
    "a/../b",
    ".hidden",
    "-dash-first",
    "a\0b",
    "\0",
    "a\nb",
    "trailing\n",
    "\n",
    "a\x7fb",
    "a\tb",
    "a\rb",
    "a b",
    " a",
    "a\\b",
    "a:b",
    "a*b",
    "a?b",
    "a[b",
    "a~1",
    "a^",
    "@{-1}",
    "@",
    "a@{1}",
    "é",
    "caf\u00e9",
    "a\u200bb",
    "x.lock",
    "x.log",
    "x.tmp",
    "a..b",
    "a.",
    "HEAD",
    "FETCH_HEAD",
    "ORIG_HEAD",
    "a" * 256,
    "é" * 128,
    None,
    1,
    1.5,
    b"bytes",
    ["a"],
    Path("a"),
]

#: Refused for jobs and stages, which hold no "/", though fine for branches and tags.
SLASHED = ["a/b", "feature/x-1", "release/v1.2"]

#: Refused for branches and tags too: bad "/" components.
BAD_REF_NAMES = [
    "a/",
    "/a",
    "a//b",
    "a/./b",
    "a/.b",
    "a/b.lock",
    "a/b.",
    "a/..",
    "../a",
    "a/" + "b" * 201,
]

GOOD_NAMES = ["a", "A", "0", "_", "_x", "a-b", "A-1_b.c", "v1.0", "x@y", "a+b=c", "run.2024-01-01"]

KINDS: dict[str, Callable[[object], str]] = {
    "job": names.job_name,
    "branch": names.branch_name,
    "tag": names.tag_name,
    "stage": names.stage_name,
}

#: The pattern ckpt.history.names documents for one component.
COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+=-]*")


def _follows_the_rules(name: str, *, slash: bool) -> bool:
    if not name or len(name.encode()) > 255 or name in ("HEAD", "FETCH_HEAD", "ORIG_HEAD"):
        return False
    parts = name.split("/") if slash else [name]
    return all(
        COMPONENT.fullmatch(part)
        and ".." not in part
        and not part.endswith((".", ".lock", ".log", ".tmp"))
        and (not slash or len(part) <= 200)
        for part in parts
    )


# -- the validators ---------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_bad_name_is_refused(kind: str, bad: Any) -> None:
    with pytest.raises(InvalidNameError) as info:
        KINDS[kind](bad)
    assert kind in str(info.value)


@pytest.mark.parametrize("kind", ["job", "stage"])
@pytest.mark.parametrize("name", SLASHED)
def test_slash_is_refused_in_job_and_stage_names(kind: str, name: str) -> None:
    with pytest.raises(InvalidNameError, match=f"invalid {kind} name"):
        KINDS[kind](name)


@pytest.mark.parametrize("kind", ["branch", "tag"])
@pytest.mark.parametrize("name", SLASHED)
def test_slash_separates_branch_and_tag_components(kind: str, name: str) -> None:
    assert KINDS[kind](name) == name


@pytest.mark.parametrize("kind", ["branch", "tag"])
@pytest.mark.parametrize("bad", BAD_REF_NAMES)
def test_bad_branch_and_tag_components_are_refused(kind: str, bad: str) -> None:
    with pytest.raises(InvalidNameError, match=f"{kind} name"):
        KINDS[kind](bad)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("good", GOOD_NAMES)
def test_good_name_is_accepted(kind: str, good: str) -> None:
    assert KINDS[kind](good) == good


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_length_limit_is_255_bytes(kind: str) -> None:
    assert KINDS[kind]("a" * 200) == "a" * 200
    with pytest.raises(InvalidNameError, match="longer than 255 bytes"):
        KINDS[kind]("a" * 256)


def test_messages_say_what_is_wrong() -> None:
    with pytest.raises(InvalidNameError, match="job name must not be empty"):
        names.job_name("")
    with pytest.raises(InvalidNameError, match="stage name must be a string, not NoneType"):
        names.stage_name(None)
    with pytest.raises(InvalidNameError, match="branch name 'HEAD' is reserved"):
        names.branch_name("HEAD")
    with pytest.raises(InvalidNameError, match=r"invalid tag name 'a\.\.b': no '\.\.'"):
        names.tag_name("a..b")
    with pytest.raises(InvalidNameError, match="an empty part between '/'"):
        names.branch_name("a//b")
    with pytest.raises(InvalidNameError, match="use letters, digits"):
        names.job_name("../x")


def test_the_name_rule_says_where_a_slash_is_allowed() -> None:
    rule = "use letters, digits and . _ - @ + = (starting with a letter, digit or _)"
    with pytest.raises(InvalidNameError) as branch:
        names.branch_name("a b")
    assert str(branch.value) == (
        f"invalid branch name 'a b': {rule}; '/' may separate parts (as in fix/ending), "
        "each part following that rule"
    )
    with pytest.raises(InvalidNameError) as job:
        names.job_name("team/novel")
    assert str(job.value) == (
        f"invalid job name 'team/novel': {rule}; '/' is allowed only in branch and tag "
        "names, not in a job name"
    )
    with pytest.raises(InvalidNameError) as stage:
        names.stage_name("a b")
    assert str(stage.value) == f"invalid stage name 'a b': {rule}"
    assert names.branch_name("fix/ending") == "fix/ending"


def test_invalid_name_error_is_a_value_error_and_a_ckpt_error() -> None:
    with pytest.raises(ValueError):
        names.job_name("../x")
    with pytest.raises(ckpt.CkptError):
        names.job_name("../x")


# -- through the API: nothing is created ------------------------------------


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``root`` with its size and mtime."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            path = os.path.join(dirpath, entry)
            st_ = os.lstat(path)
            found[os.path.relpath(path, root)] = (st_.st_size, st_.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one job (two stages, a tag), built once and copied for each test."""
    root = tmp_path_factory.mktemp("template") / "store"
    with ckpt.init(root, durable=False) as repo:
        job = repo.job("novel")
        job.save("outline", {"chapters": 3})
        job.save("draft", "text")
        job.tag("v1")
    return root


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Iterator[tuple[ckpt.Repository, Path]]:
    root = tmp_path / "store"
    shutil.copytree(template, root, symlinks=True)
    repo = ckpt.open(root, durable=False)
    yield repo, root
    repo.close()


API_CALLS: dict[str, Callable[[ckpt.Repository, Any], object]] = {
    "repo.job": lambda repo, bad: repo.job(bad),
    "repo.delete_job": lambda repo, bad: repo.delete_job(bad),
    "job.save": lambda repo, bad: repo.job("novel").save(bad, 1),
    "job.save(new job)": lambda repo, bad: repo.job("fresh").save(bad, 1),
    "job.load": lambda repo, bad: repo.job("novel").load(bad),
    "job.branch": lambda repo, bad: repo.job("novel").branch(bad),
    "job.checkout(new_branch)": lambda repo, bad: repo.job("novel").checkout(
        "HEAD~1", new_branch=bad
    ),
    "job.switch": lambda repo, bad: repo.job("novel").switch(bad),
    "job.delete_branch": lambda repo, bad: repo.job("novel").delete_branch(bad),
    "job.tag": lambda repo, bad: repo.job("novel").tag(bad),
    "job.delete_tag": lambda repo, bad: repo.job("novel").delete_tag(bad),
}

API_BAD_NAMES = [
    "../x",
    "/abs",
    "a/../b",
    ".hidden",
    "a\0b",
    "a\nb",
    "a\x7f",
    "",
    "a" * 256,
    "x.lock",
    "x.log",
    "x.tmp",
    "a..b",
    "trailing.",
    "HEAD",
    None,
    42,
]


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        pytest.param(call, bad, id=f"{call}-{bad!r}")
        for call in sorted(API_CALLS)
        for bad in API_BAD_NAMES
        # new_branch=None means "no new branch": a plain checkout.
        if not (call == "job.checkout(new_branch)" and bad is None)
    ],
)
def test_bad_name_through_the_api_creates_nothing(
    store: tuple[ckpt.Repository, Path], call: str, bad: Any
) -> None:
    repo, root = store
    before = _snapshot(root)
    with pytest.raises(InvalidNameError):
        API_CALLS[call](repo, bad)
    assert _snapshot(root) == before
    job = repo.job("novel")
    assert repo.job_names() == ["novel"]
    assert sorted(job.branches()) == ["main"]
    assert sorted(job.tags()) == ["v1"]
    assert job.stages() == ["outline", "draft"]


@pytest.mark.parametrize("bad", ["../x", "a\nb", "x.lock"])
def test_bad_stage_name_is_refused_before_the_value_is_serialized(
    store: tuple[ckpt.Repository, Path], bad: str
) -> None:
    repo, root = store
    before = _snapshot(root)
    with pytest.raises(InvalidNameError):
        repo.job("novel").save(bad, object())
    assert _snapshot(root) == before


def test_long_names_that_are_accepted_work(store: tuple[ckpt.Repository, Path]) -> None:
    repo, _root = store
    job = repo.job("j" * 255)
    job.save("s" * 255, 1)
    job.branch("b" * 200 + "/" + "c" * 54)
    job.tag("t" * 200)
    assert job.load("s" * 255) == 1
    assert sorted(job.branches()) == ["b" * 200 + "/" + "c" * 54, "main"]
    assert list(job.tags()) == ["t" * 200]
    assert "j" * 255 in repo.job_names()


@pytest.mark.parametrize("name", ["fix.tmp2", "a.tmpx", "v.log1", "x.lockfile", "tmp", "log"])
def test_names_that_merely_contain_reserved_suffixes_are_listed(
    store: tuple[ckpt.Repository, Path], name: str
) -> None:
    """A ref whose name contains ".tmp" must not be mistaken for a temporary file."""
    repo, _root = store
    job = repo.job("novel")
    job.branch(name)
    job.tag(name)
    assert name in job.branches()
    assert name in job.tags()
    other = repo.job(name)
    other.save("s", 1)
    assert name in repo.job_names()


def test_branch_nested_under_an_existing_branch_is_a_clean_conflict(
    store: tuple[ckpt.Repository, Path],
) -> None:
    """Like git: refs/heads/a and refs/heads/a/b cannot both exist (one is a file)."""
    repo, root = store
    job = repo.job("novel")
    job.branch("a")
    job.branch("b/c")
    before = _snapshot(root)
    with pytest.raises(ConflictError, match="a/b"):
        job.branch("a/b")
    with pytest.raises(ConflictError, match="'b'"):
        job.branch("b")
    assert _snapshot(root) == before
    assert sorted(job.branches()) == ["a", "b/c", "main"]


# -- hostile names from hypothesis ------------------------------------------

hostile = st.text(st.sampled_from(list("ab._-/@+=~^:\\ \0\n\x7f\x1bé")), max_size=12)
hostile_with_words = st.lists(
    st.sampled_from(["a", "b1", "..", ".", "/", "", "HEAD", ".lock", ".tmp", "\0", "\n", "x"]),
    max_size=6,
).map("".join)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=hostile | hostile_with_words)
@example(name="a/b")
@example(name="a/../../../../etc/passwd")
@example(name="..%2f..%2fx")
def test_hostile_names_are_refused_or_stay_inside_the_store(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        root = top / "store"
        repo = ckpt.init(root, durable=False)
        job = repo.job("j")
        job.save("s", 1)
        outside_before = sorted(p.name for p in top.iterdir())

        for kind, validate in KINDS.items():
            try:
                validate(name)
            except InvalidNameError:
                continue
            assert _follows_the_rules(name, slash=kind in ("branch", "tag")), (kind, name)

        for action in (
            lambda: repo.job(name).save("s", 1),
            lambda: job.save(name, 1),
            lambda: job.branch(name),
            lambda: job.tag(name),
        ):
            with contextlib.suppress(InvalidNameError):
                action()

        assert sorted(p.name for p in top.iterdir()) == outside_before
        real_root = os.path.realpath(root)
        for dirpath, dirnames, filenames in os.walk(root):
            for entry in dirnames + filenames:
                path = os.path.realpath(os.path.join(dirpath, entry))
                assert path.startswith(real_root + os.sep)
        if _follows_the_rules(name, slash=True):
            assert name in job.branches()
            assert name in job.tags()
        if _follows_the_rules(name, slash=False):
            assert name in repo.job_names()
            assert job.load(name) == 1
        repo.close()
