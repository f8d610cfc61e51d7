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
async methods run the sync ones in a worker thread.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any

from ckpt.errors import CkptError, StoreExistsError, StoreNotFoundError
from ckpt.integrations import langgraph_history as history
from ckpt.integrations.langgraph_layout import Payload, StoredCheckpoint, Write, scalar_summary
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

__all__ = ["CkptSaver"]

PRUNE_STRATEGIES = ("keep_latest", "delete")


class CkptSaver(BaseCheckpointSaver[int]):
    """LangGraph checkpointer backed by a ckpt repository.

    ``repo`` is an open :class:`~ckpt.repository.Repository`, or a store path or
    URL (``./.ckpt``, ``memory://name``, ``sqlite:///path.db``, ``s3://...``),
    which is opened, or created if there is no store yet.  A store the
    saver opened itself is closed by :meth:`close` (or on leaving a
    ``with`` block); a repository passed in stays the caller's.  ``durable``
    applies to stores the saver opens (see :func:`ckpt.init`).

    A ``put`` that returned has reached the store with ckpt's usual
    guarantees (by default fsynced).  Writes sent for a checkpoint that is
    not stored yet, as LangGraph does when it saves in the background, are
    stored right after that checkpoint.
    """

    def __init__(
        self,
        repo: Repository | str | os.PathLike[str],
        *,
        serde: SerializerProtocol | None = None,
        durable: bool = True,
    ) -> None:
        super().__init__(serde=serde)
        if isinstance(repo, Repository):
            self.repo, self._owns_repo = repo, False
        else:
            self.repo, self._owns_repo = _open_or_init(repo, durable=durable), True
        self.store = ThreadStore(self.repo)

    def __repr__(self) -> str:
        return f"CkptSaver({self.repo.location!r})"

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Close the store if the saver opened it."""
        if self._owns_repo:
            self.repo.close()

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
        self.close()

    # -- serialization ------------------------------------------------------

    def _dump(self, value: Any) -> Payload:
        type_name, data = self.serde.dumps_typed(value)
        return Payload(type_name, data)

    def _load(self, payload: Payload) -> Any:
        return self.serde.loads_typed((payload.type, payload.data))

    def _tuple(self, stored: StoredCheckpoint, thread_id: Any) -> CheckpointTuple:
        header = self._load(self.store.header(stored))
        if not (isinstance(header, dict) and "checkpoint" in header and "metadata" in header):
            raise CkptError(
                f"job {stored.commit.job!r}: commit {stored.commit.short_id} has a garbled "
                "LangGraph header; check out an earlier checkpoint"
            )
        checkpoint = dict(header["checkpoint"])
        values = self.store.channel_values(stored, checkpoint.get("channel_versions", {}))
        checkpoint["channel_values"] = {k: self._load(v) for k, v in values.items()}
        writes = [
            (w.task_id, w.channel, self._load(w.value)) for w in self.store.pending_writes(stored)
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

    # -- the checkpointer protocol ------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``), or the thread's current one.

        Returns None if the thread, namespace or checkpoint has none.
        """
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
            spaces = self.store.namespaces(key) if ns_wanted is None else [ns_wanted]
            for ns in spaces:
                for stored in self.store.checkpoints(key, ns):
                    if id_wanted and stored.checkpoint_id != id_wanted:
                        continue
                    if before_id and stored.checkpoint_id >= before_id:
                        continue
                    if filter and _summary_rejects(stored, filter):
                        continue
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

        Only the channels in ``new_versions`` are serialized; the others
        keep the parent checkpoint's stored value.
        """
        thread_id, ns = _thread(config), _namespace(config)
        header_doc: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = header_doc.pop("channel_values", {}) or {}
        full_metadata = get_checkpoint_metadata(config, metadata)
        channels = builtins.list(header_doc.get("channel_versions", {}))

        def value_of(channel: str) -> Payload | None:
            return self._dump(values[channel]) if channel in values else None

        self.store.put_checkpoint(
            str(thread_id),
            ns,
            checkpoint["id"],
            get_checkpoint_id(config),
            header=self._dump({"checkpoint": header_doc, "metadata": full_metadata}),
            channels=channels,
            changed=set(new_versions),
            value_of=value_of,
            summary=scalar_summary(full_metadata),
        )
        return _config(thread_id, ns, checkpoint["id"])

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes on the checkpoint ``config`` names."""
        checkpoint_id = get_checkpoint_id(config)
        if not checkpoint_id:
            raise CkptError("put_writes needs a config with a checkpoint_id")
        items = [
            Write(channel, WRITES_IDX_MAP.get(channel, idx), self._dump(value))
            for idx, (channel, value) in enumerate(writes)
        ]
        self.store.put_writes(
            str(_thread(config)), _namespace(config), checkpoint_id, task_id, task_path, items
        )

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread's checkpoints and writes (a missing thread is not an error)."""
        self.store.delete_thread(str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) of the given runs, in every thread."""
        history.delete_runs(self.store, {str(r) for r in run_ids})

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to a new thread.

        Copying a thread that does not exist does nothing; copying onto a
        thread that has checkpoints raises ConflictError.
        """
        history.copy_thread(self.store, str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: ``keep_latest`` keeps each namespace's newest checkpoint,
        ``delete`` removes everything.  gc then frees the space."""
        if strategy not in PRUNE_STRATEGIES:
            raise CkptError(
                f"unknown prune strategy {strategy!r}; use {' or '.join(PRUNE_STRATEGIES)}"
            )
        for thread_id in thread_ids:
            if strategy == "delete":
                self.store.delete_thread(str(thread_id))
            else:
                history.keep_latest(self.store, str(thread_id))

    # -- async --------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = await asyncio.to_thread(
            lambda: builtins.list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


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
