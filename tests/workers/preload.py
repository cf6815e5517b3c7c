"""Warms the forkserver of ``tests/workers/forkserver.py`` before it forks a runner.

Importing this module does once, in the server, what each child would otherwise do on
its first ``run()``: import the engine's lazily loaded parts (pydantic's records, the
runner) and run a pass, here on an in-memory store.
"""

from __future__ import annotations

import anyio

from ttflow_async import RunContext, event_trigger, setup


async def _passes() -> None:
    client = setup("onmemory")

    @client.workflow(trigger=event_trigger("warm-up"))
    async def warm(c: RunContext, args: int) -> None:
        await c.add_list_state("warmed", args)
        await c.set_state("count", await c.get_state("count", 0) + 1)
        await c.pause_once()

    @client.workflow()
    async def direct(c: RunContext, args: int) -> None:
        await c.set_state("direct", args)

    async with client:
        await client.send_event("warm-up", 1)
        await client.run()
        await client.run("direct", 2)
        await client.run()


anyio.run(_passes)
