"""``client.check()``: the pre-deploy dry replay of suspended and blocked runs."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import MakeClient
from tests.faulty_store import FaultyStore
from ttflow_async import Client, RunContext, setup


def _v1(client: Client) -> None:
    @client.sideeffect()
    async def reserve(c: RunContext, item: str) -> str:
        return f"reserved {item}"

    @client.workflow()
    async def order(c: RunContext, args: dict[str, Any]) -> None:
        await c.log(await reserve(c, args["item"]))
        await c.wait_event(f"approve:{c.run_id}")
        await c.log("approved")


def _v2_inserts_a_step_before_the_wait(client: Client) -> None:
    @client.sideeffect()
    async def reserve(c: RunContext, item: str) -> str:
        return f"reserved {item}"

    @client.sideeffect()
    async def notify(c: RunContext) -> None:
        return None

    @client.workflow()
    async def order(c: RunContext, args: dict[str, Any]) -> None:
        await c.log(await reserve(c, args["item"]))
        await notify(c)
        await c.wait_event(f"approve:{c.run_id}")
        await c.log("approved")


def _v2_changes_only_code_after_the_wait(client: Client) -> None:
    @client.sideeffect()
    async def reserve(c: RunContext, item: str) -> str:
        return f"reserved {item}"

    @client.sideeffect()
    async def ship(c: RunContext) -> None:
        raise AssertionError("check() must never run a side-effect body")

    @client.workflow()
    async def order(c: RunContext, args: dict[str, Any]) -> None:
        await c.log(await reserve(c, args["item"]))
        await c.wait_event(f"approve:{c.run_id}")
        await ship(c)
        await c.log("approved and shipped")


async def test_check_reports_a_step_inserted_before_a_wait_with_its_position(
    make_client: MakeClient,
) -> None:
    v1 = make_client()
    _v1(v1)
    (paused,) = await v1.run("order", {"item": "book"})

    v2 = make_client()
    _v2_inserts_a_step_before_the_wait(v2)
    (result,) = await v2.check()
    assert (result.run_id, result.workflow_name, result.ok) == (paused.run_id, "order", False)
    assert result.problem is not None
    assert re.search(r"position 2\b", result.problem), result.problem
    assert "wait_event" in result.problem
    assert "notify" in result.problem
    # Nothing changed: the run still waits, v1 resumes it normally.
    (still,) = await v1.paused_runs()
    assert still.waiting_for["kind"] == "event"
    (done,) = await v1.run(f"approve:{paused.run_id}")
    assert done.status == "succeeded"


async def test_check_says_ok_when_only_code_after_the_wait_changed(
    make_client: MakeClient,
) -> None:
    v1 = make_client()
    _v1(v1)
    await v1.run("order", {"item": "book"})
    v2 = make_client()
    _v2_changes_only_code_after_the_wait(v2)
    (result,) = await v2.check()
    assert (result.ok, result.problem) == (True, None)


async def test_check_of_a_blocked_run_and_of_a_missing_workflow(make_client: MakeClient) -> None:
    v1 = make_client()
    _v1(v1)
    (paused,) = await v1.run("order", {"item": "book"})
    v2 = make_client()
    _v2_inserts_a_step_before_the_wait(v2)
    (blocked,) = await v2.run(f"approve:{paused.run_id}")
    assert blocked.status == "blocked"
    assert not (await v2.check())[0].ok
    fixed = make_client()
    _v1(fixed)
    assert (await fixed.check())[0].ok  # the old code would resume it
    empty = make_client()
    (missing,) = await empty.check()
    assert not missing.ok
    assert "not registered" in (missing.problem or "")


async def test_check_makes_no_write_request(make_client: MakeClient) -> None:
    v1 = make_client()
    _v1(v1)
    await v1.run("order", {"item": "book"})
    counting = FaultyStore(v1.store)
    writes = {"write_root", "put_blobs", "delete_blobs", "inbox_put", "inbox_delete"}
    seen: list[str] = []

    async def count(name: str) -> None:
        seen.append(name)

    counting.before_call = count
    checker = setup(counting)
    _v2_changes_only_code_after_the_wait(checker)
    async with checker:
        results = await checker.check()
    assert [r.ok for r in results] == [True]
    assert seen, "check() read nothing"
    assert [name for name in seen if name in writes] == []
