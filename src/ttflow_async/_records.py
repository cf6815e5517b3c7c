"""Records returned to users: run results and the inspection API (pydantic models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

RunStatus = Literal["succeeded", "failed", "paused", "blocked", "cancelled"]
FinishedStatus = Literal["succeeded", "failed", "cancelled"]


def to_datetime(epoch: float) -> datetime:
    """A timezone-aware UTC datetime from epoch seconds."""
    return datetime.fromtimestamp(epoch, tz=UTC)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class WorkflowRunResult(_Record):
    """The outcome of one run within one ``run()`` call."""

    workflow_name: str
    run_id: str
    status: RunStatus
    error_message: str | None = None
    error_traceback: str | None = None
    result: Any = None
    logs: list[str]
    triggered_by: str
    parent_run_id: str | None = None


class ContextData(_Record):
    """Identity of the current run (``RunContext.get_context_data()``)."""

    run_id: str
    workflow_name: str


class TriggerInfo(_Record):
    """A registered workflow's trigger: ``kind`` and ``name``."""

    kind: Literal["trigger", "event", "every", "state"]
    name: str


class WorkflowInfo(_Record):
    """A registered workflow (``client.workflows``)."""

    name: str
    description: str | None
    trigger: TriggerInfo


class PausedRun(_Record):
    """A suspended run and what it waits for.

    ``waiting_for["kind"]`` is ``"next_run"``, ``"event"`` (with ``"name"``, and
    ``"timeout_at"`` when the wait has a timeout), ``"timer"`` (with ``"due"``, and
    ``"name"`` or ``"retry"``), ``"callback"`` (``"callback_id"``, ``"name"``,
    ``"due"``), ``"child"`` (``"run_id"``), ``"batch"`` (``"name"``, ``"waiting"``) or
    ``"blocked"`` (with ``"error_message"``).
    """

    workflow_name: str
    run_id: str
    since: datetime
    waiting_for: dict[str, Any]
    parent_run_id: str | None = None


class RunHistoryEntry(_Record):
    """A finished run: its result, or the error that failed it (or the cancel reason)."""

    workflow_name: str
    run_id: str
    timestamp: datetime
    status: FinishedStatus
    result: Any = None
    error_message: str | None = None
    error_traceback: str | None = None
    parent_run_id: str | None = None


class RunInfo(_Record):
    """One run, suspended or in the history (``client.get_run()``)."""

    run_id: str
    workflow_name: str
    status: RunStatus
    result: Any = None
    error_message: str | None = None
    error_traceback: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    waiting_for: dict[str, Any] | None = None
    parent_run_id: str | None = None


class LockInfo(_Record):
    """Who holds the store's lease and until when (``client.lock_info()``)."""

    owner: str
    expires_at: datetime


class CheckResult(_Record):
    """The dry replay of one suspended or blocked run against the loaded code."""

    run_id: str
    workflow_name: str
    ok: bool
    problem: str | None = None


class EventLogEntry(_Record):
    """A delivered event (user events, ``state_changed_*``, ``workflows_changed``)."""

    event_name: str
    args: Any
    timestamp: datetime


class StateChange(_Record):
    """One state change made by a run."""

    name: str
    old: Any
    new: Any


class StateAppend(_Record):
    """Items a run appended to a list state with ``add_list_state`` (in order).

    Consecutive appends of one run to one state are recorded once, with every item
    appended, instead of the whole list before and after each append.
    """

    name: str
    values: list[Any]
    max_length: int | None = None


class TraceExecution(_Record):
    """One run executed within a traced ``run()``."""

    workflow_name: str
    run_id: str
    status: RunStatus
    triggered_by: str
    state_changes: list[StateChange]
    """Changes made with ``set_state`` and ``update_state``: the old and the new value."""
    state_appends: list[StateAppend] = []
    """Items appended with ``add_list_state`` (not whole lists)."""
    operations: list[str] = []
    """The named operations (side effects, waits, sleeps, batches) this run reached in
    this pass, e.g. ``side effect 'charge'`` or ``sleep 'trial period'``."""
    parent_run_id: str | None = None
    """The run that started this one with ``c.invoke(...)``; ``None`` for a top-level run."""


class Trace(_Record):
    """The execution trace of one ``run()``."""

    trace_id: str
    timestamp: datetime
    trigger_name: str | None
    executions: list[TraceExecution]
