"""Copying LangGraph threads from one checkpoint saver to another: :func:`import_threads`.

Any two ``BaseCheckpointSaver`` s will do (SqliteSaver, PostgresSaver,
InMemorySaver, CkptSaver, in either direction).  Every checkpoint of every
namespace of a thread is copied with its metadata, its parent link and its
pending writes, so that ``get_state_history`` on the copy equals the source
and an interrupted run resumes to the same result.

A thread is copied in two passes: the first reads every checkpoint and
every write of the thread from the source, the second writes them.  So a
checkpoint the source cannot read stops the import with
:class:`ThreadImportError` (naming the thread and the checkpoint) before
anything of that thread is written.  Checkpoints the destination already
holds are skipped, and only the writes it lacks are added: running an
import again copies only what is new.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs
import blake3

from ckpt.errors import CkptError
from ckpt.integrations.langgraph_store import ThreadStore

if TYPE_CHECKING:
    from ckpt.integrations.langgraph import CkptSaver

try:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import WRITES_IDX_MAP, BaseCheckpointSaver, CheckpointTuple
    from langgraph.checkpoint.memory import InMemorySaver
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    raise ModuleNotFoundError(
        f"ckpt.integrations.langgraph needs {exc.name}: pip install 'ckpt[langgraph]'",
        name=exc.name,
    ) from exc

__all__ = ["ImportReport", "ThreadImportError", "import_threads", "list_threads"]

Saver = BaseCheckpointSaver[Any]


class ThreadImportError(CkptError):
    """A thread could not be read from the source; nothing of it was written."""

    def __init__(
        self, message: str, thread_id: Any, checkpoint_ns: str = "", checkpoint_id: str = ""
    ) -> None:
        self.thread_id = thread_id
        self.checkpoint_ns = checkpoint_ns
        self.checkpoint_id = checkpoint_id
        super().__init__(message)


@attrs.define
class ImportReport:
    """What an import did: threads seen, checkpoints and writes copied, checkpoints skipped
    because the destination had them already."""

    threads: int = 0
    checkpoints: int = 0
    skipped: int = 0
    writes: int = 0

    def to_json(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.frozen
class _Planned:
    """One checkpoint of the source, as the first pass found it."""

    ns: str
    checkpoint_id: str
    parent_id: str | None
    versions: Mapping[str, Any]
    present: bool  # the destination has it already
    missing_tasks: frozenset[str]  # tasks whose writes the destination lacks


def import_threads(
    source: Saver,
    dest: Saver,
    *,
    thread_ids: Iterable[Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Copy threads (all of them, or those ``thread_ids`` names) from ``source`` to ``dest``.

    Returns what was copied.  ``progress(n)`` is called as checkpoints are
    done (copied or skipped).  Raises ThreadImportError, naming the thread
    and checkpoint, if the source cannot read one; the threads copied
    before it are complete, and nothing of that thread is written.  Channel
    versions are converted to strings where the destination uses string
    versions (LangGraph's stock savers) and the source integers.
    """
    wanted = list_threads(source) if thread_ids is None else list(thread_ids)
    to_strings = _uses_string_versions(dest) and not _uses_string_versions(source)
    report = ImportReport()
    mine = _as_ckpt(dest)
    # Every checkpoint is sent after its writes' calls returned: none waits for the next.
    with contextlib.nullcontext() if mine is None else mine.store.writes_alone():
        _import(source, dest, wanted, to_strings, report, progress)
    return report


def _import(
    source: Saver,
    dest: Saver,
    wanted: list[Any],
    to_strings: bool,
    report: ImportReport,
    progress: Callable[[int], None] | None,
) -> None:
    for thread in wanted:
        src, dst = _Thread(source, thread), _Thread(dest, thread)
        plan = _plan(src, dst)
        versions = _StringVersions(plan) if to_strings else None
        report.threads += 1
        for item in plan:
            if versions is not None:
                versions.follow(item)
            if item.present and not item.missing_tasks:
                report.skipped += 1
            else:
                report.writes += _copy(src, dst, item, plan, versions)
                if item.present:
                    report.skipped += 1
                else:
                    report.checkpoints += 1
            if progress is not None:
                progress(1)


def _as_ckpt(saver: Saver) -> CkptSaver | None:
    """``saver`` if it is a CkptSaver (known by its thread store: this module sits below the
    saver's, so it does not import it), else None."""
    return (
        cast("CkptSaver", saver) if isinstance(getattr(saver, "store", None), ThreadStore) else None
    )


