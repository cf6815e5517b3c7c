"""B13 idle pass: a ``run()`` with nothing to do, in a warm process, on the local store.

The most common pass of all: a cron or schedule tick that finds nothing due. Untimed:
setup, and ``SETUP_RUNS`` runs of a workflow that sets a state (so the store holds a
head, a history and traces, as a store in use does). Timed: N ``run()`` calls in a row,
each with nothing to do; ``seconds`` is the median pass. Checked: no pass returned a
result.

ttflow 0.6.3 does the same with its sync API on its own local store.
"""

import asyncio
import statistics
from pathlib import Path
from typing import Any

from _common import Timed, clock, parser, workdir

#: Runs made before the idle passes (ttflow's idle pass grows with its history).
SETUP_RUNS = 5


async def run_ours(n: int, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B13 on ttflow-async; return the result fields."""
    from ttflow_async import RunContext, setup

    client = setup(f"local:{folder / 'state.json'}")

    @client.workflow()
    async def work(c: RunContext, args: dict) -> None:
        await c.set_state("last", args["i"])

    async with client:
        for i in range(SETUP_RUNS):
            await client.run("work", {"i": i})
        await client.run()  # the first idle pass also deletes what the last commit left
        passes: list[float] = []
        results = 0
        timed.start()
        for _ in range(n):
            t0 = clock()
            results += len(await client.run())
            passes.append(clock() - t0)
        timed.stop()
    return {"seconds": statistics.median(passes), "ok": results == 0}


def run_ttflow(n: int, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B13 on ttflow 0.6.3 (local store); return the result fields."""
    import ttflow

    client = ttflow.setup(f"local:{folder / 'state.json'}")

    @client.workflow(trigger="work")
    def work(c: Any, args: dict) -> None:
        c.set_state("last", args["i"])

    for i in range(SETUP_RUNS):
        client.run("work", {"i": i})
    client.run()
    passes: list[float] = []
    results = 0
    timed.start()
    for _ in range(n):
        t0 = clock()
        results += len(client.run())
        passes.append(clock() - t0)
    timed.stop()
    return {"seconds": statistics.median(passes), "ok": results == 0}


def main() -> None:
    p = parser(__doc__ or "")
    args = p.parse_args()
    timed = Timed(args.out, args.bound, {"scenario": "B13", "impl": args.impl, "n": args.n})
    with workdir(args.workdir, f"b13-{args.impl}") as folder:
        if args.impl == "ours":
            result = asyncio.run(run_ours(args.n, folder, timed))
        else:
            result = run_ttflow(args.n, folder, timed)
    timed.finish(result)


if __name__ == "__main__":
    main()
