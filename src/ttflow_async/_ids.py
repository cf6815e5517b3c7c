"""Random identifiers: run ids, trace ids, callback ids, temporary file names.

The same random (version 4) UUIDs as ``str(uuid.uuid4())``, made here because the
standard ``uuid`` module imports ``platform`` at import time, a few milliseconds that
every fresh process (a cron tick, a CLI call, a new Lambda container) would pay.
"""

from __future__ import annotations

import os

__all__ = ["random_hex", "random_uuid"]


def random_hex() -> str:
    """32 hexadecimal digits of a random version-4 UUID (``uuid.uuid4().hex``)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return raw.hex()


def random_uuid() -> str:
    """A random version-4 UUID in its canonical form (``str(uuid.uuid4())``)."""
    digits = random_hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
