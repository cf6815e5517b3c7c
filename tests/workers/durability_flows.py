"""Workflows and a worker loop for the crash and multi-process tests.

Run as ``python -m tests.workers.durability_flows MODE SPEC START COUNT``:

- ``crash``: for i in START..START+COUNT-1: send the event ``tick`` i, print
  ``sent i`` once it is stored, then ``run()``. The parent kills it at random points.
- ``race``: for i in START..START+COUNT-1: ``run("bump", i)``; a trigger that meets a
  held lock is queued and counted as fired later. Prints ``done`` at the end.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio

from ttflow_async import Client, RunContext, StateLockedError, event_trigger, setup


def make_client(spec: str, **options: Any) -> Client:
    """A client with the workflows both tests use."""
    client = setup(spec, **options)

    @client.workflow(trigger=event_trigger("tick"))
    async def on_tick(c: RunContext, args: int) -> None:
        await c.add_list_state("started", args)
        await c.pause_once()
        await c.add_list_state("seen", args)
        await c.set_state("count", await c.get_state("count", 0) + 1)

    @client.workflow()
    async def bump(c: RunContext, args: int) -> None:
        await c.add_list_state("bumped", args)
        await c.set_state("bumps", await c.get_state("bumps", 0) + 1)

    return client


async def crash_loop(spec: str, start: int, count: int) -> None:
    client = make_client(spec, lease_seconds=0.3)
    async with client:
        print("ready", flush=True)
        for i in range(start, start + count):
            await client.send_event("tick", i)
            print(f"sent {i}", flush=True)
            await client.run(lock_timeout=10)


async def race_loop(spec: str, start: int, count: int) -> None:
    client = make_client(spec)
    async with client:
        for i in range(start, start + count):
            try:
                await client.run("bump", i, lock_timeout=60)
            except StateLockedError as exc:
                if not exc.queued:
                    raise
    print("done", flush=True)


def main() -> None:
    mode, spec, start, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    loop = crash_loop if mode == "crash" else race_loop
    anyio.run(loop, spec, start, count)


if __name__ == "__main__":
    main()
