"""How a user tests a three-day approval flow in milliseconds with ttflow-async's fixtures.

``ttflow_client`` (a memory client) and ``ttflow_clock`` (its TestClock) come from the
pytest plugin that installing ttflow-async registers; ``run_until_idle`` advances the
clock to every timer and timeout and runs what falls due.
"""

from __future__ import annotations

from datetime import timedelta

from flows import register

from ttflow_async import Client
from ttflow_async.testing import TestClock, run_until_idle


async def test_small_expense_is_paid_at_once(ttflow_client: Client) -> None:
    register(ttflow_client)
    (result,) = await ttflow_client.run("expense", {"amount": 40})
    assert result.result == "paid 40"


async def test_unanswered_expense_expires_after_three_days(
    ttflow_client: Client, ttflow_clock: TestClock
) -> None:
    register(ttflow_client)
    start = ttflow_clock.now()
    await ttflow_client.run("expense", {"amount": 500})
    results = await run_until_idle(ttflow_client)
    assert [r.status for r in results] == ["paused", "succeeded"]
    assert results[-1].result == "expired"
    assert ttflow_clock.now() - start == timedelta(days=3, hours=1)


async def test_approved_expense_is_paid(ttflow_client: Client, ttflow_clock: TestClock) -> None:
    register(ttflow_client)
    (waiting,) = await ttflow_client.run("expense", {"amount": 500})
    ttflow_clock.advance(timedelta(hours=1))
    (cooled,) = await ttflow_client.run()  # past cooling-off, now waiting for a decision
    assert cooled.status == "paused"
    ttflow_clock.advance(timedelta(days=2))
    (result,) = await ttflow_client.run(f"decide:{waiting.run_id}", {"approved": True})
    assert result.result == "paid 500"
    assert result.logs == ["paid 500"]
