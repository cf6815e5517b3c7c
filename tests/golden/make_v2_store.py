"""Writes tests/golden/v2/: a local store in storage format version 2.

Run it only to add a new golden store for a new format version; the checked-in store
must stay as it is, so that every later engine proves it still reads version 2. Beside
what the version-1 store holds, it has a failed run with its kept error, a used
idempotency key and a cancelled run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio

from tests.golden.flows import make_client

HERE = Path(__file__).parent / "v2"


async def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    client = make_client(f"local:{HERE / 'state.json'}")
    await client.run("order", {"item": "tea", "quantity": 2}, key="order-tea")
    await client.run("order", {"item": "cake", "quantity": 1})
    await client.run("reminder")
    await client.run("order", {"item": "pie", "quantity": 1})  # fails: its error is kept
    (extra,) = await client.run("reminder")
    await client.cancel(extra.run_id, "one reminder is enough")
    await client.set_state("mode", {"level": 3})
    await client.send_event("queued_note", "left in the inbox")
    (HERE / "state.json.lock").unlink()


if __name__ == "__main__":
    anyio.run(main)