def list_threads(saver: Saver) -> list[Any]:
    """Every thread ``saver`` holds, in a stable order."""
    ckpt_saver = _as_ckpt(saver)
    if ckpt_saver is not None:
        return [thread for thread, _job in ckpt_saver.store.threads()]
    if isinstance(saver, InMemorySaver):
        return sorted(saver.storage, key=str)
    conn = sqlite_connection(saver)
    if conn is not None:
        rows = conn.execute("SELECT DISTINCT thread_id FROM checkpoints ORDER BY thread_id")
        return [row[0] for row in rows]
    found: dict[Any, None] = {}
    for item in saver.list(None):
        found.setdefault(item.config["configurable"]["thread_id"], None)
    return list(found)


# -- reading a thread ----------------------------------------------------------

Key = tuple[str, str]  # (namespace, checkpoint id)


def _config(thread: Any, ns: str, checkpoint_id: str | None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


class _Thread:
    """One thread of one saver, read the quickest way that saver allows."""

    def __init__(self, saver: Saver, thread: Any) -> None:
        self.saver = saver
        self.thread = thread
        self.ckpt = _as_ckpt(saver)
        self._stored: dict[Key, Any] | None = None

    def where(self, ns: str) -> str:
        return f"thread {self.thread!r}" + (f", namespace {ns!r}" if ns else "")

    def stored(self) -> dict[Key, Any]:
        """A CkptSaver's checkpoints of the thread, found in one walk per namespace."""
        if self._stored is None:
            assert self.ckpt is not None
            store, thread = self.ckpt.store, str(self.thread)
            self._stored = {
                (ns, found.checkpoint_id): found
                for ns in store.namespaces(thread)
                for found in store.checkpoints(thread, ns)
            }
        return self._stored

    def checkpoint_keys(self) -> list[Key]:
        """Every checkpoint of the thread, without loading them where the saver allows."""
        if self.ckpt is not None:
            return list(self.stored())
        if isinstance(self.saver, InMemorySaver):
            spaces = self.saver.storage.get(self.thread, {})
            return [(ns, cid) for ns, found in spaces.items() for cid in found]
        conn = sqlite_connection(self.saver)
        if conn is not None:
            rows = conn.execute(
                "SELECT checkpoint_ns, checkpoint_id FROM checkpoints WHERE thread_id = ?",
                (str(self.thread),),
            )
            return [(str(ns), str(cid)) for ns, cid in rows]
        keys: list[Key] = []
        try:
            for item in self.saver.list({"configurable": {"thread_id": self.thread}}):
                conf = item.config["configurable"]
                keys.append((conf.get("checkpoint_ns", ""), conf["checkpoint_id"]))
        except Exception as exc:
            after = f" (after checkpoint {keys[-1][1]})" if keys else ""
            raise ThreadImportError(
                f"{self.where('')}: the source cannot list its checkpoints{after}: "
                f"{_reason(exc)}; nothing of this thread was imported",
                self.thread,
            ) from exc
        return keys

    def get(self, key: Key) -> CheckpointTuple | None:
        if self.ckpt is not None:
            found = self.stored().get(key)
            return None if found is None else self.ckpt.tuple_of(found, self.thread)
        return self.saver.get_tuple(_config(self.thread, *key))

    def read(self, key: Key) -> CheckpointTuple:
        """Checkpoint ``key`` of the source; ThreadImportError if it cannot be read."""
        ns, checkpoint_id = key
        try:
            found = self.get(key)
        except Exception as exc:
            raise ThreadImportError(
                f"{self.where(ns)}: checkpoint {checkpoint_id} cannot be read from the source: "
                f"{_reason(exc)}; nothing of this thread was imported",
                self.thread,
                ns,
                checkpoint_id,
            ) from exc
        if found is None:
            raise ThreadImportError(
                f"{self.where(ns)}: checkpoint {checkpoint_id} is listed but cannot be found "
                "in the source; nothing of this thread was imported",
                self.thread,
                ns,
                checkpoint_id,
            )
        return found

    def write_places(self, key: Key) -> list[tuple[str, str, int]]:
        """(task id, task path, index) of each write of a checkpoint, in the order its
        tuple lists them (path, task, index), where the saver can tell (else empty).

        Neither path nor index is part of a checkpoint tuple, yet both
        matter: LangGraph orders a checkpoint's writes by them, and a saver
        does not store a regular write again at an index it has.
        """
        ns, checkpoint_id = key
        found: list[tuple[str, str, int]] = []
        if self.ckpt is not None:
            stored = self.stored().get(key)
            if stored is not None:
                writes = self.ckpt.store.pending_writes(stored)
                found = [(w.task_id, w.task_path, w.idx) for w in writes]
        elif isinstance(self.saver, InMemorySaver):
            kept = self.saver.writes.get((self.thread, ns, checkpoint_id), {})
            found = [(task, value[3], idx) for (task, idx), value in kept.items()]
        elif (conn := sqlite_connection(self.saver)) is not None:
            with contextlib.suppress(sqlite3.Error):
                path_column = "task_path" if _has_task_path(conn) else "''"
                rows = conn.execute(
                    f"SELECT task_id, {path_column}, idx FROM writes "
                    "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
                    (str(self.thread), ns, checkpoint_id),
                )
                found = [(str(task), str(path or ""), int(idx)) for task, path, idx in rows]
        return sorted(found, key=lambda f: (f[1], f[0], f[2]))


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the first pass: read everything ------------------------------------------


def _task_counts(found: CheckpointTuple | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task_id, _channel, _value in (found.pending_writes or ()) if found else ():
        counts[task_id] = counts.get(task_id, 0) + 1
    return counts


def _plan(src: _Thread, dst: _Thread) -> list[_Planned]:
    """Read every checkpoint of the thread from the source, in the order to write them:
    namespace by namespace, parents before children."""
    present = set(dst.stored()) if dst.ckpt is not None else None
    planned: list[_Planned] = []
    for key in src.checkpoint_keys():
        found = src.read(key)
        there = None if present is not None and key not in present else dst.get(key)
        have = _task_counts(there)
        missing = {task for task, n in _task_counts(found).items() if have.get(task, 0) < n}
        parent = found.parent_config
        planned.append(
            _Planned(
                ns=key[0],
                checkpoint_id=key[1],
                parent_id=None if parent is None else parent["configurable"].get("checkpoint_id"),
                versions=dict(found.checkpoint.get("channel_versions") or {}),
                present=there is not None,
                missing_tasks=frozenset(missing),
            )
        )
    return _ordered(planned)


def _ordered(planned: Sequence[_Planned]) -> list[_Planned]:
    """Root namespace first, then the others; within one, by id with parents first."""
    by_key = {(p.ns, p.checkpoint_id): p for p in planned}
    out: list[_Planned] = []
    done: set[Key] = set()
    for item in sorted(planned, key=lambda p: (p.ns != "", p.ns, p.checkpoint_id)):
        chain: list[_Planned] = []
        key: Key | None = (item.ns, item.checkpoint_id)
        while key is not None and key in by_key and key not in done:
            done.add(key)
            chain.append(by_key[key])
            parent = by_key[key].parent_id
            key = None if parent is None else (item.ns, parent)
        out.extend(reversed(chain))
    return out


# -- the second pass: write ----------------------------------------------------


def _copy(
    src: _Thread,
    dst: _Thread,
    item: _Planned,
    plan: Sequence[_Planned],
    versions: _StringVersions | None,
) -> int:
    """Write one checkpoint (unless present) and the writes the destination lacks; return
    the number of writes written."""
    key = (item.ns, item.checkpoint_id)
    found = src.read(key)
    thread = src.thread
    if not item.present:
        parents = {p.checkpoint_id: p for p in plan if p.ns == item.ns}
        parent = parents.get(item.parent_id) if item.parent_id else None
        before = parent.versions if parent is not None else {}
        new_versions = {c: v for c, v in item.versions.items() if before.get(c) != v}
        checkpoint: dict[str, Any] = dict(found.checkpoint)
        if versions is not None:
            new_versions = versions.of(item, new_versions)
            checkpoint["channel_versions"] = versions.of(item, checkpoint["channel_versions"])
            checkpoint["versions_seen"] = {
                node: versions.of(item, seen)
                for node, seen in (checkpoint.get("versions_seen") or {}).items()
            }
        dst.saver.put(
            _config(thread, item.ns, item.parent_id),
            checkpoint,  # type: ignore[arg-type]
            found.metadata,
            new_versions,
        )
    tasks = item.missing_tasks if item.present else None
    written = 0
    target = _config(thread, item.ns, item.checkpoint_id)
    for (task_id, path), writes, indexes in _calls(
        found.pending_writes or (), src.write_places(key)
    ):
        if tasks is not None and task_id not in tasks:
            continue
        dst.saver.put_writes(target, _in_place(writes, indexes), task_id, path)
        written += len(writes)
    return written


def _calls(
    pending: Sequence[tuple[str, str, Any]], places: Sequence[tuple[str, str, int]]
) -> Iterator[tuple[tuple[str, str], list[tuple[str, Any]], list[int]]]:
    """A checkpoint's writes as ``put_writes`` calls: ((task id, task path), writes, their
    indexes).  Without ``places`` matching the writes: one call per task, path ``""``,
    indexes unknown (empty)."""
    known = len(places) == len(pending) and all(
        place[0] == write[0] for place, write in zip(places, pending, strict=True)
    )
    grouped: dict[tuple[str, str], tuple[list[tuple[str, Any]], list[int]]] = {}
    for position, (task_id, channel, value) in enumerate(pending):
        path, idx = (places[position][1], places[position][2]) if known else ("", 0)
        writes, indexes = grouped.setdefault((task_id, path), ([], []))
        writes.append((channel, value))
        indexes.append(idx)
    for key, (writes, indexes) in grouped.items():
        yield key, writes, indexes if known else []


def _in_place(writes: Sequence[tuple[str, Any]], indexes: Sequence[int]) -> list[tuple[str, Any]]:
    """One task's writes as the list to pass to ``put_writes`` so that each is stored at the
    index it had (``indexes``, ascending; empty if unknown).

    A saver stores a regular write at its position in the list, and a
    special one (interrupt, resume, error...) at that channel's fixed
    negative index.  LangGraph writes a resumed task's result after its
    resume value, so regular writes may start at 1; the special writes fill
    such gaps (writing a special write twice stores it once).  Then a task
    that writes again, as LangGraph does when a run is resumed from that
    checkpoint, finds each write at its index and does not store it twice.
    Without indexes, regular writes go first, from 0.
    """
    special = [w for w in writes if w[0] in WRITES_IDX_MAP]
    regular = [w for w in writes if w[0] not in WRITES_IDX_MAP]
    if not indexes:
        return regular + special
    out: list[tuple[str, Any]] = []
    used = 0  # special writes placed so far, cycled through as fillers
    places = [i for i, w in zip(indexes, writes, strict=True) if w[0] not in WRITES_IDX_MAP]
    for index, write in zip(places, regular, strict=True):
        while len(out) < index and special:
            out.append(special[used % len(special)])
            used += 1
        out.append(write)
    return out + special[used:]


class _StringVersions:
    """Numeric channel versions of a thread in the string form of LangGraph's stock savers.

    Those savers key a channel's stored value by its version, so a version
    must name one value in the whole thread.  A saver with numeric versions
    may give the same number to different values on two forks; here each
    version gets, besides its number, a suffix drawn from the checkpoint
    that introduced it, and keeps it in every descendant: versions stay
    ordered along each history, and distinct across forks.
    """

    def __init__(self, plan: Sequence[_Planned]) -> None:
        self.by_key = {(p.ns, p.checkpoint_id): p for p in plan}
        self.known: dict[Key, dict[tuple[str, Any], str]] = {}

    def follow(self, item: _Planned) -> None:
        """Record the versions of ``item`` (its parent's first: the plan's order)."""
        parent = None if item.parent_id is None else (item.ns, item.parent_id)
        known = dict(self.known.get(parent, {})) if parent is not None else {}
        for channel, version in item.versions.items():
            if (channel, version) not in known:
                known[channel, version] = self.text(version, item.checkpoint_id, channel)
        self.known[item.ns, item.checkpoint_id] = known

    @staticmethod
    def text(version: Any, checkpoint_id: str, channel: str) -> Any:
        if type(version) is not int:
            return version
        digest = blake3.blake3(f"{checkpoint_id}\0{channel}".encode()).digest()
        return f"{version:032}.0.{int.from_bytes(digest[:8]) % 10**16:016}"

    def of(self, item: _Planned, versions: Mapping[str, Any]) -> dict[str, Any]:
        known = self.known.get((item.ns, item.checkpoint_id), {})
        return {
            channel: known.get((channel, version))
            or self.text(version, item.checkpoint_id, channel)
            for channel, version in versions.items()
        }


def _uses_string_versions(saver: Saver) -> bool:
    try:
        return isinstance(saver.get_next_version(None, None), str)
    except Exception:
        return False


def _has_task_path(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "task_path" for row in conn.execute("PRAGMA table_info(writes)"))


def sqlite_connection(saver: Saver) -> sqlite3.Connection | None:
    """The connection of a (sync) SqliteSaver, set up, or None for any other saver."""
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver
    except ModuleNotFoundError:
        return None
    if not isinstance(saver, SqliteSaver):
        return None
    saver.setup()
    return saver.conn
