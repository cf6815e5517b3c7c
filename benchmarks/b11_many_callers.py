"""B11 many callers: P processes each firing T triggers at one store, as fast as they can.

ttflow-async, on the local store: each caller does ``await client.run("hit", args)``
T times; a caller that finds the lease held gets ``StateLockedError`` with
``queued=True`` (the trigger is durably in the inbox: a normal outcome) and goes on;
the lease holder's passes drain the inbox. Once every caller is done, the parent calls
``run()`` until every trigger has executed (or nothing moves for ``STALL_PASSES``).
ttflow 0.6.3 gets the same load on its local store (``client.run("hit", args)``; it
has no lease, so concurrent writers overwrite each other; errors are counted).

Each trigger carries its call time (``time.time()`` in the caller); its workflow's one
side effect appends the call time and the execution time to a shared log (one
``O_APPEND`` write per line). From that log: ``executed`` (distinct triggers),
``duplicates`` (executions beyond the first), ``lost`` (never executed), throughput
(executed ÷ (last execution − first call)) and p50/p95 of execution − call.
``seconds`` is that end-to-end time. Untimed: imports and each caller's client setup;
the callers start together once all are ready (a ``go`` file).
"""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import Timed, parser, workdir

CALLERS = 8
STALL_PASSES = 20


def define_ours(client: Any, log: Path) -> None:
    """The ``hit`` workflow: one side effect logging call and execution times."""
    from ttflow_async import RunContext

    @client.sideeffect()
    async def record(c: RunContext, args: dict) -> None:
        line = json.dumps({"id": args["id"], "call": args["call"], "exec": time.time()})
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    @client.workflow(trigger="hit")
    async def hit(c: RunContext, args: dict) -> None:
        await record(c, args)


def define_ttflow(client: Any, log: Path) -> None:
    """The same workflow on ttflow 0.6.3."""

    @client.sideeffect()
    def record(c: Any, args: dict) -> None:
        line = json.dumps({"id": args["id"], "call": args["call"], "exec": time.time()})
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    @client.workflow(trigger="hit")
    def hit(c: Any, args: dict) -> None:
        record(c, args)


def caller(impl: str, folder: Path, index: int, triggers: int) -> None:
    """One calling process: fire ``triggers`` triggers; print its counts as JSON."""
    log = folder / "executions.log"
    counts = {"executed_here": 0, "queued": 0, "refused": 0, "errors": 0}
    if impl == "ours":
        from ttflow_async import StateLockedError, setup

        async def fire() -> None:
            client = setup(f"local:{folder / 'state.json'}")
            define_ours(client, log)
            async with client:
                wait_for_go(folder, index)
                for k in range(triggers):
                    args = {"id": f"{index}-{k}", "call": time.time()}
                    try:
                        await client.run("hit", args)
                        counts["executed_here"] += 1
                    except StateLockedError as exc:
                        counts["queued" if exc.queued else "refused"] += 1

        asyncio.run(fire())
    else:
        import ttflow

        client = ttflow.setup(f"local:{folder / 'state.json'}")
        define_ttflow(client, log)
        wait_for_go(folder, index)
        for k in range(triggers):
            try:
                client.run("hit", {"id": f"{index}-{k}", "call": time.time()})
                counts["executed_here"] += 1
            except Exception:  # ttflow's store is one JSON file rewritten by every writer
                counts["errors"] += 1
    print(json.dumps(counts), flush=True)


def wait_for_go(folder: Path, index: int) -> None:
    """Say this caller is ready, then wait until the parent says go (all are ready)."""
    (folder / f"ready-{index}").touch()
    while not (folder / "go").exists():
        time.sleep(0.001)


def read_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def drain(impl: str, folder: Path, expected: int) -> int:
    """Call ``run()`` until every trigger executed or nothing moves; return the passes."""
    log = folder / "executions.log"
    if impl != "ours":
        return 0
    from ttflow_async import StateLockedError, setup

    async def go() -> int:
        client = setup(f"local:{folder / 'state.json'}")
        define_ours(client, log)
        passes = stalled = 0
        seen = len(read_log(log))
        async with client:
            while seen < expected and stalled < STALL_PASSES:
                try:
                    await client.run()
                    passes += 1
                except StateLockedError:
                    await asyncio.sleep(0.01)
                now = len(read_log(log))
                stalled = 0 if now > seen else stalled + 1
                seen = now
        return passes

    return asyncio.run(go())


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--callers", type=int, default=CALLERS)
    p.add_argument("--caller-index", type=int, default=-1, help=argparse_hidden())
    args = p.parse_args()
    if args.caller_index >= 0:
        assert args.workdir is not None
        caller(args.impl, args.workdir, args.caller_index, args.n)
        return
    meta = {
        "scenario": "B11",
        "impl": args.impl,
        "n": args.n,
        "callers": args.callers,
        "store": args.store,
    }
    timed = Timed(args.out, args.bound, meta)
    expected = args.n * args.callers
    with workdir(args.workdir, f"b11-{args.impl}") as folder:
        if args.impl == "ours":
            from ttflow_async import setup

            async def first() -> None:
                client = setup(f"local:{folder / 'state.json'}")
                define_ours(client, folder / "executions.log")
                async with client:
                    await client.run()

            asyncio.run(first())
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--impl",
                    args.impl,
                    "--n",
                    str(args.n),
                    "--out",
                    os.devnull,
                    "--workdir",
                    str(folder),
                    "--caller-index",
                    str(i),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(args.callers)
        ]
        while len(list(folder.glob("ready-*"))) < args.callers:
            time.sleep(0.01)
        timed.start()
        (folder / "go").touch()
        counts = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
        passes = drain(args.impl, folder, expected)
        timed.stop()
        rows = read_log(folder / "executions.log")
    ids = [r["id"] for r in rows]
    executed = len(set(ids))
    latencies = sorted(r["exec"] - r["call"] for r in rows)
    first_call = min((r["call"] for r in rows), default=0.0)
    last_exec = max((r["exec"] for r in rows), default=0.0)
    seconds = last_exec - first_call
    totals = {key: sum(c[key] for c in counts) for key in counts[0]}

    def pct(q: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    timed.finish(
        {
            "seconds": seconds,
            "executed": executed,
            "duplicates": len(ids) - executed,
            "lost": expected - executed,
            "triggers_per_s": executed / seconds if seconds > 0 else None,
            "p50": pct(0.5),
            "p95": pct(0.95),
            "median_latency": statistics.median(latencies) if latencies else None,
            "drain_passes": passes,
            **totals,
            "ok": args.impl != "ours" or (executed == expected and len(ids) == expected),
        }
    )


def argparse_hidden() -> str:
    """Help text of the options the parent passes to its caller processes."""
    return "(internal: set by the parent for its caller processes)"


if __name__ == "__main__":
    main()
