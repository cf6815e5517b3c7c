"""Writes tests/golden/v3/: a local store in storage format version 3.

Run it only to add a new golden store for a new format version; the checked-in store
must stay as it is, so that every later engine proves it still reads version 3. Beside
what the version-2 store holds, two orders suspended in one pass share a journal pack.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio

from tests.golden.flows import make_client
from ttflow_async import StateLockedError

HERE = Path(__file__).parent / "v3"


async def main(here: Path = HERE) -> None:
    """Write the store into ``here`` (make_v4_store.py runs the same sequence)."""
    shutil.rmtree(here, ignore_errors=True)
    client = make_client(f"local:{here / 'state.json'}")
    queued: list[bool] = []

    async def queue(order: dict[str, Any]) -> None:
        try:  # the lease is held: the trigger waits in the inbox
            await make_client(f"local:{here / 'state.json'}").run("order", order)
        except StateLockedError as exc:
            queued.append(exc.queued)

    async with anyio.create_task_group() as tg:

        def while_held(finished: int, scheduled: int) -> None:
            if finished == 0:
                tg.start_soon(queue, {"item": "tea", "quantity": 2})
                tg.start_soon(queue, {"item": "cake", "quantity": 1})

        await client.run("reminder", on_progress=while_held)
    assert queued == [True, True], queued
    await client.run()  # both orders suspend in this pass: their journals share a pack
    await client.run("order", {"item": "pie", "quantity": 1})  # fails: its error is kept
    (extra,) = await client.run("reminder")
    await client.cancel(extra.run_id, "one reminder is enough")
    await client.run("order", {"item": "tea", "quantity": 1}, key="order-tea")
    await client.set_state("mode", {"level": 3})
    await client.send_event("queued_note", "left in the inbox")
    (here / "state.json.lock").unlink()


if __name__ == "__main__":
    anyio.run(main)
