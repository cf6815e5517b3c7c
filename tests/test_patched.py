"""c.patched(): old runs keep the old path, new runs take the new one (SPEC §10.7)."""

from __future__ import annotations

from tests.conftest import MakeClient
from ttflow_async import Client, RunContext


def version_one(client: Client) -> None:
    @client.workflow()
    async def approval(c: RunContext) -> str:
        await c.log("asked")
        decision = await c.wait_event("approve")
        await c.log(f"decided {decision}")
        return "v1"


def version_two(client: Client) -> None:
    @client.sideeffect()
    async def notify(c: RunContext) -> str:
        return "notified"

    @client.workflow()
    async def approval(c: RunContext) -> str:
        await c.log("asked")
        if await c.patched("notify-before-wait"):
            await c.log(await notify(c))
        decision = await c.wait_event("approve")
        if await c.patched("notify-before-wait"):  # the same answer again in one run
            await c.log("new path")
        await c.log(f"decided {decision}")
        return "v2"


async def test_patched_keeps_old_runs_on_the_old_path(make_client: MakeClient) -> None:
    old = make_client()
    version_one(old)
    (first,) = await old.run("approval")
    assert first.status == "paused"

    new = make_client()
    version_two(new)
    (second,) = await new.run("approval")
    assert second.status == "paused"
    assert second.logs == ["asked", "notified"]

    results = {r.run_id: r for r in await new.run("approve", "yes")}
    old_run, new_run = results[first.run_id], results[second.run_id]
    assert old_run.status == new_run.status == "succeeded"
    assert old_run.logs == ["asked", "decided yes"]
    assert new_run.logs == ["asked", "notified", "new path", "decided yes"]
    assert {old_run.result, new_run.result} == {"v2"}


async def test_patched_is_journaled_and_true_on_replay(make_client: MakeClient) -> None:
    client = make_client()
    answers: list[bool] = []

    @client.workflow()
    async def flagged(c: RunContext) -> None:
        answers.append(await c.patched("feature"))
        await c.pause_once()
        answers.append(await c.patched("later"))

    await client.run("flagged")
    (done,) = await client.run()
    assert done.status == "succeeded"
    assert answers == [True, True, True]
