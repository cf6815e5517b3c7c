"""Child workflows and callbacks: the context side (``c.invoke``, ``c.create_callback``).

Both are waits on an entry of the head's callbacks map (see ``docs/architecture.md``):
a callback id, or ``child:<run id>`` for a child run. The pass keeps the map up to date
(completions, heartbeats, a child's end) and wakes the waiting run with the engine event
``_cb:<id>`` or ``_child:<run id>``; the run then reads the map and journals the outcome,
so a completion delivered before the await is kept, and two wakes in one wave are never
lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import _json
from ._errors import (
    CallbackFailed,
    CallbackTimeout,
    ChildWorkflowError,
    InvalidStateError,
    WorkflowDefinitionError,
)
from ._ids import random_uuid
from ._journal import Suspend

if TYPE_CHECKING:
    from ._context import RunContext, RunState

__all__ = ["Callback", "CompositionMixin", "callback_due", "child_key"]


def child_key(run_id: str) -> str:
    """The key of a child run's entry in the callbacks map."""
    return f"child:{run_id}"


def callback_due(entry: dict[str, Any]) -> float | None:
    """When an open callback times out: its overall timeout or its next missed heartbeat."""
    dues = []
    if entry.get("to") is not None:
        dues.append(float(entry["c"]) + float(entry["to"]))
    if entry.get("hto") is not None:
        dues.append(float(entry.get("hb") or entry["c"]) + float(entry["hto"]))
    return min(dues) if dues else None


