"""B12 add_list_state: one run appends N items, one ``add_list_state`` call each, onto a
list state that already holds 1000 items, on the local store.

Each item is a small object (``{"n": i, "v": i / 2}``). Timed: the one
``run("collect")`` that makes the N appends and commits. Reported: seconds, appends/s,
and the bytes the process wrote during the timed part (``wchar`` of ``/proc/self/io``:
every byte handed to ``write()``, the store's files included), with the final list
checked (1000 + N items, in order).

ttflow 0.6.3 runs the same workflow with its sync API (``c.add_list_state``) on its
local store. Untimed on both: setup and the pass that stores the first 1000 items.
"""

import asyncio
from pathlib import Path
from typing import Any

from _common import Timed, clock, parser, workdir

#: Items in the list before the timed run.
SEED = 1000


def written_bytes() -> int:
    """Bytes this process has handed to ``write()`` so far (all its threads)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no wchar line")


def item(i: int) -> dict[str, Any]:
    """The i-th appended item."""
    return {"n": i, "v": i / 2}


def check(value: Any, n: int) -> bool:
    """Whether the list holds the seed then the N items, in order."""
    return (
        isinstance(value, list)
        and len(value) == SEED + n
        and value[:SEED] == list(range(SEED))
        and value[SEED:] == [item(i) for i in range(n)]
    )


async def run_ours(n: int, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B12 on ttflow-async; return the result fields."""
    from ttflow_async import RunContext, setup

    client = setup(f"local:{folder / 'state.json'}")

    @client.workflow()
    async def seed(c: RunContext) -> None:
        await c.set_state("readings", list(range(SEED)))

    @client.workflow()
    async def collect(c: RunContext, args: dict) -> None:
        for i in range(args["n"]):
            await c.add_list_state("readings", item(i))

    async with client:
        await client.run("seed")
        timed.start()
        before = written_bytes()
        t0 = clock()
        (result,) = await client.run("collect", {"n": n})
        seconds = clock() - t0
        written = written_bytes() - before
        timed.stop()
        value = await client.get_state("readings")
    return {
        "seconds": seconds,
        "bytes_written": written,
        "ok": result.status == "succeeded" and check(value, n),
    }


def run_ttflow(n: int, folder: Path, timed: Timed) -> dict[str, Any]:
    """Run B12 on ttflow 0.6.3 (local store); return the result fields."""
    import ttflow

    client = ttflow.setup(f"local:{folder / 'state.json'}")

    @client.workflow(trigger="seed")
    def seed(c: Any, args: Any) -> None:
        c.set_state("readings", list(range(SEED)))

    @client.workflow(trigger="collect")
    def collect(c: Any, args: dict) -> None:
        for i in range(args["n"]):
            c.add_list_state("readings", item(i))

    client.run("seed")
    timed.start()
    before = written_bytes()
    t0 = clock()
    client.run("collect", {"n": n})
    seconds = clock() - t0
    written = written_bytes() - before
    timed.stop()
    value = ttflow.setup(f"local:{folder / 'state.json'}")._global.state.read_state("readings")
    return {"seconds": seconds, "bytes_written": written, "ok": check(value, n)}


def main() -> None:
    p = parser(__doc__ or "")
    args = p.parse_args()
    timed = Timed(args.out, args.bound, {"scenario": "B12", "impl": args.impl, "n": args.n})
    with workdir(args.workdir, f"b12-{args.impl}") as folder:
        if args.impl == "ours":
            result = asyncio.run(run_ours(args.n, folder, timed))
        else:
            result = run_ttflow(args.n, folder, timed)
    result["appends_per_s"] = args.n / result["seconds"]
    timed.finish(result)


if __name__ == "__main__":
    main()
