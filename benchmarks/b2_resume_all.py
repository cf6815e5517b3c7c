"""B2 resume-all: N runs, each paused by ``pause_once`` after 5 side effects.

Untimed: one ``run("fanout", {"n": N})`` that starts the N runs and leaves them paused.
Timed: the one ``run()`` that resumes and finishes them all (replaying the 5 journaled
side effects of each), including its commit. On the local store the timed ``run()`` uses
a new client, as a new process would.
"""

import asyncio
from pathlib import Path
from typing import Any

from _common import (
    Timed,
    clock,
    count_work,
    define_paused_workers_ours,
    define_paused_workers_ttflow,
    parser,
    ttflow_memory_to_local,
    workdir,
)

STEPS = 5


def define_ours(client: Any) -> None:
    """Register the workflows on a ttflow-async client (5 steps before the pause)."""
    define_paused_workers_ours(client, STEPS)


def define_ttflow(client: Any) -> None:
    """Register the same workflows on a ttflow 0.6.3 client."""
    define_paused_workers_ttflow(client, STEPS)


async def run_ours(n: int, store: str, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B2 on ttflow-async; return the result fields."""
    from ttflow_async import setup

    spec = "onmemory" if store == "memory" else f"local:{folder / 'state.json'}"
    client = setup(spec)
    define_ours(client)
    async with client:
        paused = count_work(await client.run("fanout", {"n": n}), "paused")
    if store != "memory":
        client = setup(spec)
        define_ours(client)
    async with client:
        timed.start()
        t0 = clock()
        results = await client.run()
        seconds = clock() - t0
        timed.stop()
        t_exit = clock()
    exit_seconds = clock() - t_exit  # closing the client: includes any deferred clean-up
    done = count_work(results, "succeeded")
    return {
        "seconds": seconds,
        "exit_seconds": exit_seconds,
        "paused": paused,
        "completed": done,
        "ok": done == n == paused,
    }


def run_ttflow(n: int, store: str, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B2 on ttflow 0.6.3; return the result fields."""
    import ttflow

    client = ttflow.setup("onmemory")
    define_ttflow(client)
    paused = count_work(client.run("fanout", {"n": n}), "paused")
    if store != "memory":
        state_file = folder / "state.json"
        ttflow_memory_to_local(client, state_file)
        client = ttflow.setup(f"local:{state_file}")
        define_ttflow(client)
    timed.start()
    t0 = clock()
    results = client.run()
    seconds = clock() - t0
    timed.stop()
    done = count_work(results, "succeeded")
    return {"seconds": seconds, "paused": paused, "completed": done, "ok": done == n == paused}


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    timed = Timed(args.out, args.bound, {"scenario": "B2", "impl": args.impl, "n": args.n})
    with workdir(args.workdir, f"b2-{args.impl}") as folder:
        if args.impl == "ours":
            result = asyncio.run(run_ours(args.n, args.store, folder, timed))
        else:
            result = run_ttflow(args.n, args.store, folder, timed)
    timed.finish(result)


if __name__ == "__main__":
    main()
