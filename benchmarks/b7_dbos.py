"""B7 DBOS: N workflows of 3 steps on DBOS's SQLite system database, against B1's shape
(N workflows of 3 side effects, 2 ``set_state``, 1 ``log``) on ttflow-async's local store.

Metric: steps/s = 3N / time, counting only the 3 steps (side effects) of each workflow;
ttflow-async's 2 ``set_state`` and 1 ``log`` per workflow are done but not counted.
DBOS checkpoints every step in its own SQLite transaction; ttflow-async commits once per
``run()`` pass.

DBOS: untimed: configuration and ``DBOS.launch()`` (creates the database). Timed: starting
the N workflows and waiting for all their results. ``--dbos-mode`` picks how they are
started: ``threads`` (``DBOS.start_workflow``, DBOS's executor threads), ``sequential``
(direct calls) or ``async`` (async workflows and steps under ``asyncio.gather``); the
default is the fastest on this machine (see README).
ttflow-async: exactly B1's timed section (``b1_fanout.run_ours``) on the local store.
"""

import asyncio
import logging
from pathlib import Path
from typing import Any

from _common import Timed, clock, parser, workdir


def run_dbos(n: int, folder: Path, mode: str, timed: Timed) -> dict[str, Any]:
    """Run N three-step workflows on DBOS with SQLite; return the result fields."""
    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {
        "name": "ttflow-bench",
        "system_database_url": f"sqlite:///{folder / 'dbos.sqlite'}",
        "log_level": "WARNING",
    }
    DBOS(config=config)

    @DBOS.step()
    def step_a(x: int) -> int:
        return x + 1

    @DBOS.step()
    def step_b(x: int) -> int:
        return x * 2

    @DBOS.step()
    def step_c(x: int) -> int:
        return x - 3

    @DBOS.workflow()
    def work(i: int) -> int:
        return step_c(step_b(step_a(i)))

    @DBOS.step()
    async def astep_a(x: int) -> int:
        return x + 1

    @DBOS.step()
    async def astep_b(x: int) -> int:
        return x * 2

    @DBOS.step()
    async def astep_c(x: int) -> int:
        return x - 3

    @DBOS.workflow()
    async def awork(i: int) -> int:
        return await astep_c(await astep_b(await astep_a(i)))

    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    try:
        timed.start()
        t0 = clock()
        if mode == "sequential":
            values = [work(i) for i in range(n)]
        elif mode == "threads":
            handles = [DBOS.start_workflow(work, i) for i in range(n)]
            values = [h.get_result() for h in handles]
        else:

            async def all_async() -> list[int]:
                return list(await asyncio.gather(*(awork(i) for i in range(n))))

            values = asyncio.run(all_async())
        seconds = clock() - t0
        timed.stop()
    finally:
        DBOS.destroy()
    ok = values == [(i + 1) * 2 - 3 for i in range(n)]
    return {"seconds": seconds, "ok": ok, "mode": mode}


def main() -> None:
    p = parser(__doc__ or "", impls=("ours", "dbos"))
    p.add_argument("--dbos-mode", choices=("threads", "sequential", "async"), default="sequential")
    args = p.parse_args()
    timed = Timed(args.out, args.bound, {"scenario": "B7", "impl": args.impl, "n": args.n})
    with workdir(args.workdir, f"b7-{args.impl}") as folder:
        if args.impl == "ours":
            from b1_fanout import run_ours

            result = asyncio.run(run_ours(args.n, "local", folder, timed))
        else:
            result = run_dbos(args.n, folder, args.dbos_mode, timed)
    result["steps_per_s"] = 3 * args.n / result["seconds"]
    timed.finish(result)


if __name__ == "__main__":
    main()
