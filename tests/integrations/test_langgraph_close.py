"""``CkptSaver.close()`` is final: it waits for the writes under way, then refuses everything.

A write is held in flight by a gate on the saver's thread store (the write
waits there, inside ``put``, until the test opens it), so that ``close()``
meets it deterministically: from another thread, and from an async graph
run that is cancelled (``ainvoke``) or abandoned (``astream``) meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

import ckpt
from ckpt.errors import CkptError
from ckpt.integrations.langgraph import CkptSaver, SaverClosedError

from .lg_world import build, config

WAIT = 10.0


class Gate:
    """Holds the ``after``-th and later calls of a saver's ``put_checkpoint`` until opened."""

    def __init__(self, saver: CkptSaver, after: int = 1) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.calls = 0
        self.finished = 0
        inner: Callable[..., Any] = saver.store.put_checkpoint

        def gated(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls >= after:
                self.entered.set()
                assert self.opened.wait(WAIT), "the gate was never opened"
            found = inner(*args, **kwargs)
            self.finished += 1
            return found

        saver.store.put_checkpoint = gated  # type: ignore[method-assign]

    def open(self) -> None:
        self.opened.set()


def checkpoint(n: int) -> Any:
    found = empty_checkpoint()
    found.update(id=str(uuid6(clock_seq=n)), channel_values={"x": n}, channel_versions={"x": n})
    return found


CFG = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


@pytest.fixture
def repo() -> Iterator[ckpt.Repository]:
    store = ckpt.init(f"memory://{uuid.uuid4().hex}")
    yield store
    store.close()


def heads(repo: ckpt.Repository) -> dict[str, dict[str, str]]:
    return {name: dict(repo.job(name).branches()) for name in repo.job_names()}


def test_every_call_after_close_is_refused(repo: ckpt.Repository) -> None:
    saver = CkptSaver(repo)
    first = checkpoint(1)
    stored = saver.put(CFG, first, {"step": 0}, {"x": 1})
    saver.close()
    saver.close()  # closing twice does nothing
    assert saver.closed
    calls: dict[str, Callable[[], Any]] = {
        "put": lambda: saver.put(stored, checkpoint(2), {"step": 1}, {"x": 2}),
        "put_writes": lambda: saver.put_writes(stored, [("x", 3)], "task"),
        "get_tuple": lambda: saver.get_tuple(CFG),
        "list": lambda: list(saver.list(None)),
        "delete_thread": lambda: saver.delete_thread("t"),
        "copy_thread": lambda: saver.copy_thread("t", "u"),
        "prune": lambda: saver.prune(["t"]),
        "delete_for_runs": lambda: saver.delete_for_runs(["r"]),
    }
    for name, call in calls.items():
        with pytest.raises(SaverClosedError, match=f"this CkptSaver is closed: {name} refused"):
            call()
    with pytest.raises(SaverClosedError):
        asyncio.run(saver.aput(stored, checkpoint(2), {"step": 1}, {"x": 2}))
    assert isinstance(SaverClosedError("x"), CkptError)
    assert [t.checkpoint["id"] for t in CkptSaver(repo).list(None)] == [first["id"]]


def test_leaving_with_closes_the_saver_and_the_store_it_opened() -> None:
    location = f"memory://{uuid.uuid4().hex}"
    with CkptSaver(location) as saver:
        saver.put(CFG, checkpoint(1), {"step": 0}, {"x": 1})
    assert saver.closed
    with pytest.raises(SaverClosedError):
        saver.get_tuple(CFG)

    async def leave() -> CkptSaver:
        async with CkptSaver(ckpt.init(f"memory://{uuid.uuid4().hex}")) as other:
            await other.aput(CFG, checkpoint(1), {"step": 0}, {"x": 1})
        return other

    assert asyncio.run(leave()).closed


def test_a_list_left_half_read_does_not_hold_close(repo: ckpt.Repository) -> None:
    saver = CkptSaver(repo)
    parent = CFG
    for n in range(1, 4):
        parent = saver.put(parent, checkpoint(n), {"step": n}, {"x": n})
    listing = saver.list(None)
    next(listing)
    saver.close()  # returns: the generator holds nothing between items
    with pytest.raises(SaverClosedError):
        next(listing)


def test_close_waits_for_a_write_in_flight_in_another_thread(repo: ckpt.Repository) -> None:
    saver = CkptSaver(repo)
    gate = Gate(saver)
    done: list[Any] = []
    writer = threading.Thread(
        target=lambda: done.append(saver.put(CFG, checkpoint(1), {"step": 0}, {"x": 1}))
    )
    writer.start()
    assert gate.entered.wait(WAIT)
    closer = threading.Thread(target=saver.close)
    closer.start()
    time.sleep(0.3)
    assert closer.is_alive(), "close() returned while a put was in flight"
    gate.open()
    closer.join(WAIT)
    writer.join(WAIT)
    assert not closer.is_alive() and done and done[0]["configurable"]["checkpoint_id"]
    found = CkptSaver(repo).get_tuple(CFG)
    assert found is not None and found.checkpoint["channel_values"] == {"x": 1}
    with pytest.raises(SaverClosedError):
        saver.put(done[0], checkpoint(2), {"step": 1}, {"x": 2})


@pytest.mark.parametrize("how", ["ainvoke", "astream"])
def test_close_waits_for_the_write_of_a_cancelled_async_run(
    repo: ckpt.Repository, how: str
) -> None:
    saver = CkptSaver(repo)
    gate = Gate(saver, after=3)  # hold the third checkpoint of the run
    app = build(saver)
    cfg = config("async-run")

    async def consume() -> list[Any]:
        return [c async for c in app.astream({"log": [], "n": 0}, cfg, durability="sync")]

    async def scenario() -> None:
        if how == "ainvoke":
            run = asyncio.ensure_future(app.ainvoke({"log": [], "n": 0}, cfg, durability="sync"))
        else:
            run = asyncio.ensure_future(consume())
        await asyncio.to_thread(gate.entered.wait, WAIT)
        run.cancel()  # the graph run ends while its third checkpoint is being written
        with pytest.raises(asyncio.CancelledError):
            await run
        assert gate.finished == 2
        closing = asyncio.ensure_future(saver.__aexit__(None, None, None))
        await asyncio.sleep(0.3)
        assert not closing.done(), "close() returned while a put was in flight"
        gate.open()
        await asyncio.wait_for(closing, WAIT)
        assert gate.finished == 3  # the write in flight was completed, not cut
        settled = heads(repo)
        await asyncio.sleep(0.3)
        assert heads(repo) == settled  # and nothing wrote after close() returned
        with pytest.raises(SaverClosedError):
            await saver.aget_tuple(cfg)

    asyncio.run(scenario())
    fresh = CkptSaver(repo)
    stored = list(fresh.list(cfg))
    assert len(stored) == 3
    assert repo.verify().ok
    assert build(fresh).get_state(cfg).values is not None


def test_a_clone_with_a_wider_allow_list_shares_the_lifecycle(repo: ckpt.Repository) -> None:
    saver = CkptSaver(repo)
    clone = saver.with_allowlist([("myapp.models", "Plan")])
    assert clone is not saver and clone.store is saver.store
    saver.close()
    with pytest.raises(SaverClosedError):
        clone.get_tuple(CFG)


def test_closing_from_inside_a_call_is_refused(repo: ckpt.Repository) -> None:
    saver = CkptSaver(repo)
    seen: list[BaseException] = []
    inner = saver.store.latest

    def latest(*args: Any) -> Any:
        try:
            saver.close()
        except CkptError as exc:
            seen.append(exc)
        return inner(*args)

    saver.store.latest = latest  # type: ignore[method-assign]
    saver.get_tuple(CFG)
    assert seen and "from inside one of its own calls" in str(seen[0])
    assert not saver.closed
