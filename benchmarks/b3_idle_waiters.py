"""B3 idle waiters: N runs, each waiting on its own event (``ev_<i>``); N may be 0.

Untimed: one ``run()`` that starts the N waiters (ttflow-async: ``run("fanout")``
emitting N ``spawn`` events; ttflow: N queued triggers, see ``define_ttflow``), then
sending one event, ``ev_<N//2>`` (``send_event`` for ttflow-async,
``ttflow.core._enque_event`` for ttflow).
Timed: the one ``run()`` in which that event arrives (for N = 0 nobody waits for it),
including its commit. On the local store the timed ``run()`` uses a new client.
"""

import asyncio
import hashlib
import shutil
from pathlib import Path
from typing import Any

from _common import WORK_DIR, Timed, clock, parser, ttflow_memory_to_local, workdir


def define_ours(client: Any) -> None:
    """Register the B3 workflows on a ttflow-async client."""
    from ttflow_async import RunContext, event_trigger

    @client.workflow(trigger="fanout")
    async def fanout(c: RunContext, args: dict) -> None:
        for i in range(args["n"]):
            await c.event("spawn", {"i": i})

    @client.workflow(trigger=event_trigger("spawn"))
    async def waiter(c: RunContext, args: dict) -> None:
        await c.wait_event(f"ev_{args['i']}")
        await c.log("woken")


def define_ttflow(client: Any) -> None:
    """Register the same waiter on a ttflow 0.6.3 client (its sync API).

    The waiters are started by N queued triggers rather than N events, so that ttflow's
    event log (which each of its waiters scans on every pass) holds no spawn events:
    the setup most favourable to ttflow.
    """

    @client.workflow(trigger="waiter")
    def waiter(c: Any, args: dict) -> None:
        c.wait_event(f"ev_{args['i']}")
        c.log("woken")


def cache_dir(n: int) -> Path:
    """Where the setup store for size ``n`` is cached, keyed by engine and script."""
    import ttflow_async

    digest = hashlib.sha1(Path(__file__).read_bytes())
    for source in sorted(Path(ttflow_async.__file__).parent.rglob("*.py")):
        digest.update(source.read_bytes())
    return WORK_DIR / "cache" / f"b3-local-{n}-{digest.hexdigest()[:12]}"


def woken(results: list[Any]) -> int:
    """How many waiters finished."""
    return sum(1 for r in results if r.workflow_name == "waiter" and r.status == "succeeded")


async def run_ours(
    n: int, store: str, folder: Path, timed: Timed, cache: bool = False
) -> dict[str, Any]:
    """Run B3 on ttflow-async; return the result fields.

    With ``cache`` (local store only), the store left by the setup pass is kept under
    ``_work/cache`` (keyed by the engine's source and this script) and copied in by the
    next repetitions instead of being built again: the same store, less untimed work.
    """
    from ttflow_async import setup

    spec = "onmemory" if store == "memory" else f"local:{folder / 'state.json'}"
    cached = cache_dir(n) if cache and store == "local" else None
    if cached is not None and (cached / "done").exists():
        shutil.copytree(cached / "store", folder, dirs_exist_ok=True)
        waiting = int((cached / "done").read_text())
        # A setup pass leaves the process warm: the runner's modules, the result models
        # (pydantic and its plugin scan load on the first result) and the store's helpers
        # are imported once per process. A copied-in store must leave the process in the
        # same state, so the same pass runs on a scratch store of the same kind.
        scratch = setup(f"local:{folder / 'warm' / 'state.json'}")
        define_ours(scratch)
        async with scratch:
            await scratch.run("fanout", {"n": 0})
    else:
        client = setup(spec)
        define_ours(client)
        async with client:
            waiting = len(await client.run("fanout", {"n": n})) - 1
        if cached is not None:
            shutil.rmtree(cached, ignore_errors=True)
            shutil.copytree(folder, cached / "store")
            (cached / "done").write_text(str(waiting))
    if store != "memory":
        client = setup(spec)
        define_ours(client)
    async with client:
        await client.send_event(f"ev_{n // 2}")
        timed.start()
        t0 = clock()
        results = await client.run()
        seconds = clock() - t0
        timed.stop()
        t_exit = clock()
    exit_seconds = clock() - t_exit  # closing the client: includes any deferred clean-up
    done = woken(results)
    return {
        "seconds": seconds,
        "exit_seconds": exit_seconds,
        "waiting": waiting,
        "woken": done,
        "ok": done == min(n, 1),
    }


def run_ttflow(n: int, store: str, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B3 on ttflow 0.6.3; return the result fields."""
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
    ttflow.core._enque_event(client._global, f"ev_{n // 2}", None)
    timed.start()
    t0 = clock()
    results = client.run()
    seconds = clock() - t0
    timed.stop()
    done = woken(results)
    return {"seconds": seconds, "waiting": waiting, "woken": done, "ok": done == min(n, 1)}


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--cache", action="store_true", help="reuse the setup store (local, ours)")
    args = p.parse_args()
    timed = Timed(args.out, args.bound, {"scenario": "B3", "impl": args.impl, "n": args.n})
    with workdir(args.workdir, f"b3-{args.impl}") as folder:
        if args.impl == "ours":
            result = asyncio.run(run_ours(args.n, args.store, folder, timed, args.cache))
        else:
            result = run_ttflow(args.n, args.store, folder, timed)
    timed.finish(result)


if __name__ == "__main__":
    main()
