"""The lease: one runner at a time, queued triggers, cancellation, fencing (SPEC §4, §6)."""

from __future__ import annotations

import threading

import anyio
import pytest

from tests.conftest import MakeClient
from ttflow_async import RunContext, StateLockedError, event_trigger
from ttflow_async.testing import TestClock


@pytest.mark.all_stores
async def test_held_lock_queues_the_trigger(make_client: MakeClient) -> None:
    holder = make_client()
    entered = anyio.Event()
    release = anyio.Event()

    @holder.workflow()
    async def slow(c: RunContext) -> None:
        entered.set()
        await release.wait()

    other = make_client()
    fired: list[str] = []

    @other.workflow()
    async def hello(c: RunContext, args: str) -> None:
        fired.append(args)
        await c.log(f"hello {args}")

    @other.workflow()
    async def slow(c: RunContext) -> None:  # noqa: F811 - the same definitions, deployed twice
        return None

    # The holder runs older code that has no "hello": it must leave the queued trigger.

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder.run, "slow")
        await entered.wait()
        assert await other.is_locked()
        with pytest.raises(StateLockedError, match="inbox") as queued:
            await other.run("hello", "queued")
        assert queued.value.queued is True
        with pytest.raises(StateLockedError, match="lock_timeout") as plain:
            await other.run()
        assert plain.value.queued is False
        release.set()
    assert not await other.is_locked()
    results = await other.run()
    assert [(r.workflow_name, r.logs) for r in results] == [("hello", ["hello queued"])]
    assert await other.run() == []
    assert fired == ["queued"]


async def test_lock_timeout_waits_for_the_lock(make_client: MakeClient) -> None:
    holder = make_client()
    entered = anyio.Event()

    @holder.workflow()
    async def slow(c: RunContext) -> None:
        entered.set()
        await anyio.sleep(0.3)

    other = make_client()

    @other.workflow()
    async def quick(c: RunContext) -> None:
        await c.log("ran")

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder.run, "slow")
        await entered.wait()
        (result,) = await other.run("quick", lock_timeout=10)
    assert result.logs == ["ran"]


@pytest.mark.all_stores
async def test_send_event_never_blocks_and_the_holder_drains(make_client: MakeClient) -> None:
    client = make_client()
    sender = make_client()
    sent = anyio.Event()

    @client.workflow()
    async def slow(c: RunContext) -> None:
        await sender.send_event("arrived", {"n": 1})
        sent.set()

    @client.workflow(trigger=event_trigger("arrived"))
    async def on_arrival(c: RunContext, args: dict[str, int]) -> None:
        await c.log(f"arrival {args['n']}")

    results = await client.run("slow")
    assert sent.is_set()
    assert [(r.workflow_name, r.logs) for r in results] == [
        ("slow", []),
        ("on_arrival", ["arrival 1"]),
    ]
    assert await client.run() == []


async def test_cancelled_run_commits_nothing_and_releases(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def hangs(c: RunContext) -> None:
        await c.set_state("touched", True)
        await c.log("started")
        await anyio.sleep(60)

    with anyio.move_on_after(0.5) as scope:
        await client.run("hangs")
    assert scope.cancelled_caught
    assert not await client.is_locked()
    assert await client.get_state("touched") is None
    assert await client.traces() == []
    assert await client.paused_runs() == []


async def test_lease_is_renewed_while_the_runner_works(make_client: MakeClient) -> None:
    client = make_client(lease_seconds=1)
    other = make_client(lease_seconds=1)
    entered = anyio.Event()

    @client.workflow()
    async def long_job(c: RunContext) -> None:
        entered.set()
        await anyio.sleep(2.5)
        await c.log("done")

    async with anyio.create_task_group() as tg:
        results: list[str] = []

        async def run_long() -> None:
            (result,) = await client.run("long_job")
            results.append(result.status)

        tg.start_soon(run_long)
        await entered.wait()
        await anyio.sleep(1.6)  # past the first expiry: renewal must have kept it
        assert await other.is_locked()
        with pytest.raises(StateLockedError):
            await other.run()
    assert results == ["succeeded"]


@pytest.mark.all_stores
async def test_expired_runner_is_fenced(make_client: MakeClient) -> None:
    clock = TestClock()
    stale = make_client(lease_seconds=0.5, clock=clock)
    fresh = make_client(lease_seconds=0.5, clock=clock)
    taken_over: list[list[str]] = []

    def run_fresh_in_its_own_loop() -> None:
        async def main() -> None:
            results = await fresh.run("note", "fresh")
            taken_over.append([r.status for r in results])

        anyio.run(main)

    @stale.workflow()
    async def stuck(c: RunContext) -> None:
        await c.set_state("written_by", "stale")
        clock.advance(0.8)  # the loop does not run before the thread: no renewal, expired
        thread = threading.Thread(target=run_fresh_in_its_own_loop)
        thread.start()
        thread.join()

    @stale.workflow()
    async def note(c: RunContext, args: str) -> None:
        await c.set_state("written_by", args)

    @fresh.workflow()
    async def stuck(c: RunContext) -> None:  # noqa: F811 - same definitions in the other runner
        return None

    @fresh.workflow()
    async def note(c: RunContext, args: str) -> None:  # noqa: F811
        await c.set_state("written_by", args)

    with pytest.raises(StateLockedError, match="expired") as fenced:
        await stale.run("stuck")
    assert fenced.value.queued is True
    assert taken_over == [["succeeded"]]
    assert await fresh.get_state("written_by") == "fresh"
    assert [h.workflow_name for h in await fresh.run_history()] == ["note"]
    # The fenced trigger was queued, so it runs exactly once, now.
    results = await fresh.run()
    assert [r.workflow_name for r in results] == ["stuck"]
    assert await fresh.run() == []


async def test_trigger_queued_behind_a_holder_with_the_same_code_fires_once(
    make_client: MakeClient,
) -> None:
    fired: list[str] = []
    entered = anyio.Event()
    release = anyio.Event()

    def deploy() -> object:
        client = make_client()

        @client.workflow()
        async def slow(c: RunContext) -> None:
            entered.set()
            await release.wait()

        @client.workflow()
        async def hello(c: RunContext, args: str) -> None:
            fired.append(args)

        return client

    holder, other = deploy(), deploy()
    async with anyio.create_task_group() as tg:
        holder_results: list[list[str]] = []

        async def hold() -> None:
            results = await holder.run("slow")  # type: ignore[attr-defined]
            holder_results.append([r.workflow_name for r in results])

        tg.start_soon(hold)
        await entered.wait()
        with pytest.raises(StateLockedError) as queued:
            await other.run("hello", "once")  # type: ignore[attr-defined]
        assert queued.value.queued
        release.set()
    assert holder_results == [["slow", "hello"]]  # drained before the holder released
    assert await other.run() == []  # type: ignore[attr-defined]
    assert fired == ["once"]
