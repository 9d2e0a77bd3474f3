"""How a received message's bytes are kept in ``declaration.original``: as received, or, from
``COMPRESS_FROM`` bytes up, as a zlib stream (``declaration.original_coding`` = 'zlib').

Either way ``unpack`` gives back the bytes exactly as received (the archive keeps every message unchanged).
A DmfA of 1,000 workers is ~850 KB of XML: compressed before its transaction (``pack``, ~3 ms at zlib's
fastest level, 7.5x smaller on varied values), PostgreSQL no longer receives and compresses 850 KB inside
the transaction (~2.5 ms less per such DmfA in a batch's chain of transactions, bench/README.md "Session 7"),
and SQLite, which compresses nothing, stores a seventh of it. A Dimona (a few KB) stays as it is: nothing
is spent on the real-time path.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

ZLIB = "zlib"
COMPRESS_FROM = 32 * 1024
_LEVEL = 1  # the fastest: XML's tags make even it 7-30x smaller


@dataclass(frozen=True)
class Packed:
    """A message's bytes as stored, and how (None: as received)."""
    data: bytes
    coding: str | None = None


def pack(received: bytes) -> Packed:
    if len(received) < COMPRESS_FROM:
        return Packed(received)
    return Packed(zlib.compress(received, _LEVEL), ZLIB)


def unpack(data: bytes, coding: str | None) -> bytes:
    if coding is None:
        return data
    if coding == ZLIB:
        return zlib.decompress(data)
    raise ValueError(f"an archived message stored as {coding!r}, which this engine cannot read")
