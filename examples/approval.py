"""An approval flow: a deploy waits, durably, until someone answers its callback.

The ``deploy`` workflow creates a callback named ``approval``, logs its id, and awaits
its result. Nothing runs while it waits: the run is stored, and
``client.complete_callback(<callback id>, {"by": ...})`` (from anywhere, without the
lock) followed by a pass resumes it exactly where it stopped. ``fail_callback`` rejects
the deploy; after three days without an answer the callback times out.

Run the whole story with ``python examples/approval.py``, or drive it by hand::

    python examples/approval.py run deploy '{"env": "prod"}'
    python examples/approval.py status
    python examples/approval.py callback complete <callback id> '{"by": "ana"}'
    python examples/approval.py callback fail <callback id> 'not on a Friday'
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

from ttflow_async import (
    CallbackFailed,
    CallbackTimeout,
    RunContext,
    WorkflowRunResult,
    setup,
)

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
async def deploy(c: RunContext, args: dict[str, Any] | None) -> str:
    """Deploy once a human approves this run (or give up after three days)."""
    env = (args or {}).get("env", "staging")
    cb = await c.create_callback(name="approval", timeout=timedelta(days=3))
    await notify(c, f"deploy to {env} is waiting: complete callback {cb.id} to go on")
    try:
        approval = await cb.result()
    except CallbackTimeout:
        await notify(c, f"nobody approved the deploy to {env} in 3 days: cancelled")
        return "timed out"
    except CallbackFailed as refused:
        await notify(c, f"the deploy to {env} was refused: {refused}")
        return "refused"
    approver = (approval or {}).get("by", "someone")
    await notify(c, f"approved by {approver}: deploying to {env}")
    return f"deployed to {env}"


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

        callback_id = ""
        for paused in await client.paused_runs():
            wait = paused.waiting_for
            callback_id = str(wait.get("callback_id"))
            print(f"{paused.workflow_name} {paused.run_id} waits for {wait['kind']} {callback_id}")

        # The approver, anywhere: a web hook, a chat bot, the CLI, the dashboard.
        await client.complete_callback(callback_id, {"by": "ana"})
        approved = await client.run()
        show(f"complete_callback({callback_id!r}) and run()", approved)
        print(f"still waiting: {len(await client.paused_runs())} run(s)")
    return 0 if [r.status for r in approved] == ["succeeded"] else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        from ttflow_async.cli import run_cli

        run_cli(client)
    sys.exit(asyncio.run(demo()))
