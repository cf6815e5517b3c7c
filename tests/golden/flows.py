"""The workflows the golden stores were written with (keep them unchanged)."""

from __future__ import annotations

from typing import Any

from ttflow_async import Client, RunContext, event_trigger, setup


def make_client(spec: str) -> Client:
    """A client with the golden workflows."""
    client = setup(spec)

    @client.sideeffect()
    async def price_of(c: RunContext, item: str) -> int:
        return {"tea": 3, "cake": 5}[item]

    @client.workflow()
    async def order(c: RunContext, args: dict[str, Any]) -> None:
        price = await price_of(c, args["item"])
        await c.log(f"{args['quantity']} x {args['item']} at {price}")
        await c.add_list_state("orders", args["item"])
        approval = await c.wait_event(f"approve:{args['item']}")
        await c.log(f"approved by {approval['by']}")

    @client.workflow()
    async def reminder(c: RunContext) -> None:
        await c.log("reminder set")
        await c.sleep(3600 * 24 * 365 * 50)

    @client.workflow(trigger=event_trigger("queued_note"))
    async def note(c: RunContext, args: str) -> None:
        await c.log(f"note: {args}")

    return client
