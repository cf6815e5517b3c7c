"""An approval flow: a deploy waits, durably, until someone approves that very run.

The ``deploy`` workflow announces itself and then waits for the trigger
``approve:<its run id>``. Nothing runs while it waits: the run is stored, and
``run("approve:<run id>", {"by": ...})`` resumes it exactly where it stopped.

Run the whole story with ``python examples/approval.py``, or drive it by hand::

    python examples/approval.py run deploy '{"env": "prod"}'
    python examples/approval.py status
    python examples/approval.py run approve:<run id> '{"by": "ana"}'
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from ttflow_async import EventWaitTimeout, RunContext, WorkflowRunResult, setup

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
client = setup(f"local:{STATE_DIR / 'approval.json'}")


@client.sideeffect()
async def notify(c: RunContext, message: str) -> None:
    """Tell the team (a real one would post to a chat); runs once per call site."""
    await c.log(message)


@client.workflow()
async def deploy(c: RunContext, args: dict[str, Any] | None) -> None:
    """Deploy once a human approves this run (or give up after three days)."""
    env = (args or {}).get("env", "staging")
    await notify(c, f"deploy to {env} is waiting: run approve:{c.run_id} to go on")
    try:
        approval = await c.wait_event(f"approve:{c.run_id}", timeout=timedelta(days=3))
    except EventWaitTimeout:
        await notify(c, f"nobody approved the deploy to {env} in 3 days: cancelled")
        return
    approver = (approval or {}).get("by", "someone")
    await notify(c, f"approved by {approver}: deploying to {env}")


def show(title: str, results: Sequence[WorkflowRunResult]) -> None:
    print(f"== {title}")
    for result in results:
        print(f"{result.workflow_name}  {result.status}  run {result.run_id}")
        for line in result.logs:
            print(f"  | {line}")


async def demo() -> int:
    async with client:
        await client.clear_state()  # every demo starts from an empty store

        started = await client.run("deploy", {"env": "prod"})
        show('run("deploy")', started)
        run_id = started[0].run_id

        for paused in await client.paused_runs():
            wait = paused.waiting_for
            print(
                f"{paused.workflow_name} {paused.run_id} waits for {wait['kind']} {wait['name']!r}"
            )

        approved = await client.run(f"approve:{run_id}", {"by": "ana"})
        show(f'run("approve:{run_id}")', approved)
        print(f"still waiting: {len(await client.paused_runs())} run(s)")
    return 0 if [r.status for r in approved] == ["succeeded"] else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        from ttflow_async.cli import run_cli

        run_cli(client)
    sys.exit(asyncio.run(demo()))
