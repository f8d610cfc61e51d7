"""What is under way on a LangGraph saver, and closing it for good.

A :class:`Lifecycle` counts the operations under way on a
:class:`~ckpt.integrations.langgraph.CkptSaver`.  ``close()`` refuses new
ones and waits for those under way, so that once it returns nothing of the
saver writes any more.  That includes an async operation whose task was
cancelled: its worker thread runs to the end of the call it was making, and
``close()`` waits for it; a call that had not started never starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from ckpt.errors import CkptError

__all__ = ["Lifecycle", "SaverClosedError"]

T = TypeVar("T")


class SaverClosedError(CkptError):
    """The saver was closed: it reads and writes nothing more."""


class Lifecycle:
    """The operations under way on a saver, and whether it is closed.

    Shared by a saver and its clones (``with_allowlist``), so that closing
    one closes them all.  An operation admitted once (an async call, when
    it was awaited) runs to its end, whatever it calls on the saver.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.busy = 0
        self.closed = False
        self.inside = threading.local()

    def enter(self, what: str) -> None:
        with self.changed:
            if self.closed:
                raise SaverClosedError(
                    f"this CkptSaver is closed: {what} refused; create a new saver on the store"
                )
            self.busy += 1

    def leave(self) -> None:
        with self.changed:
            self.busy -= 1
            if self.busy == 0:
                self.changed.notify_all()

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """The block runs on behalf of an operation already entered."""
        depth = getattr(self.inside, "depth", 0)
        self.inside.depth = depth + 1
        try:
            yield
        finally:
            self.inside.depth = depth

    @contextlib.contextmanager
    def operation(self, what: str) -> Iterator[None]:
        if getattr(self.inside, "depth", 0):
            yield
            return
        self.enter(what)
        try:
            with self.admitted():
                yield
        finally:
            self.leave()

    def close(self) -> bool:
        """Refuse new operations, wait for those under way; True the first time."""
        if getattr(self.inside, "depth", 0):
            raise CkptError("a CkptSaver cannot be closed from inside one of its own calls")
        with self.changed:
            first = not self.closed
            self.closed = True
            while self.busy:
                self.changed.wait()
        return first

    async def in_thread(self, what: str, call: Callable[[], T]) -> T:
        """Run ``call`` in a worker thread, counted as under way from now until it ends.

        If the awaiting task is cancelled, a call already running goes on to
        its end (and :meth:`close` waits for it); one not started yet never
        starts.
        """
        self.enter(what)
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        context = contextvars.copy_context()

        def admitted() -> T:
            with self.admitted():
                return call()

        def run() -> None:
            try:
                if not done.set_running_or_notify_cancel():
                    return
                try:
                    done.set_result(context.run(admitted))
                except BaseException as exc:
                    done.set_exception(exc)
            finally:
                self.leave()

        try:
            asyncio.get_running_loop().run_in_executor(None, run)
        except BaseException:
            self.leave()
            raise
        return await asyncio.wrap_future(done)
