"""Child workflows (SPEC §10.5): invoke, same-pass resume, failures, cancellation."""

from __future__ import annotations

from typing import Any

import pytest

from ttflow_async import ChildWorkflowError, RunContext

from .conftest import MakeClient

pytestmark = pytest.mark.anyio


async def test_child_finishing_in_the_same_pass_resumes_the_parent(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def child(c: RunContext, args: dict[str, Any]) -> int:
        return int(args["n"]) * 2

    @client.workflow()
    async def parent(c: RunContext) -> int:
        value = await c.invoke(child, {"n": 21})
        await c.log(f"child gave {value}")
        return int(value) + 1

    results = await client.run("parent")
    by_name = {(r.workflow_name, r.status) for r in results}
    assert ("parent", "succeeded") in by_name
    assert ("child", "succeeded") in by_name
    final = next(r for r in results if r.workflow_name == "parent" and r.status == "succeeded")
    assert final.result == 43
    child_result = next(r for r in results if r.workflow_name == "child")
    assert child_result.parent_run_id == final.run_id
    history = {h.run_id: h for h in await client.run_history()}
    assert history[child_result.run_id].parent_run_id == final.run_id


async def test_invoke_of_a_failing_child_raises_child_workflow_error(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def broken(c: RunContext) -> None:
        raise ValueError("no stock")

    @client.workflow()
    async def parent(c: RunContext) -> str:
        try:
            await c.invoke("broken")
        except ChildWorkflowError as exc:
            return f"{exc.error_type}|{exc.error_message}"
        return "no error"

    results = await client.run("parent")
    final = [r for r in results if r.workflow_name == "parent" and r.status == "succeeded"]
    assert final[0].result == "builtins.ValueError|no stock"


async def test_child_paused_across_passes_then_wakes_parent(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def slow(c: RunContext) -> str:
        await c.pause_once()
        return "done"

    @client.workflow()
    async def parent(c: RunContext) -> str:
        return str(await c.invoke(slow, name="slow child"))

    first = await client.run("parent")
    assert {r.status for r in first} == {"paused"}
    paused = {p.workflow_name: p for p in await client.paused_runs()}
    parent_id = paused["parent"].run_id
    assert paused["parent"].waiting_for == {"kind": "child", "run_id": paused["slow"].run_id}
    assert paused["slow"].parent_run_id == parent_id
    second = await client.run()
    done = [r for r in second if r.run_id == parent_id]
    assert done[-1].status == "succeeded"
    assert done[-1].result == "done"


async def test_cancelling_a_parent_cancels_its_unfinished_child(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def waiter(c: RunContext) -> None:
        await c.wait_event("never")

    @client.workflow()
    async def parent(c: RunContext) -> None:
        await c.invoke(waiter)

    await client.run("parent")
    paused = {p.workflow_name: p.run_id for p in await client.paused_runs()}
    await client.cancel(paused["parent"], "stop")
    assert await client.paused_runs() == []
    history = {h.run_id: h for h in await client.run_history()}
    assert history[paused["waiter"]].status == "cancelled"
    expected = f"cancelled with parent {paused['parent']}: stop"
    assert history[paused["waiter"]].error_message == expected


async def test_a_child_cancelled_alone_fails_the_invoke(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def waiter(c: RunContext) -> None:
        await c.wait_event("never")

    @client.workflow()
    async def parent(c: RunContext) -> str:
        try:
            await c.invoke(waiter)
        except ChildWorkflowError as exc:
            return exc.error_message
        return "no error"

    await client.run("parent")
    paused = {p.workflow_name: p.run_id for p in await client.paused_runs()}
    await client.cancel(paused["waiter"], "not needed")
    results = await client.run()
    final = [r for r in results if r.run_id == paused["parent"]]
    assert final[0].status == "succeeded"
    assert final[0].result == "not needed"


async def test_two_children_of_parallel_branches_ending_in_one_wave_both_resume(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def square(c: RunContext, args: dict[str, Any]) -> int:
        return int(args["n"]) ** 2

    @client.workflow()
    async def parent(c: RunContext) -> list[Any]:
        async def one(b: RunContext) -> Any:
            return await b.invoke(square, {"n": 3})

        async def two(b: RunContext) -> Any:
            return await b.invoke(square, {"n": 4})

        batch = await c.parallel([one, two])
        return batch.get_results()

    results = await client.run("parent")
    final = [r for r in results if r.workflow_name == "parent"][-1]
    assert final.status == "succeeded"
    assert final.result == [9, 16]
    assert await client.paused_runs() == []


async def test_check_replays_a_parent_waiting_for_its_child(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def waiter(c: RunContext) -> None:
        await c.wait_event("never")

    @client.workflow()
    async def parent(c: RunContext) -> None:
        await c.invoke(waiter)

    await client.run("parent")
    checks = await client.check()
    assert [c.ok for c in checks] == [True, True]
