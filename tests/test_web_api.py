"""The dashboard's JSON API, driven through httpx's ASGI transport."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter

from tests.soak import scale
from ttflow_async import (
    Client,
    RunContext,
    event_trigger,
    setup,
    state_trigger,
)
from ttflow_async.web import create_app, serve

TOKEN = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
XSS = "<script>alert(1)</script>"

WRITES: list[tuple[str, dict[str, Any]]] = [
    ("/api/trigger", {"name": "greet", "args": {"name": "Ada"}}),
    ("/api/events", {"name": "order_placed", "args": {"id": 1}}),
    ("/api/resume", {}),
]


class Parcel(BaseModel):
    """Typed args: the engine validates them before the workflow runs."""

    weight: float


@dataclass
class Gate:
    """Lets a test hold a run (and so the store's lease) open until it says so."""

    holding: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)


def make_client(spec: str = "onmemory", gate: Gate | None = None) -> Client:
    """A client with one workflow of each kind the dashboard shows."""
    client = setup(spec)
    hold_gate = gate or Gate()

    @client.workflow()
    async def greet(c: RunContext, args: dict[str, Any]) -> None:
        """Say hello to someone."""
        await c.log(f"hello {args['name']}")

    @client.workflow(trigger=event_trigger("order_placed"))
    async def on_order(c: RunContext, args: dict[str, Any]) -> None:
        """Count orders."""
        count = await c.get_state("orders", 0)
        await c.set_state("orders", count + 1)
        await c.log(f"order {args['id']}")

    @client.workflow(trigger=state_trigger("orders"))
    async def watch_orders(c: RunContext, args: dict[str, Any]) -> None:
        await c.log(f"orders went from {args['old']} to {args['new']}")

    @client.workflow(trigger="start_approval")
    async def approval(c: RunContext) -> None:
        """Wait for a person to approve."""
        decision = await c.wait_event("approve")
        await c.log(f"approved by {decision['by']}")

    @client.workflow(trigger="nap")
    async def napper(c: RunContext) -> None:
        await c.pause_once()
        await c.log("woke up")

    @client.workflow(trigger="sleep_long")
    async def sleeper(c: RunContext) -> None:
        await c.sleep(3600)

    @client.workflow()
    async def boom(c: RunContext) -> None:
        raise RuntimeError("boom")

    @client.workflow(trigger="ship")
    async def ship(c: RunContext, args: Parcel) -> None:
        await c.log(f"shipping {args.weight} kg")

    @client.workflow()
    async def hold(c: RunContext) -> None:
        hold_gate.holding.set()
        await hold_gate.release.wait()

    return client


@pytest.fixture
def client() -> Client:
    return make_client()


@pytest.fixture
def app(client: Client) -> FastAPI:
    return create_app(client, token=TOKEN)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http


async def get_json(http: httpx.AsyncClient, path: str) -> Any:
    response = await http.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() is not None, f"{text} is not timezone-aware"
    return moment


# ------------------------------------------------------------------ read endpoints


async def test_workflows_lists_names_descriptions_and_triggers(http: httpx.AsyncClient) -> None:
    workflows = {w["name"]: w for w in await get_json(http, "/api/workflows")}

    assert set(workflows) == {
        "greet",
        "on_order",
        "watch_orders",
        "approval",
        "napper",
        "sleeper",
        "boom",
        "ship",
        "hold",
    }
    assert workflows["greet"] == {
        "name": "greet",
        "description": "Say hello to someone.",
        "trigger": {"kind": "trigger", "name": "greet"},
    }
    assert workflows["on_order"]["trigger"] == {"kind": "event", "name": "order_placed"}
    assert workflows["watch_orders"]["trigger"] == {"kind": "state", "name": "orders"}
    assert workflows["watch_orders"]["description"] is None
    assert workflows["approval"]["trigger"] == {"kind": "trigger", "name": "start_approval"}


