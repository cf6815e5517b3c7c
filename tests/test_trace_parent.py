"""Child runs in traces: each execution of a child run names the run that invoked it."""

from __future__ import annotations

from typing import Any

import pytest

from ttflow_async import RunContext, TraceExecution

from .conftest import MakeClient

pytestmark = pytest.mark.anyio


def _executions(traces: list[Any]) -> list[TraceExecution]:
    return [execution for trace in traces for execution in trace.executions]


async def test_trace_of_a_pass_names_the_parent_of_each_child_run(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def child(c: RunContext, args: dict[str, Any]) -> int:
        return int(args["n"]) * 2

    @client.workflow()
    async def parent(c: RunContext) -> int:
        first = await c.invoke(child, {"n": 1})
        second = await c.invoke(child, {"n": 2})
        return int(first) + int(second)

    results = await client.run("parent")
    parent_id = next(r.run_id for r in results if r.workflow_name == "parent")
    child_ids = {r.run_id for r in results if r.workflow_name == "child"}
    assert len(child_ids) == 2
    traces = await client.traces()
    assert len(traces) == 1
    executions = _executions(traces)
    assert {x.run_id for x in executions if x.workflow_name == "child"} == child_ids
    for execution in executions:
        expected = parent_id if execution.workflow_name == "child" else None
        assert execution.parent_run_id == expected, execution


async def test_a_child_resumed_in_a_later_pass_keeps_its_parent_in_that_trace(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def slow(c: RunContext) -> str:
        await c.pause_once()
        return "done"

    @client.workflow()
    async def parent(c: RunContext) -> str:
        return str(await c.invoke(slow))

    await client.run("parent")
    paused = {p.workflow_name: p for p in await client.paused_runs()}
    parent_id = paused["parent"].run_id
    await client.run()
    # A new client over the same store reads the stored traces back.
    traces = await make_client().traces()
    assert len(traces) == 2
    later = [x for x in traces[1].executions if x.workflow_name == "slow"]
    assert [(x.status, x.parent_run_id) for x in later] == [("succeeded", parent_id)]
    resumed_parent = [x for x in traces[1].executions if x.workflow_name == "parent"]
    assert [(x.status, x.parent_run_id) for x in resumed_parent] == [("succeeded", None)]
