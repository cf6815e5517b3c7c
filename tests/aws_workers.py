"""Runner processes for the AWS race, fencing and crash tests.

Each function here is the body of a real OS process, forked from the warmed forkserver
of ``tests/workers/forkserver.py`` so that it starts fast. The processes share nothing
with the test but the store itself.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import aioboto3
import anyio

from ttflow_async import Client, RunContext, StateLockedError, event_trigger, setup
from ttflow_async._stores import _aws

#: Requests that change the store (the others only read it).
WRITE_OPERATIONS = frozenset({"PutObject", "DeleteObjects", "PutItem", "BatchWriteItem"})


def aws_environment() -> dict[str, str]:
    """The AWS variables of the test (endpoint, dummy credentials) for a child."""
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def use_environment(env: dict[str, str]) -> None:
    """Make ``env`` the child's AWS variables, and the only ones.

    A child forks from the forkserver, whose environment is that of the test that
    started it: a variable that test set and this one did not (a real server's
    ``AWS_ENDPOINT_URL_DYNAMODB``) must not send this child's requests there.
    """
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(env)


def build_client(spec: str, **options: Any) -> Client:
    """A client with the workflows every runner process of these tests deploys."""
    client = setup(spec, **options)

    async def count(c: RunContext, item_id: str) -> None:
        value = await c.get_state("counter", 0)
        await c.set_state("counter", value + 1)
        await c.add_list_state("seen", item_id)

    @client.workflow()
    async def tick(c: RunContext, args: dict[str, Any]) -> None:
        await count(c, args["id"])

    @client.workflow(trigger=event_trigger("ping"))
    async def on_ping(c: RunContext, args: dict[str, Any]) -> None:
        await count(c, args["id"])

    @client.workflow()
    async def keeper(c: RunContext) -> None:
        """Stays suspended for ever: resumed and re-journaled by every pass."""
        while True:
            await c.pause_once()
            await c.set_state("keeper_passes", await c.get_state("keeper_passes", 0) + 1)

    @client.workflow()
    async def slow_job(c: RunContext, args: dict[str, Any]) -> None:
        await c.set_state("slow_job_by", args["by"])
        await c.add_list_state("seen", args["id"])
        marker = args.get("marker")
        if marker:
            Path(marker).write_text("inside the run")  # noqa: ASYNC240 - a marker for the test process
            await anyio.sleep(float(args.get("hold", 0)))

    return client


def race_worker(spec: str, env: dict[str, str], index: int, runs: int, out: str) -> None:
    """Fire ``tick`` ``runs`` times, waiting for the lock; record what happened."""
    use_environment(env)

    async def main() -> dict[str, Any]:
        report: dict[str, Any] = {"statuses": [], "queued": 0}
        async with build_client(spec, lease_seconds=5) as client:
            for i in range(runs):
                try:
                    results = await client.run("tick", {"id": f"{index}-{i}"}, lock_timeout=120)
                except StateLockedError as exc:
                    if not exc.queued:
                        raise
                    report["queued"] += 1
                    continue
                report["statuses"].extend(r.status for r in results)
        return report

    Path(out).write_text(json.dumps(anyio.run(main)))


def fenced_runner(spec: str, env: dict[str, str], marker: str, out: str) -> None:
    """Run ``slow_job``, which signals through ``marker`` and then holds the run open."""
    use_environment(env)

    async def main() -> dict[str, Any]:
        async with build_client(spec, lease_seconds=1) as client:
            try:
                results = await client.run(
                    "slow_job", {"by": "A", "id": "A", "marker": marker, "hold": 2}
                )
            except StateLockedError as exc:
                return {"error": str(exc), "queued": exc.queued}
            return {"statuses": [r.status for r in results]}

    Path(out).write_text(json.dumps(anyio.run(main)))


def crash_trial(spec: str, env: dict[str, str], kill_at: int, phase: str, out: str) -> None:
    """One ``run()`` that SIGKILLs its own process at its ``kill_at``-th write request.

    ``phase="before"`` kills it before that request is sent; ``phase="after"`` once its
    answer has arrived (the store changed but the runner never learned it). If the run
    makes fewer writes, it completes and records how many it made.
    """
    use_environment(env)
    # The default session, warmed by the forkserver (tests/aws_preload.py): this process
    # is the only one to see the hooks registered on it.
    session = _aws.default_session(aioboto3)
    writes = 0

    def before_call(model: Any, context: dict[str, Any], **_: Any) -> None:
        nonlocal writes
        if model.name in WRITE_OPERATIONS:
            writes += 1
            context["ttflow_write"] = writes
            if phase == "before" and writes == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    def after_call(context: dict[str, Any], **_: Any) -> None:
        if phase == "after" and context.get("ttflow_write") == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    session.events.register("before-call", before_call)
    session.events.register("after-call", after_call)

    async def main() -> bool:
        async with build_client(spec, lease_seconds=1, session=session) as client:
            try:
                await client.run(lock_timeout=60)
            except StateLockedError:
                return False  # lease lost on a starved machine: nothing was committed
            return True

    started = time.monotonic()
    completed = anyio.run(main)
    report = {"writes": writes, "completed": completed, "seconds": time.monotonic() - started}
    Path(out).write_text(json.dumps(report))
