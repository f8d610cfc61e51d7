"""Long output is paged on a terminal, as git pages it; never when piped."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ckpt
from ckpt.cli.pager import DEFAULT_PAGER, pager_command
from ckpt.history.job import Job

from .terminal import run_on_terminal

#: A pager that writes what it is given to the file named by $GRAB.
GRAB = "import os, sys; open(os.environ['GRAB'], 'w').write(sys.stdin.read())"


def _pager(tmp_path: Path) -> dict[str, str]:
    grabbed = tmp_path / "paged.txt"
    return {
        "CKPT_PAGER": f"{shlex.quote(sys.executable)} -c {shlex.quote(GRAB)}",
        "GRAB": str(grabbed),
    }


def _piped(store: Path, *args: str, env: dict[str, str] | None = None) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_")}
    environment.update({"NO_COLOR": "1", "COLUMNS": "100", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "ckpt", "--store", str(store), *args],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.parametrize(
    "args",
    [
        ("log", "novel"),
        ("show", "novel"),
        ("diff", "novel", "HEAD~2"),
        ("cat", "novel", "chapters"),
        ("reflog", "novel"),
    ],
)
def test_on_a_terminal_the_output_goes_through_the_pager(
    store: Path, novel: Job, tmp_path: Path, args: tuple[str, ...]
) -> None:
    env = _pager(tmp_path)
    shown, status = run_on_terminal(["--store", str(store), *args], cwd=tmp_path, env=env)
    assert (shown, status) == ("", 0)  # the pager had it all, the terminal nothing directly
    assert Path(env["GRAB"]).read_text() == _piped(store, *args)


def test_the_pager_gets_the_terminal_s_colours(store: Path, novel: Job, tmp_path: Path) -> None:
    env = {**_pager(tmp_path), "NO_COLOR": ""}
    run_on_terminal(["--store", str(store), "log", "novel", "--oneline"], cwd=tmp_path, env=env)
    paged = Path(env["GRAB"]).read_text()
    assert f"\x1b[33m{novel.resolve().short_id}\x1b[0m" in paged  # less -R shows it in yellow


@pytest.mark.parametrize(
    ("before", "env"),
    [(["--no-pager"], {}), ([], {"CKPT_PAGER": "cat"}), ([], {"CKPT_PAGER": ""})],
)
def test_no_pager(
    store: Path, novel: Job, tmp_path: Path, before: list[str], env: dict[str, str]
) -> None:
    grab = {**_pager(tmp_path), **env}
    shown, status = run_on_terminal(
        [*before, "--store", str(store), "log", "novel", "--oneline"], cwd=tmp_path, env=grab
    )
    assert status == 0
    assert shown == _piped(store, "log", "novel", "--oneline")
    assert not Path(grab["GRAB"]).exists()


def test_piped_output_is_never_paged(store: Path, novel: Job, tmp_path: Path) -> None:
    env = _pager(tmp_path)
    assert _piped(store, "log", "novel", env=env).startswith("commit ")
    assert not Path(env["GRAB"]).exists()


def test_quitting_the_pager_before_the_end_is_no_error(store: Path, tmp_path: Path) -> None:
    with ckpt.open(store, durable=False) as repo:
        job = repo.job("long")
        for step in range(800):  # about 140 KB of log: more than a pipe holds
            job.save("step", step, message="a line of text for the log " * 2)
    reads_a_little = f"{shlex.quote(sys.executable)} -c 'import sys; sys.stdin.read(100)'"
    shown, status = run_on_terminal(
        ["--store", str(store), "log", "long"], cwd=tmp_path, env={"CKPT_PAGER": reads_a_little}
    )
    assert (shown, status) == ("", 0)


def test_which_pager() -> None:
    assert pager_command({"CKPT_PAGER": "more", "PAGER": "most"}) == "more"
    assert pager_command({"PAGER": "most"}) == "most"
    assert pager_command({"PAGER": "cat"}) is None
    assert pager_command({"CKPT_PAGER": " ", "PAGER": "most"}) is None
    assert pager_command({}) == (DEFAULT_PAGER if shutil.which("less") else None)
    assert pager_command({"TERM": "dumb"}) is None  # less would stop to complain
    assert pager_command({"TERM": "dumb", "PAGER": "most"}) == "most"
    assert DEFAULT_PAGER == "less -FRX"
