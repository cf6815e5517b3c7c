"""Defining and running workflows: triggers, events, args, results (SPEC §2, §4)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, TypedDict

import anyio
import pydantic
import pytest

from tests.conftest import MakeClient
from ttflow_async import (
    InvalidStateError,
    RunContext,
    SideeffectUsageError,
    UnknownTriggerError,
    WorkflowDefinitionError,
    WorkflowDirectCallError,
    event_trigger,
    every_trigger,
    setup,
    state_trigger,
)


@pytest.mark.all_stores
async def test_hello_result_history_and_logs(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def hello(c: RunContext, args: dict[str, Any]) -> None:
        """Says hello."""
        await c.log(f"Hello {args['name']}")

    results = await client.run("hello", {"name": "ana"})
    assert len(results) == 1
    result = results[0]
    assert (result.workflow_name, result.status, result.triggered_by) == (
        "hello",
        "succeeded",
        "hello",
    )
    assert result.logs == ["Hello ana"]
    assert result.error_message is None
    history = await client.run_history()
    assert [(h.workflow_name, h.run_id, h.status) for h in history] == [
        ("hello", result.run_id, "succeeded")
    ]
    assert history[0].timestamp.tzinfo is not None
    assert await client.run_logs(result.run_id) == ["Hello ana"]
    assert await client.run_logs("no-such-run") == []
    (info,) = client.workflows
    assert (info.name, info.description, info.trigger.kind, info.trigger.name) == (
        "hello",
        "Says hello.",
        "trigger",
        "hello",
    )


async def test_named_trigger_and_unknown_trigger_changes_nothing(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow(trigger="deploy")
    async def deployer(c: RunContext) -> None:
        await c.log("deploying")

    assert [r.workflow_name for r in await client.run("deploy")] == ["deployer"]
    traces_before = len(await client.traces())
    with pytest.raises(UnknownTriggerError, match="nope"):
        await client.run("nope")
    with pytest.raises(UnknownTriggerError):
        await client.run("deployer")  # the function name is not its trigger
    assert len(await client.traces()) == traces_before
    assert not await client.is_locked()


@pytest.mark.all_stores
async def test_events_chain_within_one_run(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def start(c: RunContext, args: int) -> None:
        await c.event("step1", args + 1)

    @client.workflow(trigger=event_trigger("step1"))
    async def first(c: RunContext, args: int) -> None:
        await c.log(f"first {args}")
        await c.event("step2", args * 10)

    @client.workflow(trigger=event_trigger("step2"))
    async def second(c: RunContext, args: int) -> None:
        await c.log(f"second {args}")

    results = await client.run("start", 1)
    assert [(r.workflow_name, r.triggered_by, r.status) for r in results] == [
        ("start", "start", "succeeded"),
        ("first", "step1", "succeeded"),
        ("second", "step2", "succeeded"),
    ]
    assert results[2].logs == ["second 20"]
    events = [(e.event_name, e.args) for e in await client.event_log()]
    assert ("step1", 2) in events
    assert ("step2", 20) in events


async def test_string_trigger_never_matches_an_event(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow(trigger="ping")
    async def by_trigger(c: RunContext) -> None:
        await c.log("trigger")

    @client.workflow()
    async def emitter(c: RunContext) -> None:
        await c.event("ping")

    results = await client.run("emitter")
    assert [r.workflow_name for r in results] == ["emitter"]


async def test_every_trigger_runs_at_every_run(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow(trigger=every_trigger())
    async def tick(c: RunContext) -> None:
        count = await c.get_state("ticks", 0)
        await c.set_state("ticks", count + 1)

    for _ in range(3):
        results = await client.run()
        assert [(r.workflow_name, r.triggered_by) for r in results] == [("tick", "_every")]
    assert await client.get_state("ticks") == 3


async def test_workflows_changed_fires_first_and_on_change(make_client: MakeClient) -> None:
    first = make_client()

    @first.workflow(trigger=event_trigger("workflows_changed"))
    async def on_change(c: RunContext) -> None:
        await c.log("changed")

    assert [r.workflow_name for r in await first.run()] == ["on_change"]
    assert await first.run() == []

    second = make_client()

    @second.workflow(trigger=event_trigger("workflows_changed"))
    async def on_change(c: RunContext) -> None:  # noqa: F811 - a redeploy of the same name
        await c.log("changed")

    @second.workflow()
    async def added(c: RunContext) -> None:
        return None

    assert [r.workflow_name for r in await second.run()] == ["on_change"]
    assert "workflows_changed" in [e.event_name for e in await second.event_log()]


@pytest.mark.all_stores
async def test_state_trigger_fires_only_on_change(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def set_temperature(c: RunContext, args: Any) -> None:
        await c.set_state("temperature", args)

    @client.workflow(trigger=state_trigger("temperature"))
    async def watch(c: RunContext, args: dict[str, Any]) -> None:
        await c.log(f"{args['old']} -> {args['new']}")

    results = await client.run("set_temperature", 20.5)
    assert [(r.workflow_name, r.triggered_by, r.logs) for r in results] == [
        ("set_temperature", "set_temperature", []),
        ("watch", "state_changed_temperature", ["None -> 20.5"]),
    ]
    assert [r.workflow_name for r in await client.run("set_temperature", 20.5)] == [
        "set_temperature"
    ]
    results = await client.run("set_temperature", 30)
    assert results[1].logs == ["20.5 -> 30"]
    changes = [e.args for e in await client.event_log() if e.event_name.startswith("state_")]
    assert changes == [{"old": None, "new": 20.5}, {"old": 20.5, "new": 30}]
    trace = (await client.traces())[-1]
    assert trace.trigger_name == "set_temperature"
    assert trace.executions[0].state_changes[0].model_dump() == {
        "name": "temperature",
        "old": 20.5,
        "new": 30,
    }


class Order(pydantic.BaseModel):
    item: str
    quantity: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Person(TypedDict):
    name: str


async def test_args_are_validated_by_annotation(make_client: MakeClient) -> None:
    client = make_client()
    seen: list[Any] = []

    @client.workflow()
    async def order(c: RunContext, args: Order) -> None:
        seen.append(args)

    @client.workflow()
    async def point(c: RunContext, args: Point) -> None:
        seen.append(args)

    @client.workflow()
    async def person(c: RunContext, args: Person) -> None:
        seen.append(args)

    @client.workflow()
    async def anything(c: RunContext, args: dict[str, Any]) -> None:
        seen.append(args)

    assert (await client.run("order", {"item": "tea", "quantity": "3"}))[0].status == "succeeded"
    assert seen[-1] == Order(item="tea", quantity=3)
    await client.run("point", {"x": 1, "y": 2})
    assert seen[-1] == Point(1, 2)
    await client.run("person", {"name": "ana"})
    assert seen[-1] == {"name": "ana"}
    await client.run("anything", None)
    assert seen[-1] is None

    (bad,) = await client.run("order", {"item": "tea", "quantity": "many"})
    assert bad.status == "failed"
    assert "quantity" in (bad.error_message or "")
    assert len(seen) == 4


async def test_args_are_normalised_through_json(make_client: MakeClient) -> None:
    client = make_client()
    seen: list[Any] = []

    @client.workflow()
    async def wf(c: RunContext, args: Any) -> None:
        seen.append(args)
        await c.pause_once()
        seen.append(args)

    await client.run("wf", {"pair": (1, 2)})
    await client.run()
    assert seen == [{"pair": [1, 2]}] * 3  # first pass, then replay and continuation


async def test_bad_definitions_and_calls() -> None:
    client = setup("onmemory")

    with pytest.raises(WorkflowDefinitionError, match="async def"):

        @client.workflow()
        def not_async(c: RunContext) -> None:
            return None

    @client.workflow()
    async def twice(c: RunContext) -> None:
        return None

    with pytest.raises(WorkflowDefinitionError, match="already registered"):

        @client.workflow(name="twice")
        async def other(c: RunContext) -> None:
            return None

    with pytest.raises(WorkflowDirectCallError, match=r"client\.run"):
        await twice(None)  # type: ignore[arg-type]

    @client.sideeffect()
    async def effect(c: RunContext, value: int) -> int:
        return value

    with pytest.raises(SideeffectUsageError, match="RunContext first"):
        effect(1)  # type: ignore[call-arg]


async def test_bad_run_args_change_nothing(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext, args: Any) -> None:
        return None

    with pytest.raises(InvalidStateError, match="object"):
        await client.run("wf", {"x": object()})
    with pytest.raises(InvalidStateError, match="not finite"):
        await client.run("wf", float("nan"))
    with pytest.raises(InvalidStateError, match="dict key"):
        await client.run("wf", {1: "x"})
    assert await client.traces() == []


async def test_a_failing_workflow_fails_alone(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow(trigger=event_trigger("go"))
    async def broken(c: RunContext) -> None:
        await c.set_state("broken_ran", True)
        await c.log("about to fail")
        raise RuntimeError("boom")

    @client.workflow(trigger=event_trigger("go"))
    async def fine(c: RunContext) -> None:
        await c.log("fine")

    await client.send_event("go")
    results = {r.workflow_name: r for r in await client.run()}
    assert results["broken"].status == "failed"
    assert results["broken"].error_message == "RuntimeError('boom')"
    assert results["broken"].logs == ["about to fail"]
    assert results["fine"].status == "succeeded"
    assert await client.get_state("broken_ran") is True
    statuses = {h.workflow_name: h.status for h in await client.run_history()}
    assert statuses == {"broken": "failed", "fine": "succeeded"}


async def test_runs_of_a_wave_execute_concurrently(make_client: MakeClient) -> None:
    client = make_client()
    met = anyio.Event()

    @client.workflow(trigger=event_trigger("go"))
    async def waits_for_partner(c: RunContext) -> None:
        with anyio.fail_after(5):
            await met.wait()

    @client.workflow(trigger=event_trigger("go"))
    async def partner(c: RunContext) -> None:
        met.set()

    await client.send_event("go")
    statuses = [r.status for r in await client.run()]
    assert statuses == ["succeeded", "succeeded"]


@pytest.mark.all_stores
async def test_sideeffects_run_once_and_replay_cached(make_client: MakeClient) -> None:
    client = make_client()
    calls: list[str] = []

    @client.sideeffect()
    async def fetch_price(c: RunContext, item: str) -> int:
        calls.append(item)
        await c.log(f"fetched {item}")
        return 100

    @client.sideeffect()
    def blocking_call(c: RunContext) -> str:
        calls.append("blocking")
        return threading.current_thread().name

    @client.workflow()
    async def buy(c: RunContext) -> None:
        price = await fetch_price(c, "tea")
        thread = await blocking_call(c)
        await c.log(f"price {price} thread-is-main={thread == 'MainThread'}")
        await c.pause_once()
        await c.log(f"bought at {price}")

    (first,) = await client.run("buy")
    assert first.status == "paused"
    (second,) = await client.run()
    assert second.status == "succeeded"
    assert calls == ["tea", "blocking"]
    assert second.logs == [
        "fetched tea",
        "price 100 thread-is-main=False",
        "bought at 100",
    ]


async def test_sideeffect_results_must_be_json(make_client: MakeClient) -> None:
    client = make_client()

    @client.sideeffect()
    async def bad(c: RunContext):  # type: ignore[no-untyped-def]
        return object()

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await bad(c)

    (result,) = await client.run("wf")
    assert result.status == "failed"
    assert "InvalidStateError" in (result.error_message or "")
    assert "object" in (result.error_message or "")


class Quote(pydantic.BaseModel):
    price: int
    currency: str


async def test_pydantic_sideeffect_results_round_trip(make_client: MakeClient) -> None:
    client = make_client()
    seen: list[Any] = []

    @client.sideeffect()
    async def quote(c: RunContext) -> Quote:
        return Quote(price=3, currency="EUR")

    @client.workflow()
    async def wf(c: RunContext) -> None:
        seen.append(await quote(c))
        await c.pause_once()

    await client.run("wf")
    await client.run()
    assert seen == [Quote(price=3, currency="EUR"), Quote(price=3, currency="EUR")]


async def test_scalar_sideeffect_results_come_back_as_the_annotation_makes_them(
    make_client: MakeClient,
) -> None:
    # A result of exactly the annotated int, str or bool is kept as it is; any other
    # goes through the annotation (a bool returned as an int comes back as 1).
    client = make_client()
    seen: list[Any] = []

    @client.sideeffect()
    async def number(c: RunContext) -> int:
        return 7

    @client.sideeffect()
    async def text(c: RunContext) -> str:
        return "seven"

    @client.sideeffect()
    async def flag(c: RunContext) -> bool:
        return True

    @client.sideeffect()
    async def bool_as_int(c: RunContext) -> int:
        return True

    @client.workflow()
    async def wf(c: RunContext) -> None:
        seen.append([await number(c), await text(c), await flag(c), await bool_as_int(c)])
        await c.pause_once()

    await client.run("wf")
    await client.run()  # the replay restores each result from the journal
    assert seen == [[7, "seven", True, 1]] * 2
    assert [[type(v) for v in values] for values in seen] == [[int, str, bool, int]] * 2


async def test_sideeffect_exceptions_are_not_cached(make_client: MakeClient) -> None:
    client = make_client()
    attempts: list[int] = []

    @client.sideeffect()
    async def flaky(c: RunContext) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("down")
        return "up"

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.log(await flaky(c))

    (failed,) = await client.run("wf")
    assert failed.status == "failed"
    assert "ConnectionError" in (failed.error_message or "")
    (ok,) = await client.run("wf")
    assert ok.logs == ["up"]
    assert len(attempts) == 2


async def test_nested_sideeffects_replay_once(make_client: MakeClient) -> None:
    client = make_client()
    calls: list[str] = []

    @client.sideeffect()
    async def inner(c: RunContext, n: int) -> int:
        calls.append(f"inner{n}")
        await c.log(f"inner {n}")
        return n * 2

    @client.sideeffect()
    async def outer(c: RunContext) -> int:
        calls.append("outer")
        return await inner(c, 1) + await inner(c, 2)

    @client.workflow()
    async def wf(c: RunContext) -> None:
        total = await outer(c)
        await c.pause_once()
        await c.log(f"total {total}")

    await client.run("wf")
    (done,) = await client.run()
    assert calls == ["outer", "inner1", "inner2"]
    assert done.logs == ["inner 1", "inner 2", "total 6"]


async def test_log_emits_a_logging_record(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.log("hello logger")

    with caplog.at_level(logging.INFO, logger="ttflow_async.workflow"):
        await client.run("wf")
    assert [r.getMessage() for r in caplog.records if r.name == "ttflow_async.workflow"] == [
        "hello logger"
    ]


async def test_context_data_and_identity(make_client: MakeClient) -> None:
    client = make_client()
    seen: list[tuple[str, str]] = []

    @client.workflow()
    async def wf(c: RunContext) -> None:
        data = c.get_context_data()
        seen.append((data.run_id, data.workflow_name))
        seen.append((c.run_id, c.workflow_name))

    (result,) = await client.run("wf")
    assert seen == [(result.run_id, "wf")] * 2


@pytest.mark.all_stores
async def test_client_works_with_and_without_async_with(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.log("x")

    await client.run("wf")
    async with client:
        await client.run("wf")
        await client.run("wf")
    assert len(await client.run_history()) == 3


async def test_run_reports_progress(make_client: MakeClient) -> None:
    client = make_client()
    seen: list[tuple[int, int]] = []

    @client.workflow()
    async def fan(c: RunContext) -> None:
        for i in range(3):
            await c.event("part", i)

    @client.workflow(trigger=event_trigger("part"))
    async def part(c: RunContext) -> None:
        return None

    await client.run("fan", on_progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 1)
    assert seen[-1] == (4, 4)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
