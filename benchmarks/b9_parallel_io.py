"""B9 parallel I/O: one workflow fans out N side effects, each awaiting 10 ms of
simulated I/O (``await asyncio.sleep(0.01)``).

ttflow-async, on the local store: ``--store gather`` (or ``local``) awaits
them under ``asyncio.gather``; ``--store map`` uses ``c.map(items, fn, max_concurrency=N)``.
Peers: ``serial`` is the same workflow on ttflow-async awaiting them one by one (the
loop a workflow wrote before parallel steps existed); ``dbos`` is DBOS 3.4 on SQLite,
one async workflow gathering N async steps.

Timed: the one ``run("fan", {"n": N})`` (ttflow-async) or the one workflow call (DBOS),
until every result is back. Untimed: client or DBOS setup, and a warm-up fan-out of one
side effect on each side (``run("fan", {"n": 1})``, DBOS's ``fan(1)``).
"""

import asyncio
import logging
from pathlib import Path
from typing import Any

from _common import Timed, clock, parser, workdir

IO_SECONDS = 0.01


async def run_ours(n: int, mode: str, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run the fan-out on ttflow-async in ``mode`` (gather, map or serial)."""
    from ttflow_async import RunContext, setup

    client = setup(f"local:{folder / 'state.json'}")

    @client.sideeffect()
    async def fetch(c: RunContext, i: int) -> int:
        await asyncio.sleep(IO_SECONDS)
        return i * 2

    async def one(c: RunContext, item: int, index: int) -> int:
        return await fetch(c, item)

    @client.workflow(trigger="fan")
    async def fan(c: RunContext, args: dict) -> int:
        items = list(range(args["n"]))
        if mode == "gather":
            values = list(await asyncio.gather(*(fetch(c, i) for i in items)))
        elif mode == "map":
            batch = await c.map(items, one, max_concurrency=len(items))
            values = list(batch.get_results())
        else:
            values = [await fetch(c, i) for i in items]
        await c.set_state("total", sum(values))
        return sum(values)

    async with client:
        await client.run()
        await client.run("fan", {"n": 1})  # the warm-up DBOS gets too: fan(1)
        timed.start()
        t0 = clock()
        results = await client.run("fan", {"n": n})
        seconds = clock() - t0
        timed.stop()
        total = await client.get_state("total")
    done = [r for r in results if r.workflow_name == "fan" and r.status == "succeeded"]
    ok = len(done) == 1 and total == n * (n - 1)
    return {"seconds": seconds, "ok": ok, "mode": mode}


def run_dbos(n: int, folder: Path, timed: Timed) -> dict[str, Any]:
    """The same fan-out on DBOS: one async workflow gathering N async steps."""
    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {
        "name": "ttflow-bench-b9",
        "system_database_url": f"sqlite:///{folder / 'dbos.sqlite'}",
        "log_level": "WARNING",
    }
    DBOS(config=config)

    @DBOS.step()
    async def fetch(i: int) -> int:
        await asyncio.sleep(IO_SECONDS)
        return i * 2

    @DBOS.workflow()
    async def fan(count: int) -> int:
        return sum(await asyncio.gather(*(fetch(i) for i in range(count))))

    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    try:

        async def timed_part() -> tuple[float, int]:
            await fan(1)
            timed.start()
            t0 = clock()
            total = await fan(n)
            seconds = clock() - t0
            timed.stop()
            return seconds, total

        seconds, total = asyncio.run(timed_part())
    finally:
        DBOS.destroy()
    return {"seconds": seconds, "ok": total == n * (n - 1), "mode": "dbos"}


def main() -> None:
    p = parser(__doc__ or "", impls=("ours", "serial", "dbos"))
    args = p.parse_args()
    meta = {"scenario": "B9", "impl": args.impl, "n": args.n, "store": args.store}
    timed = Timed(args.out, args.bound, meta)
    with workdir(args.workdir, f"b9-{args.impl}") as folder:
        if args.impl == "dbos":
            result = run_dbos(args.n, folder, timed)
        else:
            # --store names ttflow-async's mode; "local" (the cell against DBOS) is gather.
            mode = "serial" if args.impl == "serial" else "map" if args.store == "map" else "gather"
            result = asyncio.run(run_ours(args.n, mode, folder, timed))
    timed.finish(result)


if __name__ == "__main__":
    main()
