"""Results and errors are kept; idempotent starts; cancel (SPEC §10.2, §10.6)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from tests.conftest import MakeClient
from ttflow_async import (
    InvalidStateError,
    RunContext,
    UnknownRunError,
    event_trigger,
    setup,
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Receipt(BaseModel):
    order: int
    total: float


async def test_a_workflow_result_is_returned_and_kept_in_the_history(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def order(c: RunContext, args: dict[str, Any]) -> Receipt:
        await c.pause_once()
        return Receipt(order=args["n"], total=9.5)

    (paused,) = await client.run("order", {"n": 7})
    assert (paused.status, paused.result) == ("paused", None)
    (done,) = await client.run()
    assert done.result == {"order": 7, "total": 9.5}
    (entry,) = await client.run_history()
    assert entry.result == {"order": 7, "total": 9.5}
    info = await client.get_run(done.run_id)
    assert info is not None
    assert (info.status, info.result, info.waiting_for) == ("succeeded", entry.result, None)
    assert info.started_at is not None
    assert info.updated_at is not None
    assert info.started_at <= info.updated_at


async def test_a_non_json_result_fails_the_run_with_the_type_named(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext) -> object:
        return {1, 2}

    (result,) = await client.run("wf")
    assert result.status == "failed"
    assert "InvalidStateError" in (result.error_message or "")
    assert "set" in (result.error_message or "")


async def test_a_failed_run_keeps_its_error_and_traceback(make_client: MakeClient) -> None:
    client = make_client()

    def deep(n: int) -> None:
        if n == 0:
            raise RuntimeError("the card was declined")
        deep(n - 1)

    @client.workflow()
    async def charge(c: RunContext) -> None:
        await c.log("charging")
        deep(400)  # a long traceback: it is cut, keeping the innermost frames

    (result,) = await client.run("charge")
    assert result.status == "failed"
    assert result.error_message == "RuntimeError('the card was declined')"
    assert result.error_traceback is not None
    assert result.error_traceback.rstrip().endswith("RuntimeError: the card was declined")
    assert len(result.error_traceback.encode()) <= 16_384
    (entry,) = await client.run_history()
    assert (entry.status, entry.error_message) == ("failed", result.error_message)
    assert entry.error_traceback == result.error_traceback
    info = await client.get_run(result.run_id)
    assert info is not None
    assert (info.status, info.error_message) == ("failed", result.error_message)
    assert await client.run_logs(result.run_id) == ["charging"]


async def test_get_run_of_a_suspended_run_and_of_an_unknown_id(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.wait_event(f"approve:{c.run_id}")

    (paused,) = await client.run("wf")
    info = await client.get_run(paused.run_id)
    assert info is not None
    assert info.status == "paused"
    assert info.waiting_for == {"kind": "event", "name": f"approve:{paused.run_id}"}
    assert await client.get_run("no-such-run") is None


# -- idempotent starts -----------------------------------------------------------------


async def test_a_keyed_trigger_starts_its_workflow_once_within_the_window(
    make_client: MakeClient,
) -> None:
    clock = Clock(1_000_000.0)
    client = make_client(clock=clock, idempotency_window=timedelta(hours=1))
    orders: list[int] = []

    @client.workflow()
    async def order(c: RunContext, args: dict[str, Any]) -> None:
        orders.append(args["n"])

    assert len(await client.run("order", {"n": 0}, key="order-0")) == 1
    assert await client.run("order", {"n": 0}, key="order-0") == []  # a redelivery
    assert len(await client.run("order", {"n": 1}, key="order-1")) == 1
    clock.now += 3601  # the window has passed: the key may be used again
    assert len(await client.run("order", {"n": 0}, key="order-0")) == 1
    assert orders == [0, 1, 0]


async def test_a_keyed_event_is_delivered_once(make_client: MakeClient) -> None:
    client = make_client()
    seen: list[Any] = []

    @client.workflow(trigger=event_trigger("paid"))
    async def paid(c: RunContext, args: Any) -> None:
        seen.append(args)

    await client.send_event("paid", {"n": 1}, key="m-1")
    await client.send_event("paid", {"n": 1}, key="m-1")
    await client.run()
    await client.send_event("paid", {"n": 1}, key="m-1")
    await client.run()
    assert seen == [{"n": 1}]


@pytest.mark.parametrize("bad", ["", 5, ["k"], "\ud800"])
async def test_a_key_that_is_not_a_non_empty_string_is_refused(bad: Any) -> None:
    client = setup("onmemory")

    @client.workflow()
    async def wf(c: RunContext) -> None:
        pass

    with pytest.raises(InvalidStateError):
        await client.run("wf", key=bad)
    with pytest.raises(InvalidStateError):
        await client.send_event("e", key=bad)
    assert await client.run_history() == []


# -- cancel ----------------------------------------------------------------------------


async def test_cancel_ends_a_suspended_run_and_records_the_reason(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.log("started")
        await c.sleep(timedelta(days=3))

    (paused,) = await client.run("wf")
    assert await client.next_wakeup() is not None
    await client.cancel(paused.run_id, "not needed any more")
    assert await client.paused_runs() == []
    assert await client.next_wakeup() is None
    (entry,) = await client.run_history()
    assert (entry.run_id, entry.status, entry.error_message) == (
        paused.run_id,
        "cancelled",
        "not needed any more",
    )
    assert await client.run_logs(paused.run_id) == ["started"]
    info = await client.get_run(paused.run_id)
    assert info is not None
    assert info.status == "cancelled"
    with pytest.raises(UnknownRunError):
        await client.cancel(paused.run_id)
    with pytest.raises(UnknownRunError):
        await client.cancel("no-such-run")
    assert await client.run() == []


async def test_cancel_of_a_run_waiting_for_an_event_leaves_the_index(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.wait_event("go", timeout=60)

    @client.workflow()
    async def go(c: RunContext) -> None:
        pass

    (paused,) = await client.run("wf")
    await client.cancel(paused.run_id)
    results = await client.run("go")
    assert [r.workflow_name for r in results] == ["go"]
    assert [h.status for h in await client.run_history()] == ["cancelled", "succeeded"]


async def test_traces_name_the_operations_each_run_reached(make_client: MakeClient) -> None:
    client = make_client()

    @client.sideeffect(name="charge card")
    async def charge(c: RunContext) -> int:
        return 1

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await charge(c)
        await c.sleep(3600, name="cooling off")

    await client.run("wf")
    (trace,) = [t for t in await client.traces() if t.executions]
    (execution,) = trace.executions
    assert execution.operations == ["side effect 'charge card'", "sleep 'cooling off'"]


async def test_next_wakeup_is_never_before_the_due_time() -> None:
    clock = Clock(1_700_000_000.123456789)
    client = setup("onmemory", clock=clock)

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.sleep(0.0000004)

    await client.run("wf")
    wakeup = await client.next_wakeup()
    assert wakeup is not None
    clock.now = wakeup.timestamp()
    (done,) = await client.run()
    assert done.status == "succeeded"
