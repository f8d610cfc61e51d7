"""Named remotes: other stores registered under a name, as git's ``remote.NAME.url``.

A remote is stored as ``remotes/NAME`` (a small JSON document with its URL)
in the local store.  Pushing and pulling live in :mod:`ckpt.transfer.remote`;
this module only keeps the names, so that any layer can resolve one.
"""

from __future__ import annotations

import json

from ckpt.errors import ConflictError, NotFoundError
from ckpt.history.names import validate_name
from ckpt.history.repository import BaseRepository
from ckpt.storage import absolute_location
from ckpt.storage.base import KeyNotFoundError

REMOTES_PREFIX = "remotes/"
DEFAULT_REMOTE = "origin"


def add_remote(repo: BaseRepository, name: str, url: str) -> str:
    """Register ``url`` as remote ``name``; refuse if the name is taken.  A relative path in
    it (``../other``, ``sqlite://other.db``) is made absolute first; return the URL kept."""
    validate_name("remote", name)
    url = absolute_location(url)
    doc = json.dumps({"url": url}).encode() + b"\n"
    try:
        repo.storage.compare_and_swap(REMOTES_PREFIX + name, None, doc)
    except ConflictError:
        raise ConflictError(f"remote {name!r} already exists") from None
    return url


def remove_remote(repo: BaseRepository, name: str) -> None:
    validate_name("remote", name)
    if not repo.storage.delete(REMOTES_PREFIX + name):
        raise NotFoundError(f"no remote named {name!r}")


def remotes(repo: BaseRepository) -> dict[str, str]:
    """Remote name -> URL."""
    out: dict[str, str] = {}
    for info in repo.storage.list(REMOTES_PREFIX):
        name = info.key[len(REMOTES_PREFIX) :]
        try:
            out[name] = str(json.loads(repo.storage.get(info.key))["url"])
        except (KeyNotFoundError, ValueError, KeyError, TypeError):
            continue
    return out


def remote_url(repo: BaseRepository, name_or_url: str) -> str:
    """The URL of a registered remote, or the argument itself if it is not a name."""
    known = remotes(repo)
    if name_or_url in known:
        return known[name_or_url]
    if "/" in name_or_url or "://" in name_or_url or name_or_url.startswith("."):
        return name_or_url
    raise NotFoundError(
        f"no remote named {name_or_url!r} (add one with `ckpt remote add {name_or_url} URL`)"
    )
