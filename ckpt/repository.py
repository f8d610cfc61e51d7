"""The Repository users open: a store's jobs and history, with verify and gc.

``init(location)`` creates a store and ``open(location)`` opens one.  A
location is a directory path or a store URL.  With no location, ``open``
uses ``$CKPT_DIR``, then looks for a ``.ckpt`` directory in the current
directory and its parents, as git looks for ``.git``.

:class:`Repository` is :class:`~ckpt.history.repository.BaseRepository`
(storage, objects, jobs) plus the maintenance entry points.  It sits above
the history and maintenance layers and joins them, so that neither has to
import the other's caller (see docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ckpt.errors import StoreExistsError, StoreNotFoundError
from ckpt.history.repository import (
    CONFIG_KEY,
    STORE_DIRNAME,
    BaseRepository,
    create_storage,
    existing_storage,
    find_store,
    resolve_location,
)
from ckpt.maintenance.reachable import DEFAULT_GRACE, REFLOG_EXPIRY
from ckpt.storage import is_url, open_storage

if TYPE_CHECKING:
    from ckpt.maintenance.gc import GcReport
    from ckpt.maintenance.verify import VerifyReport


__all__ = [
    "STORE_DIRNAME",
    "Repository",
    "find_store",
    "init",
    "open",
    "open_or_init",
    "resolve_location",
]


class Repository(BaseRepository):
    """An open ckpt store.  Use :func:`init` or :func:`open` to get one."""

    def verify(self, *, full: bool = True, jobs: Iterable[str] | None = None) -> VerifyReport:
        """Check refs, reachability and (with ``full``) every object's hash.  Never raises
        for damage it finds: the report lists every problem and what it breaks."""
        # Imported here: commands that never verify (`ckpt log`) do not pay for it at start-up.
        from ckpt.maintenance.verify import verify

        return verify(self, full=full, jobs=jobs)

    def gc(
        self,
        *,
        grace: dt.timedelta = DEFAULT_GRACE,
        dry_run: bool = False,
        reflog_expiry: dt.timedelta = REFLOG_EXPIRY,
    ) -> GcReport:
        """Delete unreachable objects older than ``grace``; reflog entries older than
        ``reflog_expiry`` keep nothing.  See :mod:`ckpt.maintenance.gc`."""
        from ckpt.maintenance.gc import collect

        return collect(self, grace=grace, dry_run=dry_run, reflog_expiry=reflog_expiry)


def init(
    location: str | os.PathLike[str] | None = None,
    *,
    durable: bool = True,
    exist_ok: bool = False,
) -> Repository:
    """Create a new store at ``location`` (default ``./.ckpt``) and return it open.

    Raises StoreExistsError if a store is already there, unless ``exist_ok``:
    then that store is opened (so that a script can run twice).  With
    ``durable=False`` writes are not fsynced: faster, but a machine crash
    may lose the latest checkpoints (a process crash still loses nothing).
    """
    try:
        return Repository(create_storage(location, durable=durable))
    except StoreExistsError as exc:
        if not exist_ok:
            raise
        try:
            return open(STORE_DIRNAME if location is None else location, durable=durable)
        except StoreNotFoundError:
            raise exc from None  # something that is not a store is in the way


def open(location: str | os.PathLike[str] | None = None, *, durable: bool = True) -> Repository:
    """Open an existing store (see :func:`resolve_location` for how it is found)."""
    return Repository(existing_storage(location, durable=durable))


def open_or_init(
    location: str | os.PathLike[str], *, durable: bool = True
) -> tuple[Repository, bool]:
    """Open the store at ``location``, or create one there if the location holds nothing;
    return it and whether it was created (what a push to a new remote needs).

    A location that holds something other than a ckpt store (a file, a
    directory with files in it, keys of a bucket or database) is refused
    with StoreNotFoundError before anything is written there.
    """
    where = os.fspath(location)
    if not is_url(where):
        path = Path(where.removeprefix("file://"))
        if path.exists() and not path.is_dir():
            raise StoreNotFoundError(
                f"{where} is a file, not a ckpt store; not creating a store there"
            )
        if path.is_dir() and not (path / CONFIG_KEY).exists() and any(path.iterdir()):
            raise StoreNotFoundError(
                f"{where} holds files but no ckpt store; not creating a store there "
                "(give an empty or new directory)"
            )
        if not (path / CONFIG_KEY).exists():
            try:
                return init(where, durable=durable), True
            except StoreExistsError:
                pass  # created meanwhile (another push): use it
        return open(where, durable=durable), False
    storage = open_storage(where, durable=durable)
    try:
        has_store = storage.stat(CONFIG_KEY) is not None
        if not has_store and next(iter(storage.list()), None) is not None:
            raise StoreNotFoundError(
                f"{storage.url} holds data but no ckpt store; not creating a store there"
            )
    finally:
        storage.close()
    if not has_store:
        try:
            return init(where, durable=durable), True
        except StoreExistsError:
            pass
    return open(where, durable=durable), False
