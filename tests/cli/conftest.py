"""Fixtures for the CLI tests: a fresh store, a runner bound to it, and sample jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import ckpt
from ckpt.cli.main import cli
from ckpt.history.job import Job
from ckpt.repository import Repository

Run = Callable[..., Result]

#: Stages of the sample job: name -> (value, cost, tokens).
SAMPLE_STAGES: dict[str, tuple[object, float, int]] = {
    "outline": ({"title": "Vell", "chapters": 3}, 0.25, 1000),
    "characters": (["Ida", "Tomas"], 0.5, 2000),
    "chapters": ([{"n": 1, "words": 2400}, {"n": 2, "words": 2750}], 1.25, 40000),
}


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in ("CKPT_DIR", "CKPT_DEBUG", "CKPT_JOB", "CKPT_PAGER", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    # `ckpt use` remembers the current job here: never in the real home of whoever runs tests.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty store at ``tmp_path/.ckpt``."""
    path = tmp_path / ".ckpt"
    ckpt.init(path, durable=False).close()
    return path


@pytest.fixture
def repo(store: Path) -> Iterator[Repository]:
    with ckpt.open(store, durable=False) as opened:
        yield opened


@pytest.fixture
def run(store: Path) -> Run:
    """``run("log", "novel")``: invoke ckpt on the fixture's store; returns click's Result."""

    def invoke(*args: str, input: str | bytes | None = None, **kwargs: object) -> Result:
        return CliRunner().invoke(cli, ["--store", str(store), *args], input=input, **kwargs)

    return invoke


def save_stages(job: Job, stages: Sequence[str] = tuple(SAMPLE_STAGES)) -> list[ckpt.Commit]:
    """Save the sample stages (in order) to ``job``; return their commits."""
    commits = []
    for stage in stages:
        value, cost, tokens = SAMPLE_STAGES[stage]
        commits.append(job.save(stage, value, cost=cost, tokens=tokens, message=f"{stage} done"))
    return commits


def corrupt_object(store: Path, repo: Repository, oid: str) -> None:
    """Damage the stored bytes of object ``oid`` on disk, in its pack or loose file."""
    where = repo.objects.locate(oid)  # type: ignore[arg-type]
    assert where is not None
    path = store / where.key
    data = bytearray(path.read_bytes())
    start = where.offset if where.packed else 0
    length = where.length if where.packed else len(data)
    middle = start + length // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    path.chmod(0o644)
    path.write_bytes(bytes(data))


@pytest.fixture
def novel(repo: Repository) -> Job:
    """Job ``novel`` with the three sample stages on ``main``."""
    job = repo.job("novel")
    save_stages(job)
    return job
