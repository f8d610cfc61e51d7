"""The Python API as the README and docs write it: the quick start runs twice in a row,
``init(exist_ok=True)``, the documented paths to ``read_progress``, and a serialization
error raised through a pipeline that names its stage."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import ckpt
from ckpt.errors import SerializationError, StoreExistsError

ROOT = Path(__file__).resolve().parents[1]


def _quick_start() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start: the Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README has no quick start code"
    return match.group(1)


def test_the_readme_quick_start_runs_twice_in_a_row(tmp_path: Path) -> None:
    script = tmp_path / "quick_start.py"
    script.write_text(_quick_start(), encoding="utf-8")
    for attempt in (1, 2):
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"run {attempt}:\n{done.stderr}"
    with ckpt.open(tmp_path / ".ckpt") as repo:
        job = repo.job("novel-42")
        assert job.branch_name == "alt"
        assert sorted(job.branches()) == ["alt", "main"]
        assert repo.verify(full=True).ok


def test_init_exist_ok_opens_the_store_already_there(tmp_path: Path) -> None:
    where = tmp_path / "store"
    with ckpt.init(where) as first:
        first.job("j").save("s", 1)
    with pytest.raises(StoreExistsError):
        ckpt.init(where)
    with ckpt.init(where, exist_ok=True) as again:
        assert again.job("j").load("s") == 1
    (tmp_path / "afile").write_text("not a store")
    with pytest.raises(StoreExistsError, match="exists and is not a directory"):
        ckpt.init(tmp_path / "afile", exist_ok=True)


def test_read_progress_is_reachable_as_the_docs_write_it(tmp_path: Path) -> None:
    code = (
        "import ckpt\n"
        "assert ckpt.progress.read_progress is ckpt.read_progress\n"
        "assert ckpt.pipeline.progress.read_progress is ckpt.read_progress\n"
        "repo = ckpt.init('s')\n"
        "print(ckpt.read_progress(repo.job('none')))\n"
    )
    done = subprocess.run(  # a fresh interpreter: nothing of ckpt imported beforehand
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "None\n", "")


def test_a_serialization_error_through_a_pipeline_names_the_stage(
    repo: ckpt.Repository,
) -> None:
    class Opaque:
        pass

    untyped = ckpt.Pipeline(store=repo)

    @untyped.stage
    def draft(input: dict[str, int]):  # no return type: its output is checked by a round trip
        return {"text": Opaque()}

    with pytest.raises(SerializationError) as raised:
        untyped.run("untyped", {"n": 1})
    assert str(raised.value) == (
        "stage 'draft' of job 'untyped': $.text: cannot serialize a value of type "
        f"{Opaque.__module__}.{Opaque.__qualname__}"
    )

    typed = ckpt.Pipeline(store=repo)

    @typed.stage
    def outline(input: dict[str, int]) -> dict[str, object]:
        return {"text": Opaque()}

    with pytest.raises(SerializationError, match=r"^stage 'outline' of job 'typed': \$\.text"):
        typed.run("typed", {"n": 1})

    fanned = ckpt.Pipeline(store=repo)

    @fanned.stage
    def scenes(input: dict[str, int], ctx: ckpt.StageContext):
        return ctx.map(lambda n: {"frame": Opaque()} if n == 2 else {"frame": n}, [0, 1, 2])

    with pytest.raises(SerializationError) as raised:
        fanned.run("fanned", {"n": 1})
    assert str(raised.value) == (
        "stage 'scenes' of job 'fanned', item 2: $.frame: cannot serialize a value of type "
        f"{Opaque.__module__}.{Opaque.__qualname__}"
    )
