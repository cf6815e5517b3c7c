"""A process of the storm test: a sender of events or a runner of passes.

``python -m tests.storm_worker send SPEC OUT TAG COUNT`` sends COUNT events without the
lock; ``python -m tests.storm_worker run SPEC OUT STOP`` runs passes until the file STOP
exists and the inbox is empty. Every delivered event appends its id to the file OUT
from a side effect: that file is the count, independent of the engine's own records.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

from ttflow_async import Client, RunContext, StateLockedError, event_trigger, setup


def storm_client(spec: str, out: str) -> Client:
    """The client every storm process builds (same code, same fingerprint)."""
    client = setup(spec, lease_seconds=20)

    @client.sideeffect()
    def record(c: RunContext, event_id: str) -> None:
        with open(out, "a", encoding="utf-8") as f:
            f.write(event_id + "\n")
            f.flush()
            os.fsync(f.fileno())

    @client.workflow(trigger=event_trigger("storm"))
    async def storm(c: RunContext, args: dict[str, str]) -> None:
        await record(c, args["id"])

    return client


async def send(spec: str, out: str, tag: str, count: int) -> None:
    async with storm_client(spec, out) as client:
        for i in range(count):
            await client.send_event("storm", {"id": f"{tag}-{i}"})


async def run(spec: str, out: str, stop: str) -> None:
    async with storm_client(spec, out) as client:
        while True:
            try:
                await client.run(lock_timeout=30)
            except StateLockedError:
                continue
            stopped = Path(stop).exists()  # noqa: ASYNC240 - set by the parent process
            if stopped and not await client.store.inbox_list():
                return


def main() -> None:
    command, spec, out = sys.argv[1:4]
    if command == "send":
        anyio.run(send, spec, out, sys.argv[4], int(sys.argv[5]))
    else:
        anyio.run(run, spec, out, sys.argv[4])


if __name__ == "__main__":
    main()
