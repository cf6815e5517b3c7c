"""Quickstart: define a workflow, run it, print the run summary.

Run it with ``python examples/quickstart.py``. The state lives in a local file store
(in ``$TTFLOW_ASYNC_EXAMPLES_DIR``, else a folder in the system's temp dir), so every
time you run the script the greeting count goes on where it stopped.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ttflow_async import RunContext, setup

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
STORE = STATE_DIR / "quickstart.json"

client = setup(f"local:{STORE}")


@client.sideeffect()
async def make_greeting(c: RunContext, name: str) -> str:
    """A side effect: its result is journaled, so a replay never runs it twice."""
    return f"Hello, {name}!"


@client.workflow()
async def hello(c: RunContext, args: dict[str, Any]) -> None:
    """Greet someone and count the greetings in durable state."""
    greeting = await make_greeting(c, args.get("name", "world"))
    await c.log(greeting)
    count = await c.get_state("greetings", 0)
    await c.set_state("greetings", count + 1)
    await c.log(f"greetings so far: {count + 1}")


async def main() -> int:
    async with client:
        results = await client.run("hello", {"name": "ttflow-async"})
    for result in results:
        print(f"{result.workflow_name}  {result.status}  run {result.run_id}")
        if result.error_message:
            print(f"  error: {result.error_message}")
        for line in result.logs:
            print(f"  | {line}")
    print(f"{len(results)} run(s). The state is kept in {STORE}: run me again to count on.")
    return 0 if all(result.status == "succeeded" for result in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
