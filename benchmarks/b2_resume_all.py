"""B2 resume-all: N runs, each paused by ``pause_once`` after 5 side effects.

Untimed: one ``run("fanout", {"n": N})`` that starts the N runs and leaves them paused.
Timed: the one ``run()`` that resumes and finishes them all (replaying the 5 journaled
side effects of each), including its commit. On the local store the timed ``run()`` uses
a new client, as a new process would.
"""

import asyncio
from pathlib import Path
from typing import Any

from _common import Timed, clock, parser, ttflow_memory_to_local, workdir


def define_ours(client: Any) -> None:
    """Register the B2 workflows on a ttflow-async client."""
    from ttflow_async import RunContext, event_trigger

    @client.sideeffect()
    async def step(c: RunContext, x: int) -> int:
        return x + 1

    @client.workflow(trigger="fanout")
    async def fanout(c: RunContext, args: dict) -> None:
        for i in range(args["n"]):
            await c.event("work", {"i": i})

    @client.workflow(trigger=event_trigger("work"))
    async def work(c: RunContext, args: dict) -> None:
        x = args["i"]
        for _ in range(5):
            x = await step(c, x)
        await c.pause_once()
        await c.log(f"resumed with {x}")


def define_ttflow(client: Any) -> None:
    """Register the same workflows on a ttflow 0.6.3 client (its sync API)."""
    import ttflow

    @client.sideeffect()
    def step(c: Any, x: int) -> int:
        return x + 1

    @client.workflow(trigger="fanout")
    def fanout(c: Any, args: dict) -> None:
        for i in range(args["n"]):
            c.event("work", {"i": i})

    @client.workflow(trigger=ttflow.event_trigger("work"))
    def work(c: Any, args: dict) -> None:
        x = args["i"]
        for _ in range(5):
            x = step(c, x)
        c.pause_once()
        c.log(f"resumed with {x}")


def count(results: list[Any], status: str) -> int:
    """How many ``work`` runs ended with ``status``."""
    return sum(1 for r in results if r.workflow_name == "work" and r.status == status)


async def run_ours(n: int, store: str, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B2 on ttflow-async; return the result fields."""
    from ttflow_async import setup

    spec = "onmemory" if store == "memory" else f"local:{folder / 'state.json'}"
    client = setup(spec)
    define_ours(client)
    async with client:
        paused = count(await client.run("fanout", {"n": n}), "paused")
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
    done = count(results, "succeeded")
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
    paused = count(client.run("fanout", {"n": n}), "paused")
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
    done = count(results, "succeeded")
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
