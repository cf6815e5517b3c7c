"""Workflows and runner processes for the crash and multi-process tests.

Each ``*_process`` function is the body of a real OS process, forked from the warmed
forkserver of ``tests/workers/forkserver.py``; it reports to the test over a pipe:

- ``crash_process``: for i in START..START+COUNT-1: send the event ``tick`` i, report
  ``("sent", i)`` once it is stored, then ``run()``. The test kills it at random points.
- ``race_process``: for i in START..START+COUNT-1: ``run("bump", i)``; a trigger that
  meets a held lock is queued and counted as fired later. Reports ``("done",)``.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
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


async def _crash_loop(spec: str, start: int, count: int, report: Connection) -> None:
    client = make_client(spec, lease_seconds=0.3)
    async with client:
        report.send(("ready",))
        for i in range(start, start + count):
            await client.send_event("tick", i)
            report.send(("sent", i))  # one small write to a pipe: whole or not at all
            await client.run(lock_timeout=10)


def crash_process(spec: str, start: int, count: int, report: Connection) -> None:
    anyio.run(_crash_loop, spec, start, count, report)


async def _race_loop(spec: str, start: int, count: int) -> None:
    client = make_client(spec)
    async with client:
        for i in range(start, start + count):
            try:
                await client.run("bump", i, lock_timeout=60)
            except StateLockedError as exc:
                if not exc.queued:
                    raise


def race_process(spec: str, start: int, count: int, report: Connection) -> None:
    anyio.run(_race_loop, spec, start, count)
    report.send(("done",))