async def test_suspended_runs_say_what_they_wait_for_and_since_when(
    client: Client, http: httpx.AsyncClient
) -> None:
    [sleeping] = await client.run("sleep_long")
    [waiting] = await client.run("start_approval")
    [napping] = await client.run("nap")

    suspended = {r["run_id"]: r for r in await get_json(http, "/api/runs/suspended")}

    assert set(suspended) == {waiting.run_id, napping.run_id, sleeping.run_id}
    assert suspended[waiting.run_id]["workflow_name"] == "approval"
    assert suspended[waiting.run_id]["waiting_for"]["kind"] == "event"
    assert suspended[waiting.run_id]["waiting_for"]["name"] == "approve"
    assert suspended[napping.run_id]["waiting_for"]["kind"] == "next_run"
    timer = suspended[sleeping.run_id]["waiting_for"]
    assert timer["kind"] == "timer"
    since = parse_time(suspended[sleeping.run_id]["since"])
    assert parse_time(timer["due"]) > since
    for run in suspended.values():
        assert set(run) == {"workflow_name", "run_id", "since", "waiting_for", "parent_run_id"}
        assert run["parent_run_id"] is None
        assert set(run["waiting_for"]) == {
            "kind",
            "name",
            "due",
            "timeout_at",
            "error_message",
            "callback_id",
            "run_id",
        }


async def test_runs_waiting_for_a_callback_or_a_child_are_listed_with_their_ids(
    client: Client, http: httpx.AsyncClient
) -> None:
    @client.workflow()
    async def slow(c: RunContext) -> str:
        await c.pause_once()
        return "done"

    @client.workflow()
    async def parent(c: RunContext) -> str:
        return str(await c.invoke(slow, name="slow child"))

    @client.workflow()
    async def approver(c: RunContext) -> Any:
        cb = await c.create_callback(name="approval", timeout=3600)
        await c.set_state("callback_id", cb.id)
        return await cb.result()

    await client.run("approver")
    await client.run("parent")
    callback_id = await client.get_state("callback_id")

    suspended = {r["workflow_name"]: r for r in await get_json(http, "/api/runs/suspended")}

    assert suspended["approver"]["waiting_for"]["kind"] == "callback"
    assert suspended["approver"]["waiting_for"]["callback_id"] == callback_id
    assert suspended["approver"]["waiting_for"]["name"] == "approval"
    assert suspended["approver"]["waiting_for"]["due"] is not None
    assert suspended["parent"]["waiting_for"]["kind"] == "child"
    assert suspended["parent"]["waiting_for"]["run_id"] == suspended["slow"]["run_id"]
    assert suspended["slow"]["parent_run_id"] == suspended["parent"]["run_id"]
    history = {r["workflow_name"]: r for r in await get_json(http, "/api/runs/history")}
    assert history == {}
    await client.run()
    history = {r["workflow_name"]: r for r in await get_json(http, "/api/runs/history")}
    assert history["slow"]["parent_run_id"] == suspended["parent"]["run_id"]


async def test_cancel_takes_an_optional_reason_kept_in_the_history(
    client: Client, http: httpx.AsyncClient
) -> None:
    [waiting] = await client.run("start_approval")
    url = f"/api/runs/{waiting.run_id}/cancel"

    done = await http.post(url, json={"reason": "wrong order"}, headers=AUTH)

    assert done.status_code == 200, done.text
    [entry] = await get_json(http, "/api/runs/history")
    assert entry["status"] == "cancelled"
    assert "wrong order" in entry["error_message"]
    [napping] = await client.run("nap")
    plain = await http.post(f"/api/runs/{napping.run_id}/cancel", headers=AUTH)
    assert plain.status_code == 200, plain.text
    assert "dashboard" in (await get_json(http, "/api/runs/history"))[-1]["error_message"]


async def test_a_blocked_run_shows_its_error(tmp_path: Path) -> None:
    spec = f"local:{tmp_path / 'state.json'}"

    def deploy(version: int) -> Client:
        client = setup(spec)

        @client.workflow()
        async def flip(c: RunContext) -> None:
            if version == 1:
                await c.log("first version")
            else:
                await c.get_state("anything")
            await c.pause_once()

        return client

    before, after = deploy(1), deploy(2)
    [paused] = await before.run("flip")
    await after.run()
    transport = httpx.ASGITransport(app=create_app(after))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        [blocked] = await get_json(http, "/api/runs/suspended")

    assert blocked["run_id"] == paused.run_id
    assert blocked["waiting_for"]["kind"] == "blocked"
    assert "NondeterminismError" in blocked["waiting_for"]["error_message"]


