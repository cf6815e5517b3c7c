"""The run context: the API a workflow awaits, journaled so that replay is exact."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import anyio
import anyio.to_thread

from . import _batch, _json, _steps
from ._composition import CompositionMixin
from ._definitions import SideeffectDef
from ._errors import (
    EventWaitTimeout,
    InvalidStateError,
    NondeterminismError,
    TtflowError,
)
from ._journal import Frame, Suspend, current_frame, current_task_id
from ._records import ContextData, StateChange

__all__ = ["RunContext", "RunHost", "RunState", "Suspend"]

logger = logging.getLogger("ttflow_async")
workflow_logger = logging.getLogger("ttflow_async.workflow")

_ABSENT: list[Any] = []


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

    async def mark_attempt(self, marker: str) -> None:
        """Make the start of an at-most-once attempt durable (before its body runs)."""
        ...

    async def attempt_interrupted(self, marker: str) -> bool:
        """Whether an earlier pass started this attempt and died before its outcome."""
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


def _same(old: Any, new: Any) -> bool:
    return bool(old == new) and _json.dumps(old) == _json.dumps(new)


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _call_branch(
    branch: Callable[[RunContext], Awaitable[Any]], context: RunContext
) -> Awaitable[Any]:
    return branch(context)


def _call_item(
    fn: Callable[[RunContext, Any, int], Awaitable[Any]],
    item: Any,
    index: int,
    context: RunContext,
) -> Awaitable[Any]:
    return fn(context, item, index)


@dataclass
class _Shared:
    """What every context of one run (the workflow's and its branches') shares."""

    run: RunState
    host: RunHost
    wake: dict[str, Any] | None
    nondeterminism: NondeterminismError | None = None
    finished: bool = False
    fresh_reads: dict[str, tuple[bool, Any]] = field(default_factory=dict)
    spawned: set[asyncio.Task[Any]] = field(default_factory=set)


class RunContext(CompositionMixin):
    """The handle a workflow uses to read and write state, log, emit events and wait.

    Every call is journaled by its position: when a suspended run resumes, its
    function is called again from the start and each call returns what it returned
    the first time, without doing its work again.
    """

    def __init__(self, run: RunState, host: RunHost) -> None:
        self._shared = _Shared(run=run, host=host, wake=run.wake)
        self._run = run
        self._host = host
        self._root = Frame(
            run.entries,
            run_id=run.run_id,
            workflow_name=run.workflow_name,
            owner=current_task_id(),
        )
        self._suspended: Suspend | None = None
        self._patches: dict[str, bool] = {}

    @classmethod
    def _branch(cls, parent: RunContext, frame: Frame) -> RunContext:
        """A child context for one branch of ``parallel``/``map``, journaling into ``frame``."""
        child = cls.__new__(cls)
        child._shared = parent._shared
        child._run = parent._run
        child._host = parent._host
        child._root = frame
        child._suspended = None
        child._patches = {}
        return child

    @property
    def run_id(self) -> str:
        """The id of this run (stable across replays)."""
        return self._run.run_id

    @property
    def workflow_name(self) -> str:
        """The name of the workflow this run executes."""
        return self._run.workflow_name

    @property
    def nondeterminism(self) -> NondeterminismError | None:
        """The replay mismatch that makes this run blocked, if one was found."""
        return self._shared.nondeterminism

    @nondeterminism.setter
    def nondeterminism(self, error: NondeterminismError | None) -> None:
        self._shared.nondeterminism = error

    @property
    def _suspension(self) -> Suspend | None:
        """The suspension this run (or branch) is waiting on, if a call suspended it."""
        return self._suspended

    def get_context_data(self) -> ContextData:
        """An object with ``run_id`` and ``workflow_name``."""
        return ContextData(run_id=self._run.run_id, workflow_name=self._run.workflow_name)

    def close(self) -> None:
        """Called by the engine when the run has ended for this pass.

        Side-effect calls still running in tasks of their own (``asyncio.gather`` goes
        on after one call suspended or failed) are cancelled: nothing of a run outlives
        it, and an unfinished call runs again when the run resumes.
        """
        self._shared.finished = True
        for task in list(self._shared.spawned):
            task.cancel()

    def settle(self, exc: BaseException) -> BaseException:
        """What a run that ended with ``exc`` really ended with.

        A group (``asyncio.TaskGroup``, anyio task groups) whose members are only
        suspensions and the cancellations they caused stands for the run's suspension.
        """
        if self._shared.nondeterminism is not None:
            return self._shared.nondeterminism
        if isinstance(exc, BaseExceptionGroup) and self._suspended is not None:
            cancelled = anyio.get_cancelled_exc_class()
            if all(isinstance(e, Suspend | cancelled) for e in _leaves(exc)):
                return self._suspended
        return exc

    # -- frames and checks ------------------------------------------------------------

    def _frame(self) -> Frame:
        current = current_frame.get()
        frame = current[1] if current is not None and current[0] is self else self._root
        if frame.owner != current_task_id():
            self._shared.nondeterminism = NondeterminismError(
                f"run {self._run.run_id} of workflow {self._run.workflow_name!r} made a "
                "context call from a task that is not the workflow's own (create_task, or a "
                "task group running context calls other than side effects): the order of "
                "such calls is not fixed, so it could differ on replay. Side-effect calls "
                "may be awaited concurrently (asyncio.gather, TaskGroup); run other "
                "concurrent work as branches with c.parallel() or c.map(), each with its "
                "own context."
            )
            raise self._shared.nondeterminism
        if self._suspended is not None:
            raise Suspend(self._suspended.waiting)
        if self._shared.nondeterminism is not None:
            raise self._shared.nondeterminism
        if self._shared.finished:
            raise TtflowError(
                f"the RunContext of run {self._run.run_id} was used after the run ended; "
                "await every context call inside the workflow function"
            )
        return frame

    def _next(self, kind: str, name: str | None) -> tuple[Frame, list[Any] | None]:
        frame = self._frame()
        try:
            return frame, frame.next(kind, name)
        except NondeterminismError as exc:
            self._shared.nondeterminism = exc
            raise

    def _suspend(self, waiting: dict[str, Any]) -> Suspend:
        """Record a suspension; concurrent ones (gather, TaskGroup) are combined."""
        if self._suspended is None:
            self._suspended = Suspend(waiting)
        elif not self._shared.finished:
            first = self._suspended.waiting
            combined = first if first.get("concurrent") else _batch.batch_waiting(None, [first])
            combined["concurrent"] = True
            _batch.add_waiting(combined, len(combined["waiting"]), waiting)
            if combined is not first:
                first.clear()
                first.update(combined)
        return Suspend(self._suspended.waiting)

    # -- state --------------------------------------------------------------------------

    async def get_state(self, name: str, default: Any = None) -> Any:
        """Read a state value; on replay, returns the value first read."""
        check_state_name(name)
        frame, entry = self._next("gs", name)
        if entry is None:
            found, value = await self._host.read_state(name)
            self._shared.fresh_reads[name] = (found, value)
            entry = frame.append("gs", name, [value] if found else _ABSENT.copy())
        recorded = entry[2]
        return _json.copy_json(recorded[0]) if recorded else default

    async def set_state(self, name: str, value: Any) -> None:
        """Write a state value; emits ``state_changed_<name>`` when the value changes."""
        check_state_name(name)
        new = _json.normalize(value, f"the value of state {name!r}")
        frame, entry = self._next("ss", name)
        if entry is not None:
            return
        found, old = await self._host.read_state(name)
        self._check_lost_update(name, found, old)
        self._write(name, found, old, new)
        frame.append("ss", name, None)

    async def update_state(self, name: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Apply ``fn(old) -> new`` to a state atomically among the runs of this pass.

        Nothing runs between the read and the write, so concurrent runs never lose
        each other's updates. Emits ``state_changed_<name>`` when the value changes, and
        returns the new value (on replay, the value written the first time).
        """
        check_state_name(name)
        if not callable(fn):
            raise InvalidStateError(f"update_state({name!r}, fn) needs a callable fn, got {fn!r}")
        frame, entry = self._next("us", name)
        if entry is None:
            found, old = await self._host.read_state(name)
            # No await from here to the write: this is what makes the update atomic.
            current = _json.copy_json(old) if found else _json.copy_json(default)
            produced = fn(current)
            if inspect.isawaitable(produced):
                if inspect.iscoroutine(produced):
                    produced.close()
                raise InvalidStateError(
                    f"update_state({name!r}, fn): fn must be a plain function old -> new, "
                    "not a coroutine function (an await would break the atomic update)"
                )
            new = _json.normalize(produced, f"the value fn returned for state {name!r}")
            self._write(name, found, old, new)
            entry = frame.append("us", name, [new])
        return _json.copy_json(entry[2][0])

    async def add_list_state(self, name: str, value: Any, max_length: int | None = None) -> None:
        """Append ``value`` to the list state ``name``, keeping the last ``max_length``."""
        check_state_name(name)
        item = _json.normalize(value, f"the value appended to state {name!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise InvalidStateError(f"max_length must be a positive int, got {max_length!r}")
        frame, entry = self._next("al", name)
        if entry is not None:
            return
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
        frame.append("al", name, None)

    def _check_lost_update(self, name: str, found: bool, old: Any) -> None:
        seen = self._shared.fresh_reads.get(name)
        if seen is not None and not (seen[0] == found and _same(seen[1], old)):
            logger.warning(
                "run %s of workflow %r read state %r, awaited, and then set it, but another "
                "run changed %r in between: that run's update is lost. Use "
                "c.update_state(name, fn) for a read-modify-write.",
                self._run.run_id,
                self._run.workflow_name,
                name,
                name,
            )

    def _write(self, name: str, found: bool, old: Any, new: Any) -> None:
        self._host.write_state(name, new)
        if name in self._shared.fresh_reads:
            self._shared.fresh_reads[name] = (True, new)
        if found and _same(old, new):
            return
        old_value = _json.copy_json(old) if found else None
        self._run.state_changes.append(StateChange(name=name, old=old_value, new=new))
        self._host.emit(f"state_changed_{name}", {"old": old_value, "new": _json.copy_json(new)})

    # -- logs, events, waits ------------------------------------------------------------

    async def log(self, message: Any) -> None:
        """Append a line to this run's log (once: not again on replay)."""
        text = message if isinstance(message, str) else str(message)
        frame, entry = self._next("lg", None)
        if entry is not None:
            return
        self._run.logs.append(text)
        workflow_logger.info(
            "%s", text, extra={"run_id": self._run.run_id, "workflow": self._run.workflow_name}
        )
        frame.append("lg", None, None)

    async def event(self, name: str, args: Any = None) -> None:
        """Emit a user event, delivered in the next wave of this ``run()`` (once)."""
        check_event_name(name)
        payload = _json.normalize(args, f"the args of event {name!r}")
        frame, entry = self._next("ev", name)
        if entry is not None:
            return
        self._host.emit(name, payload)
        frame.append("ev", name, None)

    async def pause_once(self) -> None:
        """Suspend here; the run resumes at the next ``run()``."""
        frame, entry = self._next("pa", None)
        if entry is not None:
            return
        frame.append("pa", None, None)
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
        frame, entry = self._next("we", name)
        now = self._host.now()
        began_earlier = entry is not None
        if entry is None:
            deadline = None if seconds is None else now + seconds
            entry = frame.append("we", name, {"deadline": deadline})
        wait = entry[2]
        if "args" in wait:
            return _json.copy_json(wait["args"])
        if wait.get("timed_out"):
            raise self._timeout(name, seconds)
        wake = self._shared.wake
        # Only a wait that began before this execution can take the delivery that woke
        # the run (a wait reached now began after it); every such wait for that name
        # takes it (branches of a batch may wait for the same event).
        if began_earlier and wake is not None and wake.get("name") == name:
            wait["args"] = _json.copy_json(wake["args"])
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

    async def sleep(self, duration: float | timedelta, name: str | None = None) -> None:
        """A durable timer: the run resumes at the first ``run()`` at or after the due time.

        ``name`` names the timer in ``paused_runs()``, traces and the dashboard.
        """
        seconds = to_seconds(duration, "sleep()")
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidStateError(f"sleep(name=...) takes a non-empty string, got {name!r}")
        frame, entry = self._next("sl", None)
        now = self._host.now()
        if entry is None:
            entry = frame.append("sl", None, {"due": now + seconds})
        timer = entry[2]
        if timer.get("done"):
            return
        if now >= timer["due"]:
            timer["done"] = True
            return
        waiting: dict[str, Any] = {"kind": "timer", "due": timer["due"]}
        if name is not None:
            waiting["name"] = name
        raise self._suspend(waiting)

    async def patched(self, change_id: str) -> bool:
        """Whether this run takes the new code path of the change ``change_id``.

        True in a run that reaches this point for the first time (journaled, so it stays
        True on replay); False in a run replaying a journal recorded before the change,
        whose next entry is another call. Old and new code paths can so live side by
        side while old runs are still suspended.
        """
        if not isinstance(change_id, str) or not change_id:
            raise InvalidStateError(f"patched() needs a non-empty change id, got {change_id!r}")
        frame = self._frame()
        known = self._patches.get(change_id)
        if known is False:
            return False
        entry = frame.peek()
        if entry is None:
            frame.append("pt", change_id, None)
            self._patches[change_id] = True
            return True
        if entry[0] == "pt" and entry[1] == change_id:
            frame.pos += 1
            self._patches[change_id] = True
            return True
        self._patches[change_id] = False
        return False

    # -- concurrency --------------------------------------------------------------------

    async def parallel(
        self,
        branches: Sequence[Callable[[RunContext], Awaitable[Any]]],
        *,
        name: str | None = None,
        max_concurrency: int | None = None,
        completion: _batch.CompletionConfig | None = None,
    ) -> _batch.BatchResult:
        """Run ``async def branch(c)`` callables concurrently, each with its own context.

        Returns a :class:`BatchResult`. A branch that sleeps or waits suspends the run;
        on resume, finished branches are not run again.
        """
        calls = list(branches)
        for branch in calls:
            if not callable(branch):
                raise InvalidStateError(f"parallel() takes callables branch(c), got {branch!r}")
        wrapped = [functools.partial(_call_branch, b) for b in calls]
        return await self._batch(wrapped, name, max_concurrency, completion, None)

    async def map(
        self,
        items: Iterable[Any],
        fn: Callable[[RunContext, Any, int], Awaitable[Any]],
        *,
        name: str | None = None,
        max_concurrency: int | None = None,
        completion: _batch.CompletionConfig | None = None,
        item_namer: Callable[[Any, int], str] | None = None,
    ) -> _batch.BatchResult:
        """Run ``fn(c, item, index)`` for every item concurrently (see :meth:`parallel`)."""
        values = list(items)
        if not callable(fn):
            raise InvalidStateError(f"map() takes a callable fn(c, item, index), got {fn!r}")
        names = None
        if item_namer is not None:
            names = [str(item_namer(item, i)) for i, item in enumerate(values)]
        calls = [functools.partial(_call_item, fn, item, i) for i, item in enumerate(values)]
        return await self._batch(calls, name, max_concurrency, completion, names)

    async def _batch(
        self,
        calls: Sequence[Callable[[RunContext], Awaitable[Any]]],
        name: str | None,
        max_concurrency: int | None,
        completion: _batch.CompletionConfig | None,
        item_names: list[str] | None,
    ) -> _batch.BatchResult:
        _batch.check_options(name, max_concurrency, completion)
        frame, entry = self._next("ba", name)
        if entry is None:
            entry = frame.append("ba", name, _batch.new_state(len(calls)))
        index = frame.pos - 1

        def child(branch: int, entries: list[Any]) -> RunContext:
            branch_frame = frame.child(entries, index, current_task_id())
            branch_frame.path = (*branch_frame.path, branch)
            return RunContext._branch(self, branch_frame)

        try:
            return await _batch.run_batch(
                entry[2],
                list(calls),
                child,
                name=name,
                max_concurrency=max_concurrency,
                completion=completion or _batch.CompletionConfig(),
                item_names=item_names,
                suspend=self._suspend,
                mismatch=self._batch_mismatch,
            )
        except NondeterminismError as exc:
            self._shared.nondeterminism = self._shared.nondeterminism or exc
            raise self._shared.nondeterminism from None

    def _batch_mismatch(self, recorded: int, given: int) -> NondeterminismError:
        self._shared.nondeterminism = NondeterminismError(
            f"replay of run {self._run.run_id} of workflow {self._run.workflow_name!r} reached "
            f"a parallel/map of {given} branches, but its journal recorded {recorded}: the "
            "code changed under a suspended run. The run stays suspended (status 'blocked') "
            "and resumes once code compatible with its journal is deployed."
        )
        return self._shared.nondeterminism

    # -- side effects -------------------------------------------------------------------

    def _call_sideeffect(
        self, definition: SideeffectDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        """Take the call's journal position now (program order), run it when awaited."""
        frame = self._frame()
        try:
            entry, position = frame.reserve_sideeffect(definition.name)
        except NondeterminismError as exc:
            self._shared.nondeterminism = exc
            raise
        return _steps.run_sideeffect(self, definition, frame, entry, position, args, kwargs)
