"""The store's history side: its objects and its jobs, and where a store is found.

:class:`BaseRepository` is what every layer above history works with: the
storage, the object store, the config and the jobs.  The public
:class:`ckpt.Repository` (in :mod:`ckpt.repository`) adds the maintenance
entry points (``verify``, ``gc``) on top, so that this layer never imports
the ones above it.

A location is a directory path or a store URL.  With no location, a store
is looked for in ``$CKPT_DIR``, then in a ``.ckpt`` directory in the current
directory and its parents, as git looks for ``.git``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Self

from ckpt.errors import (
    CkptError,
    ConflictError,
    NotFoundError,
    StorageError,
    StoreExistsError,
    StoreNotFoundError,
)
from ckpt.history.job import Job
from ckpt.history.names import job_name
from ckpt.history.refs import JOBS_PREFIX, job_prefix
from ckpt.objects.store import ObjectStore
from ckpt.storage import is_url, open_storage
from ckpt.storage.base import KeyNotFoundError, Storage

STORE_DIRNAME = ".ckpt"
CONFIG_KEY = "config"
STORE_FORMAT = "ckpt-store"
STORE_VERSION = 1


class BaseRepository:
    """An open ckpt store: storage, objects, config and jobs.

    Users get the full :class:`ckpt.Repository` from :func:`ckpt.init` or :func:`ckpt.open`.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.objects = ObjectStore(storage)
        self._config_bytes = _config_bytes(storage)
        self.config = _read_config(storage, self._config_bytes)

    def __repr__(self) -> str:
        return f"Repository({self.location!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def location(self) -> str:
        return self.storage.url

    def close(self) -> None:
        self.storage.close()

    def check_present(self) -> None:
        """Raise StoreNotFoundError unless the store this was opened on is still there.

        Saves call it just before their commit point: a backend that lost
        everything (a Redis server restarted without persistence, a wiped
        bucket or directory) or a store re-created in its place must not get
        refs and jobs that `ckpt.open` would then refuse.
        """
        try:
            current = self.storage.get(CONFIG_KEY)
        except KeyNotFoundError:
            raise StoreNotFoundError(
                f"the store at {self.location} has lost its config: its storage was wiped "
                "(a Redis server restarted without persistence, say); this checkpoint was "
                "not saved. Re-create the store with `ckpt init` and run again"
            ) from None
        if current != self._config_bytes:
            raise StoreNotFoundError(
                f"the store at {self.location} was replaced by another since it was opened; "
                "this checkpoint was not saved. Open the store again and run again"
            )

    def job(self, name: str) -> Job:
        """A handle on job ``name``; the job is created by its first save."""
        return Job(self, name)

    def job_names(self) -> list[str]:
        """Names of every job in the store (every job whose HEAD exists), sorted.

        Costs one listing of the jobs folder (with the backend's check of each
        HEAD), not a listing of every key of every job.
        """
        return [
            child.removesuffix("/")
            for child in self.storage.list_children(JOBS_PREFIX, having="HEAD")
        ]

    def jobs(self) -> list[Job]:
        """Every job in the store, sorted by name."""
        return [Job(self, name) for name in self.job_names()]

    def has_job(self, name: str) -> bool:
        return Job(self, name).exists

    def delete_job(self, name: str) -> None:
        """Remove a job's refs, HEAD and reflog.  Its objects go at the next gc."""
        job = Job(self, job_name(name))
        if not job.exists:
            raise NotFoundError(f"job {name!r} not found")
        prefix = job_prefix(job.name)
        keys = [info.key for info in self.storage.list(prefix)]
        # HEAD last, after the reflog: the job stays listed (and visible to verify) until
        # everything else is gone, and a folder without HEAD never keeps a reflog.
        keys.sort(key=lambda key: key.endswith("/HEAD"))
        self.storage.delete_log(f"{prefix}reflog")
        for key in keys:
            self.storage.delete(key)


def _config_bytes(storage: Storage) -> bytes:
    try:
        return storage.get(CONFIG_KEY)
    except KeyNotFoundError:
        raise StoreNotFoundError(
            f"no ckpt store at {storage.url} (run `ckpt init` to create one)"
        ) from None


def _read_config(storage: Storage, raw: bytes) -> dict[str, object]:
    try:
        config = json.loads(raw)
    except ValueError:
        raise CkptError(f"{storage.url}: the store's config is garbled") from None
    if not isinstance(config, dict) or config.get("format") != STORE_FORMAT:
        raise StoreNotFoundError(f"{storage.url} is not a ckpt store")
    if config.get("version") != STORE_VERSION:
        raise CkptError(
            f"{storage.url}: store format version {config.get('version')!r} is not supported "
            f"by this ckpt (supports {STORE_VERSION}); upgrade ckpt"
        )
    return config


def _location(location: str | os.PathLike[str] | None) -> str:
    return os.fspath(location) if location is not None else STORE_DIRNAME


def create_storage(
    location: str | os.PathLike[str] | None = None, *, durable: bool = True
) -> Storage:
    """Create a new store at ``location`` (default ``./.ckpt``) and return its storage, open.

    Raises StoreExistsError if a store is already there.  With
    ``durable=False`` writes are not fsynced.
    """
    where = _location(location)
    if not is_url(where):
        path = Path(where.removeprefix("file://"))
        if path.exists() and not path.is_dir():
            raise StoreExistsError(f"{path} exists and is not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                exc.errno or 0, f"cannot create a store at {where}: {_mkdir_problem(path, exc)}"
            ) from None
    storage = open_storage(where, durable=durable)
    config = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "id": uuid.uuid4().hex,
        "created": dt.datetime.now(dt.UTC).isoformat(),
    }
    try:
        storage.compare_and_swap(CONFIG_KEY, None, json.dumps(config, indent=2).encode() + b"\n")
    except ConflictError:
        raise StoreExistsError(f"a ckpt store already exists at {storage.url}") from None
    return storage


def _mkdir_problem(path: Path, exc: OSError) -> str:
    """Why ``path`` could not be made, in a person's words (naming the part in the way)."""
    if isinstance(exc, NotADirectoryError):
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    return f"{parent} is not a directory"
                break
    if isinstance(exc, FileNotFoundError):
        for parent in path.parents:
            if parent.exists():
                return f"nothing can be created in {parent}"
    return exc.strerror or str(exc)


def find_store(start: str | os.PathLike[str] | None = None) -> str | None:
    """The nearest ``.ckpt`` directory at or above ``start`` (default: cwd), or None."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / STORE_DIRNAME
        if candidate.is_dir():
            return str(candidate)
    return None


def resolve_location(location: str | os.PathLike[str] | None = None) -> str:
    """Where to open a store: ``location``, else ``$CKPT_DIR``, else the nearest ``.ckpt``."""
    if location is not None:
        return os.fspath(location)
    env = os.environ.get("CKPT_DIR")
    if env:
        return env
    found = find_store()
    if found is None:
        raise StoreNotFoundError(
            "no ckpt store found in this directory or any parent "
            "(run `ckpt init`, or pass --store / set CKPT_DIR)"
        )
    return found


def existing_storage(
    location: str | os.PathLike[str] | None = None, *, durable: bool = True
) -> Storage:
    """The storage of an existing store (see :func:`resolve_location` for how it is found)."""
    where = resolve_location(location)
    if not is_url(where):
        path = Path(where.removeprefix("file://"))
        if not path.is_dir():
            raise StoreNotFoundError(
                f"no ckpt store at {where} (run `ckpt init {where}` to create one)"
            )
    return open_storage(where, durable=durable)
