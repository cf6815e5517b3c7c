"""Price watch: poll a price with ``pause_once`` until it drops below a target.

Each check is a side effect (journaled: on replay the recorded price comes back and
the price API is not called again). ``pause_once`` suspends the run until the next
``run()``, so a cron job or a schedule that calls ``run()`` drives the polling::

    python examples/price_watch.py run watch_price '{"item": "lemon", "price": 150}'
    python examples/price_watch.py run      # from cron, every few minutes

``python examples/price_watch.py`` alone plays the story with a falling price.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel

from ttflow_async import RunContext, event_trigger, setup

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
client = setup(f"local:{STATE_DIR / 'price_watch.json'}")

# A stand-in for a shop's price API: the demo sets prices here; the CLI gets random ones.
MARKET: dict[str, int] = {}
API_CALLS: list[str] = []


class Watch(BaseModel):
    """What to watch: args are validated against this model."""

    item: str
    price: int


@client.sideeffect()
async def fetch_price(c: RunContext, item: str) -> int:
    """Ask the shop for the current price (recorded in the journal)."""
    API_CALLS.append(item)
    return MARKET.get(item, random.randint(120, 200))


@client.workflow()
async def watch_price(c: RunContext, watch: Watch) -> None:
    """Check the price at every run() until it is at most the target."""
    check = 1
    while True:
        price = await fetch_price(c, watch.item)
        if price <= watch.price:
            await c.log(f"check {check}: {watch.item} costs {price}: buy now!")
            await c.event("price_reached", {"item": watch.item, "price": price})
            return
        await c.log(f"check {check}: {watch.item} costs {price}, waiting for {watch.price}")
        check += 1
        await c.pause_once()


@client.workflow(trigger=event_trigger("price_reached"))
async def buy(c: RunContext, offer: dict[str, object]) -> None:
    """Runs in the same run() as the check that found the price."""
    await c.log(f"bought {offer['item']} at {offer['price']}")


async def demo() -> int:
    MARKET["lemon"] = 190
    async with client:
        await client.clear_state()  # every demo starts from an empty store
        results = await client.run("watch_price", {"item": "lemon", "price": 150})
        for run_number in range(1, 10):
            for result in results:
                last = result.logs[-1] if result.logs else ""
                print(f"pass {run_number}: {result.workflow_name} {result.status}: {last}")
            if not await client.paused_runs():
                break
            MARKET["lemon"] -= 15  # the market moves between two scheduled run() calls
            results = await client.run()
    checks = len(API_CALLS)
    print(f"the price API was called {checks} times for {checks} checks (replays reuse results)")
    history = await client.run_history()
    return 0 if {entry.workflow_name for entry in history} == {"watch_price", "buy"} else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        from ttflow_async.cli import run_cli

        run_cli(client)
    sys.exit(asyncio.run(demo()))
