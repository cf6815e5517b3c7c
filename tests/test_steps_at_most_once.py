"""At-most-once side effects: an attempt whose pass died is never run again (SPEC §10.3)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

from tests.conftest import MakeClient
from ttflow_async import (
    Client,
    RetryPolicy,
    RunContext,
    SideeffectInterrupted,
    setup,
)

ROOT = Path(__file__).resolve().parent.parent


def build(spec: str, body_log: Path, **options: object) -> Client:
    """The client of the crash test, the same in the killed process and in the test."""
    client = setup(spec, **options)

    @client.sideeffect(at_most_once=True, name="charge")
    async def charge(c: RunContext) -> str:
        with body_log.open("a") as log:
            log.write("body\n")
        await asyncio.sleep(float(os.environ.get("CHARGE_SECONDS", "0")))
        return "charged"

    @client.workflow()
    async def pay(c: RunContext) -> str:
        await c.pause_once()
        try:
            return await charge(c)
        except SideeffectInterrupted as exc:
            await c.log(f"interrupted: {exc.error_type}")
            return "interrupted"

    return client


CHILD = """
import asyncio, sys
from pathlib import Path
from tests.test_steps_at_most_once import build

async def main() -> None:
    client = build(sys.argv[1], Path(sys.argv[2]))
    await client.run("pay")
    await client.run()

asyncio.run(main())
"""


def test_an_attempt_killed_mid_body_is_never_run_again(tmp_path: Path) -> None:
    spec = f"local:{tmp_path / 'store' / 'state.json'}"
    body_log = tmp_path / "bodies.txt"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, spec, str(body_log)],
        cwd=ROOT,
        env={**os.environ, "CHARGE_SECONDS": "3600"},
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (body_log.exists() and body_log.read_text()):
            assert child.poll() is None, "the child process ended before the body started"
            assert time.monotonic() < deadline, "the side effect never started"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)

    # The dead runner's lease has not expired yet: look from two minutes later.
    client = build(spec, body_log, clock=lambda: time.time() + 120)

    async def resume() -> None:
        (result,) = await client.run()
        assert result.status == "succeeded"
        assert result.result == "interrupted"
        assert result.logs == ["interrupted: ttflow_async._errors.SideeffectInterrupted"]
        assert await client.paused_runs() == []

    anyio.run(resume)
    assert body_log.read_text() == "body\n"  # the killed attempt never ran a second time


async def test_an_interrupted_attempt_is_retried_when_the_policy_allows(
    make_client: MakeClient,
) -> None:
    now = [3_000_000.0]
    client = make_client(clock=lambda: now[0])
    started = anyio.Event()
    bodies: list[int] = []

    @client.sideeffect(at_most_once=True, retry=RetryPolicy(initial_delay=30, jitter="none"))
    async def ship(c: RunContext) -> str:
        bodies.append(1)
        if len(bodies) == 1:
            started.set()
            await anyio.sleep_forever()
        return f"shipped on attempt {len(bodies)}"

    @client.workflow()
    async def order(c: RunContext) -> str:
        await c.pause_once()
        return await ship(c)

    await client.run("order")
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.run)
        await started.wait()
        tg.cancel_scope.cancel()  # the pass dies mid-body and commits nothing

    (interrupted,) = await client.run()
    assert interrupted.status == "paused"
    (paused,) = await client.paused_runs()
    assert paused.waiting_for["retry"]["attempt"] == 2
    now[0] += 30
    (done,) = await client.run()
    assert done.status == "succeeded"
    assert done.result == "shipped on attempt 2"
    assert len(bodies) == 2


async def test_an_at_most_once_body_that_suspends_resumes_normally(
    make_client: MakeClient,
) -> None:
    client = make_client()
    bodies: list[int] = []

    @client.sideeffect(at_most_once=True)
    async def approve(c: RunContext) -> str:
        bodies.append(1)
        decision: str = await c.wait_event("decision")
        return decision

    @client.workflow()
    async def gate(c: RunContext) -> str:
        return await approve(c)

    @client.workflow()
    async def decide(c: RunContext) -> None:
        await c.event("decision", "in the same pass")

    (first,) = await client.run("gate")
    assert first.status == "paused"
    results = await client.run("decide")
    assert {r.workflow_name: r.status for r in results} == {
        "decide": "succeeded",
        "gate": "succeeded",
    }
    assert next(r.result for r in results if r.workflow_name == "gate") == "in the same pass"
    assert len(bodies) == 2  # the body reran after its suspension, never as "interrupted"