async def test_history_lists_finished_runs_oldest_first(
    client: Client, http: httpx.AsyncClient
) -> None:
    [first] = await client.run("greet", {"name": "Ada"})
    [failed] = await client.run("boom")
    [last] = await client.run("greet", {"name": "Grace"})

    history = await get_json(http, "/api/runs/history")

    assert [(r["run_id"], r["workflow_name"], r["status"]) for r in history] == [
        (first.run_id, "greet", "succeeded"),
        (failed.run_id, "boom", "failed"),
        (last.run_id, "greet", "succeeded"),
    ]
    times = [parse_time(r["timestamp"]) for r in history]
    assert times == sorted(times)
    recent = await get_json(http, "/api/runs/history?limit=2")
    assert [r["run_id"] for r in recent] == [failed.run_id, last.run_id]


async def test_run_logs_returns_the_lines_and_nothing_for_an_unknown_run(
    client: Client, http: httpx.AsyncClient
) -> None:
    [run] = await client.run("greet", {"name": XSS})

    logs = await get_json(http, f"/api/runs/{run.run_id}/logs")

    assert logs == {"run_id": run.run_id, "lines": [f"hello {XSS}"]}
    assert await get_json(http, "/api/runs/no-such-run/logs") == {
        "run_id": "no-such-run",
        "lines": [],
    }


async def test_event_log_shows_delivered_events_with_their_args(
    client: Client, http: httpx.AsyncClient
) -> None:
    await client.send_event("order_placed", {"id": 7, "note": XSS})
    await client.run()

    events = await get_json(http, "/api/events")

    by_name = {e["event_name"]: e for e in events}
    assert by_name["order_placed"]["args"] == {"id": 7, "note": XSS}
    assert by_name["state_changed_orders"]["args"] == {"old": None, "new": 1}
    parse_time(by_name["order_placed"]["timestamp"])
    assert len(await get_json(http, "/api/events?limit=1")) == 1


async def test_traces_show_each_pass_with_runs_and_state_changes(
    client: Client, http: httpx.AsyncClient
) -> None:
    await client.send_event("order_placed", {"id": 1})
    await client.run()

    traces = await get_json(http, "/api/traces")

    executions = [x for trace in traces for x in trace["executions"]]
    on_order = next(x for x in executions if x["workflow_name"] == "on_order")
    assert on_order["triggered_by"] == "order_placed"
    assert on_order["status"] == "succeeded"
    assert on_order["state_changes"] == [{"name": "orders", "old": None, "new": 1}]
    watcher = next(x for x in executions if x["workflow_name"] == "watch_orders")
    assert watcher["triggered_by"] == "state_changed_orders"
    assert all(set(t) == {"trace_id", "timestamp", "trigger_name", "executions"} for t in traces)


async def test_flow_combines_registrations_and_traces(
    client: Client, http: httpx.AsyncClient
) -> None:
    await client.run("start_approval")
    await client.send_event("order_placed", {"id": 1})
    await client.run()
    await client.run("approve", {"by": "ana"})

    flow = await get_json(http, "/api/flow")

    edges = {(e["source"], e["workflow"]): e for e in flow["edges"]}
    assert edges[("greet", "greet")] == {
        "source": "greet",
        "source_kind": "trigger",
        "workflow": "greet",
        "registered": True,
        "observed": 0,
    }
    assert edges[("order_placed", "on_order")]["observed"] == 1
    assert edges[("order_placed", "on_order")]["source_kind"] == "event"
    assert edges[("state_changed_orders", "watch_orders")]["source_kind"] == "state"
    assert edges[("state_changed_orders", "watch_orders")]["observed"] == 1
    woken = edges[("approve", "approval")]
    assert woken["registered"] is False
    assert woken["observed"] == 1
    assert flow["states"] == [
        {"name": "orders", "producers": ["on_order"], "consumers": ["watch_orders"]}
    ]


def add_invoking_workflows(client: Client) -> None:
    """``parent`` invokes ``quick`` (done in the same pass) and ``slow`` (paused once)."""

    @client.workflow()
    async def quick(c: RunContext) -> int:
        return 1

    @client.workflow()
    async def slow(c: RunContext) -> str:
        await c.pause_once()
        return "done"

    @client.workflow()
    async def parent(c: RunContext) -> str:
        await c.invoke(quick)
        await c.invoke(quick)
        return str(await c.invoke(slow))


