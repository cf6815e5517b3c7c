"""Side effects as durable steps: retries on durable timers, journaled failures (SPEC §10.3)."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import MakeClient
from ttflow_async import (
    RetryPolicy,
    RunContext,
    SideeffectError,
    event_trigger,
)

START = 1_000_000.0


class Clock:
    """A hand-moved clock (epoch seconds)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def ts(value: Any) -> float:
    """Epoch seconds of a time shown by paused_runs() (a datetime)."""
    return value.timestamp() if isinstance(value, datetime) else float(value)


class Boom(Exception):
    """An importable exception with a plain message."""


class Coded(Exception):
    """An importable exception whose args do not rebuild its str()."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def __str__(self) -> str:
        return f"code {self.code}"


async def test_decorators_work_without_parentheses(make_client: MakeClient) -> None:
    client = make_client()

    @client.sideeffect
    async def double(c: RunContext, n: int) -> int:
        return n * 2

    @client.workflow
    async def bare(c: RunContext, args: int) -> int:
        return await double(c, args)

    (result,) = await client.run("bare", 21)
    assert result.status == "succeeded"
    assert result.result == 42
    assert [w.name for w in client.workflows] == ["bare"]


def test_bad_options_are_refused_at_decoration(make_client: MakeClient) -> None:
    client = make_client()
    for bad in (
        {"max_attempts": 0},
        {"initial_delay": -1},
        {"max_delay": math.inf},
        {"backoff_rate": math.nan},
        {"jitter": "half"},
        {"retry_on": ()},
        {"retry_on": (int,)},
    ):
        with pytest.raises(ValueError, match="RetryPolicy"):
            RetryPolicy(**bad)
    for timeout in (0, -1, math.inf, math.nan, "1"):
        with pytest.raises(ValueError, match="timeout"):
            client.workflow(timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RetryPolicy"):
        client.sideeffect(retry=3)  # type: ignore[arg-type]


def test_workflow_timeout_is_kept_on_the_definition(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow(timeout=timedelta(seconds=2))
    async def budgeted(c: RunContext) -> None:
        return None

    assert budgeted.definition.timeout == 2.0


async def test_retry_succeeds_on_attempt_two_after_a_durable_timer(
    make_client: MakeClient,
) -> None:
    clock = Clock()
    client = make_client(clock=clock)
    attempts: list[int] = []

    @client.sideeffect(retry=RetryPolicy(initial_delay=10, jitter="none"), name="charge")
    async def flaky(c: RunContext) -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise ConnectionError("card network down")
        return "charged"

    @client.workflow()
    async def order(c: RunContext) -> str:
        return await flaky(c)

    (first,) = await client.run("order")
    assert first.status == "paused"
    (paused,) = await client.paused_runs()
    assert paused.waiting_for["kind"] == "timer"
    assert paused.waiting_for["retry"] == {"sideeffect": "charge", "attempt": 2}
    assert ts(paused.waiting_for["due"]) == pytest.approx(START + 10)
    wakeup = await client.next_wakeup()
    assert wakeup is not None
    assert wakeup.timestamp() == pytest.approx(START + 10)

    clock.now = START + 5
    assert await client.run() == []  # not due: nothing runs, no process sleeps
    clock.now = START + 10
    (second,) = await client.run()
    assert second.status == "succeeded"
    assert second.result == "charged"
    assert attempts == [1, 2]


async def test_exhausted_retries_run_the_body_n_times_and_fail(make_client: MakeClient) -> None:
    clock = Clock()
    client = make_client(clock=clock)
    calls: list[int] = []
    policy = RetryPolicy(max_attempts=3, initial_delay=1, backoff_rate=3, jitter="none")

    @client.sideeffect(retry=policy)
    async def always_fails(c: RunContext) -> None:
        calls.append(1)
        raise Boom(f"attempt {len(calls)}")

    @client.workflow()
    async def doomed(c: RunContext) -> None:
        await always_fails(c)

    statuses = [r.status for r in await client.run("doomed")]
    dues = [ts((await client.paused_runs())[0].waiting_for["due"])]
    clock.now = dues[-1]
    statuses += [r.status for r in await client.run()]
    dues.append(ts((await client.paused_runs())[0].waiting_for["due"]))
    clock.now = dues[-1]
    (last,) = await client.run()
    statuses.append(last.status)
    assert statuses == ["paused", "paused", "failed"]
    assert dues == [pytest.approx(START + 1), pytest.approx(START + 1 + 3)]
    assert len(calls) == 3
    assert last.error_message == repr(Boom("attempt 3"))
    assert await client.paused_runs() == []


async def test_retry_on_excludes_other_types(make_client: MakeClient) -> None:
    client = make_client(clock=Clock())
    calls: list[int] = []

    @client.sideeffect(retry=RetryPolicy(retry_on=(ConnectionError,)))
    async def picky(c: RunContext) -> None:
        calls.append(1)
        raise ValueError("bad input")

    @client.sideeffect(retry=RetryPolicy(retry_on=lambda exc: "transient" in str(exc)))
    async def judged(c: RunContext) -> None:
        calls.append(2)
        raise ValueError("permanent")

    @client.workflow()
    async def one(c: RunContext) -> None:
        await picky(c)

    @client.workflow()
    async def two(c: RunContext) -> None:
        await judged(c)

    (a,) = await client.run("one")
    (b,) = await client.run("two")
    assert (a.status, b.status) == ("failed", "failed")
    assert calls == [1, 2]


async def test_full_jitter_is_drawn_once_and_journaled(make_client: MakeClient) -> None:
    clock = Clock()
    client = make_client(clock=clock)

    @client.sideeffect(retry=RetryPolicy(initial_delay=100, max_delay=100))
    async def wobbly(c: RunContext) -> None:
        raise ConnectionError("down")

    @client.workflow(trigger=event_trigger("go"))
    async def jittered(c: RunContext) -> None:
        await wobbly(c)

    await client.send_event("go")
    await client.run()
    (paused,) = await client.paused_runs()
    due = ts(paused.waiting_for["due"])
    assert START <= due <= START + 100
    # An unrelated pass that resumes nothing leaves the drawn delay as it was.
    await client.run()
    assert ts((await client.paused_runs())[0].waiting_for["due"]) == due


async def test_a_caught_failure_replays_without_running_the_body(make_client: MakeClient) -> None:
    client = make_client()
    body_runs: list[int] = []
    seen: list[tuple[type[BaseException], str]] = []

    @client.sideeffect()
    async def fails(c: RunContext) -> None:
        body_runs.append(1)
        raise Boom("no stock")

    @client.sideeffect()
    async def fails_coded(c: RunContext) -> None:
        raise Coded(7)

    @client.workflow()
    async def careful(c: RunContext) -> str:
        try:
            await fails(c)
        except Boom as exc:
            seen.append((type(exc), str(exc)))
        try:
            await fails_coded(c)
        except (Coded, SideeffectError) as exc:
            seen.append((type(exc), str(exc)))
        await c.pause_once()
        return "done"

    assert [r.status for r in await client.run("careful")] == ["paused"]
    assert [r.status for r in await client.run()] == ["succeeded"]
    assert body_runs == [1]
    assert seen[0] == seen[2] == (Boom, "no stock")
    assert seen[1] == (Coded, "code 7")
    # Coded(7) rebuilds with str() "code 7" too: the same type comes back.
    assert seen[3][0] is Coded


async def test_an_error_that_cannot_be_rebuilt_replays_as_sideeffect_error(
    make_client: MakeClient,
) -> None:
    client = make_client()

    class Local(Exception):  # not importable: defined inside a function
        pass

    caught: list[BaseException] = []

    @client.sideeffect()
    async def fails(c: RunContext) -> None:
        raise Local("local trouble")

    @client.workflow()
    async def catcher(c: RunContext) -> None:
        try:
            await fails(c)
        except Exception as exc:
            caught.append(exc)
        await c.pause_once()

    await client.run("catcher")
    await client.run()
    first, replayed = caught
    assert isinstance(first, Local)
    assert isinstance(replayed, SideeffectError)
    assert replayed.error_type.endswith("Local")
    assert replayed.error_type.startswith("tests.test_steps_retries.")
    assert replayed.error_message == "local trouble"


async def test_a_base_exception_from_a_side_effect_fails_the_run(make_client: MakeClient) -> None:
    client = make_client()

    class Fatal(BaseException):
        pass

    @client.sideeffect(retry=RetryPolicy())
    async def dies(c: RunContext) -> None:
        raise Fatal("stop")

    @client.workflow()
    async def hardy(c: RunContext) -> None:
        try:
            await dies(c)
        except Exception:
            await c.log("caught")

    (result,) = await client.run("hardy")
    assert result.status == "failed"
    assert "Fatal" in (result.error_message or "")
    assert result.logs == []


async def test_named_sleep_shows_its_name(make_client: MakeClient) -> None:
    clock = Clock()
    client = make_client(clock=clock)

    @client.workflow()
    async def napper(c: RunContext) -> None:
        await c.sleep(timedelta(days=3), name="cool-off")

    await client.run("napper")
    (paused,) = await client.paused_runs()
    assert paused.waiting_for["name"] == "cool-off"
    assert ts(paused.waiting_for["due"]) == START + 3 * 86400
    clock.now += 3 * 86400
    assert [r.status for r in await client.run()] == ["succeeded"]


async def test_update_state_is_atomic_among_the_runs_of_a_pass(make_client: MakeClient) -> None:
    client = make_client()

    @client.sideeffect()
    async def io(c: RunContext) -> None:
        await asyncio.sleep(0.01)

    @client.workflow(trigger=event_trigger("bump"))
    async def bump(c: RunContext) -> int:
        await io(c)
        new: int = await c.update_state("counter", lambda n: n + 1, default=0)
        await io(c)
        return new

    for _ in range(20):
        await client.send_event("bump")
    results = await client.run()
    assert [r.status for r in results] == ["succeeded"] * 20
    assert sorted(r.result for r in results) == list(range(1, 21))
    assert await client.get_state("counter") == 20
    changes = [e for e in await client.event_log() if e.event_name == "state_changed_counter"]
    assert len(changes) == 20


async def test_a_lost_update_is_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()

    @client.sideeffect()
    async def io(c: RunContext) -> None:
        await asyncio.sleep(0.01)

    @client.workflow(trigger=event_trigger("bump"))
    async def racy(c: RunContext) -> None:
        value: Any = await c.get_state("counter", 0)
        await io(c)
        await c.set_state("counter", value + 1)

    for _ in range(5):
        await client.send_event("bump")
    with caplog.at_level(logging.WARNING, logger="ttflow_async"):
        await client.run()
    assert await client.get_state("counter") < 5
    lost = [r for r in caplog.records if "update is lost" in r.getMessage()]
    assert lost
    assert all(r.name == "ttflow_async" for r in lost)
