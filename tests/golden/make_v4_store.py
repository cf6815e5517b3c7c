"""Writes tests/golden/v4/: a local store in storage format version 4.

Run it only to add a new golden store for a new format version; the checked-in store
must stay as it is, so that every later engine proves it still reads version 4. It holds
what the version-3 store holds, with the inbox in append logs: the two orders queued
while the lease was held came through logs of their own (consumed, so gone), and the
note sent last is still in its log.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from tests.golden.make_v3_store import main

HERE = Path(__file__).parent / "v4"


if __name__ == "__main__":
    anyio.run(main, HERE)
