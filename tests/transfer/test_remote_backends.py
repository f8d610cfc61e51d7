"""Remotes on every backend: push to it, clone from it, resume there, push back."""

from __future__ import annotations

from pathlib import Path

import ckpt
from ckpt.transfer.remote import add_remote, clone, pull, push


def test_push_clone_resume_and_push_back(store_url: str, tmp_path: Path) -> None:
    ckpt.init(store_url).close()
    work = ckpt.init(tmp_path / "work")
    add_remote(work, "origin", store_url)
    job = work.job("novel")
    for i in range(3):
        job.save(f"stage{i}", {"chapter": i, "text": "words " * 50}, cost=0.25, tokens=100)
    first = push(work, "origin")
    assert [u.status for u in first.updates] == ["created"]

    other, report = clone(store_url, str(tmp_path / "elsewhere"))
    assert [u.status for u in report.updates] == ["created"]
    resumed = other.job("novel")
    assert resumed.stages() == ["stage0", "stage1", "stage2"]
    resumed.save("stage3", {"chapter": 3}, cost=0.25, tokens=100)
    back = push(other, "origin")
    assert [u.status for u in back.updates] == ["fast-forward"]
    assert back.objects_copied == 3

    assert [u.status for u in pull(work, "origin").updates] == ["fast-forward"]
    job.refresh()
    assert job.stages() == ["stage0", "stage1", "stage2", "stage3"]
    assert job.head is not None and job.head.total_cost == 1.0
    with ckpt.open(store_url) as remote:
        assert remote.verify(full=True).ok
        assert remote.job("novel").load("stage3") == {"chapter": 3}


def test_the_documented_workflow_push_creates_the_remote_store(
    store_url: str, tmp_path: Path
) -> None:
    """docs/backends.md: `ckpt remote add origin URL` then `ckpt push origin JOB`, with no
    `ckpt init` on the remote side: the push creates the store, and says so."""
    from click.testing import CliRunner

    from ckpt.cli.main import cli
    from ckpt.storage import shown_url

    local = tmp_path / "local"
    with ckpt.init(local) as work:
        work.job("novel").save("outline", {"title": "Vell"}, cost=0.5)
    runner = CliRunner()
    assert runner.invoke(cli, ["--store", str(local), "remote", "add", "origin", store_url])
    result = runner.invoke(cli, ["--store", str(local), "push", "origin", "novel"])
    assert result.exit_code == 0, result.output
    shown = shown_url(store_url)
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"Created a ckpt store at {shown} (there was none).", f"To {shown}"]
    assert lines[3].startswith("Copied 3 objects (")
    again = runner.invoke(cli, ["--store", str(local), "push", "origin", "novel"])
    assert (again.exit_code, again.stdout) == (0, "Everything up-to-date.\n")
    with ckpt.open(store_url) as remote:
        assert remote.job("novel").load("outline") == {"title": "Vell"}
        assert remote.verify(full=True).ok


def test_push_refuses_a_location_that_holds_something_else(store_url: str, tmp_path: Path) -> None:
    import pytest

    from ckpt.errors import StoreNotFoundError
    from ckpt.storage import open_storage

    storage = open_storage(store_url)
    storage.put_if_absent("notes/todo", b"not a ckpt store")
    url = storage.url
    storage.close()
    work = ckpt.init(tmp_path / "work")
    work.job("novel").save("outline", {"title": "Vell"})
    if store_url.startswith(("/", "file://")):
        expected = f"{store_url} holds files but no ckpt store; not creating a store there"
    else:
        expected = f"{url} holds data but no ckpt store; not creating a store there"
    with pytest.raises(StoreNotFoundError) as refused:
        push(work, store_url)
    assert str(refused.value).startswith(expected)
    storage = open_storage(store_url)
    assert [info.key for info in storage.list()] == ["notes/todo"]
    storage.close()
