"""A long durable sleep, and a host that wakes up only when something is due.

``trial_reminder`` sleeps (14 days in a real app; ``LONG_SLEEP_SECONDS``, default 2,
here). While it sleeps nothing runs and nothing is held in memory: the run is stored
with its due time. ``client.next_wakeup()`` tells the host when the next timer falls
due, so it can schedule exactly one ``run()`` then: an ``at`` job, an EventBridge
Scheduler one-time schedule, or (here) a plain ``asyncio.sleep``.
Run ``python examples/long_sleep.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ttflow_async import RunContext, setup

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
client = setup(f"local:{STATE_DIR / 'long_sleep.json'}")

TRIAL = timedelta(seconds=float(os.environ.get("LONG_SLEEP_SECONDS", "2")))


@client.sideeffect()
async def send_email(c: RunContext, to: str, subject: str) -> None:
    """Send an email (a real one would call a mail API)."""
    await c.log(f"email to {to}: {subject}")


@client.workflow()
async def trial_reminder(c: RunContext, args: dict[str, Any]) -> None:
    """Welcome a user, sleep through the trial, then remind them."""
    await send_email(c, args["email"], "welcome to your trial")
    await c.sleep(TRIAL)
    await send_email(c, args["email"], "your trial has ended")


async def demo() -> int:
    async with client:
        await client.clear_state()  # every demo starts from an empty store
        results = await client.run("trial_reminder", {"email": "ana@example.com"})
        print(f"started: {results[0].status}: {results[0].logs}")
        passes = 0
        while (wakeup := await client.next_wakeup()) is not None and passes < 100:
            delay = max((wakeup - datetime.now(UTC)).total_seconds(), 0.0)
            print(f"next wake-up {wakeup:%H:%M:%S} UTC, in {delay:.1f}s: nothing runs until then")
            await asyncio.sleep(delay)
            results = await client.run()
            passes += 1
            for result in results:
                print(f"woke ({result.triggered_by}): {result.status}: {result.logs[-1]}")
        history = await client.run_history()
    print(f"next wake-up: {wakeup}")
    return 0 if [entry.status for entry in history] == ["succeeded"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(demo()))
