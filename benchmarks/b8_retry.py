"""B8 retries: N runs, each calling one side effect that fails on its first attempt and
succeeds on its second.

ttflow-async, on the local store: the side effect is declared with
``@client.sideeffect(retry=RetryPolicy(max_attempts=3, initial_delay=0, jitter="none"))``.
A failed attempt suspends its run on a durable timer (no process sleeps through a
backoff); further ``run()`` calls resume it. Timed: ``run("fanout", {"n": N})`` (one
trigger emitting N events, each starting one run), then ``run()`` passes until all N
runs succeeded; the number of passes is reported (``passes``, the first included).

DBOS 3.4 on SQLite: ``@DBOS.step(retries_allowed=True, max_attempts=3,
interval_seconds=0)`` (DBOS retries inside the step call, in the same process); N async
workflows under ``asyncio.gather``, as in B7. Timed: starting them and waiting for all.

Untimed on both: setup, one warm-up (an empty ``run()``; one DBOS workflow).
"""

import asyncio
import logging
from pathlib import Path
from typing import Any

from _common import Timed, clock, parser, workdir

#: Passes after the first before ttflow-async's side gives up (a failed check, not a hang).
MAX_PASSES = 50


class Flaky(Exception):
    """The failure every first attempt raises."""


async def run_ours(n: int, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B8 on ttflow-async; return the result fields."""
    from ttflow_async import RetryPolicy, RunContext, event_trigger, setup

    attempts: dict[int, int] = {}
    client = setup(f"local:{folder / 'state.json'}")

    @client.sideeffect(retry=RetryPolicy(max_attempts=3, initial_delay=0, jitter="none"))
    async def flaky(c: RunContext, i: int) -> int:
        attempts[i] = attempts.get(i, 0) + 1
        if attempts[i] == 1:
            raise Flaky(f"first attempt of {i}")
        return i + 1

    @client.workflow(trigger="fanout")
    async def fanout(c: RunContext, args: dict) -> None:
        for i in range(args["n"]):
            await c.event("work", {"i": i})

    @client.workflow(trigger=event_trigger("work"))
    async def work(c: RunContext, args: dict) -> int:
        return await flaky(c, args["i"])

    async with client:
        await client.run()
        timed.start()
        t0 = clock()
        results = await client.run("fanout", {"n": n})
        passes = 1
        done = sum(1 for r in results if r.workflow_name == "work" and r.status == "succeeded")
        while done < n and passes <= MAX_PASSES:
            results = await client.run()
            passes += 1
            done += sum(1 for r in results if r.workflow_name == "work" and r.status == "succeeded")
            timed.progress = {"passes": passes, "completed": done}
        seconds = clock() - t0
        timed.stop()
    attempted_twice = sum(1 for v in attempts.values() if v == 2)
    return {
        "seconds": seconds,
        "passes": passes,
        "completed": done,
        "attempted_twice": attempted_twice,
        "ok": done == n and attempted_twice == n,
    }


def run_dbos(n: int, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run N workflows of one retried step on DBOS with SQLite; return the result fields."""
    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {
        "name": "ttflow-bench-b8",
        "system_database_url": f"sqlite:///{folder / 'dbos.sqlite'}",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    attempts: dict[int, int] = {}

    @DBOS.step(retries_allowed=True, max_attempts=3, interval_seconds=0)
    async def flaky(i: int) -> int:
        attempts[i] = attempts.get(i, 0) + 1
        if attempts[i] == 1:
            raise Flaky(f"first attempt of {i}")
        return i + 1

    @DBOS.workflow()
    async def work(i: int) -> int:
        return await flaky(i)

    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.ERROR)
    try:

        async def timed_part() -> tuple[float, list[int]]:
            await work(-1)
            timed.start()
            t0 = clock()
            values = list(await asyncio.gather(*(work(i) for i in range(n))))
            seconds = clock() - t0
            timed.stop()
            return seconds, values

        seconds, values = asyncio.run(timed_part())
    finally:
        DBOS.destroy()
    attempted_twice = sum(1 for i, v in attempts.items() if i >= 0 and v == 2)
    ok = values == [i + 1 for i in range(n)] and attempted_twice == n
    return {
        "seconds": seconds,
        "passes": 1,
        "completed": len(values),
        "attempted_twice": attempted_twice,
        "ok": ok,
    }


def main() -> None:
    p = parser(__doc__ or "", impls=("ours", "dbos"))
    args = p.parse_args()
    timed = Timed(args.out, args.bound, {"scenario": "B8", "impl": args.impl, "n": args.n})
    with workdir(args.workdir, f"b8-{args.impl}") as folder:
        if args.impl == "ours":
            result = asyncio.run(run_ours(args.n, folder, timed))
        else:
            result = run_dbos(args.n, folder, timed)
    result["runs_per_s"] = args.n / result["seconds"]
    timed.finish(result)


if __name__ == "__main__":
    main()
