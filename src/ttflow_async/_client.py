"""The client: registration, ``run()``, the inbox, inspection and administration."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

import anyio

from . import _format, _json
from ._composition import child_key
from ._concurrency import gather
from ._context import RunContext, check_event_name, check_state_name
from ._definitions import (
    Registry,
    SideeffectDecorator,
    WorkflowFunction,
    check_timeout,
    make_sideeffect,
    make_workflow,
    sideeffect_caller,
)
from ._errors import (
    BlobNotFound,
    CorruptStateError,
    InvalidStateError,
    RootConflict,
    StateLockedError,
    StoreError,
    TtflowError,
    UnknownCallbackError,
    UnknownRunError,
    UnknownTriggerError,
)
from ._lease import Clock, Lease, LeaseLost, lease_is_live
from ._records import (
    CheckResult,
    EventLogEntry,
    LockInfo,
    PausedRun,
    RunHistoryEntry,
    RunInfo,
    Trace,
    TriggerInfo,
    WorkflowInfo,
    WorkflowRunResult,
    to_datetime,
)
from ._retry import RetryPolicy
from ._runner import MARKER_PREFIX, Pass, PassOptions, _callback_ids, check_positive
from ._stores import Store, store_from_spec
from ._triggers import Trigger, named_trigger
from ._view import Rec, StoreView, commit_view, read_view

logger = logging.getLogger("ttflow_async")

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

READ_ATTEMPTS = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ENGINE_WAIT_KEYS = {"events", "next_run", "event", "deadline"}


def _public_waiting(wait: dict[str, Any]) -> dict[str, Any]:
    """What ``paused_runs()`` shows of a stored wait (times as datetimes, engine keys out)."""
    kind = wait["kind"]
    if kind == "event":
        public: dict[str, Any] = {"kind": "event", "name": wait["name"]}
        if wait.get("deadline") is not None:
            public["timeout_at"] = _ceil_datetime(wait["deadline"])
        return public
    if kind == "blocked":
        return {"kind": "blocked", "error_message": wait.get("error_message")}
    public = {"kind": kind}
    for key, value in wait.items():
        if key in _ENGINE_WAIT_KEYS or key == "kind":
            continue
        if kind == "batch" and key in ("due", "concurrent"):
            continue  # the index's earliest due time, not part of the public shape
        if key == "due":
            public["due"] = None if value is None else _ceil_datetime(value)
        elif key == "waiting" and isinstance(value, list):
            public["waiting"] = [
                {**item, "waiting_for": _public_waiting(item["waiting_for"])}
                if isinstance(item, dict) and isinstance(item.get("waiting_for"), dict)
                else item
                for item in value
            ]
        else:
            public[key] = value
    return public


def _ceil_datetime(epoch: float) -> datetime:
    """A UTC datetime at or after ``epoch``, to the microsecond."""
    micros = math.ceil(epoch * 1_000_000)
    moment = _EPOCH + timedelta(microseconds=micros)
    while moment.timestamp() < epoch:
        moment += timedelta(microseconds=1)
    return moment


def _check_lock_timeout(lock_timeout: float | None) -> None:
    if lock_timeout is None:
        return
    if (
        isinstance(lock_timeout, bool)
        or not isinstance(lock_timeout, int | float)
        or not math.isfinite(lock_timeout)
        or lock_timeout < 0
    ):
        raise ValueError(
            f"lock_timeout must be a finite number of seconds >= 0, got {lock_timeout!r}"
        )


def _check_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key:
        raise InvalidStateError(f"an idempotency key must be a non-empty string, got {key!r}")
    _json.normalize(key, "the idempotency key")
    return key


def _seconds(value: float | timedelta, name: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return check_positive(name, value)


class Client:
    """A ttflow-async client bound to one store.

    Use it as ``async with setup(...) as client:`` to open the store's connections
    once; without it, every call opens and closes what it needs.
    """

    def __init__(
        self,
        store: Store,
        *,
        lease_seconds: float = 60.0,
        max_concurrency: int = 64,
        max_waves: int = 100,
        run_timeout: float | timedelta | None = None,
        idempotency_window: float | timedelta = 86_400.0,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.lease_seconds = _seconds(lease_seconds, "lease_seconds")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        check_positive("max_concurrency", max_concurrency)
        if isinstance(max_waves, bool) or not isinstance(max_waves, int):
            raise ValueError(f"max_waves must be an int >= 1, got {max_waves!r}")
        check_positive("max_waves", max_waves)
        if clock is not None and not callable(clock):
            raise ValueError(f"clock must be a callable returning epoch seconds, got {clock!r}")
        self.max_concurrency = max_concurrency
        self.clock: Clock = clock or time.time
        self._options = PassOptions(
            max_concurrency=max_concurrency,
            max_waves=max_waves,
            run_timeout=None if run_timeout is None else _seconds(run_timeout, "run_timeout"),
            idempotency_window=_seconds(idempotency_window, "idempotency_window"),
            clock=self.clock,
        )
        self._registry = Registry()
        self._entered = 0
        self._deferred: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._passes: list[Pass] = []  # this client's passes in progress

    # -- connections ---------------------------------------------------------------

    async def __aenter__(self) -> Client:
        if self._entered == 0:
            await self.store.open()
        self._entered += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the store's connections opened by ``async with``."""
        if self._entered == 0:
            return
        self._entered -= 1
        if self._entered == 0:
            deferred, self._deferred = self._deferred, []
            try:
                for cleanup in deferred:
                    await cleanup()
            finally:
                await self.store.aclose()

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[None]:
        async with self:
            yield

    # -- registration --------------------------------------------------------------

    @overload
    def workflow(
        self, trigger: Callable[P, Coroutine[Any, Any, R]], /
    ) -> WorkflowFunction[P, R]: ...

    @overload
    def workflow(
        self,
        trigger: str | Trigger | None = None,
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], WorkflowFunction[P, R]]: ...

    def workflow(
        self,
        trigger: str | Trigger | Callable[..., Coroutine[Any, Any, Any]] | None = None,
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Any:
        """Register an ``async def`` workflow; its trigger defaults to its name.

        Usable as ``@client.workflow`` or ``@client.workflow(trigger=..., name=...,
        timeout=seconds)``; ``timeout`` is the run's time budget per pass.
        """
        budget = check_timeout(timeout)

        def register(fn: Callable[..., Coroutine[Any, Any, Any]]) -> WorkflowFunction[..., Any]:
            wf_name = name or getattr(fn, "__name__", None)
            if isinstance(trigger, Trigger):
                resolved = trigger
            elif isinstance(trigger, str):
                resolved = named_trigger(trigger or str(wf_name))
            else:
                resolved = named_trigger(str(wf_name))
            definition = make_workflow(
                fn, name, resolved, registered=self._registry.workflows, timeout=budget
            )
            self._registry.workflows[definition.name] = definition
            return WorkflowFunction(definition)

        if callable(trigger) and not isinstance(trigger, Trigger):
            return register(trigger)
        return register

    @overload
    def sideeffect(
        self, fn: Callable[Concatenate[RunContext, P], Coroutine[Any, Any, R]], /
    ) -> Callable[Concatenate[RunContext, P], Coroutine[Any, Any, R]]: ...

    @overload
    def sideeffect(
        self, fn: Callable[Concatenate[RunContext, P], R], /
    ) -> Callable[Concatenate[RunContext, P], Coroutine[Any, Any, R]]: ...

    @overload
    def sideeffect(
        self,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        at_most_once: bool = False,
    ) -> SideeffectDecorator: ...

    def sideeffect(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        at_most_once: bool = False,
    ) -> Any:
        """Register a side effect: its result is journaled and not recomputed on replay.

        Usable as ``@client.sideeffect`` or ``@client.sideeffect(name=..., retry=
        RetryPolicy(...), at_most_once=True)``.
        """

        def register(func: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
            definition = make_sideeffect(func, name, retry=retry, at_most_once=at_most_once)
            self._registry.sideeffects[definition.name] = definition
            return sideeffect_caller(definition, RunContext)

        if fn is not None:
            return register(fn)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValueError(f"@client.sideeffect(retry=...) takes a RetryPolicy, got {retry!r}")
        return register

    @property
    def workflows(self) -> list[WorkflowInfo]:
        """The registered workflows."""
        return [
            WorkflowInfo(
                name=w.name,
                description=w.description,
                trigger=TriggerInfo(kind=w.trigger.kind, name=w.trigger.name),
            )
            for w in self._registry.workflows.values()
        ]

    # -- running -------------------------------------------------------------------

    async def run(
        self,
        trigger: str | None = None,
        args: Any = None,
        *,
        lock_timeout: float | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        key: str | None = None,
    ) -> list[WorkflowRunResult]:
        """One pass: take the lease, run what is ready (and ``trigger``), commit, release.

        Args:
            trigger: fire this trigger (and wake runs waiting for it) in this pass.
            args: the trigger's args (strict JSON).
            lock_timeout: wait up to this many seconds for another runner's lock.
            on_progress: called as ``on_progress(finished, scheduled)`` each time a run
                is scheduled or finishes an execution in this pass (for progress display).
            key: an idempotency key: a trigger whose key was already used within
                ``idempotency_window`` starts nothing again.

        Raises:
            StateLockedError: another runner holds the lock (``queued`` says whether the
                trigger was stored in the inbox), or the lease was lost mid-pass.
            StoreError, CorruptStateError: the store failed or holds unreadable data;
                nothing was committed and the lease was released.
        """
        if trigger is not None and (not isinstance(trigger, str) or not trigger):
            raise UnknownTriggerError(f"a trigger must be a non-empty string, got {trigger!r}")
        if trigger is not None:
            _json.normalize(trigger, "the trigger name")
        if key is not None and trigger is None:
            raise InvalidStateError("run(key=...) needs a trigger: a key names one start")
        key = _check_key(key)
        _check_lock_timeout(lock_timeout)
        payload = _json.normalize(args, "the args of run()")
        async with self._connected():
            deferred, self._deferred = self._deferred, []
            return await self._alongside(
                deferred,
                lambda: self._guarded(
                    lambda: self._pass(trigger, payload, lock_timeout, on_progress, key)
                ),
            )

    async def _pass(
        self,
        trigger: str | None,
        payload: Any,
        lock_timeout: float | None,
        on_progress: Callable[[int, int], None] | None,
        key: str | None = None,
    ) -> list[WorkflowRunResult]:
        first_view = None
        if trigger is not None and trigger not in self._registry.string_triggers():
            first_view, listened = await self._waiters_of(trigger)
            if not listened:
                shown = trigger if len(trigger) <= 200 else trigger[:200] + "..."
                raise UnknownTriggerError(
                    f"no workflow has trigger {shown!r} and no suspended run waits for it; "
                    "check the name against client.workflows"
                )
        lease = self._lease()
        try:
            view = await lease.acquire(lock_timeout, first_view=first_view)
        except StateLockedError:
            if trigger is None:
                raise
            await self._queue("trigger", trigger, payload, key)
            raise StateLockedError(lease.locked_message(queued=True), queued=True) from None
        runner = Pass(self._registry, lease, view, self._options, on_progress=on_progress)
        self._passes.append(runner)
        try:
            results = await runner.run(trigger, payload, key)
        except LeaseLost:
            queued = False
            if trigger is not None:
                await self._queue("trigger", trigger, payload, key)
                queued = True
            raise StateLockedError(
                f"the lease on {self.store.description} expired and another runner took "
                "it over, so nothing of this run() was committed"
                + ("; the trigger was queued in the inbox" if queued else ""),
                queued=queued,
            ) from None
        finally:
            self._passes.remove(runner)
        after_commit = [runner.clean_up]
        if runner.gc_due:
            after_commit.append(self._collect_quietly)
        if self._entered > 1:
            # Entered by the caller: run() returns right after its commit, and deleting
            # what the commit left behind overlaps the next call (or the exit).
            self._deferred.extend(after_commit)
        else:
            for cleanup in after_commit:
                await cleanup()
        return results

    @staticmethod
    async def _alongside(
        cleanups: list[Callable[[], Coroutine[Any, Any, None]]], work: Callable[[], Awaitable[T]]
    ) -> T:
        """Await ``work()`` while earlier passes' cleanups (which never raise) run too."""
        if not cleanups:
            return await work()
        outcome: list[T] = []
        errors: list[Exception] = []

        async def do_work() -> None:
            try:
                outcome.append(await work())
            except Exception as exc:  # raised below, as itself rather than in a group
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(do_work)
            for cleanup in cleanups:
                tg.start_soon(cleanup)
        if errors:
            raise errors[0]
        return outcome[0]

    def _lease(self) -> Lease:
        return Lease(self.store, self.lease_seconds, self.clock)

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a client call so that only TtflowErrors leave it (store exceptions wrapped)."""
        try:
            return await call()
        except (BlobNotFound, RootConflict) as exc:
            raise StoreError(
                f"{self.store.description} changed under this call ({exc}); nothing was "
                "changed by it: call again"
            ) from exc
        except TtflowError:
            raise
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise StoreError(
                f"{self.store.description} failed ({exc!r}); nothing was changed: call "
                "again once the store is reachable"
            ) from exc
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            raise CorruptStateError(
                f"{self.store.description} holds data this engine cannot read ({exc!r}); it "
                "was left untouched: restore it from a backup or point setup() elsewhere"
            ) from exc

    async def _waiters_of(self, trigger: str) -> tuple[StoreView | None, bool]:
        """Whether a suspended run waits for ``trigger``, and the view that says so."""
        try:
            view = await read_view(self.store)
            return view, await view.has_waiters(trigger)
        except BlobNotFound:  # a commit replaced what we were reading: read again
            return None, await self._inspect(lambda view: view.has_waiters(trigger))

    async def _queue(self, kind: Any, name: str, args: Any, key: str | None = None) -> None:
        item_id, data = _format.inbox_item(kind, name, args, now=self.clock(), key=key)
        await self.store.inbox_put(item_id, data)

    async def send_event(self, name: str, args: Any = None, *, key: str | None = None) -> None:
        """Store a user event durably (no lock); the next ``run()`` delivers it.

        With ``key``, an event whose key was already delivered within
        ``idempotency_window`` is not delivered again.
        """
        check_event_name(name)
        payload = _json.normalize(args, f"the args of event {name!r}")
        key = _check_key(key)
        async with self._connected():
            await self._guarded(lambda: self._queue("event", name, payload, key))

    async def _complete(self, callback_id: str, payload: dict[str, Any]) -> None:
        """Queue a completion or heartbeat of an open callback (no lock)."""
        if not isinstance(callback_id, str) or not callback_id or callback_id.startswith("child:"):
            raise UnknownCallbackError(f"a callback id must be a non-empty string: {callback_id!r}")

        async def is_open(view: StoreView) -> bool:
            entry = await view.callback(callback_id)
            return entry is not None and entry.get("s") == "open"

        # A callback created by a pass of this client still in progress (a submitter
        # completing at once) is not committed yet; that pass drains the completion.
        in_flight = any(callback_id in p.open_callbacks for p in self._passes)
        async with self._connected():
            if not in_flight and not await self._inspect(is_open):
                raise UnknownCallbackError(
                    f"no open callback has id {callback_id!r} in {self.store.description} "
                    "(unknown, already completed, timed out, or its run ended); nothing was sent"
                )
            await self._guarded(lambda: self._queue("event", f"_cb:{callback_id}", payload))

    async def complete_callback(self, callback_id: str, result: Any = None) -> None:
        """Complete a callback with ``result`` (no lock; delivered by the next ``run()``)."""
        value = _json.normalize(result, f"the result of callback {callback_id!r}")
        await self._complete(callback_id, {"op": "complete", "result": value})

    async def fail_callback(self, callback_id: str, error: str) -> None:
        """Fail a callback: its ``result()`` raises CallbackFailed with ``error``."""
        if not isinstance(error, str):
            raise InvalidStateError(f"fail_callback() takes an error string, got {error!r}")
        _json.normalize(error, "the error of fail_callback()")
        await self._complete(callback_id, {"op": "fail", "error": error})

    async def heartbeat_callback(self, callback_id: str) -> None:
        """Record a heartbeat of a callback (restarts its heartbeat timeout)."""
        await self._complete(callback_id, {"op": "heartbeat"})

    # -- inspection ----------------------------------------------------------------

    async def _read(self, read: Callable[[Store], Awaitable[T]]) -> T:
        async with self._connected():
            for attempt in range(READ_ATTEMPTS):
                try:
                    return await self._guarded_read(read)
                except BlobNotFound as exc:  # a commit replaced what we read: read again
                    if attempt == READ_ATTEMPTS - 1:
                        raise CorruptStateError(
                            f"blob {exc.blob_id} of {self.store.description} is referenced "
                            "but missing (read 5 times); the store was left untouched: "
                            "restore it from a backup"
                        ) from exc
        raise AssertionError("unreachable")

    async def _guarded_read(self, read: Callable[[Store], Awaitable[T]]) -> T:
        try:
            return await read(self.store)
        except (BlobNotFound, TtflowError):
            raise
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise StoreError(f"reading {self.store.description} failed ({exc!r})") from exc
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            raise CorruptStateError(
                f"{self.store.description} holds data this engine cannot read ({exc!r}); it "
                "was left untouched: restore it from a backup or point setup() elsewhere"
            ) from exc

    @staticmethod
    async def _fresh(store: Store, read: Callable[[StoreView], Awaitable[T]]) -> T:
        return await read(await read_view(store))

    async def _inspect(self, read: Callable[[StoreView], Awaitable[T]]) -> T:
        return await self._read(lambda store: self._fresh(store, read))

    async def paused_runs(self) -> list[PausedRun]:
        """Every suspended run and what it waits for, oldest first."""

        async def read(view: StoreView) -> list[PausedRun]:
            runs = await view.all_suspended()
            return sorted(
                (
                    PausedRun(
                        workflow_name=rec["w"],
                        run_id=run_id,
                        since=to_datetime(rec["since"]),
                        waiting_for=_public_waiting(rec["wait"]),
                        parent_run_id=rec.get("p"),
                    )
                    for run_id, rec in runs.items()
                ),
                key=lambda r: (r.since, r.run_id),
            )

        return await self._inspect(read)

    async def run_history(self) -> list[RunHistoryEntry]:
        """Finished runs (the most recent 1000), oldest first."""

        async def read(view: StoreView) -> list[RunHistoryEntry]:
            return [_format.to_history_record(e) for e in await view.history.read(view.fetch)]

        return await self._inspect(read)

    async def event_log(self) -> list[EventLogEntry]:
        """Delivered events (the most recent 1000), oldest first."""

        async def read(view: StoreView) -> list[EventLogEntry]:
            return [_format.to_event_record(e) for e in await view.events.read(view.fetch)]

        return await self._inspect(read)

    async def traces(self) -> list[Trace]:
        """Execution traces of the most recent 500 ``run()`` calls, oldest first."""

        async def read(view: StoreView) -> list[Trace]:
            return [_format.to_trace_record(t) for t in await view.traces.read(view.fetch)]

        return await self._inspect(read)

    async def run_logs(self, run_id: str) -> list[str]:
        """The log lines of a suspended or finished run; ``[]`` for an unknown id."""

        async def read(view: StoreView) -> list[str]:
            for entry in reversed(await view.history.read(view.fetch)):
                if entry["r"] == run_id:
                    return list(entry["l"])
            rec = (await view.all_suspended()).get(run_id)
            if rec is None:
                return []
            journal = (await view.fetch([rec["j"]]))[rec["j"]]
            return list(_format.decode_journal(rec["j"], journal, view.store.description)["logs"])

        return await self._inspect(read)

    async def get_run(self, run_id: str) -> RunInfo | None:
        """A suspended run, or one still in the run history; ``None`` otherwise."""

        async def read(view: StoreView) -> RunInfo | None:
            rec = (await view.all_suspended()).get(run_id)
            if rec is not None:
                wait = rec["wait"]
                blocked = wait["kind"] == "blocked"
                return RunInfo(
                    run_id=run_id,
                    workflow_name=rec["w"],
                    status="blocked" if blocked else "paused",
                    error_message=wait.get("error_message") if blocked else None,
                    started_at=to_datetime(_format.rec_started(rec)),
                    updated_at=to_datetime(rec["since"]),
                    waiting_for=_public_waiting(wait),
                    parent_run_id=rec.get("p"),
                )
            for entry in reversed(await view.history.read(view.fetch)):
                if entry["r"] == run_id:
                    started = entry.get("st")
                    return RunInfo(
                        run_id=run_id,
                        workflow_name=entry["w"],
                        status=entry["s"],
                        result=entry.get("res"),
                        error_message=entry.get("em"),
                        error_traceback=entry.get("tb"),
                        started_at=None if started is None else to_datetime(started),
                        updated_at=to_datetime(entry["t"]),
                        waiting_for=None,
                        parent_run_id=entry.get("p"),
                    )
            return None

        return await self._inspect(read)

    async def get_state(self, name: str, default: Any = None) -> Any:
        """Read a state value outside a run."""
        check_state_name(name)

        async def read(view: StoreView) -> Any:
            found, value = await view.read_state(name)
            return _json.copy_json(value) if found else default

        return await self._inspect(read)

    async def check(self) -> list[CheckResult]:
        """Dry-replay every suspended and blocked run against the code now loaded.

        Nothing is written and no lease is taken: each run is reported ``ok`` or, with
        ``problem`` naming the position, as a run the loaded code would block. Run it
        before deploying new code (``ttflow-async check`` in CI).
        """
        from ._check import check_runs

        return await self._inspect(lambda view: check_runs(self._registry, view, self.clock))

    async def is_locked(self) -> bool:
        """Whether a live lease is held on the store."""
        view = await self._read(StoreView.read)
        return lease_is_live(view.root, self.clock())

    async def lock_info(self) -> LockInfo | None:
        """Who holds the store's lease and until when, or ``None`` when it is free."""
        view = await self._read(StoreView.read)
        if not lease_is_live(view.root, self.clock()):
            return None
        lease = view.root["lease"]
        return LockInfo(owner=str(lease["owner"]), expires_at=to_datetime(lease["expires"]))

    async def next_wakeup(self) -> datetime | None:
        """The earliest time a sleeping run or a wait timeout falls due, or None.

        Rounded up to the microsecond, so a scheduler (or a test clock) set to it is at
        or after the due time, never just short of it.
        """

        async def read(view: StoreView) -> datetime | None:
            due = view.next_due()
            return None if due is None else _ceil_datetime(due)

        return await self._inspect(read)

    # -- administration ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _holding_lease(self, lock_timeout: float | None) -> AsyncIterator[Lease]:
        """Hold the lease for an administrative call; released on every path."""
        _check_lock_timeout(lock_timeout)
        async with self._connected():
            lease = self._lease()
            await lease.acquire(lock_timeout)
            try:
                yield lease
            except LeaseLost:
                raise StateLockedError(
                    f"the lease on {self.store.description} expired and another runner took "
                    "it over, so this call changed nothing; call it again"
                ) from None
            finally:
                if not lease.released:
                    await lease.release()

    async def _commit_admin(
        self, lock_timeout: float | None, change: Callable[[StoreView], Awaitable[None]]
    ) -> None:
        """Apply ``change`` to a view under the lease and commit it by the one commit path."""
        _check_lock_timeout(lock_timeout)

        async def call() -> None:
            async with self._holding_lease(lock_timeout) as lease:
                view = StoreView(self.store, lease.root, lease.version)
                await view.load_head()
                await change(view)
                await commit_view(view, lease, consumed=sorted(view.previously_consumed()))
                await view.delete_garbage()

        await self._guarded(call)

    async def set_state(self, name: str, value: Any, *, lock_timeout: float | None = None) -> None:
        """Write a state value outside a run (takes the lock; emits no event)."""
        check_state_name(name)
        new = _json.normalize(value, f"the value of state {name!r}")

        async def change(view: StoreView) -> None:
            await view.read_state(name)
            view.write_state(name, new)

        await self._commit_admin(lock_timeout, change)

    async def cancel(
        self, run_id: str, reason: str | None = None, *, lock_timeout: float | None = None
    ) -> None:
        """End a suspended or blocked run with status ``"cancelled"`` (takes the lock).

        Its unfinished children are cancelled with it. Raises UnknownRunError for a run
        that is not suspended.
        """
        if not isinstance(run_id, str) or not run_id:
            raise UnknownRunError(f"a run id must be a non-empty string, got {run_id!r}")
        if reason is not None and not isinstance(reason, str):
            raise InvalidStateError(f"a cancel reason must be a string, got {reason!r}")

        async def change(view: StoreView) -> None:
            suspended = await view.all_suspended()
            if run_id not in suspended:
                raise UnknownRunError(
                    f"run {run_id} is not suspended or blocked in {self.store.description} "
                    "(unknown, or already finished): nothing was cancelled; "
                    "see paused_runs() for the runs that can be cancelled"
                )
            now = self.clock()
            targets = [(run_id, suspended[run_id], reason)]
            children = _children_of(run_id, suspended)
            targets += [
                (child, suspended[child], f"cancelled with parent {run_id}: {reason or ''}")
                for child in children
            ]
            journals = await view.fetch(rec["j"] for _, rec, _ in targets if rec["j"])
            for target, rec, why in targets:
                await view.remove(target, rec)
                logs: list[str] = []
                if rec["j"]:
                    view.garbage.add(rec["j"])
                    logs = list(journals[rec["j"]].get("logs") or [])
                    await _close_callbacks(view, target, rec, journals[rec["j"]], why, run_id)
                view.history.append(
                    _format.history_entry(
                        rec["w"],
                        target,
                        now=now,
                        status="cancelled",
                        logs=logs,
                        error_message=why,
                        started=_format.rec_started(rec),
                        parent=rec.get("p"),
                    )
                )

        await self._commit_admin(lock_timeout, change)

    async def clear_state(self, *, lock_timeout: float | None = None) -> None:
        """Delete everything in the store (takes the lock)."""
        _check_lock_timeout(lock_timeout)

        async def call() -> None:
            async with self._holding_lease(lock_timeout) as lease:
                await lease.write({**lease.root, "head": None, "consumed": []}, keep=True)
                blobs, inbox = await gather(self.store.list_blobs, self.store.inbox_list)
                await gather(
                    lambda: self.store.delete_blobs(blobs),
                    lambda: self.store.inbox_delete([item_id for item_id, _ in inbox]),
                )

        await self._guarded(call)

    async def ensure_store(self) -> None:
        """Create the S3 bucket or DynamoDB table if missing (a no-op elsewhere)."""
        async with self._connected():
            await self.store.ensure()

    async def collect_garbage(self, *, lock_timeout: float | None = None) -> int:
        """Delete the blobs that the committed state no longer references.

        Collection is fenced, not timed: it holds the lease, lists the blobs, then proves
        with a compare-and-swap of the root that nobody took the lease over meanwhile.
        Any blob listed then is either referenced by that root or belongs to a commit
        that can never succeed (its runner lost the lease), whatever the runners' clocks
        say. Also runs by itself after a commit about once an hour. Returns how many
        blobs were deleted.
        """
        _check_lock_timeout(lock_timeout)

        async def call() -> int:
            async with self._holding_lease(lock_timeout) as lease:
                return await self._collect(lease)

        return await self._guarded(call)

    async def _collect(self, lease: Lease) -> int:
        view = StoreView(self.store, lease.root, lease.version)
        await view.load_head()
        referenced, listed = await gather(view.referenced_blobs, self.store.list_blobs)
        await lease.renew()  # the fence: raises LeaseLost if the lease was taken over
        stale = [
            blob_id
            for blob_id in listed
            if blob_id not in referenced and not blob_id.startswith(MARKER_PREFIX)
        ]
        await self.store.delete_blobs(stale)
        return len(stale)

    async def _collect_quietly(self) -> None:
        """Collect garbage if the lease is free now; never raises, never waits."""
        try:
            async with self._holding_lease(None) as lease:
                await self._collect(lease)
        except Exception:  # never raises: it may run alongside another call
            logger.info("garbage collection of %s skipped this time", self.store.description)


CLIENT_OPTIONS = (
    "lease_seconds",
    "max_concurrency",
    "max_waves",
    "run_timeout",
    "idempotency_window",
    "clock",
)


async def _close_callbacks(
    view: StoreView, target: str, rec: Rec, journal: Any, why: str | None, cancelled: str
) -> None:
    """A cancelled run's callbacks close; a child cancelled alone wakes its parent."""
    for callback_id in _callback_ids(journal.get("entries") or []):
        await view.callback(callback_id)
        view.callbacks.delete(callback_id)
    parent = rec.get("p")
    key = child_key(target)
    entry = await view.callback(key)
    if parent is None or entry is None or target != cancelled:
        if entry is not None:
            view.callbacks.delete(key)
        return
    ended = {"status": "cancelled", "error_type": "cancelled", "error_message": why or ""}
    view.callbacks.put(key, {**entry, "s": "done", "o": ended})
    view.keep_pending([["event", f"_child:{target}", ended, None]])


def _children_of(run_id: str, suspended: dict[str, Rec]) -> list[str]:
    """Every suspended descendant of ``run_id`` (children first, then theirs)."""
    found: list[str] = []
    frontier = [run_id]
    while frontier:
        parent = frontier.pop()
        for child, rec in suspended.items():
            if rec.get("p") == parent and child not in found:
                found.append(child)
                frontier.append(child)
    return found


def setup(spec_or_repository: str | Store = "local:state.json", **options: Any) -> Client:
    """Create a client for a store spec (``"local:state.json"``, ``"onmemory"``, ...).

    Options: ``lease_seconds`` (default 60), ``max_concurrency`` (default 64),
    ``max_waves`` (default 100), ``run_timeout`` (seconds or timedelta; default none),
    ``idempotency_window`` (default 24 h), ``clock`` (a callable returning epoch
    seconds; default ``time.time``); other options are passed to the store backend.
    """
    client_options = {k: options.pop(k) for k in CLIENT_OPTIONS if k in options}
    if isinstance(spec_or_repository, str):
        store = store_from_spec(spec_or_repository, **options)
    else:
        candidate: object = spec_or_repository
        if not isinstance(candidate, Store):
            from ._errors import UnknownRepositoryError
            from ._stores import ACCEPTED_FORMS

            raise UnknownRepositoryError(
                f"setup() takes a store spec string ({ACCEPTED_FORMS}) or an object "
                f"implementing the store protocol, not {type(candidate).__name__}"
            )
        store = candidate
    return Client(store, **client_options)
