"""A LangGraph checkpointer that stores threads in a ckpt repository.

Install with ``pip install 'ckpt[langgraph]'``, then::

    import ckpt
    from ckpt.integrations.langgraph import CkptSaver

    saver = CkptSaver(ckpt.init("./.ckpt"))     # or CkptSaver("./.ckpt"), or any store URL
    graph = builder.compile(checkpointer=saver)
    graph.invoke(inputs, {"configurable": {"thread_id": "chat-42"}})

Each thread is a ckpt job and each checkpoint a commit whose stages are the
channel values, serialized by the saver's LangGraph serializer and stored
as raw blobs: a value that does not change between steps (or is the same
in two threads) is stored once.  So ``ckpt jobs`` lists the threads,
``ckpt log chat-42`` shows their steps, ``ckpt checkout chat-42 HEAD~3``
makes the next invocation continue from three commits back, and ``ckpt
verify`` and ``ckpt gc`` check and clean them like any job.  The layout is
described in :mod:`ckpt.integrations.langgraph_layout`.

The saver implements every method of LangGraph's ``BaseCheckpointSaver``,
sync and async: ``get_tuple``, ``list``, ``put``, ``put_writes``,
``delete_thread``, ``delete_for_runs``, ``copy_thread`` and ``prune``.  The
async methods serialize values on the event loop and do what touches the
store in a worker thread (``alist`` hands checkpoints over as they are read).
A step of a graph is one commit and one durable step: a task's writes are
stored with the checkpoint that follows them.  Channel versions may be
integers (the saver's own) or strings (those of LangGraph's stock savers), so
that a thread copied in from another saver goes on in its own form.

Reading a store runs none of its code: values are read back by
:class:`~ckpt.integrations.langgraph_serde.AllowListSerializer`, which builds
LangGraph's and LangChain's own types and those the user allows
(``CkptSaver(store, allow=[MyState, "myapp.models"])``), nothing else.

:func:`import_threads` copies threads between any two LangGraph savers
(``ckpt langgraph import`` brings a SqliteSaver file into a store).

Why this module is long: :class:`CkptSaver` is LangGraph's whole checkpointer
protocol, sync and async, in the one class users import; the work is done by
the modules it calls (store, reader, history, serializer, lifecycle).
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import functools
import itertools
import os
import random
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import attrs

from ckpt.errors import CkptError, SerializationError, StoreExistsError, StoreNotFoundError
from ckpt.integrations import langgraph_history as history
from ckpt.integrations.langgraph_import import (
    ImportReport,
    ThreadImportError,
    import_threads,
    list_threads,
)
from ckpt.integrations.langgraph_layout import (
    Payload,
    StoredCheckpoint,
    Write,
    channel_versions,
    scalar_summary,
)
from ckpt.integrations.langgraph_lifecycle import Lifecycle, SaverClosedError
from ckpt.integrations.langgraph_serde import (
    Allowed,
    AllowListSerializer,
    ForbiddenTypeError,
)
from ckpt.integrations.langgraph_store import ThreadStore
from ckpt.repository import Repository
from ckpt.repository import init as init_store
from ckpt.repository import open as open_store

try:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import (
        WRITES_IDX_MAP,
        BaseCheckpointSaver,
        ChannelVersions,
        Checkpoint,
        CheckpointMetadata,
        CheckpointTuple,
        get_checkpoint_id,
        get_checkpoint_metadata,
    )
    from langgraph.checkpoint.serde.base import SerializerProtocol
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    raise ModuleNotFoundError(
        f"ckpt.integrations.langgraph needs {exc.name}: pip install 'ckpt[langgraph]'",
        name=exc.name,
    ) from exc

__all__ = [
    "AllowListSerializer",
    "CkptSaver",
    "ForbiddenTypeError",
    "ImportReport",
    "SaverClosedError",
    "ThreadImportError",
    "import_threads",
    "list_threads",
]

PRUNE_STRATEGIES = ("keep_latest", "delete")


class CkptSaver(BaseCheckpointSaver[Any]):
    """LangGraph checkpointer backed by a ckpt repository.

    ``repo`` is an open :class:`~ckpt.repository.Repository`, or a store path or
    URL (``./.ckpt``, ``memory://name``, ``sqlite:///path.db``, ``s3://...``),
    which is opened, or created if there is no store yet.  A store the
    saver opened itself is closed by :meth:`close` (or on leaving a
    ``with`` block); a repository passed in stays the caller's.  ``durable``
    applies to stores the saver opens (see :func:`ckpt.init`).

    Values are read back by an :class:`AllowListSerializer`: LangGraph's and
    LangChain's own types are built, and those ``allow`` names (classes,
    ``(module, name)`` pairs, module names); any other type stored raises
    :class:`ForbiddenTypeError` before its module is imported.  A ``serde``
    passed in is used as it is, instead.

    A ``put`` that returned has reached the store with ckpt's usual
    guarantees (by default fsynced).  Writes sent for a checkpoint that is
    not stored yet, as LangGraph does when it saves in the background, are
    stored right after that checkpoint.  :meth:`close` is final: it waits
    for the writes under way (an async write whose task was cancelled
    included), then every call raises :class:`SaverClosedError`.
    """

    def __init__(
        self,
        repo: Repository | str | os.PathLike[str],
        *,
        serde: SerializerProtocol | None = None,
        allow: Iterable[Allowed] = (),
        durable: bool = True,
    ) -> None:
        allow = tuple(allow)
        if serde is not None and allow:
            raise CkptError("pass allow= or serde=, not both: allow= configures the saver's serde")
        super().__init__(serde=serde if serde is not None else AllowListSerializer(allow))
        if isinstance(repo, Repository):
            self.repo, self._owns_repo = repo, False
        else:
            self.repo, self._owns_repo = _open_or_init(repo, durable=durable), True
        self.store = ThreadStore(self.repo)
        self._life = Lifecycle()

    def __repr__(self) -> str:
        return f"CkptSaver({self.repo.location!r})"

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> CkptSaver:
        """A saver on the same store that also builds the ``(module, name)`` types given
        (LangGraph calls it with a graph's state types when ``LANGGRAPH_STRICT_MSGPACK`` is
        set)."""
        if not isinstance(self.serde, AllowListSerializer):
            clone: CkptSaver = super().with_allowlist(extra_allowlist)  # type: ignore[assignment]
            return clone
        serde = self.serde.with_msgpack_allowlist(extra_allowlist)
        if serde.types == self.serde.types:
            return self
        clone = copy.copy(self)  # the same store, lifecycle and all
        clone.serde = serde
        return clone

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Wait for the reads and writes under way, then refuse any more (SaverClosedError);
        close the store if the saver opened it.  Closing twice does nothing."""
        if self._life.close() and self._owns_repo:
            self.repo.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (on this saver or a clone of it)."""
        return self._life.closed

    def __enter__(self) -> CkptSaver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> CkptSaver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    # -- serialization ------------------------------------------------------

    def _dump(self, value: Any, what: str) -> Payload:
        try:
            type_name, data = self.serde.dumps_typed(value)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"{what}: cannot serialize a {type(value).__name__}: {exc}"
            ) from exc
        return Payload(type_name, data)

    def _load(self, payload: Payload, where: Callable[[], str]) -> Any:
        try:
            return self.serde.loads_typed((payload.type, payload.data))
        except ForbiddenTypeError as exc:
            raise ForbiddenTypeError(exc.module, exc.name, f"{where()}: {exc}") from None
        except CkptError as exc:
            raise SerializationError(f"{where()}: {exc}") from None

    def _tuple(self, stored: StoredCheckpoint, thread_id: Any) -> CheckpointTuple:
        def where(part: str) -> Callable[[], str]:
            ns = f", namespace {stored.ns!r}" if stored.ns else ""
            return lambda: f"thread {thread_id!r}{ns}, checkpoint {stored.checkpoint_id}, {part}"

        header = self._load(self.store.header(stored), where("header"))
        if not (isinstance(header, dict) and "checkpoint" in header and "metadata" in header):
            raise CkptError(
                f"job {stored.commit.job!r}: commit {stored.commit.short_id} has a garbled "
                "LangGraph header; check out an earlier checkpoint"
            )
        checkpoint = dict(header["checkpoint"])
        values = self.store.channel_values(stored, checkpoint.get("channel_versions", {}))
        checkpoint["channel_values"] = {
            k: self._load(v, where(f"channel {k!r}")) for k, v in values.items()
        }
        writes = [
            (w.task_id, w.channel, self._load(w.value, where(f"write of task {w.task_id}")))
            for w in self.store.pending_writes(stored)
        ]
        parent = None
        if stored.parent_id:
            parent = _config(thread_id, stored.ns, stored.parent_id)
        return CheckpointTuple(
            config=_config(thread_id, stored.ns, stored.checkpoint_id),
            checkpoint=checkpoint,  # type: ignore[arg-type]
            metadata=header["metadata"],
            parent_config=parent,
            pending_writes=writes,
        )

    def tuple_of(self, stored: StoredCheckpoint, thread_id: Any) -> CheckpointTuple:
        """The checkpoint tuple of a checkpoint found through :attr:`store`."""
        with self._life.operation("read"):
            return self._tuple(stored, thread_id)

    # -- the checkpointer protocol ------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``), or the thread's current one.

        Returns None if the thread, namespace or checkpoint has none.
        """
        with self._life.operation("get_tuple"):
            thread_id, ns = _thread(config), _namespace(config)
            checkpoint_id = get_checkpoint_id(config)
            if checkpoint_id:
                stored = self.store.get(str(thread_id), ns, checkpoint_id)
            else:
                stored = self.store.latest(str(thread_id), ns)
            return None if stored is None else self._tuple(stored, thread_id)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints matching every criterion given, newest first per namespace.

        ``config`` narrows to a thread (and, with ``checkpoint_ns``, a
        namespace; with ``checkpoint_id``, one checkpoint); None lists every
        thread the saver stored.  ``filter`` matches metadata keys by
        equality, ``before`` keeps checkpoints older than the one it names.
        """
        if limit is not None and limit <= 0:
            return
        with self._life.operation("list"):
            if config is None:
                threads: builtins.list[tuple[str, Any]] = [
                    (thread, thread) for thread, _name in self.store.threads()
                ]
                ns_wanted, id_wanted = None, None
            else:
                thread = _thread(config)
                threads = [(str(thread), thread)]
                ns_wanted = (config.get("configurable") or {}).get("checkpoint_ns")
                id_wanted = get_checkpoint_id(config)
        before_id = get_checkpoint_id(before) if before else None
        left = limit
        for key, thread_id in threads:
            # Each step holds the saver only while it reads: a caller that stops
            # iterating half way never keeps close() waiting.
            with self._life.operation("list"):
                spaces = self.store.namespaces(key) if ns_wanted is None else [ns_wanted]
            for ns in spaces:
                with self._life.operation("list"):
                    stored_checkpoints = self.store.checkpoints(key, ns)
                for stored in stored_checkpoints:
                    if id_wanted and stored.checkpoint_id != id_wanted:
                        continue
                    if before_id and stored.checkpoint_id >= before_id:
                        continue
                    if filter and _summary_rejects(stored, filter):
                        continue
                    with self._life.operation("list"):
                        found = self._tuple(stored, thread_id)
                    if filter and not all(found.metadata.get(k) == v for k, v in filter.items()):
                        continue
                    yield found
                    if left is not None:
                        left -= 1
                        if left <= 0:
                            return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint as the child of the one ``config`` names; return its config.

        A channel in ``new_versions`` gets the value the checkpoint holds.
        Any other channel holds the value stored for it at its version: the
        parent checkpoint's stored value where the parent records that very
        version, else the value the checkpoint holds (as in a ``__copy__``
        fork, whose versions are those of another checkpoint).  Channel
        versions are all numbers or all strings.
        """
        with self._life.operation("put"):
            return self._store_put(self._prepare_put(config, checkpoint, metadata, new_versions))

    def _prepare_put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> _Put:
        """Check and serialize a checkpoint (its header and changed channels; another
        channel is serialized only if the store asks for it)."""
        thread_id, ns = _thread(config), _namespace(config)
        header_doc: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = header_doc.pop("channel_values", {}) or {}
        full_metadata = get_checkpoint_metadata(config, metadata)
        versions = channel_versions(header_doc.get("channel_versions") or {})
        if versions is None:
            raise CkptError(
                f"thread {thread_id!r}: checkpoint {checkpoint['id']} mixes numeric and "
                "string channel versions (or has versions of another type); a thread "
                "keeps one form"
            )

        def dump(channel: str) -> Payload:
            return self._dump(values[channel], f"thread {thread_id!r}, channel {channel!r}")

        changed = set(new_versions)
        dumped = {c: dump(c) for c in changed if c in versions and c in values}
        return _Put(
            thread_id=thread_id,
            ns=ns,
            checkpoint_id=checkpoint["id"],
            parent_id=get_checkpoint_id(config),
            header=self._dump(
                {"checkpoint": header_doc, "metadata": full_metadata},
                f"thread {thread_id!r}, checkpoint {checkpoint['id']}",
            ),
            versions=versions,
            changed=changed,
            value_of=lambda c: dumped[c] if c in dumped else dump(c) if c in values else None,
            summary=scalar_summary(full_metadata),
        )

    def _store_put(self, put: _Put) -> RunnableConfig:
        self.store.put_checkpoint(
            str(put.thread_id),
            put.ns,
            put.checkpoint_id,
            put.parent_id,
            header=put.header,
            versions=put.versions,
            changed=put.changed,
            value_of=put.value_of,
            summary=put.summary,
        )
        return _config(put.thread_id, put.ns, put.checkpoint_id)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes on the checkpoint ``config`` names.

        Returns once they are stored (see :mod:`~ckpt.integrations.langgraph_store`:
        regular writes of a graph's step are stored with the checkpoint that
        follows them, in one durable step).
        """
        with self._life.operation("put_writes"):
            self._store_writes(self._prepare_writes(config, writes), task_id, task_path)

    def _prepare_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]]
    ) -> tuple[Any, str, str, builtins.list[Write]]:
        checkpoint_id = get_checkpoint_id(config)
        if not checkpoint_id:
            raise CkptError("put_writes needs a config with a checkpoint_id")
        thread_id = _thread(config)
        items = [
            Write(
                channel,
                WRITES_IDX_MAP.get(channel, idx),
                self._dump(value, f"thread {thread_id!r}, write to {channel!r}"),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        return thread_id, _namespace(config), checkpoint_id, items

    def _store_writes(
        self, prepared: tuple[Any, str, str, builtins.list[Write]], task_id: str, task_path: str
    ) -> None:
        thread_id, ns, checkpoint_id, items = prepared
        self.store.put_writes(str(thread_id), ns, checkpoint_id, task_id, task_path, items)

    def get_next_version(self, current: int | float | str | None, channel: None = None) -> Any:
        """The version after ``current``: an integer for the saver's own threads, and for a
        thread from a saver with string versions (``"00..03.0.68..."``) a string of that
        form, so that each thread keeps one form."""
        if current is None:
            return 1
        if isinstance(current, str):
            head = current.split(".", 1)[0]
            if not head.isdigit():
                raise CkptError(f"channel version {current!r} is not one the saver can follow")
            return f"{int(head) + 1:032}.{random.random():016}"
        return current + 1

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread's checkpoints and writes (a missing thread is not an error)."""
        with self._life.operation("delete_thread"):
            self.store.delete_thread(str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) of the given runs, in every thread."""
        with self._life.operation("delete_for_runs"):
            history.delete_runs(self.store, {str(r) for r in run_ids})

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to a new thread.

        Copying a thread that does not exist does nothing; copying onto a
        thread that has checkpoints raises ConflictError.
        """
        with self._life.operation("copy_thread"):
            history.copy_thread(self.store, str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: ``keep_latest`` keeps each namespace's newest checkpoint,
        ``delete`` removes everything.  gc then frees the space."""
        if strategy not in PRUNE_STRATEGIES:
            raise CkptError(
                f"unknown prune strategy {strategy!r}; use {' or '.join(PRUNE_STRATEGIES)}"
            )
        with self._life.operation("prune"):
            for thread_id in thread_ids:
                if strategy == "delete":
                    self.store.delete_thread(str(thread_id))
                else:
                    history.keep_latest(self.store, str(thread_id))

    # -- async --------------------------------------------------------------
    #
    # Values are serialized on the event loop, as LangGraph's async savers do;
    # what touches the store runs in a worker thread, so that a fsync never
    # blocks the loop.  A list is handed over as it is read, a few checkpoints
    # at a time.

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._life.in_thread("get_tuple", lambda: self.get_tuple(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = self.list(config, filter=filter, before=before, limit=limit)
        size = 1  # the first answer soon, then larger batches

        def take(count: int) -> builtins.list[CheckpointTuple]:
            return builtins.list(itertools.islice(found, count))

        while True:
            batch = await self._life.in_thread("list", functools.partial(take, size))
            for item in batch:
                yield item
            if len(batch) < size:
                return
            size = min(size * 4, 64)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        with self._life.operation("put"):
            prepared = self._prepare_put(config, checkpoint, metadata, new_versions)
        return await self._life.in_thread("put", lambda: self._store_put(prepared))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        with self._life.operation("put_writes"):
            prepared = self._prepare_writes(config, writes)
        await self._life.in_thread(
            "put_writes", lambda: self._store_writes(prepared, task_id, task_path)
        )

    async def adelete_thread(self, thread_id: str) -> None:
        await self._life.in_thread("delete_thread", lambda: self.delete_thread(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._life.in_thread("delete_for_runs", lambda: self.delete_for_runs(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._life.in_thread(
            "copy_thread", lambda: self.copy_thread(source_thread_id, target_thread_id)
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._life.in_thread("prune", lambda: self.prune(thread_ids, strategy=strategy))


@attrs.frozen
class _Put:
    """A checkpoint checked and serialized, ready for the store (see CkptSaver.put)."""

    thread_id: Any
    ns: str
    checkpoint_id: str
    parent_id: str | None
    header: Payload
    versions: dict[str, int | float | str]
    changed: set[str]
    value_of: Callable[[str], Payload | None]
    summary: dict[str, Any]


def _open_or_init(location: str | os.PathLike[str], *, durable: bool) -> Repository:
    try:
        return open_store(location, durable=durable)
    except StoreNotFoundError:
        pass
    try:
        return init_store(location, durable=durable)
    except StoreExistsError:  # another process created it meanwhile
        return open_store(location, durable=durable)


def _thread(config: RunnableConfig) -> Any:
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if thread_id is None or thread_id == "":
        raise CkptError('the config names no thread: pass {"configurable": {"thread_id": ...}}')
    return thread_id


def _namespace(config: RunnableConfig) -> str:
    ns = (config.get("configurable") or {}).get("checkpoint_ns")
    return "" if ns is None else str(ns)


def _config(thread_id: Any, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _summary_rejects(stored: StoredCheckpoint, wanted: dict[str, Any]) -> bool:
    """True if the scalar metadata kept in the commit already rules the checkpoint out."""
    summary = stored.summary
    return any(key in summary and summary[key] != value for key, value in wanted.items())
