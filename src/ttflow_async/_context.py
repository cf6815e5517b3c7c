"""The run context: the API a workflow awaits, journaled so that replay is exact."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import anyio
import anyio.to_thread

from . import _json
from ._definitions import SideeffectDef
from ._errors import (
    EventWaitTimeout,
    InvalidStateError,
    NondeterminismError,
    TtflowError,
)
from ._journal import Journal
from ._records import ContextData, StateChange

workflow_logger = logging.getLogger("ttflow_async.workflow")

_ABSENT: list[Any] = []


class Suspend(BaseException):
    """Unwinds a run that must wait. A BaseException, so ``except Exception`` can't eat it."""

    def __init__(self, waiting: dict[str, Any]) -> None:
        super().__init__(waiting)
        self.waiting = waiting


class RunHost(Protocol):
    """What a running workflow needs from the pass that runs it."""

    async def read_state(self, name: str) -> tuple[bool, Any]:
        """Return ``(found, value)`` of a state, as buffered in this pass."""
        ...

    def write_state(self, name: str, value: Any) -> None:
        """Buffer a state write (committed with the pass)."""
        ...

    def emit(self, name: str, args: Any) -> None:
        """Deliver an event in the next wave."""
        ...

    def now(self) -> float:
        """The current time, epoch seconds."""
        ...


@dataclass
class RunState:
    """Everything the engine keeps about one run while a pass executes it."""

    run_id: str
    workflow_name: str
    args: Any
    entries: list[Any]
    logs: list[str]
    since: float
    wake: dict[str, Any] | None = None
    journal_blob: str | None = None
    state_changes: list[StateChange] = field(default_factory=list)


def check_state_name(name: object) -> str:
    """Reject names that are not strings or that are reserved for the engine."""
    if not isinstance(name, str) or not name:
        raise InvalidStateError(f"a state name must be a non-empty string, got {name!r}")
    if name.startswith("_"):
        raise InvalidStateError(
            f"state name {name!r} is reserved: names beginning with '_' belong to the engine; "
            "choose a name without the leading underscore"
        )
    return name


def check_event_name(name: object) -> str:
    """Reject event names that are not strings or that are reserved for the engine."""
    if not isinstance(name, str) or not name:
        raise InvalidStateError(f"an event name must be a non-empty string, got {name!r}")
    if name.startswith("_"):
        raise InvalidStateError(
            f"event name {name!r} is reserved: names beginning with '_' belong to the engine"
        )
    return name


def to_seconds(duration: float | timedelta, what: str) -> float:
    """Seconds from a number or a timedelta."""
    if isinstance(duration, timedelta):
        return duration.total_seconds()
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        return float(duration)
    raise TypeError(f"{what} takes seconds (int or float) or a timedelta, got {duration!r}")


def _current_task_id() -> int:
    """An id of the running task; asyncio's C lookup first, anyio's on other backends."""
    try:
        return id(asyncio.current_task())
    except RuntimeError:
        return anyio.get_current_task().id


def _same(old: Any, new: Any) -> bool:
    return bool(old == new) and _json.dumps(old) == _json.dumps(new)


