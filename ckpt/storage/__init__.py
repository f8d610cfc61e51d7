"""Byte storage backends behind one protocol, chosen by a store URL.

``open_storage`` maps a URL to a backend:

* a plain path or ``file://PATH``: :class:`~ckpt.storage.local.LocalStorage`
* ``memory://NAME``: :class:`~ckpt.storage.memory.MemoryStorage`

Backends are imported only when used, so that ``import ckpt`` stays fast.
"""

from __future__ import annotations

from ckpt.storage.base import KeyInfo, KeyNotFoundError, Storage, check_key

__all__ = ["KeyInfo", "KeyNotFoundError", "Storage", "check_key", "is_url", "open_storage"]


def is_url(location: str) -> bool:
    """True if ``location`` is a URL with a scheme other than ``file``."""
    scheme, sep, _rest = location.partition("://")
    return bool(sep) and scheme.isalnum() and scheme != "file"


def open_storage(location: str, *, durable: bool = True) -> Storage:
    """Return the backend for ``location`` (a path or a URL)."""
    from ckpt.errors import CkptError

    if location.startswith("file://"):
        location = location[len("file://") :]
    if not is_url(location):
        from ckpt.storage.local import LocalStorage

        return LocalStorage(location, durable=durable)
    scheme, _, rest = location.partition("://")
    if scheme == "memory":
        from ckpt.storage.memory import MemoryStorage

        return MemoryStorage(rest)
    raise CkptError(f"unknown store URL scheme {scheme!r} in {location!r}")
