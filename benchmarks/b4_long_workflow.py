"""B4 long workflow: one run with K side-effect steps, then ``pause_once``.

Untimed: the ``run("long", {"k": K})`` that executes the K steps and pauses.
Timed: the ``run()`` that resumes it: it replays the K journaled steps, passes the
pause and finishes. Memory store.

ttflow's first execution of K steps costs O(K²) (each step copies and scans the whole
run journal), which would make the untimed setup alone take many minutes at K = 20000.
For ttflow the setup therefore runs the real workflow for a few steps and extends the
run journal it left to K steps, entry for entry in ttflow's own format (``--check``
verifies, at a small K, that the synthesized store equals the one a real run leaves).
"""

import asyncio
import copy
import sys
from typing import Any

from _common import Timed, clock, parser

SEED_STEPS = 3


def define_ours(client: Any) -> None:
    """Register the B4 workflow on a ttflow-async client."""
    from ttflow_async import RunContext

    @client.sideeffect()
    async def step(c: RunContext, i: int) -> int:
        return i * 2

    @client.workflow(trigger="long")
    async def long(c: RunContext, args: dict) -> None:
        total = 0
        for i in range(args["k"]):
            total += await step(c, i)
        await c.pause_once()
        await c.log(f"total {total}")


def define_ttflow(client: Any) -> None:
    """Register the same workflow on a ttflow 0.6.3 client (its sync API)."""

    @client.sideeffect()
    def step(c: Any, i: int) -> int:
        return i * 2

    @client.workflow(trigger="long")
    def long(c: Any, args: dict) -> None:
        total = 0
        for i in range(args["k"]):
            total += step(c, i)
        c.pause_once()
        c.log(f"total {total}")


async def run_ours(k: int, timed: Timed) -> dict[str, Any]:
    """Run B4 on ttflow-async; return the result fields."""
    from ttflow_async import setup

    client = setup("onmemory")
    define_ours(client)
    async with client:
        first = await client.run("long", {"k": k})
        timed.start()
        t0 = clock()
        results = await client.run()
        seconds = clock() - t0
        timed.stop()
    ok = [r.status for r in first] == ["paused"] and [r.status for r in results] == ["succeeded"]
    return {"seconds": seconds, "ok": ok}


def ttflow_paused_store(k: int, synthesize: bool) -> Any:
    """A ttflow memory client holding one ``long`` run paused after ``k`` steps."""
    import ttflow

    client = ttflow.setup("onmemory")
    define_ttflow(client)
    if not synthesize:
        client.run("long", {"k": k})
        return client
    [result] = client.run("long", {"k": SEED_STEPS})
    state = client._global.state.state_repository.state
    key = f"_run_state:{result.run_id}"
    journal = state[key]
    # Entries: one per step (token run_id:i, last_used_count i), then the pause_once one.
    steps, pause = journal[:SEED_STEPS], journal[SEED_STEPS]
    template = steps[0]
    extended = []
    for i in range(k):
        entry = copy.deepcopy(template)
        entry["token"] = f"{result.run_id}:{i + 1}"
        entry["value"] = i * 2
        entry["last_used_count"] = i + 1
        extended.append(entry)
    pause = dict(pause, token=f"{result.run_id}:{k + 1}", last_used_count=k + 1)
    state[key] = [*extended, pause]
    for event in state["_events"]:
        event["args"]["args"] = {"k": k}
        event["args"]["pause_id"] = f"{result.run_id}:{k + 1}"
    return client


def check_synthesis(k: int) -> bool:
    """Whether the synthesized store equals a real run's, up to ids and times."""

    def shape(client: Any) -> Any:
        state = client._global.state.state_repository.state
        [run_key] = [name for name in state if name.startswith("_run_state:")]
        run_id = run_key.split(":", 1)[1]
        journal = [dict(e, token=e["token"].replace(run_id, "R")) for e in state[run_key]]
        events = [
            {**e, "args": {**e["args"], "run_id": "R", "timestamp": 0.0, "pause_id": "P"}}
            for e in state["_events"]
        ]
        pause_ids = [e["args"]["pause_id"].replace(run_id, "R") for e in state["_events"]]
        return journal, events, pause_ids, sorted(n.split(":")[0] for n in state)

    return shape(ttflow_paused_store(k, False)) == shape(ttflow_paused_store(k, True))


def run_ttflow(k: int, timed: Timed) -> dict[str, Any]:
    """Run B4 on ttflow 0.6.3; return the result fields."""
    client = ttflow_paused_store(k, synthesize=True)
    timed.start()
    t0 = clock()
    results = client.run()
    seconds = clock() - t0
    timed.stop()
    return {"seconds": seconds, "ok": [r.status for r in results] == ["succeeded"]}


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--check", action="store_true", help="verify the ttflow setup synthesis")
    args = p.parse_args()
    if args.check:
        good = check_synthesis(args.n)
        print("synthesized ttflow store matches a real run" if good else "MISMATCH")
        sys.exit(0 if good else 1)
    timed = Timed(args.out, args.bound, {"scenario": "B4", "impl": args.impl, "n": args.n})
    if args.impl == "ours":
        result = asyncio.run(run_ours(args.n, timed))
    else:
        result = run_ttflow(args.n, timed)
    timed.finish(result)


if __name__ == "__main__":
    main()
