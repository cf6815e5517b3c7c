"""The web dashboard on the local file store, with a few sample workflows.

Run it with ``python examples/dashboard.py`` (needs ``pip install 'ttflow-async[web]'``)
and open http://127.0.0.1:8000. It listens on 127.0.0.1 only. Reading is open to this
machine; the buttons that fire a trigger, send an event or resume need a token::

    TTFLOW_ASYNC_DASHBOARD_TOKEN=s3cret python examples/dashboard.py
    python examples/dashboard.py --token s3cret --port 8080

On its first start it runs a few passes so that there is something to look at: orders
flowing into a state and a watcher, a deploy waiting for approval, a reminder sleeping
on a durable timer, and a run that failed. The state lives in a local file store (in
``$TTFLOW_ASYNC_EXAMPLES_DIR``, else a folder in the system's temp dir).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ttflow_async import RunContext, event_trigger, every_trigger, setup, state_trigger
from ttflow_async.web import serve

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
STORE = STATE_DIR / "dashboard.json"

client = setup(f"local:{STORE}")


@client.workflow()
async def greet(c: RunContext, args: dict[str, Any]) -> None:
    """Greet someone by name."""
    await c.log(f"Hello, {args.get('name', 'world')}!")


@client.workflow(trigger=event_trigger("order_placed"))
async def take_order(c: RunContext, args: dict[str, Any]) -> None:
    """Add an order's amount to the revenue."""
    revenue = await c.get_state("revenue", 0)
    await c.set_state("revenue", revenue + args["amount"])
    await c.log(f"order {args['id']}: +{args['amount']}")
    if args["amount"] >= 100:
        await c.event("big_order", {"id": args["id"]})


@client.workflow(trigger=event_trigger("big_order"))
async def thank_big_customer(c: RunContext, args: dict[str, Any]) -> None:
    """Thank the customer of a big order."""
    await c.log(f"thank-you note for order {args['id']}")


@client.workflow(trigger=state_trigger("revenue"))
async def watch_revenue(c: RunContext, args: dict[str, Any]) -> None:
    """Report every change of the revenue."""
    await c.log(f"revenue {args['old']} -> {args['new']}")


@client.workflow()
async def deploy(c: RunContext, args: dict[str, Any]) -> None:
    """Deploy once someone approves this very run (trigger approve:<run id>)."""
    await c.log(f"deploy to {args['env']} is waiting for approval")
    decision = await c.wait_event(f"approve:{c.run_id}", timeout=24 * 3600)
    await c.log(f"approved by {decision['by']}; deploying")


@client.workflow()
async def remind(c: RunContext, args: dict[str, Any]) -> None:
    """Send a reminder after a durable sleep."""
    await c.sleep(args.get("after_seconds", 3600))
    await c.log(f"reminder: {args.get('text', 'stand up')}")


@client.workflow()
async def import_prices(c: RunContext, args: dict[str, Any]) -> None:
    """Import a price list (fails on a bad URL, to show a failed run)."""
    if not str(args.get("url", "")).startswith("https://"):
        raise ValueError(f"not an https URL: {args.get('url')!r}")
    await c.log(f"imported {args['url']}")


@client.workflow(trigger=every_trigger())
async def heartbeat(c: RunContext) -> None:
    """Count the passes."""
    await c.set_state("passes", (await c.get_state("passes", 0)) + 1)


async def seed() -> None:
    """Run a few passes on an empty store so the dashboard has something to show."""
    async with client:
        if await client.run_history():
            return
        await client.run("greet", {"name": "Ada"})
        for order_id, amount in [(1, 40), (2, 120), (3, 15)]:
            await client.send_event("order_placed", {"id": order_id, "amount": amount})
        await client.run()
        await client.run("deploy", {"env": "staging"})
        results = await client.run("deploy", {"env": "prod"})
        prod = next(r for r in results if r.workflow_name == "deploy")
        await client.run(f"approve:{prod.run_id}", {"by": "grace"})
        await client.run("remind", {"after_seconds": 900, "text": "review the release"})
        await client.run("import_prices", {"url": "ftp://example.invalid/prices.csv"})


def main() -> None:
    """Parse the options, seed the store once, and serve the dashboard."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--token",
        default=os.environ.get("TTFLOW_ASYNC_DASHBOARD_TOKEN"),
        help="secret that enables write actions (default: $TTFLOW_ASYNC_DASHBOARD_TOKEN)",
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(seed())
    print(f"state: {STORE}")
    print(f"dashboard: http://{options.host}:{options.port}/")
    serve(client, host=options.host, port=options.port, token=options.token)


if __name__ == "__main__":
    main()