async def test_traces_and_flow_show_parent_to_child_invocations(
    client: Client, http: httpx.AsyncClient
) -> None:
    add_invoking_workflows(client)
    started = next(r for r in await client.run("parent") if r.workflow_name == "parent")
    await client.run()

    traces = await get_json(http, "/api/traces")
    flow = await get_json(http, "/api/flow")

    executions = [x for trace in traces for x in trace["executions"]]
    assert {x["workflow_name"]: x["parent_run_id"] for x in executions} == {
        "parent": None,
        "quick": started.run_id,
        "slow": started.run_id,
    }
    assert flow["invocations"] == [
        {"parent": "parent", "child": "quick", "observed": 2},
        {"parent": "parent", "child": "slow", "observed": 1},
    ]
    # A child run is drawn from its parent's workflow, not from an event named "_invoke".
    assert [e for e in flow["edges"] if e["source"].startswith("_")] == []


async def test_flow_draws_no_event_source_for_an_answered_callback(
    client: Client, http: httpx.AsyncClient
) -> None:
    @client.workflow()
    async def approver(c: RunContext) -> Any:
        cb = await c.create_callback(name="approval", timeout=3600)
        await c.set_state("callback_id", cb.id)
        return await cb.result()

    await client.run("approver")
    await client.complete_callback(await client.get_state("callback_id"), "yes")
    await client.run()
    traces = await get_json(http, "/api/traces")
    assert any(x["triggered_by"].startswith("_cb:") for t in traces for x in t["executions"])

    flow = await get_json(http, "/api/flow")

    assert {(e["source"], e["workflow"]) for e in flow["edges"] if e["workflow"] == "approver"} == {
        ("approver", "approver")
    }


async def test_flow_finds_the_parent_of_a_child_whose_start_left_the_trace_log(
    client: Client, http: httpx.AsyncClient
) -> None:
    @client.workflow()
    async def two_steps(c: RunContext) -> None:
        await c.wait_event("step_one")
        await c.wait_event("step_two")

    @client.workflow()
    async def waiting_parent(c: RunContext) -> None:
        await c.invoke(two_steps)

    [started, _child] = await client.run("waiting_parent")
    for _ in range(500):  # the trace log keeps the most recent 500 passes
        await client.run("greet", {"name": "Ada"})
    await client.send_event("step_one", {})
    await client.run()  # the child runs again, with its parent_run_id; the parent does not
    traces = await get_json(http, "/api/traces")
    assert started.run_id not in {x["run_id"] for t in traces for x in t["executions"]}

    flow = await get_json(http, "/api/flow")

    assert flow["invocations"] == [
        {"parent": "waiting_parent", "child": "two_steps", "observed": 1}
    ]


async def test_status_reports_lock_next_wakeup_and_writes(
    client: Client, http: httpx.AsyncClient
) -> None:
    assert await get_json(http, "/api/status") == {
        "locked": False,
        "next_wakeup": None,
        "writes_enabled": True,
    }
    await client.run("sleep_long")

    status = await get_json(http, "/api/status")

    wakeup = await client.next_wakeup()
    assert wakeup is not None
    assert parse_time(status["next_wakeup"]) == wakeup


# ----------------------------------------------------------------- write endpoints


