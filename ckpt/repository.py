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
from typing import TYPE_CHECKING

from ckpt.errors import StoreExistsError, StoreNotFoundError
from ckpt.history.repository import (
    STORE_DIRNAME,
    BaseRepository,
    create_storage,
    existing_storage,
    find_store,
    resolve_location,
)
from ckpt.maintenance.reachable import DEFAULT_GRACE, REFLOG_EXPIRY

if TYPE_CHECKING:
    from ckpt.maintenance.gc import GcReport
    from ckpt.maintenance.verify import VerifyReport


__all__ = [
    "STORE_DIRNAME",
    "Repository",
    "find_store",
    "init",
    "open",
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
