"""B5 remote: S3 or DynamoDB (moto's server mode) behind the latency proxy (+10 ms per
request); N runs, each paused by ``pause_once`` after 3 side effects.

Untimed: creating the bucket or table (``ensure_store()`` for ttflow-async; boto3
straight to moto for ttflow, whose table has a string hash key ``pk``), and the
``run("fanout", {"n": N})`` that leaves N runs paused, through the proxy.
Timed, each with a new client (as a new process would) and with the proxy's counters
reset first: (1) the ``run()`` that resumes and finishes all N runs; (2) a ``run()`` with
nothing to do. For each: seconds, requests, sequential request waves, requests by
operation (see ``latency_proxy.py``).

Needs the environment from ``_aws.remote_endpoint`` (``run_all.py`` provides it); run
standalone, it starts moto and the proxy itself.
"""

import asyncio
import os
import time
import uuid
from typing import Any

from _aws import ProxyControl, control_from_env, remote_endpoint
from _common import (
    Timed,
    clock,
    count_work,
    define_paused_workers_ours,
    define_paused_workers_ttflow,
    parser,
)

STEPS = 3

SETTLE_SECONDS = 0.5


def define_ours(client: Any) -> None:
    """Register the workflows on a ttflow-async client (3 steps before the pause)."""
    define_paused_workers_ours(client, STEPS)


def define_ttflow(client: Any) -> None:
    """Register the same workflows on a ttflow 0.6.3 client."""
    define_paused_workers_ttflow(client, STEPS)


def measured(
    control: ProxyControl, seconds: float, before_settle: dict[str, Any]
) -> dict[str, Any]:
    """Combine the time and the proxy's counts of one timed ``run()``."""
    time.sleep(SETTLE_SECONDS)
    after = control.stats()
    return {
        "seconds": seconds,
        "requests": before_settle["requests"],
        "waves": before_settle["waves"],
        "operations": before_settle["operations"],
        "max_in_flight": before_settle["max_in_flight"],
        "wave_detail": before_settle["wave_detail"],
        # Requests after run() returned: deferred clean-up at the client's exit, if any.
        "late_requests": after["requests"] - before_settle["requests"],
    }


async def run_ours(n: int, store: str, control: ProxyControl, timed: Timed) -> dict[str, Any]:
    """Run B5 on ttflow-async; return the result fields."""
    from ttflow_async import setup

    name = f"bench-{uuid.uuid4().hex[:12]}"
    spec = f"s3:{name}/b5" if store == "s3" else f"dynamodb:{name}"

    def new_client() -> Any:
        client = setup(spec)
        define_ours(client)
        return client

    client = new_client()
    async with client:
        await client.ensure_store()
        paused = count_work(await client.run("fanout", {"n": n}), "paused")
    out: dict[str, Any] = {"paused": paused}
    timed.start()
    for label, expect in (("resume", n), ("idle", 0)):
        client = new_client()
        async with client:
            control.reset()
            t0 = clock()
            results = await client.run()
            seconds = clock() - t0
            stats = control.stats()
            t_exit = clock()
        exit_seconds = clock() - t_exit  # closing the client: includes any deferred clean-up
        out[label] = measured(control, seconds, stats)
        out[label]["exit_seconds"] = exit_seconds
        out[label]["completed"] = count_work(results, "succeeded")
        out[label]["ok"] = out[label]["completed"] == expect
    timed.stop()
    return out


def run_ttflow(n: int, store: str, control: ProxyControl, timed: Timed) -> dict[str, Any]:
    """Run B5 on ttflow 0.6.3; return the result fields."""
    import boto3
    import ttflow

    name = f"bench-{uuid.uuid4().hex[:12]}"
    moto_url = os.environ["BENCH_MOTO_URL"]
    if store == "s3":
        boto3.client("s3", endpoint_url=moto_url).create_bucket(Bucket=name)
        spec = f"s3:{name}/b5"
    else:
        boto3.client("dynamodb", endpoint_url=moto_url).create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        spec = f"dynamodb:{name}"

    def new_client() -> Any:
        client = ttflow.setup(spec)
        define_ttflow(client)
        return client

    paused = count_work(new_client().run("fanout", {"n": n}), "paused")
    out: dict[str, Any] = {"paused": paused}
    timed.start()
    for label, expect in (("resume", n), ("idle", 0)):
        client = new_client()
        control.reset()
        t0 = clock()
        results = client.run()
        seconds = clock() - t0
        stats = control.stats()
        out[label] = measured(control, seconds, stats)
        out[label]["completed"] = count_work(results, "succeeded")
        out[label]["ok"] = out[label]["completed"] == expect
    timed.stop()
    return out


def main() -> None:
    p = parser(__doc__ or "")
    args = p.parse_args()
    timed = Timed(
        args.out,
        args.bound,
        {"scenario": "B5", "impl": args.impl, "n": args.n, "store": args.store},
    )

    def go() -> dict[str, Any]:
        control = control_from_env()
        try:
            if args.impl == "ours":
                return asyncio.run(run_ours(args.n, args.store, control, timed))
            return run_ttflow(args.n, args.store, control, timed)
        finally:
            control.close()

    if "BENCH_PROXY_CONTROL" in os.environ:
        result = go()
    else:
        with remote_endpoint() as env:
            os.environ.update(env)
            result = go()
    result["ok"] = result["resume"]["ok"] and result["idle"]["ok"] and result["paused"] == args.n
    result["seconds"] = result["resume"]["seconds"]
    timed.finish(result)


if __name__ == "__main__":
    main()
