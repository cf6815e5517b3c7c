"""Home security: a chain of events across workflows, in waves of one ``run()``.

A door event starts ``check_door``; if the house is armed it emits
``intruder_suspected``, which starts ``sound_alarm`` and ``call_owner`` together (the
next wave of the same ``run()``). ``call_owner`` then waits for the owner's answer,
which can come in a much later ``run()``. Run ``python examples/home_security.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttflow_async import (
    EventWaitTimeout,
    RunContext,
    WorkflowRunResult,
    event_trigger,
    setup,
)

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
client = setup(f"local:{STATE_DIR / 'home_security.json'}")


@client.workflow()
async def arm(c: RunContext) -> None:
    """Arm the alarm."""
    await c.set_state("armed", True)
    await c.log("armed")


@client.workflow()
async def disarm(c: RunContext) -> None:
    """Disarm the alarm."""
    await c.set_state("armed", False)
    await c.log("disarmed")


@client.workflow(trigger=event_trigger("door_opened"))
async def check_door(c: RunContext, door: dict[str, Any]) -> None:
    """An opened door is only suspicious while the house is armed."""
    if not await c.get_state("armed", False):
        await c.log(f"{door['door']} door opened, not armed: nothing to do")
        return
    await c.log(f"{door['door']} door opened while armed!")
    await c.event("intruder_suspected", door)


@client.sideeffect()
async def siren(c: RunContext, on: bool) -> str:
    """Switch the siren (a real one would call the device)."""
    return "siren on" if on else "siren off"


@client.workflow(trigger=event_trigger("intruder_suspected"))
async def sound_alarm(c: RunContext, door: dict[str, Any]) -> None:
    """Sound the siren at once."""
    await c.log(await siren(c, True))


@client.workflow(trigger=event_trigger("intruder_suspected"))
async def call_owner(c: RunContext, door: dict[str, Any]) -> None:
    """Ask the owner; a false alarm stops the siren, silence calls the police."""
    await c.log(f"calling the owner about the {door['door']} door")
    try:
        answer = await c.wait_event("owner_answer", timeout=600)
    except EventWaitTimeout:
        await c.event("call_police", door)
        return
    if answer.get("false_alarm"):
        await c.event("false_alarm")
    else:
        await c.event("call_police", door)


@client.workflow(trigger=event_trigger("false_alarm"))
async def silence(c: RunContext) -> None:
    """Stop the siren and disarm until the owner arms again."""
    await c.log(await siren(c, False))
    await c.set_state("armed", False)


@client.workflow(trigger=event_trigger("call_police"))
async def call_police(c: RunContext, door: dict[str, Any]) -> None:
    """Call the police."""
    await c.log(f"police called about the {door['door']} door")


def show(title: str, results: Sequence[WorkflowRunResult]) -> None:
    print(f"== {title}")
    for result in results:
        logs = "; ".join(result.logs)
        print(f"{result.workflow_name:<12} {result.status:<9} ({result.triggered_by}) {logs}")


async def demo() -> int:
    async with client:
        await client.clear_state()  # every demo starts from an empty store
        show('run("arm")', await client.run("arm"))

        await client.send_event("door_opened", {"door": "front"})
        show("door_opened, then run()", await client.run())

        await client.send_event("owner_answer", {"false_alarm": True})
        show("owner_answer, then run()", await client.run())

        await client.send_event("door_opened", {"door": "back"})
        show("door_opened again, then run()", await client.run())

        history = [(entry.workflow_name, entry.status) for entry in await client.run_history()]
        paused = await client.paused_runs()
    print(f"{len(history)} finished runs, {len(paused)} still waiting")
    expected = {"arm", "check_door", "sound_alarm", "call_owner", "silence"}
    return 0 if {name for name, _ in history} == expected and not paused else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(demo()))