async def test_fire_trigger_runs_the_workflow_and_reports_results(
    client: Client, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/api/trigger", json={"name": "greet", "args": {"name": "Ada"}}, headers=AUTH
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["queued"] is False
    [result] = body["results"]
    assert result["workflow_name"] == "greet"
    assert result["status"] == "succeeded"
    assert result["logs"] == ["hello Ada"]
    assert result["triggered_by"] == "greet"
    [finished] = await client.run_history()
    assert finished.run_id == result["run_id"]


async def test_fire_trigger_reports_a_failed_run(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/trigger", json={"name": "boom"}, headers=AUTH)

    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["status"] == "failed"
    assert "boom" in result["error_message"]


async def test_fire_trigger_delivers_to_a_waiting_run(
    client: Client, http: httpx.AsyncClient
) -> None:
    [waiting] = await client.run("start_approval")

    response = await http.post(
        "/api/trigger", json={"name": "approve", "args": {"by": "ana"}}, headers=AUTH
    )

    assert response.status_code == 200
    [result] = response.json()["results"]
    assert (result["run_id"], result["status"]) == (waiting.run_id, "succeeded")
    assert result["logs"] == ["approved by ana"]


async def test_send_event_stores_it_and_runs_a_pass(
    client: Client, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/api/events", json={"name": "order_placed", "args": {"id": 3}}, headers=AUTH
    )

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert {r["workflow_name"] for r in results} == {"on_order", "watch_orders"}
    assert await client.get_state("orders") == 1


async def test_send_event_without_a_pass_is_queued_for_the_next_one(
    client: Client, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/api/events", json={"name": "order_placed", "args": {"id": 3}, "run": False}, headers=AUTH
    )

    assert response.status_code == 202
    assert response.json()["queued"] is True
    assert await client.get_state("orders") is None
    await client.run()
    assert await client.get_state("orders") == 1


async def test_resume_runs_a_plain_pass(client: Client, http: httpx.AsyncClient) -> None:
    [paused] = await client.run("nap")

    response = await http.post("/api/resume", headers=AUTH)

    assert response.status_code == 200
    [result] = response.json()["results"]
    assert (result["run_id"], result["status"]) == (paused.run_id, "succeeded")
    assert result["triggered_by"] == "_resume"
    assert await client.paused_runs() == []


# ------------------------------------------------------------------ authentication


async def assert_nothing_changed(client: Client) -> None:
    assert await client.run_history() == []
    assert await client.event_log() == []
    assert await client.paused_runs() == []
    assert await client.get_state("orders") is None


@pytest.mark.parametrize(("path", "body"), WRITES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
    ids=["missing", "wrong", "longer", "basic", "no-scheme"],
)
async def test_write_without_the_token_is_401_and_changes_nothing(
    client: Client,
    http: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    response = await http.post(path, json=body, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]
    await assert_nothing_changed(client)


@pytest.mark.parametrize(("path", "body"), WRITES)
async def test_writes_are_disabled_without_a_configured_token(
    client: Client, path: str, body: dict[str, Any]
) -> None:
    transport = httpx.ASGITransport(app=create_app(client))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.post(path, json=body, headers=AUTH)
        status = await get_json(http, "/api/status")

    assert response.status_code == 403
    assert "disabled" in response.json()["detail"]
    assert "--token" in response.json()["detail"]
    assert status["writes_enabled"] is False
    await assert_nothing_changed(client)


@pytest.mark.parametrize("content", [b"{not json", b'{"args": 1}'], ids=["broken", "no-name"])
@pytest.mark.parametrize("token", [TOKEN, None], ids=["configured", "disabled"])
async def test_the_token_is_checked_before_the_body(
    client: Client, content: bytes, token: str | None
) -> None:
    transport = httpx.ASGITransport(app=create_app(client, token=token))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.post(
            "/api/trigger", content=content, headers={"Content-Type": "application/json"}
        )

    assert response.status_code == (401 if token else 403)
    assert isinstance(response.json()["detail"], str)


async def test_an_empty_token_disables_writes(client: Client) -> None:
    transport = httpx.ASGITransport(app=create_app(client, token=""))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.post("/api/resume", headers={"Authorization": "Bearer "})
        status = await get_json(http, "/api/status")
    assert response.status_code == 403
    assert status["writes_enabled"] is False


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/api/trigger", b'{"name": "greet", "args": {"name": '),
        ("/api/trigger", b"not json"),
        ("/api/trigger", b'{"args": {}}'),
        ("/api/trigger", b'{"name": ""}'),
        ("/api/trigger", b'{"name": "greet", "args": {}, "extra": 1}'),
        ("/api/trigger", b'["greet"]'),
        ("/api/events", b'{"name": "order_placed", "args": {"id": 1'),
        ("/api/events", b'{"name": 5}'),
        ("/api/events", b'{"name": "order_placed", "run": "sometimes"}'),
    ],
)
async def test_malformed_bodies_are_422_with_the_reason(
    client: Client, http: httpx.AsyncClient, path: str, content: bytes
) -> None:
    response = await http.post(
        path, content=content, headers={**AUTH, "Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"]
    await assert_nothing_changed(client)


@pytest.mark.parametrize("path", ["/api/trigger", "/api/events"])
async def test_args_that_are_not_strict_json_are_400(
    client: Client, http: httpx.AsyncClient, path: str
) -> None:
    name = "greet" if path == "/api/trigger" else "order_placed"
    content = b'{"name": "%s", "args": {"value": NaN}}' % name.encode()

    response = await http.post(
        path, content=content, headers={**AUTH, "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["detail"]
    await assert_nothing_changed(client)


async def test_an_unknown_trigger_is_404_with_the_message(
    client: Client, http: httpx.AsyncClient
) -> None:
    response = await http.post("/api/trigger", json={"name": "no_such_trigger"}, headers=AUTH)

    assert response.status_code == 404
    assert "no_such_trigger" in response.json()["detail"]
    await assert_nothing_changed(client)


async def test_reserved_event_names_are_refused(client: Client, http: httpx.AsyncClient) -> None:
    response = await http.post("/api/events", json={"name": "_every"}, headers=AUTH)

    assert response.status_code == 400
    assert "reserved" in response.json()["detail"]
    await assert_nothing_changed(client)


async def test_a_workflow_rejecting_its_args_fails_alone(
    client: Client, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/api/trigger", json={"name": "ship", "args": {"weight": "heavy"}}, headers=AUTH
    )
    shipped = await http.post(
        "/api/trigger", json={"name": "ship", "args": {"weight": 2}}, headers=AUTH
    )

    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["status"] == "failed"
    assert "weight" in result["error_message"]
    [result] = shipped.json()["results"]
    assert result["logs"] == ["shipping 2.0 kg"]


# ------------------------------------------------------------------------- the lock


async def test_a_held_lock_queues_triggers_and_events_and_refuses_resume(
    tmp_path: Path,
) -> None:
    spec = f"local:{tmp_path / 'state.json'}"
    gate = Gate()
    holder = make_client(spec, gate)
    client = make_client(spec)
    transport = httpx.ASGITransport(app=create_app(client, token=TOKEN))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(holder.run, "hold")
        await gate.holding.wait()

        status = await get_json(http, "/api/status")
        fired = await http.post(
            "/api/trigger", json={"name": "greet", "args": {"name": "Ada"}}, headers=AUTH
        )
        sent = await http.post(
            "/api/events", json={"name": "order_placed", "args": {"id": 1}}, headers=AUTH
        )
        resumed = await http.post("/api/resume", headers=AUTH)
        gate.release.set()

    assert status["locked"] is True
    assert fired.status_code == 202
    assert fired.json() == {"queued": True, "message": fired.json()["message"], "results": []}
    assert fired.json()["message"]
    assert sent.status_code == 202
    assert sent.json()["queued"] is True
    assert resumed.status_code == 409
    assert resumed.json()["queued"] is False
    assert resumed.json()["detail"]

    await client.run()
    names = [r.workflow_name for r in await client.run_history()]
    assert names.count("greet") == 1
    assert names.count("on_order") == 1
    assert await client.get_state("orders") == 1


async def test_a_store_the_engine_cannot_read_is_503_and_left_alone(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_bytes(b"this is not a ttflow-async store")
    client = make_client(f"local:{state_file}")
    transport = httpx.ASGITransport(app=create_app(client, token=TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        read = await http.get("/api/runs/history")
        fired = await http.post("/api/trigger", json={"name": "greet"}, headers=AUTH)

    assert read.status_code == 503
    assert read.json()["detail"]
    assert fired.status_code == 503
    assert state_file.read_bytes() == b"this is not a ttflow-async store"


# ---------------------------------------------------------------- page and headers


async def test_the_page_and_its_assets_are_served_with_a_strict_policy(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/")
    scripts = [await http.get(f"/static/{name}.js") for name in ("dashboard", "charts", "dom")]
    style = await http.get("/static/dashboard.css")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/dashboard.js"></script>' in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert [script.status_code for script in scripts] == [200, 200, 200]
    assert all(s.headers["content-type"].startswith("text/javascript") for s in scripts)
    assert style.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for script in scripts:
        for markup_api in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert markup_api not in script.text


async def test_api_answers_are_not_cached(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/workflows")

    assert response.headers["cache-control"] == "no-store"
    assert "content-security-policy" in response.headers


async def test_openapi_schema_documents_every_endpoint(http: httpx.AsyncClient) -> None:
    schema = await get_json(http, "/api/openapi.json")

    assert set(schema["paths"]) == {
        "/api/workflows",
        "/api/runs/suspended",
        "/api/runs/history",
        "/api/runs/{run_id}/logs",
        "/api/events",
        "/api/traces",
        "/api/flow",
        "/api/status",
        "/api/trigger",
        "/api/resume",
        "/api/runs/{run_id}/cancel",
        "/api/callbacks/{callback_id}/complete",
        "/api/callbacks/{callback_id}/fail",
    }
    trigger = schema["paths"]["/api/trigger"]["post"]
    assert trigger["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PassOut"
    }
    assert {"200", "202", "401", "403", "404", "422"} <= set(trigger["responses"])
    assert trigger["security"] == [{"HTTPBearer": []}]
    assert "get" not in schema["paths"]["/api/trigger"]
    assert (await http.get("/docs")).status_code == 404


async def test_the_lifespan_opens_the_client_for_the_app(app: FastAPI) -> None:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            fired = await http.post(
                "/api/trigger", json={"name": "greet", "args": {"name": "Ada"}}, headers=AUTH
            )
            history = await get_json(http, "/api/runs/history")

    assert fired.status_code == 200
    assert [r["workflow_name"] for r in history] == ["greet"]


# ------------------------------------------------------------------ serve and hosts


def captured_serve(
    monkeypatch: pytest.MonkeyPatch, client: Client, **options: Any
) -> dict[str, Any]:
    captured: dict[str, Any] = {}

    def fake_run(app: FastAPI, **kwargs: Any) -> None:
        captured.update(kwargs, app=app)

    monkeypatch.setattr("ttflow_async.web._serve.uvicorn.run", fake_run)
    serve(client, **options)
    return captured


async def test_serve_binds_loopback_by_default_and_answers_only_loopback_hosts(
    monkeypatch: pytest.MonkeyPatch, client: Client
) -> None:
    captured = captured_serve(monkeypatch, client, token=TOKEN)

    assert (captured["host"], captured["port"]) == ("127.0.0.1", 8000)
    transport = httpx.ASGITransport(app=captured["app"])
    async with httpx.AsyncClient(transport=transport) as http:
        for host in ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"]:
            ok = await http.get("http://127.0.0.1/api/status", headers={"Host": host})
            assert ok.status_code == 200, host
        rebound = await http.get(
            "http://127.0.0.1/api/status", headers={"Host": "evil.example:8000"}
        )
    assert rebound.status_code == 400


async def test_serve_on_another_address_answers_any_host(
    monkeypatch: pytest.MonkeyPatch, client: Client
) -> None:
    captured = captured_serve(monkeypatch, client, host="0.0.0.0", port=9000)

    assert (captured["host"], captured["port"]) == ("0.0.0.0", 9000)
    transport = httpx.ASGITransport(app=captured["app"])
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.get(
            "http://127.0.0.1/api/status", headers={"Host": "dashboard.example"}
        )
    assert response.status_code == 200
    assert response.json()["writes_enabled"] is False


async def test_serve_with_an_empty_token_keeps_writes_disabled(
    monkeypatch: pytest.MonkeyPatch, client: Client
) -> None:
    captured = captured_serve(monkeypatch, client, token="")

    transport = httpx.ASGITransport(app=captured["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.post("/api/resume", headers={"Authorization": "Bearer "})
    assert response.status_code == 403


# ----------------------------------------------------------------------- the example


@pytest.fixture
def dashboard_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("TTFLOW_ASYNC_EXAMPLES_DIR", str(tmp_path))
    path = Path(__file__).resolve().parent.parent / "examples" / "dashboard.py"
    spec = importlib.util.spec_from_file_location("dashboard_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_example_seeds_its_store_once(dashboard_example: ModuleType) -> None:
    await dashboard_example.seed()
    await dashboard_example.seed()
    app = create_app(dashboard_example.client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        history = await get_json(http, "/api/runs/history")
        suspended = await get_json(http, "/api/runs/suspended")
        flow = await get_json(http, "/api/flow")

    statuses = {(r["workflow_name"], r["status"]) for r in history}
    assert ("greet", "succeeded") in statuses
    assert ("import_prices", "failed") in statuses
    assert [r["workflow_name"] for r in history].count("greet") == 1
    assert {r["waiting_for"]["kind"] for r in suspended} == {"event", "timer"}
    assert {"name": "revenue", "producers": ["take_order"], "consumers": ["watch_revenue"]} in (
        flow["states"]
    )


def test_the_example_serves_on_loopback_by_default(
    dashboard_example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, Any] = {}

    async def no_seed() -> None:
        return None

    def fake_serve(client: Client, **options: Any) -> None:
        served.update(options, client=client)

    monkeypatch.setattr(dashboard_example, "seed", no_seed)
    monkeypatch.setattr(dashboard_example, "serve", fake_serve)
    monkeypatch.setenv("TTFLOW_ASYNC_DASHBOARD_TOKEN", "from-env")
    monkeypatch.setattr(sys, "argv", ["dashboard.py", "--port", "8123"])

    dashboard_example.main()

    assert served == {
        "client": dashboard_example.client,
        "host": "127.0.0.1",
        "port": 8123,
        "token": "from-env",
    }


# --------------------------------------------------------------------- optionality


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )


def test_importing_the_package_does_not_import_fastapi() -> None:
    result = run_python(
        "import sys, ttflow_async; print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette')"
        " if m in sys.modules))"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_importing_the_dashboard_without_fastapi_names_the_extra() -> None:
    result = run_python("import sys; sys.modules['fastapi'] = None; import ttflow_async.web")

    assert result.returncode != 0
    assert "pip install 'ttflow-async[web]'" in result.stderr


# ---------------------------------------------------------------- property: no 500


def json_values() -> Any:
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    )


def from_schema(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A hypothesis strategy for (mostly) valid instances of an OpenAPI schema."""
    from hypothesis import strategies as st

    if "$ref" in schema:
        return from_schema(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, components) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, components) for k, v in properties.items() if k in required},
            optional={
                k: from_schema(v, components) for k, v in properties.items() if k not in required
            },
        )
    if kind == "string":
        return st.text(
            min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 30), 30)
        )
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), components), max_size=3)
    return json_values()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


Request = tuple[str, str, str, dict[str, str], bytes | None]


def request_strategy(schema: dict[str, Any]) -> Any:
    """Requests to the operations of ``schema``: (method, template, url, headers, body)."""
    from hypothesis import strategies as st

    components = schema["components"]["schemas"]
    names = st.sampled_from(
        ["greet", "approve", "nap", "boom", "order_placed", "_every", "start_approval"]
    ) | st.text(max_size=20)

    @st.composite
    def build(draw: Callable[..., Any]) -> Request:
        method, template, operation = draw(st.sampled_from(operations(schema)))
        path = template
        query: dict[str, str] = {}
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                value = draw(st.sampled_from(["no-such-run"]) | st.text(min_size=1, max_size=20))
                path = path.replace("{" + parameter["name"] + "}", quote(value, safe=""))
            elif draw(st.booleans()):
                value = draw(from_schema(parameter["schema"], components) | st.text(max_size=5))
                query[parameter["name"]] = str(value)
        content: bytes | None = None
        if "requestBody" in operation:
            body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
            valid = st.fixed_dictionaries({"name": names, "args": json_values()})
            body = draw(valid | from_schema(body_schema, components) | json_values())
            content = draw(st.just(json.dumps(body).encode()) | st.binary(max_size=30))
        headers = draw(st.sampled_from([AUTH, {}, {"Authorization": "Bearer nope"}]))
        url = str(httpx.URL(path, params=query))
        return method, template, url, headers, content

    return build()


def response_models(app: FastAPI) -> dict[tuple[str, str], Any]:
    return {
        (method, route.path): route.response_model
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


async def send_and_check(client: Client, app: FastAPI, requests: list[Request]) -> None:
    models = response_models(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        for request in requests:
            method, template, url, headers, content = request
            before = (await client.run_history(), await client.event_log())
            response = await http.request(
                method,
                url,
                headers={**headers, "Content-Type": "application/json"},
                content=content,
            )
            assert response.status_code < 500, (request, response.text)
            assert response.headers["content-type"].startswith("application/json")
            body = response.json()
            if response.status_code >= 400:
                assert body["detail"], (request, body)
                after = (await client.run_history(), await client.event_log())
                assert after == before, (request, response.text)
            else:
                TypeAdapter(models[(method, template)]).validate_python(body)


@pytest.mark.slow
def test_no_request_drawn_from_the_openapi_schema_gets_a_server_error() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    schema = create_app(make_client(), token=TOKEN).openapi()

    @settings(max_examples=scale(40, 200), deadline=None, database=None)
    @given(requests=st.lists(request_strategy(schema), min_size=1, max_size=4))
    def check(requests: list[Request]) -> None:
        client = make_client()
        anyio.run(send_and_check, client, create_app(client, token=TOKEN), requests)

    check()
