"""Inspection, administration and retention (SPEC §4 retention, §5)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import ttflow_async
from tests.conftest import MakeClient
from ttflow_async import (
    Client,
    RunContext,
    UnknownRepositoryError,
    event_trigger,
    every_trigger,
    setup,
)
from ttflow_async._stores._memory import MemoryStore
from ttflow_async._view import read_view


@pytest.mark.all_stores
async def test_traces_record_every_pass_that_did_something(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.set_state("x", 1)
        await c.pause_once()

    (first,) = await client.run("wf")
    await client.run()
    await client.run()
    traces = await client.traces()
    # The third pass had nothing to do: it records no trace (SPEC §9).
    assert [t.trigger_name for t in traces] == ["wf", None]
    assert [[(x.run_id, x.status, x.triggered_by) for x in t.executions] for t in traces] == [
        [(first.run_id, "paused", "wf")],
        [(first.run_id, "succeeded", "_resume")],
    ]
    assert traces[0].executions[0].state_changes[0].name == "x"
    assert len({t.trace_id for t in traces}) == 2
    assert all(t.timestamp.tzinfo is not None for t in traces)


WRITE_METHODS = ("write_root", "put_blobs", "delete_blobs", "inbox_put", "inbox_delete")


@pytest.mark.all_stores
async def test_an_idle_pass_writes_nothing_to_the_store(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No lease is taken and released, no trace kept: the store is only read (issue 14).
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext) -> None:
        await c.pause_once()

    await client.run("wf")
    await client.run()  # resumes and finishes it
    writes: list[str] = []
    for name in WRITE_METHODS:
        method = getattr(client.store, name)

        async def counted(*args: Any, _name: str = name, _method: Any = method, **kw: Any) -> Any:
            writes.append(_name)
            return await _method(*args, **kw)

        monkeypatch.setattr(client.store, name, counted)
    root_before = await client.store.read_root()
    assert await client.run() == []
    assert await client.run() == []
    assert writes == []
    assert await client.store.read_root() == root_before
    await client.send_event("nobody_listens")
    assert await client.run() == []  # delivering an event is work: it is logged
    assert "write_root" in writes


@pytest.mark.all_stores
async def test_client_set_state_takes_the_lock_and_emits_nothing(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow(trigger=event_trigger("state_changed_mode"))
    async def on_mode(c: RunContext) -> None:
        await c.log("changed")

    await client.set_state("mode", {"level": 2})
    assert await client.get_state("mode") == {"level": 2}
    results = await client.run()
    assert [r.workflow_name for r in results] == []
    assert "state_changed_mode" not in [e.event_name for e in await client.event_log()]
    assert not await client.is_locked()


@pytest.mark.all_stores
async def test_clear_state_empties_the_store(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow(trigger=event_trigger("workflows_changed"))
    async def on_change(c: RunContext) -> None:
        await c.set_state("seen", True)

    @client.workflow()
    async def waiter(c: RunContext) -> None:
        await c.wait_event("never")

    await client.run("waiter")
    await client.send_event("pending")
    assert await client.paused_runs() != []
    await client.clear_state()
    assert await client.get_state("seen") is None
    assert await client.paused_runs() == []
    assert await client.run_history() == []
    assert await client.traces() == []
    assert not await client.is_locked()
    assert [r.workflow_name for r in await client.run()] == ["on_change"]
    assert await client.store.list_blobs() != []
    assert [e.event_name for e in await client.event_log()] == [
        "workflows_changed",
        "state_changed_seen",
    ]  # the event sent before clear_state() was deleted with everything else


async def test_idle_store_answers_empty(make_client: MakeClient) -> None:
    client = make_client()
    await client.ensure_store()
    assert await client.paused_runs() == []
    assert await client.run_history() == []
    assert await client.event_log() == []
    assert await client.traces() == []
    assert await client.next_wakeup() is None
    assert not await client.is_locked()
    assert await client.get_state("anything", 7) == 7


async def test_finished_runs_leave_no_journal_behind(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext, args: int) -> None:
        await c.log(f"step {args}")
        await c.pause_once()

    for i in range(3):
        await client.run("wf", i)
        await client.run()
    settled = len(await client.store.list_blobs())
    for i in range(10):
        await client.run("wf", i)
        await client.run()
    assert len(await client.store.list_blobs()) <= settled + 1
    assert await client.paused_runs() == []


@pytest.fixture
def fast_client() -> MakeClient:
    store = MemoryStore()
    return lambda **options: setup(store, **options)


async def test_history_and_event_log_are_capped(fast_client: MakeClient) -> None:
    client = fast_client()

    @client.workflow()
    async def fan_out(c: RunContext, args: int) -> None:
        for i in range(args):
            await c.event("item", i)

    @client.workflow(trigger=event_trigger("item"))
    async def item(c: RunContext, args: int) -> None:
        await c.log(f"item {args}")

    await client.run("fan_out", 700)
    (first_item_run,) = [h for h in await client.run_history() if h.workflow_name == "item"][:1]
    assert await client.run_logs(first_item_run.run_id) == ["item 0"]
    await client.run("fan_out", 700)
    history = await client.run_history()
    assert len(history) == 1000
    assert history[-1].workflow_name == "item"
    assert await client.run_logs(first_item_run.run_id) == []  # its log left with it
    events = await client.event_log()
    assert len(events) == 1000
    assert events[-1].args == 699
    blobs_before = len(await client.store.list_blobs())
    await client.run("fan_out", 700)
    assert len(await client.store.list_blobs()) <= blobs_before + 2


async def test_traces_are_capped(fast_client: MakeClient) -> None:
    client = fast_client()

    @client.workflow(trigger=every_trigger())
    async def tick(c: RunContext) -> None:
        await c.log("tick")

    for _ in range(520):
        await client.run()
    traces = await client.traces()
    assert len(traces) == 500
    assert traces[0].timestamp <= traces[-1].timestamp


def test_public_names_are_pinned() -> None:
    assert sorted(ttflow_async.__all__) == [
        "BatchItem",
        "BatchResult",
        "BlobNotFound",
        "Callback",
        "CallbackFailed",
        "CallbackTimeout",
        "CheckResult",
        "ChildWorkflowError",
        "Client",
        "CompletionConfig",
        "ContextData",
        "CorruptStateError",
        "EventLogEntry",
        "EventWaitTimeout",
        "InvalidStateError",
        "LockInfo",
        "NondeterminismError",
        "PausedRun",
        "RetryPolicy",
        "RootConflict",
        "RunContext",
        "RunHistoryEntry",
        "RunInfo",
        "SideeffectError",
        "SideeffectInterrupted",
        "SideeffectUsageError",
        "StateAppend",
        "StateChange",
        "StateLockedError",
        "Store",
        "StoreError",
        "Trace",
        "TraceExecution",
        "Trigger",
        "TriggerInfo",
        "TtflowError",
        "UnknownCallbackError",
        "UnknownRepositoryError",
        "UnknownRunError",
        "UnknownTriggerError",
        "WorkflowDefinitionError",
        "WorkflowDirectCallError",
        "WorkflowInfo",
        "WorkflowRunResult",
        "WorkflowTimeoutError",
        "event_trigger",
        "every_trigger",
        "setup",
        "state_trigger",
    ]
    for name in ttflow_async.__all__:
        error = getattr(ttflow_async, name)
        if isinstance(error, type) and issubclass(error, Exception):
            assert issubclass(error, ttflow_async.TtflowError)


def test_import_pulls_in_no_optional_dependency() -> None:
    code = (
        "import sys, ttflow_async; "
        "print(sorted(m for m in ('typer', 'aioboto3', 'botocore', 'fastapi', 'rich') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "spec", ["", "local", "local:", "memory", "s3:", "s3:/prefix", "redis:foo", "dynamodb:"]
)
def test_unknown_store_spec(spec: str) -> None:
    with pytest.raises(UnknownRepositoryError, match="onmemory"):
        setup(spec)


def test_setup_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="lease_seconds"):
        setup("onmemory", lease_second=5)


def test_setup_accepts_a_store_object_and_rejects_others() -> None:
    store = MemoryStore()
    assert setup(store).store is store
    with pytest.raises(UnknownRepositoryError, match="store protocol"):
        setup(object())  # type: ignore[arg-type]


def test_default_store_is_the_local_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert setup().store.description == "local:state.json"


async def _unreferenced_blobs(client: Client) -> set[str]:
    view = await read_view(client.store)
    return set(await client.store.list_blobs()) - await view.referenced_blobs()


@pytest.mark.all_stores
async def test_entered_client_cleans_up_by_the_next_call_or_exit(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def wf(c: RunContext, args: int) -> None:
        await c.log(f"step {args}")
        await c.pause_once()

    async with client:
        for i in range(3):
            await client.run("wf", i)
            await client.run()
        # Garbage of the last pass is deleted later, alongside the next call or at exit.
        assert await _unreferenced_blobs(client) != set()
    assert await _unreferenced_blobs(client) == set()
    await client.run("wf", 3)
    assert await _unreferenced_blobs(client) == set()
    assert len(await client.paused_runs()) == 1
