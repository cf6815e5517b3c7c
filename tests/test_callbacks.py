"""Callbacks (SPEC §10.5, §10.8): completion before the await, failures, timeouts,
heartbeats, duplicates and unknown ids, on every store."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ttflow_async import (
    CallbackFailed,
    CallbackTimeout,
    EventWaitTimeout,
    RunContext,
    UnknownCallbackError,
)
from ttflow_async.testing import TestClock

from .conftest import MakeClient

pytestmark = pytest.mark.anyio


def _final(results: list[Any], run_id: str) -> Any:
    return [r for r in results if r.run_id == run_id][-1]


async def test_a_callback_completed_before_its_await_resumes_with_the_payload(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def approval(c: RunContext) -> Any:
        cb = await c.create_callback(name="approve")
        await c.set_state("callback_id", cb.id)
        await c.pause_once()  # the completion arrives while the run is not awaiting
        return await cb.result()

    first = await client.run("approval")
    run_id = first[0].run_id
    callback_id = await client.get_state("callback_id")
    await client.complete_callback(callback_id, {"ok": True, "by": "ana"})
    results = await client.run()
    final = _final(results, run_id)
    assert final.status == "succeeded"
    assert final.result == {"ok": True, "by": "ana"}


async def test_a_waiting_run_is_woken_by_the_completion_with_waiting_for_shape(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def approval(c: RunContext) -> Any:
        cb = await c.create_callback(name="approve", timeout=3600)
        await c.set_state("callback_id", cb.id)
        return await cb.result()

    run_id = (await client.run("approval"))[0].run_id
    callback_id = await client.get_state("callback_id")
    info = await client.get_run(run_id)
    assert info is not None
    assert info.waiting_for is not None
    assert info.waiting_for["kind"] == "callback"
    assert info.waiting_for["callback_id"] == callback_id
    assert info.waiting_for["name"] == "approve"
    assert info.waiting_for["due"] is not None
    assert set(info.waiting_for) == {"kind", "callback_id", "name", "due"}
    await client.complete_callback(callback_id, 7)
    assert _final(await client.run(), run_id).result == 7


async def test_fail_callback_raises_callback_failed_with_the_message(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def approval(c: RunContext) -> str:
        cb = await c.create_callback()
        await c.set_state("callback_id", cb.id)
        try:
            await cb.result()
        except CallbackFailed as exc:
            return exc.error_message
        return "no error"

    run_id = (await client.run("approval"))[0].run_id
    await client.fail_callback(await client.get_state("callback_id"), "rejected by bob")
    assert _final(await client.run(), run_id).result == "rejected by bob"


async def test_overall_timeout_raises_callback_timeout_at_the_right_time(
    make_client: MakeClient,
) -> None:
    clock = TestClock(start=1_000_000.0)
    client = make_client(clock=clock)

    @client.workflow()
    async def approval(c: RunContext) -> str:
        cb = await c.create_callback(timeout=60)
        try:
            await cb.result()
        except EventWaitTimeout as exc:  # CallbackTimeout is an EventWaitTimeout
            return type(exc).__name__
        return "completed"

    run_id = (await client.run("approval"))[0].run_id
    wakeup = await client.next_wakeup()
    assert wakeup is not None
    assert wakeup.timestamp() == pytest.approx(1_000_060.0)
    clock.advance(59)
    assert await client.run() == []
    clock.advance(1)
    assert _final(await client.run(), run_id).result == "CallbackTimeout"


async def test_heartbeat_timeout_raises_callback_timeout_and_heartbeats_extend_it(
    make_client: MakeClient,
) -> None:
    clock = TestClock(start=2_000_000.0)
    client = make_client(clock=clock)

    @client.workflow()
    async def job(c: RunContext) -> str:
        cb = await c.create_callback(timeout=1000, heartbeat_timeout=30)
        await c.set_state("callback_id", cb.id)
        try:
            await cb.result()
        except CallbackTimeout:
            return f"no heartbeat at {clock():.0f}"
        return "completed"

    run_id = (await client.run("job"))[0].run_id
    callback_id = await client.get_state("callback_id")
    clock.advance(20)
    await client.heartbeat_callback(callback_id)
    assert _final(await client.run(), run_id).status == "paused"
    clock.advance(29)  # 49 s after creation: the first heartbeat window alone has passed
    assert [r for r in await client.run() if r.status != "paused"] == []
    clock.advance(1)  # 30 s after the heartbeat
    assert _final(await client.run(), run_id).result == "no heartbeat at 2000050"


async def test_a_second_completion_is_dropped_and_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()

    @client.workflow()
    async def approval(c: RunContext) -> Any:
        cb = await c.create_callback()
        await c.set_state("callback_id", cb.id)
        await c.pause_once()
        return await cb.result()

    run_id = (await client.run("approval"))[0].run_id
    callback_id = await client.get_state("callback_id")
    await client.complete_callback(callback_id, "first")
    await client.complete_callback(callback_id, "second")
    with caplog.at_level(logging.WARNING, logger="ttflow_async"):
        results = await client.run()
    assert _final(results, run_id).result == "first"
    assert any(callback_id in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    with pytest.raises(UnknownCallbackError):
        await client.complete_callback(callback_id, "third")


async def test_an_unknown_callback_id_raises_unknown_callback_error(
    make_client: MakeClient,
) -> None:
    client = make_client()
    with pytest.raises(UnknownCallbackError, match="no open callback"):
        await client.complete_callback("no-such-id", 1)
    with pytest.raises(UnknownCallbackError):
        await client.fail_callback("no-such-id", "x")
    with pytest.raises(UnknownCallbackError):
        await client.heartbeat_callback("no-such-id")


async def test_wait_for_callback_runs_the_submitter_once(make_client: MakeClient) -> None:
    client = make_client()
    calls: list[str] = []

    async def submit(c: RunContext, callback_id: str) -> None:
        calls.append(callback_id)
        await c.set_state("callback_id", callback_id)

    @client.workflow()
    async def flow(c: RunContext) -> Any:
        return await c.wait_for_callback(submit, name="ticket")

    run_id = (await client.run("flow"))[0].run_id
    assert len(calls) == 1
    await client.complete_callback(calls[0], {"ticket": 12})
    assert _final(await client.run(), run_id).result == {"ticket": 12}
    assert len(calls) == 1


async def test_callbacks_survive_garbage_collection_and_check(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def approval(c: RunContext) -> Any:
        cb = await c.create_callback()
        await c.set_state("callback_id", cb.id)
        return await cb.result()

    run_id = (await client.run("approval"))[0].run_id
    await client.collect_garbage()
    assert [c.ok for c in await client.check()] == [True]
    await client.complete_callback(await client.get_state("callback_id"), "yes")
    assert _final(await client.run(), run_id).result == "yes"


async def test_cancelling_a_run_closes_its_callbacks(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def approval(c: RunContext) -> Any:
        cb = await c.create_callback()
        await c.set_state("callback_id", cb.id)
        return await cb.result()

    run_id = (await client.run("approval"))[0].run_id
    await client.cancel(run_id, "no longer needed")
    with pytest.raises(UnknownCallbackError):
        await client.complete_callback(await client.get_state("callback_id"), "late")


async def test_a_submitter_completing_at_once_resumes_the_run_in_the_same_pass(
    make_client: MakeClient,
) -> None:
    client = make_client()

    async def submit(c: RunContext, callback_id: str) -> None:
        await client.complete_callback(callback_id, "instant")

    @client.workflow()
    async def flow(c: RunContext) -> Any:
        return await c.wait_for_callback(submit)

    results = await client.run("flow")
    assert results[-1].status == "succeeded"
    assert results[-1].result == "instant"