def _seconds(value: float | timedelta | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidStateError(f"{what} takes seconds > 0 or a timedelta, got {value!r}")
    return float(value)


class Callback:
    """A callback created by ``c.create_callback()``: hand ``id`` to an external system,
    then ``await cb.result()``."""

    def __init__(self, context: CompositionMixin, callback_id: str, name: str | None) -> None:
        self._context = context
        self._id = callback_id
        self._name = name

    @property
    def id(self) -> str:
        """The callback id (stable across replays)."""
        return self._id

    @property
    def name(self) -> str | None:
        """The name given at creation."""
        return self._name

    async def result(self) -> Any:
        """Suspend until the callback is completed; return its result.

        Raises CallbackFailed (``fail_callback``) or CallbackTimeout (timeout or missed
        heartbeat).
        """
        return await self._context._callback_result(self._id, self._name)


class CompositionMixin:
    """``invoke``, ``create_callback`` and ``wait_for_callback`` for :class:`RunContext`."""

    if TYPE_CHECKING:
        _host: Any
        _run: RunState

        def _next(self, kind: str, name: str | None) -> tuple[Any, list[Any] | None]: ...
        def _suspend(self, waiting: dict[str, Any]) -> Suspend: ...
        def _call_sideeffect(
            self, definition: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Awaitable[Any]: ...

    async def _entry_of(self, key: str) -> dict[str, Any] | None:
        read = getattr(self._host, "callback_entry", None)
        if read is None:  # a host without callbacks (the dry replay of check())
            return None
        entry: dict[str, Any] | None = await read(key)
        return entry

    def _consume_wake(self, event: str) -> None:
        wake = self._run.wake
        if wake is not None and wake.get("name") == event:
            self._run.wake = None

    # -- child workflows ----------------------------------------------------------------

    async def invoke(self, workflow: Any, args: Any = None, *, name: str | None = None) -> Any:
        """Start ``workflow`` (a name or a decorated workflow) as a child run, durably, and
        suspend until it ends; return its result or raise ChildWorkflowError."""
        definition = getattr(workflow, "definition", None)
        wf_name = getattr(definition, "name", None) or workflow
        if not isinstance(wf_name, str) or not wf_name:
            raise WorkflowDefinitionError(
                f"invoke() takes a workflow name or a decorated workflow, got {workflow!r}"
            )
        payload = _json.normalize(args, f"the args of invoke({wf_name!r})")
        frame, entry = self._next("iv", name or wf_name)
        if entry is None:
            start = self._host.start_child
            child = await start(wf_name, payload, self._run.run_id)
            entry = frame.append("iv", name or wf_name, {"run_id": child, "workflow": wf_name})
        record: dict[str, Any] = entry[2]
        child_id = str(record["run_id"])
        event = f"_child:{child_id}"
        if "status" not in record:
            self._consume_wake(event)
            stored = await self._entry_of(child_key(child_id))
            if stored is None or stored.get("s") != "done":
                raise self._suspend({"kind": "child", "run_id": child_id, "event": event})
            record.update(stored["o"])
            forget = getattr(self._host, "forget_callback", None)
            if forget is not None:
                await forget(child_key(child_id))
        if record["status"] == "succeeded":
            return _json.copy_json(record.get("result"))
        error_type = str(record.get("error_type") or "")
        error_message = str(record.get("error_message") or "")
        raise ChildWorkflowError(
            f"child run {child_id} of workflow {record['workflow']!r} {record['status']}: "
            f"{error_type}: {error_message}; catch ChildWorkflowError to handle it",
            error_type=error_type,
            error_message=error_message,
        )

    # -- callbacks ----------------------------------------------------------------------

    async def create_callback(
        self,
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,  # noqa: ASYNC109 - a durable timeout
        heartbeat_timeout: float | timedelta | None = None,
    ) -> Callback:
        """Create a callback whose id an external system completes with
        ``client.complete_callback(id, result)`` (or fails, or heartbeats)."""
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidStateError(f"create_callback(name=...) takes a non-empty string: {name!r}")
        to = _seconds(timeout, "create_callback(timeout=...)")
        hto = _seconds(heartbeat_timeout, "create_callback(heartbeat_timeout=...)")
        frame, entry = self._next("cb", name)
        if entry is None:
            callback_id = random_uuid()
            now = self._host.now()
            record = {"id": callback_id, "c": now, "to": to, "hto": hto}
            await self._host.create_callback(
                callback_id, {"r": self._run.run_id, "s": "open", "n": name, **record}
            )
            entry = frame.append("cb", name, record)
        return Callback(self, str(entry[2]["id"]), name)

    async def _callback_result(self, callback_id: str, name: str | None) -> Any:
        frame, entry = self._next("cr", name)
        if entry is None:
            entry = frame.append("cr", name, {"id": callback_id})
        record: dict[str, Any] = entry[2]
        event = f"_cb:{callback_id}"
        if not any(k in record for k in ("result", "error", "timeout")):
            self._consume_wake(event)
            stored = await self._entry_of(callback_id)
            if stored is None:
                raise self._suspend(
                    {"kind": "callback", "callback_id": callback_id, "name": name, "due": None}
                )
            due = callback_due(stored)
            if stored.get("s") == "done":
                record.update(stored["o"])
            elif due is not None and self._host.now() >= due:
                heartbeat = stored.get("hto") is not None and (
                    stored.get("to") is None
                    or float(stored.get("hb") or stored["c"]) + float(stored["hto"])
                    < float(stored["c"]) + float(stored["to"])
                )
                record["timeout"] = "heartbeat" if heartbeat else "timeout"
            else:
                waiting = {"kind": "callback", "callback_id": callback_id, "name": name}
                raise self._suspend({**waiting, "due": due, "event": event})
            await self._host.forget_callback(callback_id)
        if "result" in record:
            return _json.copy_json(record["result"])
        if "error" in record:
            raise CallbackFailed(
                f"callback {callback_id} of run {self._run.run_id} was failed: "
                f"{record['error']}; catch CallbackFailed to handle it",
                error_message=str(record["error"]),
            )
        what = "no heartbeat came in time" if record["timeout"] == "heartbeat" else "timed out"
        raise CallbackTimeout(
            f"callback {callback_id} of run {self._run.run_id} {what}; catch CallbackTimeout "
            "(an EventWaitTimeout) to handle it"
        )

    async def wait_for_callback(
        self,
        submitter: Callable[[RunContext, str], Any],
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,  # noqa: ASYNC109 - a durable timeout
        heartbeat_timeout: float | timedelta | None = None,
        retry: Any = None,
    ) -> Any:
        """Create a callback, run ``submitter(c, callback_id)`` as a side effect (with
        ``retry``, a RetryPolicy), then await the callback's result."""
        from ._definitions import make_sideeffect

        if not callable(submitter):
            raise InvalidStateError(f"wait_for_callback() takes a callable, got {submitter!r}")
        cb = await self.create_callback(
            name=name, timeout=timeout, heartbeat_timeout=heartbeat_timeout
        )
        label = f"{name or getattr(submitter, '__name__', 'submitter')}:submit"
        definition = make_sideeffect(submitter, label, retry=retry)
        await self._call_sideeffect(definition, (cb.id,), {})
        return await cb.result()
