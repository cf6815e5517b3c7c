"""B10 cold start: what a fresh process pays before its first ``run()`` is done.

``--store local`` or ``s3``: each of ``--n`` fresh child processes (the same
interpreter, the engine on the same ``PYTHONPATH``) does ``import`` of the library, the
client's setup with one trigger workflow, and one idle ``run()`` on a store that
already exists (a first ``run()`` made it, untimed, in the parent). S3 is moto behind
the +10 ms latency proxy, as in B5. ``seconds`` is the median, over the children, of
the time from starting the child to its exit; the children also report the import and
the ``run()`` separately. ttflow-async against ttflow 0.6.3.

``--store importtime``: ``python -X importtime -c "import ttflow_async"`` (``--impl
ours``) against ``import pydantic`` (``--impl pydantic``), ``--n`` fresh processes;
``seconds`` is the median of the total import time CPython reports (the sum of every
module's own time), and the modules costing most (by own time, median over the
processes) are listed in ``top``.
"""

import ast
import asyncio
import os
import statistics
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from _aws import remote_endpoint
from _common import Timed, clock, parser, workdir

OURS_CHILD = """
import time
t0 = time.perf_counter()
import asyncio
import ttflow_async
t1 = time.perf_counter()

async def main() -> None:
    client = ttflow_async.setup({spec!r})

    @client.workflow(trigger="ping")
    async def ping(c, args):
        return None

    async with client:
        await client.run()

asyncio.run(main())
t2 = time.perf_counter()
print({{"import": t1 - t0, "run": t2 - t1}})
"""

TTFLOW_CHILD = """
import time
t0 = time.perf_counter()
import ttflow
t1 = time.perf_counter()
client = ttflow.setup({spec!r})

@client.workflow(trigger="ping")
def ping(c, args):
    return None

client.run()
t2 = time.perf_counter()
print({{"import": t1 - t0, "run": t2 - t1}})
"""


def prepare(impl: str, store: str, folder: Path) -> str:
    """Create the store and make its first ``run()`` (untimed); return its spec."""
    name = f"bench-{uuid.uuid4().hex[:12]}"
    if store == "s3":
        # Created directly on moto: ensure_store() at this engine version opens the store
        # first, and opening refuses a missing bucket.
        import boto3

        boto3.client("s3", endpoint_url=os.environ["BENCH_MOTO_URL"]).create_bucket(Bucket=name)
    if impl == "ours":
        from ttflow_async import setup

        spec = f"local:{folder / 'state.json'}" if store == "local" else f"s3:{name}/b10"

        async def first() -> None:
            client = setup(spec)
            async with client:
                await client.run()

        asyncio.run(first())
        return spec
    import ttflow

    spec = f"s3:{name}/b10" if store == "s3" else f"local:{folder / 'state.json'}"
    ttflow.setup(spec).run()
    return spec


def cold_starts(impl: str, spec: str, n: int, timed: Timed) -> dict[str, Any]:
    """Start ``n`` fresh children one after the other; return the medians."""
    code = (OURS_CHILD if impl == "ours" else TTFLOW_CHILD).format(spec=spec)
    walls: list[float] = []
    imports: list[float] = []
    runs: list[float] = []
    timed.start()
    for _ in range(n):
        t0 = clock()
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        walls.append(clock() - t0)
        if out.returncode != 0:
            raise RuntimeError(f"cold-start child failed:\n{out.stderr[-2000:]}")
        fields = ast.literal_eval(out.stdout.strip().splitlines()[-1])
        imports.append(fields["import"])
        runs.append(fields["run"])
    timed.stop()
    return {
        "seconds": statistics.median(walls),
        "import_seconds": statistics.median(imports),
        "run_seconds": statistics.median(runs),
        "walls": walls,
        "ok": True,
    }


def import_times(module: str, n: int, timed: Timed) -> dict[str, Any]:
    """``python -X importtime -c "import module"`` in ``n`` fresh processes."""
    totals: list[float] = []
    own: dict[str, list[int]] = defaultdict(list)
    cumulative: list[float] = []
    timed.start()
    for _ in range(n):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
        )
        total = 0
        for line in out.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cum_us, name = (part.strip() for part in line[12:].split("|"))
            total += int(self_us)
            own[name.strip()].append(int(self_us))
            if name.strip() == module:
                cumulative.append(int(cum_us) / 1e6)
        totals.append(total / 1e6)
    timed.stop()
    top = sorted(((statistics.median(v), k) for k, v in own.items()), reverse=True)[:15]
    return {
        "seconds": statistics.median(totals),
        "cumulative_seconds": statistics.median(cumulative) if cumulative else None,
        "modules": len(own),
        "top": [[name, us / 1e6] for us, name in top],
        "ok": True,
    }


def main() -> None:
    p = parser(__doc__ or "", impls=("ours", "ttflow", "pydantic"))
    args = p.parse_args()
    meta = {"scenario": "B10", "impl": args.impl, "n": args.n, "store": args.store}
    timed = Timed(args.out, args.bound, meta)
    if args.store == "importtime":
        module = "ttflow_async" if args.impl == "ours" else "pydantic"
        timed.finish(import_times(module, args.n, timed))
        return
    with workdir(args.workdir, f"b10-{args.impl}") as folder:
        if args.store == "s3" and "BENCH_PROXY_CONTROL" not in os.environ:
            with remote_endpoint() as env:
                os.environ.update(env)
                result = cold_starts(args.impl, prepare(args.impl, "s3", folder), args.n, timed)
        else:
            result = cold_starts(args.impl, prepare(args.impl, args.store, folder), args.n, timed)
    timed.finish(result)


if __name__ == "__main__":
    main()
