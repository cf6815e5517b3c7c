"""Temperature monitoring: react to state changes with ``state_trigger``.

``record_temperature`` only stores a reading. Every time the value changes, the
engine emits ``state_changed_temperature`` with ``{"old": ..., "new": ...}`` and
``watch_temperature`` runs (in the next wave of the same ``run()``); crossing 30 °C
emits ``too_hot``, which starts ``cool_down``. Run ``python examples/temperature.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ttflow_async import RunContext, event_trigger, setup, state_trigger

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
client = setup(f"local:{STATE_DIR / 'temperature.json'}")

HOT = 30


@client.workflow()
async def record_temperature(c: RunContext, args: dict[str, Any]) -> None:
    """Store a sensor reading; an unchanged value emits nothing."""
    await c.set_state("temperature", args["celsius"])


@client.workflow(trigger=state_trigger("temperature"))
async def watch_temperature(c: RunContext, change: dict[str, Any]) -> None:
    """Keep the last readings and raise ``too_hot`` when 30 °C is crossed."""
    old, new = change["old"], change["new"]
    await c.add_list_state("recent_temperatures", new, max_length=3)
    await c.log(f"temperature {old} -> {new}")
    if new >= HOT and (old is None or old < HOT):
        await c.event("too_hot", {"celsius": new})


@client.sideeffect()
async def switch_fan(c: RunContext, on: bool) -> str:
    """Drive the fan (a real one would call the device's API)."""
    return "fan on" if on else "fan off"


@client.workflow(trigger=event_trigger("too_hot"))
async def cool_down(c: RunContext, args: dict[str, Any]) -> None:
    """Turn the fan on when it gets too hot."""
    await c.log(f"{args['celsius']} °C: {await switch_fan(c, True)}")


async def demo() -> int:
    async with client:
        await client.clear_state()  # every demo starts from an empty store
        for celsius in (24, 27, 27, 31, 33, 26):
            results = await client.run("record_temperature", {"celsius": celsius})
            ran = ", ".join(f"{r.workflow_name} ({r.triggered_by})" for r in results)
            print(f"reading {celsius}: {ran}")
            for result in results:
                for line in result.logs:
                    print(f"  | {line}")
        recent = await client.get_state("recent_temperatures")
        events = [entry.event_name for entry in await client.event_log()]
    print(f"recent temperatures: {recent}")
    changes = sum(name == "state_changed_temperature" for name in events)
    print(f"event log: {changes} temperature changes, {events.count('too_hot')} too_hot")
    return 0 if recent == [31, 33, 26] and events.count("too_hot") == 1 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(demo()))
