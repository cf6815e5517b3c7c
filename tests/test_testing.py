"""The testing toolkit: TestClock, run_until_idle and the pytest fixtures (SPEC §10.7)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from ttflow_async import Client, EventWaitTimeout, RunContext, TtflowError, setup
from ttflow_async.testing import TestClock, run_until_idle

START = datetime(2030, 1, 1, tzinfo=UTC)


def test_clock_starts_where_told_and_moves_only_when_told() -> None:
    clock = TestClock(START)
    assert clock() == START.timestamp()
    assert clock.now() == START
    assert clock.advance(90) == START + timedelta(seconds=90)
    assert clock.advance(timedelta(days=1)) == START + timedelta(days=1, seconds=90)
    assert clock.set(START) == START
    assert clock.now().tzinfo is UTC
    assert TestClock(START.timestamp()).now() == START


def test_clock_defaults_to_now() -> None:
    before = time.time()
    clock = TestClock()
    assert before <= clock() <= time.time()


def test_clock_refuses_naive_datetimes_and_going_backwards() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TestClock(datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="backwards"):
        TestClock(START).advance(-1)
    with pytest.raises(TypeError, match="timedelta"):
        TestClock(START).advance("1h")  # type: ignore[arg-type]


async def test_three_day_sleep_finishes_in_well_under_a_second() -> None:
    clock = TestClock(START)
    client = setup("onmemory", clock=clock)

    @client.workflow()
    async def nap(c: RunContext) -> str:
        await c.sleep(timedelta(days=3))
        return "rested"

    began = time.perf_counter()
    await client.run("nap")
    results = await run_until_idle(client)
    assert time.perf_counter() - began < 1.0
    assert [(r.status, r.result) for r in results] == [("succeeded", "rested")]
    assert clock.now() == START + timedelta(days=3)
    assert await client.paused_runs() == []


async def test_one_hour_wait_timeout_fires_in_well_under_a_second() -> None:
    clock = TestClock(START)
    client = setup("onmemory", clock=clock)

    @client.workflow()
    async def ask(c: RunContext) -> str:
        try:
            await c.wait_event("answer", timeout=timedelta(hours=1))
        except EventWaitTimeout:
            return "no answer"
        return "answered"

    began = time.perf_counter()
    results = await client.run("ask")
    assert [r.status for r in results] == ["paused"]
    results = await run_until_idle(client, clock)
    assert time.perf_counter() - began < 1.0
    assert [(r.status, r.result) for r in results] == [("succeeded", "no answer")]
    assert clock.now() == START + timedelta(hours=1)


async def test_waiting_for_an_event_without_timeout_is_idle() -> None:
    clock = TestClock(START)
    client = setup("onmemory", clock=clock)

    @client.workflow()
    async def waiter(c: RunContext) -> object:
        return await c.wait_event("go")

    await client.run("waiter")
    assert await run_until_idle(client) == []
    assert clock.now() == START
    (result,) = await client.run("go", "now")
    assert result.result == "now"


async def test_endless_sleeping_loop_hits_max_passes() -> None:
    clock = TestClock(START)
    client = setup("onmemory", clock=clock)

    @client.workflow()
    async def forever(c: RunContext) -> None:
        while True:
            await c.sleep(60)

    await client.run("forever")
    with pytest.raises(TtflowError, match="5 passes"):
        await run_until_idle(client, max_passes=5)
    assert clock.now() == START + timedelta(minutes=5)


async def test_real_clock_runs_what_is_due_and_never_waits() -> None:
    client = setup("onmemory")

    @client.workflow()
    async def later(c: RunContext) -> None:
        await c.sleep(3600)

    await client.run("later")
    began = time.perf_counter()
    assert await run_until_idle(client) == []
    assert time.perf_counter() - began < 1.0
    assert len(await client.paused_runs()) == 1


async def test_max_passes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_passes"):
        await run_until_idle(setup("onmemory"), max_passes=0)


async def test_plugin_fixtures_give_a_memory_client_on_the_clock(
    ttflow_client: Client, ttflow_clock: TestClock
) -> None:
    assert ttflow_client.clock is ttflow_clock

    @ttflow_client.workflow()
    async def weekly(c: RunContext) -> str:
        await c.sleep(timedelta(weeks=1))
        return "done"

    await ttflow_client.run("weekly")
    before = ttflow_clock.now()
    (result,) = await run_until_idle(ttflow_client)
    assert result.result == "done"
    assert ttflow_clock.now() - before == timedelta(weeks=1)


def test_importing_the_library_and_testing_module_does_not_import_pytest() -> None:
    code = (
        "import sys, ttflow_async, ttflow_async.testing; "
        "sys.exit(1 if 'pytest' in sys.modules else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_six_attempt_retry_backoff_finishes_in_well_under_a_second() -> None:
    from ttflow_async import RetryPolicy

    clock = TestClock(START)
    client = setup("onmemory", clock=clock)
    attempts: list[datetime] = []

    @client.sideeffect(
        retry=RetryPolicy(max_attempts=6, initial_delay=5, max_delay=60, jitter="none")
    )
    async def flaky(c: RunContext) -> str:
        attempts.append(clock.now())
        if len(attempts) < 6:
            raise ConnectionError("down")
        return "up"

    @client.workflow()
    async def poll(c: RunContext) -> str:
        return await flaky(c)

    began = time.perf_counter()
    await client.run("poll")
    results = await run_until_idle(client)
    assert time.perf_counter() - began < 1.0
    assert results[-1].result == "up"
    # Five backoffs between six attempts, doubling from 5 s, capped at max_delay=60 s.
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert gaps == [5.0, 10.0, 20.0, 40.0, 60.0]
    assert len(attempts) == 6
