"""Whether a value read whole fits in this process's memory, asked before it is allocated.

A chunked blob's header declares its length, and its chunk list may name
one chunk many times: a few hundred bytes can declare gigabytes whose id is
even right (a long run of zeros).  Reading such a value whole allocates
what it declares.  :func:`check_fits` refuses, before anything is
allocated, a length larger than the machine's memory or than the address
space this process may still take (``RLIMIT_AS``), with an error naming the
object; a ``MemoryError`` on the way becomes the same error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ckpt.errors import CkptError


class ValueTooLargeError(CkptError):
    """A value cannot be read whole into this process's memory."""


def _physical() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left() -> int | None:
    import resource  # only when a large value is read

    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(0, soft - used)


def room() -> int | None:
    """The most bytes one value may take in this process (None: no known limit)."""
    limits = [limit for limit in (_physical(), _address_space_left()) if limit is not None]
    return min(limits) if limits else None


def _size(length: int) -> str:
    if length < 1024:
        return f"{length:,} B"
    amount = float(length)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024 or unit == "GiB":
            break
    return f"{amount:.1f} {unit}"


def check_fits(oid: str, length: int) -> None:
    """Raise ValueTooLargeError naming ``oid`` if ``length`` bytes cannot be held here."""
    limit = room()
    if limit is not None and length > limit:
        raise ValueTooLargeError(
            f"object {oid} is {_size(length)}, more than this process can hold in memory "
            f"({_size(limit)}); it cannot be loaded whole"
        )


@contextlib.contextmanager
def allocating(oid: str, length: int) -> Iterator[None]:
    """Check that ``length`` bytes fit, then turn a MemoryError while they are built into
    ValueTooLargeError naming ``oid``."""
    check_fits(oid, length)
    try:
        yield
    except MemoryError:
        raise ValueTooLargeError(
            f"object {oid} is {_size(length)}: this process ran out of memory loading it whole"
        ) from None


__all__ = ["ValueTooLargeError", "allocating", "check_fits", "room"]
