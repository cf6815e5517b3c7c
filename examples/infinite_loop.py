"""An endless loop with side effects: every ``run()`` does one more iteration.

``meter_loop`` never returns. Each iteration reads a meter (a side effect), logs,
and pauses until the next ``run()``. On every resume the function replays from the
top, but the readings already taken come back from the journal: the meter is read
exactly once per iteration, and the running total is the same on every replay.
Run ``python examples/infinite_loop.py``.

The journal of such a run grows by a few entries per iteration, and so does the cost
of its replay. For a loop meant to run for months, prefer a short workflow started
by ``every_trigger()`` that keeps its progress in state (``heartbeat`` below).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
from pathlib import Path

from ttflow_async import RunContext, every_trigger, setup

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
client = setup(f"local:{STATE_DIR / 'infinite_loop.json'}")

METER_READS: list[int] = []


@client.sideeffect()
async def read_meter(c: RunContext) -> int:
    """Read the meter: random here, journaled, so a replay sees the same number."""
    value = random.randint(1, 100)
    METER_READS.append(value)
    return value


@client.workflow()
async def meter_loop(c: RunContext) -> None:
    """Read, add up, pause; forever."""
    total = 0
    iteration = 0
    while True:
        iteration += 1
        reading = await read_meter(c)
        total += reading
        await c.log(f"iteration {iteration}: read {reading}, total {total}")
        await c.pause_once()


@client.workflow(trigger=every_trigger())
async def heartbeat(c: RunContext) -> None:
    """The bounded alternative: a fresh short run at every run(), progress in state."""
    beats = await c.get_state("beats", 0)
    await c.set_state("beats", beats + 1)


async def demo() -> int:
    async with client:
        await client.clear_state()  # every demo starts from an empty store
        await client.run("meter_loop")
        for _ in range(4):
            await client.run()
        (loop_run,) = await client.paused_runs()
        logs = await client.run_logs(loop_run.run_id)
        beats = await client.get_state("beats")
    for line in logs:
        print(line)
    print(f"5 iterations, meter read {len(METER_READS)} times, total {sum(METER_READS)}")
    print(f"heartbeat ran {beats} times")
    expected_last = f"iteration 5: read {METER_READS[-1]}, total {sum(METER_READS)}"
    return 0 if len(METER_READS) == 5 and logs[-1] == expected_last and beats == 5 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(demo()))
