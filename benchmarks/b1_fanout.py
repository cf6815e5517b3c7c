"""B1 fan-out: one trigger workflow emits N events; each event starts a workflow that
does 3 side effects, 2 ``set_state`` and 1 ``log``.

Timed: the one ``run("fanout", {"n": N})`` that runs the trigger workflow, the N
workflows and the ``state_changed_*`` deliveries, and commits. Metric: runs/s (N / time).
Untimed: creating the client, one empty warm-up ``run()`` (first-run bookkeeping).
"""

import asyncio
from pathlib import Path
from typing import Any

from _common import Timed, clock, parser, workdir


def define_ours(client: Any) -> None:
    """Register the B1 workflows on a ttflow-async client."""
    from ttflow_async import RunContext, event_trigger

    @client.sideeffect()
    async def step_a(c: RunContext, x: int) -> int:
        return x + 1

    @client.sideeffect()
    async def step_b(c: RunContext, x: int) -> int:
        return x * 2

    @client.sideeffect()
    async def step_c(c: RunContext, x: int) -> int:
        return x - 3

    @client.workflow(trigger="fanout")
    async def fanout(c: RunContext, args: dict) -> None:
        for i in range(args["n"]):
            await c.event("work", {"i": i})

    @client.workflow(trigger=event_trigger("work"))
    async def work(c: RunContext, args: dict) -> None:
        i = args["i"]
        a = await step_a(c, i)
        b = await step_b(c, a)
        d = await step_c(c, b)
        await c.set_state(f"result_{i}", d)
        await c.set_state("last_result", i)
        await c.log(f"work {i} done")


def define_ttflow(client: Any) -> None:
    """Register the same workflows on a ttflow 0.6.3 client (its sync API)."""
    import ttflow

    @client.sideeffect()
    def step_a(c: Any, x: int) -> int:
        return x + 1

    @client.sideeffect()
    def step_b(c: Any, x: int) -> int:
        return x * 2

    @client.sideeffect()
    def step_c(c: Any, x: int) -> int:
        return x - 3

    @client.workflow(trigger="fanout")
    def fanout(c: Any, args: dict) -> None:
        for i in range(args["n"]):
            c.event("work", {"i": i})

    @client.workflow(trigger=ttflow.event_trigger("work"))
    def work(c: Any, args: dict) -> None:
        i = args["i"]
        a = step_a(c, i)
        b = step_b(c, a)
        d = step_c(c, b)
        c.set_state(f"result_{i}", d)
        c.set_state("last_result", i)
        c.log(f"work {i} done")


def ours_spec(store: str, folder: Path) -> str:
    """The ttflow-async store spec for ``memory`` or ``local``."""
    return "onmemory" if store == "memory" else f"local:{folder / 'state.json'}"


async def run_ours(n: int, store: str, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B1 on ttflow-async; return the result fields."""
    from ttflow_async import setup

    client = setup(ours_spec(store, folder))
    define_ours(client)
    async with client:
        await client.run()
        timed.start()
        t0 = clock()
        results = await client.run("fanout", {"n": n})
        seconds = clock() - t0
        timed.stop()
    done = sum(1 for r in results if r.workflow_name == "work" and r.status == "succeeded")
    return {"seconds": seconds, "completed": done, "ok": done == n}


def run_ttflow(n: int, store: str, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B1 on ttflow 0.6.3; return the result fields."""
    import ttflow

    spec = "onmemory" if store == "memory" else f"local:{folder / 'state.json'}"
    client = ttflow.setup(spec)
    define_ttflow(client)
    client.run()
    timed.start()
    t0 = clock()
    results = client.run("fanout", {"n": n})
    seconds = clock() - t0
    timed.stop()
    done = sum(1 for r in results if r.workflow_name == "work" and r.status == "succeeded")
    return {"seconds": seconds, "completed": done, "ok": done == n}


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    timed = Timed(args.out, args.bound, {"scenario": "B1", "impl": args.impl, "n": args.n})
    with workdir(args.workdir, f"b1-{args.impl}") as folder:
        if args.impl == "ours":
            result = asyncio.run(run_ours(args.n, args.store, folder, timed))
        else:
            result = run_ttflow(args.n, args.store, folder, timed)
    result["runs_per_s"] = args.n / result["seconds"]
    timed.finish(result)


if __name__ == "__main__":
    main()
