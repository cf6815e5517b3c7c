"""Suspension and replay: pause_once, wait_event, sleep, state, determinism (SPEC §3)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import MakeClient
from ttflow_async import (
    EventWaitTimeout,
    InvalidStateError,
    RunContext,
    event_trigger,
)
from ttflow_async.testing import TestClock


async def test_pause_once_resumes_at_next_run(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def loop(c: RunContext) -> None:
        for lap in range(3):
            await c.log(f"lap {lap} start")
            await c.pause_once()
            await c.log(f"lap {lap} end")

    (first,) = await client.run("loop")
    assert (first.status, first.logs) == ("paused", ["lap 0 start"])
    (paused,) = await client.paused_runs()
    assert (paused.run_id, paused.workflow_name) == (first.run_id, "loop")
    assert paused.waiting_for == {"kind": "next_run"}
    assert paused.since.tzinfo is not None
    statuses = []
    for _ in range(3):
        (result,) = await client.run()
        assert (result.run_id, result.triggered_by) == (first.run_id, "_resume")
        statuses.append(result.status)
    assert statuses == ["paused", "paused", "succeeded"]
    assert result.logs == [f"lap {i} {when}" for i in range(3) for when in ("start", "end")]
    assert await client.paused_runs() == []
    assert await client.run_logs(first.run_id) == result.logs


async def test_except_exception_cannot_swallow_a_pause(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def careless(c: RunContext) -> None:
        try:
            await c.pause_once()
        except Exception:
            await c.log("swallowed")
        await c.log("after")

    (first,) = await client.run("careless")
    assert (first.status, first.logs) == ("paused", [])
    (second,) = await client.run()
    assert (second.status, second.logs) == ("succeeded", ["after"])


async def test_wait_event_resumed_by_trigger_with_payload(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def approval(c: RunContext, args: dict[str, Any]) -> None:
        await c.log(f"request {args['amount']}")
        decision = await c.wait_event(f"approve:{c.run_id}")
        await c.log(f"approved by {decision['by']}")

    (first,) = await client.run("approval", {"amount": 10})
    assert first.status == "paused"
    (paused,) = await client.paused_runs()
    assert paused.waiting_for == {"kind": "event", "name": f"approve:{first.run_id}"}
    assert await client.run() == []  # nothing is due: the waiting run costs nothing
    (second,) = await client.run(f"approve:{first.run_id}", {"by": "ana"})
    assert (second.run_id, second.status) == (first.run_id, "succeeded")
    assert second.triggered_by == f"approve:{first.run_id}"
    assert second.logs == ["request 10", "approved by ana"]


@pytest.mark.all_stores
async def test_wait_event_resumed_by_sent_event(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def waiter(c: RunContext) -> None:
        payload = await c.wait_event("door_opened")
        await c.log(f"door {payload}")

    await client.run("waiter")
    await client.send_event("door_opened", {"door": "front"})
    (result,) = await client.run()
    assert result.logs == ["door {'door': 'front'}"]
    assert [e.event_name for e in await client.event_log()][-1] == "door_opened"


async def test_wait_event_woken_by_event_emitted_later_in_same_run(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def start(c: RunContext) -> None:
        await c.event("spawned")
        got = await c.wait_event("done")
        await c.log(f"got {got}")

    @client.workflow(trigger=event_trigger("spawned"))
    async def worker(c: RunContext) -> None:
        await c.event("done", 42)

    results = await client.run("start")
    assert [(r.workflow_name, r.status) for r in results] == [
        ("start", "succeeded"),
        ("worker", "succeeded"),
    ]
    assert results[0].logs == ["got 42"]


@pytest.mark.all_stores
async def test_wait_event_timeout(make_client: MakeClient) -> None:
    clock = TestClock()
    client = make_client(clock=clock)

    @client.workflow()
    async def impatient(c: RunContext) -> None:
        try:
            await c.wait_event("reply", timeout=timedelta(seconds=0.3))
        except EventWaitTimeout:
            await c.log("timed out")
            return
        await c.log("replied")

    (first,) = await client.run("impatient")
    assert first.status == "paused"
    (paused,) = await client.paused_runs()
    wakeup = await client.next_wakeup()
    assert wakeup is not None
    assert paused.waiting_for["timeout_at"] == wakeup
    clock.advance(0.2)
    assert await client.run() == []
    clock.advance(0.15)
    (second,) = await client.run()
    assert (second.status, second.triggered_by, second.logs) == (
        "succeeded",
        "_timer",
        ["timed out"],
    )
    assert await client.next_wakeup() is None


async def test_wait_event_answered_before_timeout(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def patient(c: RunContext) -> None:
        reply = await c.wait_event("reply", timeout=3600)
        await c.log(f"reply {reply}")

    await client.run("patient")
    assert await client.next_wakeup() is not None
    (result,) = await client.run("reply", "yes")
    assert result.logs == ["reply yes"]
    assert await client.next_wakeup() is None
    assert await client.paused_runs() == []


@pytest.mark.all_stores
async def test_durable_sleep(make_client: MakeClient) -> None:
    clock = TestClock()
    client = make_client(clock=clock)

    @client.workflow()
    async def sleeper(c: RunContext) -> None:
        await c.log("before")
        await c.sleep(1.5)
        await c.log("after")

    (first,) = await client.run("sleeper")
    assert first.status == "paused"
    (paused,) = await client.paused_runs()
    assert paused.waiting_for["kind"] == "timer"
    due = paused.waiting_for["due"]
    assert await client.next_wakeup() == due
    assert abs(due - (clock.now() + timedelta(seconds=1.5))) < timedelta(milliseconds=1)
    clock.advance(1.4)
    assert await client.run() == []
    clock.advance(0.11)
    (second,) = await client.run()
    assert (second.status, second.triggered_by, second.logs) == (
        "succeeded",
        "_timer",
        ["before", "after"],
    )


async def test_get_state_replays_first_read(make_client: MakeClient) -> None:
    client = make_client()
    reads: list[Any] = []

    @client.workflow()
    async def reader(c: RunContext) -> None:
        reads.append(await c.get_state("counter", "absent"))
        await c.pause_once()
        reads.append(await c.get_state("counter", "absent"))

    await client.run("reader")
    await client.set_state("counter", 5)
    await client.run()
    assert reads == ["absent", "absent", 5]


async def test_set_state_is_a_no_op_on_replay(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def writer(c: RunContext) -> None:
        await c.set_state("value", "first")
        await c.pause_once()

    await client.run("writer")
    await client.set_state("value", "changed outside")
    await client.run()
    assert await client.get_state("value") == "changed outside"


async def test_stored_null_and_default(make_client: MakeClient) -> None:
    client = make_client()
    await client.set_state("nothing", None)
    assert await client.get_state("nothing", "default") is None
    assert await client.get_state("missing", "default") == "default"


async def test_add_list_state(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def collect(c: RunContext, args: int) -> None:
        await c.add_list_state("readings", args, max_length=3)

    @client.workflow()
    async def bad(c: RunContext) -> None:
        await c.add_list_state("scalar", 1)

    for value in range(5):
        await client.run("collect", value)
    assert await client.get_state("readings") == [2, 3, 4]
    await client.set_state("scalar", 7)
    (result,) = await client.run("bad")
    assert result.status == "failed"
    assert "InvalidStateError" in (result.error_message or "")


async def test_reserved_and_non_json_state(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def reserved(c: RunContext) -> None:
        await c.set_state("_internal", 1)

    @client.workflow()
    async def not_json(c: RunContext) -> None:
        await c.set_state("when", {1, 2})

    (r1,) = await client.run("reserved")
    assert "InvalidStateError" in (r1.error_message or "")
    assert "reserved" in (r1.error_message or "")
    (r2,) = await client.run("not_json")
    assert "set" in (r2.error_message or "")
    with pytest.raises(InvalidStateError):
        await client.get_state("_internal")
    with pytest.raises(InvalidStateError):
        await client.set_state("_internal", 1)
    with pytest.raises(InvalidStateError, match="not finite"):
        await client.set_state("x", float("inf"))
    assert await client.get_state("when") is None


@pytest.mark.all_stores
async def test_changed_code_blocks_the_run_until_compatible_code(
    make_client: MakeClient,
) -> None:
    v1 = make_client()

    @v1.sideeffect()
    async def charge(c: RunContext) -> str:
        return "charged"

    @v1.workflow()
    async def checkout(c: RunContext) -> None:
        await charge(c)
        await c.pause_once()
        await c.log("shipped")

    (first,) = await v1.run("checkout")

    v2 = make_client()

    @v2.workflow()
    async def checkout(c: RunContext) -> None:  # noqa: F811 - a redeploy with other code
        await c.log("a different first step")
        await c.pause_once()

    (blocked,) = await v2.run()
    assert (blocked.run_id, blocked.status) == (first.run_id, "blocked")
    assert "NondeterminismError" in (blocked.error_message or "")
    assert "charge" in (blocked.error_message or "")
    (paused,) = await v2.paused_runs()
    assert paused.waiting_for["kind"] == "blocked"
    assert "NondeterminismError" in paused.waiting_for["error_message"]
    assert await v2.run() == []  # not retried on every run

    v3 = make_client()

    @v3.sideeffect()
    async def charge(c: RunContext) -> str:  # noqa: F811
        return "charged"

    @v3.workflow()
    async def checkout(c: RunContext) -> None:  # noqa: F811
        await charge(c)
        await c.pause_once()
        await c.log("shipped, compatible again")

    (resumed,) = await v3.run()
    assert (resumed.run_id, resumed.status) == (first.run_id, "succeeded")
    assert resumed.logs == ["shipped, compatible again"]


async def test_sideeffect_suspending_inside_its_body(make_client: MakeClient) -> None:
    client = make_client()
    bodies: list[str] = []

    @client.sideeffect()
    async def ask_for_approval(c: RunContext) -> str:
        bodies.append("start")
        await c.log("asking")
        answer = await c.wait_event(f"answer:{c.run_id}")
        bodies.append("end")
        return str(answer)

    @client.workflow()
    async def wf(c: RunContext) -> None:
        answer = await ask_for_approval(c)
        await c.pause_once()
        await c.log(f"answer {answer}")

    (first,) = await client.run("wf")
    await client.run(f"answer:{first.run_id}", "yes")
    (done,) = await client.run()
    assert done.logs == ["asking", "answer yes"]
    assert bodies == ["start", "start", "end"]


async def test_a_wait_is_not_woken_by_the_delivery_that_started_it(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow(trigger=event_trigger("bell"))
    async def doorman(c: RunContext, args: int) -> None:
        again = await c.wait_event("bell")
        await c.log(f"rang {args} then {again}")

    await client.send_event("bell", 1)
    (first,) = await client.run()
    assert first.status == "paused"
    await client.send_event("bell", 2)
    results = await client.run()
    by_id = {r.run_id: r for r in results}
    assert by_id[first.run_id].logs == ["rang 1 then 2"]
    assert sorted(r.status for r in results) == ["paused", "succeeded"]


async def test_events_without_listeners_are_logged(make_client: MakeClient) -> None:
    client = make_client()
    await client.send_event("nobody_listens", {"x": 1})
    assert await client.run() == []
    (entry,) = [e for e in await client.event_log() if e.event_name == "nobody_listens"]
    assert entry.args == {"x": 1}
    assert entry.timestamp.tzinfo is not None


@pytest.mark.all_stores
async def test_suspended_runs_outlive_the_client(make_client: MakeClient) -> None:
    first = make_client()

    @first.workflow()
    async def long_lived(c: RunContext) -> None:
        await c.log("started")
        await c.wait_event("resume")
        await c.log("resumed")

    (started,) = await first.run("long_lived")
    later = make_client()

    @later.workflow()
    async def long_lived(c: RunContext) -> None:  # noqa: F811 - the same code, a new process
        await c.log("started")
        await c.wait_event("resume")
        await c.log("resumed")

    (resumed,) = await later.run("resume")
    assert (resumed.run_id, resumed.logs) == (started.run_id, ["started", "resumed"])


async def test_max_concurrency_one_still_runs_everything(make_client: MakeClient) -> None:
    client = make_client(max_concurrency=1)
    running: list[int] = []
    overlap: list[bool] = []

    @client.workflow(trigger=event_trigger("job"))
    async def job(c: RunContext, args: int) -> None:
        running.append(args)
        overlap.append(len(running) > 1)
        await c.log(f"job {args}")
        running.remove(args)

    for i in range(5):
        await client.send_event("job", i)
    results = await client.run()
    assert sorted(r.logs[0] for r in results) == [f"job {i}" for i in range(5)]
    assert not any(overlap)


async def test_context_calls_from_an_unrelated_task_are_refused(make_client: MakeClient) -> None:
    client = make_client()

    @client.sideeffect()
    async def slow(c: RunContext, n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    @client.workflow()
    async def fan(c: RunContext) -> None:
        async def elsewhere() -> int:
            return await slow(c, 1)

        await asyncio.create_task(elsewhere())

    (result,) = await client.run("fan")
    assert result.status == "blocked"
    assert "c.parallel" in (result.error_message or "")


async def test_engine_events_cannot_be_waited_for(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def waits_for_every(c: RunContext) -> None:
        await c.wait_event("_every")

    (result,) = await client.run("waits_for_every")
    assert result.status == "failed"
    assert "pause_once" in (result.error_message or "")
