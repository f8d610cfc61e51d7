"""Delta encoding: an object compressed with a similar object's payload as dictionary.

A new version of a stage's value is usually the old one plus a little.
zstd can use any bytes as a *raw content dictionary*; compressing the new
payload with the previous version's payload as dictionary stores little
more than what changed, and decoding needs exactly that dictionary.  The
object's header names the base object and the chain depth (see
:mod:`ckpt.objects.codec`); the store keeps chains at most
:data:`MAX_CHAIN` deep so that a read never unwinds more than that many
bases.  Ids are unaffected: they hash the canonical bytes, not the delta.
"""

from __future__ import annotations

import zstandard

from ckpt.objects import codec

#: Deepest chain a writer builds: a read resolves at most this many bases.
MAX_CHAIN = 64
#: Payloads smaller than this are not worth a delta.
DELTA_MIN = 4 * 1024
#: Delta frames are small and written once per save: a higher level than
#: for bulk data costs little time and saves about a tenth of their size.
DELTA_LEVEL = 6


def dictionary(base_payload: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(base_payload, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def compress(payload: bytes, base_payload: bytes, *, level: int = DELTA_LEVEL) -> bytes:
    """One zstd frame of ``payload`` compressed against ``base_payload``."""
    comp = zstandard.ZstdCompressor(
        level=level, dict_data=dictionary(base_payload), write_checksum=True
    )
    frame: bytes = comp.compress(payload)
    return frame


def decompress(frame: bytes | memoryview, expected: int, base_payload: bytes, oid: str) -> bytes:
    """Invert :func:`compress`; CorruptObjectError naming ``oid`` if the frame is bad."""
    return codec.decompress(frame, expected, oid, dictionary(base_payload))