class RunContext:
    """The handle a workflow uses to read and write state, log, emit events and wait.

    Every call is journaled by its position: when a suspended run resumes, its
    function is called again from the start and each call returns what it returned
    the first time, without doing its work again.
    """

    def __init__(self, run: RunState, host: RunHost) -> None:
        self._run = run
        self._host = host
        self._journal = Journal(run.entries, run_id=run.run_id, workflow_name=run.workflow_name)
        self._suspended: Suspend | None = None
        self._finished = False
        self.nondeterminism: NondeterminismError | None = None
        self._busy_task: int | None = None
        self._busy_depth = 0

    @property
    def run_id(self) -> str:
        """The id of this run (stable across replays)."""
        return self._run.run_id

    @property
    def workflow_name(self) -> str:
        """The name of the workflow this run executes."""
        return self._run.workflow_name

    def get_context_data(self) -> ContextData:
        """An object with ``run_id`` and ``workflow_name``."""
        return ContextData(run_id=self._run.run_id, workflow_name=self._run.workflow_name)

    def close(self) -> None:
        """Called by the engine when the run has ended for this pass."""
        self._finished = True

    def _enter(self) -> None:
        if self._busy_depth and self._busy_task != _current_task_id():
            self.nondeterminism = NondeterminismError(
                f"run {self._run.run_id} of workflow {self._run.workflow_name!r} made a context "
                "call while another one of the same run was still in progress in another task "
                "(asyncio.gather, create_task or a task group): their order in the journal "
                "would differ on replay. Await context calls and side effects one at a time."
            )
            raise self.nondeterminism
        if self._suspended is not None:
            raise Suspend(self._suspended.waiting)
        if self.nondeterminism is not None:
            raise self.nondeterminism
        if self._finished:
            raise TtflowError(
                f"the RunContext of run {self._run.run_id} was used after the run ended; "
                "await every context call inside the workflow function"
            )

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        """Mark a call that awaits as in progress, so a concurrent call is detected."""
        self._busy_task = _current_task_id()
        self._busy_depth += 1
        try:
            yield
        finally:
            self._busy_depth -= 1

    def _next(self, kind: str, name: str | None) -> list[Any] | None:
        self._enter()
        try:
            return self._journal.next(kind, name)
        except NondeterminismError as exc:
            self.nondeterminism = exc
            raise

    def _suspend(self, waiting: dict[str, Any]) -> Suspend:
        self._suspended = Suspend(waiting)
        return self._suspended

    async def get_state(self, name: str, default: Any = None) -> Any:
        """Read a state value; on replay, returns the value first read."""
        check_state_name(name)
        entry = self._next("gs", name)
        if entry is None:
            with self._busy():
                found, value = await self._host.read_state(name)
            entry = self._journal.append("gs", name, [value] if found else _ABSENT.copy())
        recorded = entry[2]
        return _json.copy_json(recorded[0]) if recorded else default

    async def set_state(self, name: str, value: Any) -> None:
        """Write a state value; emits ``state_changed_<name>`` when the value changes."""
        check_state_name(name)
        new = _json.normalize(value, f"the value of state {name!r}")
        if self._next("ss", name) is not None:
            return
        with self._busy():
            found, old = await self._host.read_state(name)
        self._write(name, found, old, new)
        self._journal.append("ss", name, None)

    async def add_list_state(self, name: str, value: Any, max_length: int | None = None) -> None:
        """Append ``value`` to the list state ``name``, keeping the last ``max_length``."""
        check_state_name(name)
        item = _json.normalize(value, f"the value appended to state {name!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise InvalidStateError(f"max_length must be a positive int, got {max_length!r}")
        if self._next("al", name) is not None:
            return
        with self._busy():
            found, old = await self._host.read_state(name)
        if found and old is not None and not isinstance(old, list):
            raise InvalidStateError(
                f"add_list_state({name!r}) needs a list state, but {name!r} holds a "
                f"{type(old).__name__}; use set_state() or another name"
            )
        new = [*(old or []), item]
        if max_length is not None:
            new = new[-max_length:]
        self._write(name, found, old, new)
        self._journal.append("al", name, None)

    def _write(self, name: str, found: bool, old: Any, new: Any) -> None:
        self._host.write_state(name, new)
        if found and _same(old, new):
            return
        old_value = _json.copy_json(old) if found else None
        self._run.state_changes.append(StateChange(name=name, old=old_value, new=new))
        self._host.emit(f"state_changed_{name}", {"old": old_value, "new": _json.copy_json(new)})

    async def log(self, message: Any) -> None:
        """Append a line to this run's log (once: not again on replay)."""
        text = message if isinstance(message, str) else str(message)
        if self._next("lg", None) is not None:
            return
        self._run.logs.append(text)
        workflow_logger.info(
            "%s", text, extra={"run_id": self._run.run_id, "workflow": self._run.workflow_name}
        )
        self._journal.append("lg", None, None)

    async def event(self, name: str, args: Any = None) -> None:
        """Emit a user event, delivered in the next wave of this ``run()`` (once)."""
        check_event_name(name)
        payload = _json.normalize(args, f"the args of event {name!r}")
        if self._next("ev", name) is not None:
            return
        self._host.emit(name, payload)
        self._journal.append("ev", name, None)

    async def pause_once(self) -> None:
        """Suspend here; the run resumes at the next ``run()``."""
        if self._next("pa", None) is not None:
            return
        self._journal.append("pa", None, None)
        raise self._suspend({"kind": "next_run"})

    async def wait_event(
        self,
        name: str,
        timeout: float | timedelta | None = None,  # noqa: ASYNC109 - a durable timeout
    ) -> Any:
        """Suspend until an event or trigger ``name`` is delivered; return its args.

        With ``timeout``, raises :class:`EventWaitTimeout` once it has passed.
        """
        if not isinstance(name, str) or not name:
            raise InvalidStateError(f"wait_event() needs a non-empty event name, got {name!r}")
        if name.startswith("_"):
            raise InvalidStateError(
                f"wait_event({name!r}): names beginning with '_' are the engine's own events; "
                "use pause_once() to resume at the next run()"
            )
        seconds = None if timeout is None else to_seconds(timeout, "wait_event(timeout=...)")
        entry = self._next("we", name)
        now = self._host.now()
        if entry is None:
            deadline = None if seconds is None else now + seconds
            entry = self._journal.append("we", name, {"deadline": deadline})
        wait = entry[2]
        if "args" in wait:
            return _json.copy_json(wait["args"])
        if wait.get("timed_out"):
            raise self._timeout(name, seconds)
        wake = self._run.wake
        if wake is not None and wake.get("name") == name:
            wait["args"] = wake["args"]
            self._run.wake = None
            return _json.copy_json(wait["args"])
        deadline = wait.get("deadline")
        if deadline is not None and now >= deadline:
            wait["timed_out"] = True
            raise self._timeout(name, seconds)
        raise self._suspend({"kind": "event", "name": name, "deadline": deadline})

    def _timeout(self, name: str, seconds: float | None) -> EventWaitTimeout:
        after = f" after {seconds:g} seconds" if seconds is not None else ""
        return EventWaitTimeout(
            f"run {self._run.run_id} waited for event {name!r}{after} and it did not come; "
            "catch EventWaitTimeout in the workflow to handle the timeout"
        )

    async def sleep(self, duration: float | timedelta) -> None:
        """A durable timer: the run resumes at the first ``run()`` at or after the due time."""
        seconds = to_seconds(duration, "sleep()")
        entry = self._next("sl", None)
        now = self._host.now()
        if entry is None:
            entry = self._journal.append("sl", None, {"due": now + seconds})
        timer = entry[2]
        if timer.get("done"):
            return
        if now >= timer["due"]:
            timer["done"] = True
            return
        raise self._suspend({"kind": "timer", "due": timer["due"]})

    def _call_sideeffect(
        self, definition: SideeffectDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        self._enter()
        return self._run_sideeffect(definition, args, kwargs)

    async def _run_sideeffect(
        self, definition: SideeffectDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self._enter()
        try:
            entry, cached = self._journal.enter_sideeffect(definition.name)
        except NondeterminismError as exc:
            self.nondeterminism = exc
            raise
        if cached:
            return self._restore(definition, entry[2])
        outcome = "failed"
        stored: Any = None
        # Inlined self._busy(): this is the hot path of a long workflow's first execution.
        self._busy_task = _current_task_id()
        self._busy_depth += 1
        try:
            try:
                if definition.is_async:
                    result = await definition.fn(self, *args, **kwargs)
                else:
                    call = functools.partial(definition.fn, self, *args, **kwargs)
                    result = await anyio.to_thread.run_sync(call)
            finally:
                self._busy_depth -= 1
            stored = self._encode(definition, result)
            outcome = "done"
        except Suspend:
            outcome = "suspended"
            raise
        finally:
            self._journal.leave_sideeffect(entry, outcome=outcome, result=stored)
        return self._restore(definition, stored)

    @staticmethod
    def _encode(definition: SideeffectDef, result: Any) -> Any:
        what = f"the result of side effect {definition.name!r}"
        if definition.result_adapter is not None:
            try:
                result = definition.result_adapter.dump_python(result, mode="json", warnings=False)
            except Exception as exc:
                raise InvalidStateError(f"{what} cannot be stored as JSON: {exc}") from exc
        return _json.normalize(result, what)

    @staticmethod
    def _restore(definition: SideeffectDef, stored: Any) -> Any:
        value = _json.copy_json(stored)
        if definition.result_adapter is None:
            return value
        return definition.result_adapter.validate_python(value)
