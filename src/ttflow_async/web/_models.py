"""The dashboard's HTTP schema: request bodies and response models.

These models are the dashboard's own contract (they feed the OpenAPI schema). They
are built from the public inspection records of the client, field by field, so that
nothing the store keeps internally (blob ids, journals, leases) can leak through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._records import (
    EventLogEntry,
    RunHistoryEntry,
    RunStatus,
    TriggerInfo,
    WorkflowInfo,
    WorkflowRunResult,
)
from .._triggers import TriggerKind as TriggerKind

# The public records are the dashboard's answers too: one declaration each.
TriggerOut = TriggerInfo
WorkflowOut = WorkflowInfo
HistoryEntryOut = RunHistoryEntry
EventLogEntryOut = EventLogEntry
RunResultOut = WorkflowRunResult
WaitKind = Literal["next_run", "event", "timer", "blocked", "callback", "child", "batch"]

NAME_MAX_LENGTH = 512


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class WaitingForOut(_Out):
    """What a suspended run waits for."""

    kind: WaitKind
    name: str | None = Field(
        default=None, description="the awaited event or trigger, or the callback's name"
    )
    due: datetime | None = Field(
        default=None, description="when a durable timer falls due or a callback times out"
    )
    timeout_at: datetime | None = Field(default=None, description="when an event wait times out")
    error_message: str | None = Field(default=None, description="why a blocked run is blocked")
    callback_id: str | None = Field(
        default=None, description="the awaited callback (complete or fail it by this id)"
    )
    run_id: str | None = Field(default=None, description="the awaited child run")


class SuspendedRunOut(_Out):
    """A suspended run: paused, waiting for an event, sleeping, or blocked."""

    workflow_name: str
    run_id: str
    since: datetime
    waiting_for: WaitingForOut
    parent_run_id: str | None = Field(default=None, description="the run that started it")


class RunLogsOut(_Out):
    """A run's log lines (empty for a run id the store does not know)."""

    run_id: str
    lines: list[str]


class StateChangeOut(_Out):
    """One state change made by a run."""

    name: str
    old: Any
    new: Any


class TraceExecutionOut(_Out):
    """One run executed within a traced pass."""

    workflow_name: str
    run_id: str
    status: RunStatus
    triggered_by: str
    state_changes: list[StateChangeOut]
    parent_run_id: str | None = Field(
        default=None, description="the run that started this one with c.invoke(...)"
    )


class TraceOut(_Out):
    """The execution trace of one pass (``run()``)."""

    trace_id: str
    timestamp: datetime
    trigger_name: str | None
    executions: list[TraceExecutionOut]


class FlowEdgeOut(_Out):
    """A trigger or event that starts or wakes a workflow."""

    source: str = Field(description="the trigger or event name")
    source_kind: TriggerKind = Field(description="trigger, event, every or state")
    workflow: str
    registered: bool = Field(description="declared by the workflow's trigger")
    observed: int = Field(ge=0, description="how many traced runs it started or woke")


class InvocationEdgeOut(_Out):
    """A workflow seen starting another as a child run (``c.invoke(...)``)."""

    parent: str = Field(description="the invoking (parent) run's workflow")
    child: str = Field(description="the invoked (child) run's workflow")
    observed: int = Field(ge=1, description="how many traced child runs it started")


class StateFlowOut(_Out):
    """Who writes a state (seen in traces) and who is started by its changes."""

    name: str
    producers: list[str] = Field(description="workflows seen changing the state")
    consumers: list[str] = Field(description="workflows started by its changes")


class FlowOut(_Out):
    """The event → workflow flow, derived from registrations and traces."""

    edges: list[FlowEdgeOut]
    states: list[StateFlowOut]
    invocations: list[InvocationEdgeOut] = Field(
        description="parent workflow → child workflow, seen in traces"
    )


class StatusOut(_Out):
    """The store's lock, the next wakeup, and whether write actions are enabled."""

    locked: bool = Field(description="whether a runner holds a live lease")
    next_wakeup: datetime | None = Field(description="the earliest timer or wait timeout")
    writes_enabled: bool = Field(description="whether the dashboard was given a token")


class PassOut(_Out):
    """The outcome of a write action: the runs of the pass, or that it was queued."""

    queued: bool = Field(description="stored durably for a later pass (the lock was held)")
    message: str | None = Field(default=None, description="why it was queued")
    results: list[RunResultOut] = Field(description="one result per run that executed")


class CancelledOut(_Out):
    """A run ended by ``cancel``."""

    run_id: str


class ErrorOut(_Out):
    """An error answer."""

    detail: str


class LockedOut(_Out):
    """The answer when the store is locked and nothing was queued."""

    detail: str
    queued: bool


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TriggerIn(_In):
    """Fire a trigger: ``client.run(name, args)``."""

    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH, description="the trigger name")
    args: Any = Field(default=None, description="JSON arguments for the workflow")


class EventIn(_In):
    """Send an event: ``client.send_event(name, args)``, then optionally a pass."""

    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH, description="the event name")
    args: Any = Field(default=None, description="the event's JSON arguments")
    run: bool = Field(default=True, description="run a pass right after sending")


class CancelIn(_In):
    """Cancel a run, optionally saying why."""

    reason: str | None = Field(
        default=None, min_length=1, max_length=16_000, description="kept as its error message"
    )


class CallbackResultIn(_In):
    """Complete a callback."""

    result: Any = Field(default=None, description="the callback's JSON result")


class CallbackErrorIn(_In):
    """Fail a callback."""

    error: str = Field(min_length=1, max_length=16_000, description="why it failed")
