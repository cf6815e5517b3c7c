"""The workflows under test: an expense that waits up to three days for a manager.

``register(client)`` adds them to any client, so the application builds its client over
a real store and the tests build one over memory on a test clock (see test_flows.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ttflow_async import Client, EventWaitTimeout, RunContext


def register(client: Client) -> None:
    """Register the expense workflows on ``client``."""

    @client.sideeffect()
    async def pay(c: RunContext, amount: int) -> str:
        await c.log(f"paid {amount}")
        return f"paid {amount}"

    @client.workflow()
    async def expense(c: RunContext, args: dict[str, Any]) -> str:
        amount = int(args["amount"])
        if amount <= 100:
            return await pay(c, amount)
        await c.sleep(timedelta(hours=1), name="cooling-off")
        try:
            decision = await c.wait_event(f"decide:{c.run_id}", timeout=timedelta(days=3))
        except EventWaitTimeout:
            return "expired"
        if not decision["approved"]:
            return "rejected"
        return await pay(c, amount)
