"""Fan-out: check a list of stock levels concurrently, with a bound and a completion rule.

``c.map`` runs one branch per item, at most ``max_concurrency`` at once; each branch
calls a journaled side effect, so a resumed run never calls the warehouse twice for
the same item. The workflow waits for a buyer's decision between the two fan-outs,
which suspends it: the second ``run()`` replays the first fan-out from the journal.

``python examples/fan_out.py`` plays the story.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from ttflow_async import CompletionConfig, RunContext, setup

STATE_DIR = Path(
    os.environ.get("TTFLOW_ASYNC_EXAMPLES_DIR")
    or Path(tempfile.gettempdir()) / "ttflow-async-examples"
)
client = setup(f"local:{STATE_DIR / 'fan_out.json'}")

WAREHOUSE = {"tea": 12, "cake": 0, "jam": 4, "bread": 9, "honey": 0, "milk": 30}
CALLS: list[str] = []


@client.sideeffect()
async def stock_of(c: RunContext, item: str) -> int:
    """A slow warehouse API (simulated with a 50 ms wait)."""
    CALLS.append(item)
    await asyncio.sleep(0.05)
    if WAREHOUSE[item] == 0:
        raise LookupError(f"{item} is out of stock")
    return WAREHOUSE[item]


@client.workflow()
async def restock(c: RunContext, args: dict[str, list[str]]) -> dict[str, object]:
    async def check(c: RunContext, item: str, index: int) -> int:
        return await stock_of(c, item)

    levels = await c.map(args["items"], check, name="stock levels", max_concurrency=3)
    missing = [args["items"][item.index] for item in levels.failed()]
    await c.log(f"{levels.success_count} in stock, out of stock: {', '.join(missing)}")
    decision = await c.wait_event(f"order:{c.run_id}")
    # Order from the first two suppliers that answer; the rest are never asked.
    suppliers = await c.map(
        decision["suppliers"],
        check,
        completion=CompletionConfig(min_successful=2),
        max_concurrency=1,
    )
    return {"missing": missing, "suppliers": suppliers.get_results()}


async def main() -> None:
    (paused,) = await client.run("restock", {"items": list(WAREHOUSE)})
    print(f"restock  {paused.status}  run {paused.run_id}")
    for line in paused.logs:
        print(f"  | {line}")
    calls_before = len(CALLS)
    (done,) = await client.run(f"order:{paused.run_id}", {"suppliers": ["tea", "jam", "milk"]})
    print(f"restock  {done.status}  {done.result}")
    print(f"warehouse calls: {calls_before} before the wait, {len(CALLS) - calls_before} after")


if __name__ == "__main__":
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    for leftover in STATE_DIR.glob("fan_out.json*"):  # every demo starts from an empty store
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    asyncio.run(main())
