"""B6 steady state: P consecutive ``run()`` passes over a store with N = 1000 idle waiters
(each waiting on its own event, none of which arrives), on one client.

Untimed: starting the N waiters (as in B3). Timed: each of the P passes, one by one.
Reported: the 1st pass, the P-th pass, and the medians of the first 100 and of the
last 100 passes (a single pass is a millisecond or a few, so the windows show the trend
without the noise of one sample). ttflow's cost grows with its execution-trace list (every pass
re-runs every waiter and records it), so its passes are capped by ``--peer-budget``
seconds: it reports how many passes it reached.
"""

import asyncio
import statistics
from pathlib import Path
from typing import Any

from _common import Timed, clock, parser, ttflow_memory_to_local, workdir
from b3_idle_waiters import define_ours, define_ttflow


def summarize(passes: list[float]) -> dict[str, Any]:
    """First, last, and the medians of the first and the last 100 passes."""
    early = passes[:100]
    late = passes[-100:]
    return {
        "passes": len(passes),
        "first": passes[0],
        "last": passes[-1],
        "early_median": statistics.median(early),
        "late_median": statistics.median(late),
        "seconds": passes[-1],
        "all_passes": passes,
    }


async def run_ours(n: int, passes: int, store: str, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B6 on ttflow-async; return the result fields."""
    from ttflow_async import setup

    spec = "onmemory" if store == "memory" else f"local:{folder / 'state.json'}"
    client = setup(spec)
    define_ours(client)
    async with client:
        waiting = len(await client.run("fanout", {"n": n})) - 1
    if store != "memory":
        client = setup(spec)
        define_ours(client)
    times: list[float] = []
    async with client:
        timed.start()
        for _ in range(passes):
            t0 = clock()
            results = await client.run()
            times.append(clock() - t0)
            if results:
                raise RuntimeError(f"an idle pass ran something: {results[:3]}")
        timed.stop()
    return {**summarize(times), "waiting": waiting, "ok": waiting == n}


def run_ttflow(
    n: int, passes: int, budget: float, store: str, folder: Path, timed: Timed
) -> dict[str, Any]:
    """Run B6 on ttflow 0.6.3 for up to ``passes`` passes or ``budget`` seconds."""
    import ttflow
    import ttflow.core

    client = ttflow.setup("onmemory")
    define_ttflow(client)
    for i in range(n):
        ttflow.core.event._enque_trigger(client._global, "waiter", {"i": i})
    waiting = len(client.run())
    if store != "memory":
        state_file = folder / "state.json"
        ttflow_memory_to_local(client, state_file)
        client = ttflow.setup(f"local:{state_file}")
        define_ttflow(client)
    times: list[float] = []
    timed.start()
    started = clock()
    while len(times) < passes and clock() - started < budget:
        t0 = clock()
        client.run()
        times.append(clock() - t0)
        timed.progress = {"passes_reached": len(times)}
    timed.stop()
    return {**summarize(times), "waiting": waiting, "ok": waiting == n}


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--passes", type=int, default=1000)
    p.add_argument("--peer-budget", type=float, default=10.0)
    args = p.parse_args()
    timed = Timed(args.out, args.bound, {"scenario": "B6", "impl": args.impl, "n": args.n})
    with workdir(args.workdir, f"b6-{args.impl}") as folder:
        if args.impl == "ours":
            result = asyncio.run(run_ours(args.n, args.passes, args.store, folder, timed))
        else:
            budget = min(args.peer_budget, args.bound)
            result = run_ttflow(args.n, args.passes, budget, args.store, folder, timed)
    result["target_passes"] = args.passes
    timed.finish(result)


if __name__ == "__main__":
    main()
