"""The client: registration, ``run()``, the inbox, inspection and administration."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import anyio

from . import _json
from ._concurrency import gather
from ._context import RunContext, check_event_name, check_state_name
from ._definitions import (
    Registry,
    WorkflowFunction,
    make_sideeffect,
    make_workflow,
    sideeffect_caller,
)
from ._errors import StateLockedError, UnknownTriggerError
from ._layout import blob_time
from ._lease import Lease, LeaseLost, lease_is_live
from ._records import (
    EventLogEntry,
    PausedRun,
    RunHistoryEntry,
    Trace,
    TraceExecution,
    TriggerInfo,
    WorkflowInfo,
    WorkflowRunResult,
    to_datetime,
)
from ._runner import Pass, inbox_item, state_changes_of
from ._stores import BlobNotFound, Store, store_from_spec
from ._triggers import Trigger, named_trigger
from ._view import StoreView, read_view

logger = logging.getLogger("ttflow_async")

T = TypeVar("T")

GC_SAFETY_WINDOW_SECONDS = 3600.0


def _public_waiting(wait: dict[str, Any]) -> dict[str, Any]:
    kind = wait["kind"]
    if kind == "event":
        public: dict[str, Any] = {"kind": "event", "name": wait["name"]}
        if wait.get("deadline") is not None:
            public["timeout_at"] = to_datetime(wait["deadline"])
        return public
    if kind == "timer":
        return {"kind": "timer", "due": to_datetime(wait["due"])}
    if kind == "blocked":
        return {"kind": "blocked", "error_message": wait.get("error_message")}
    return {"kind": kind}


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
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency!r}")
        self.store = store
        self.lease_seconds = float(lease_seconds)
        self.max_concurrency = max_concurrency
        self._registry = Registry()
        self._entered = 0
        self._deferred: list[Callable[[], Coroutine[Any, Any, None]]] = []

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

    def workflow(
        self, trigger: str | Trigger | None = None, *, name: str | None = None
    ) -> Callable[[Callable[..., Awaitable[Any]]], WorkflowFunction[..., Any]]:
        """Register an ``async def`` workflow; its trigger defaults to its name."""

        def register(fn: Callable[..., Awaitable[Any]]) -> WorkflowFunction[..., Any]:
            wf_name = name or getattr(fn, "__name__", None)
            if isinstance(trigger, Trigger):
                resolved = trigger
            else:
                resolved = named_trigger(trigger or str(wf_name))
            definition = make_workflow(fn, name, resolved, registered=self._registry.workflows)
            self._registry.workflows[definition.name] = definition
            return WorkflowFunction(definition)

        return register

    def sideeffect(
        self, *, name: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Awaitable[Any]]]:
        """Register a side effect: its result is journaled and not recomputed on replay."""

        def register(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
            definition = make_sideeffect(fn, name)
            self._registry.sideeffects[definition.name] = definition
            return sideeffect_caller(definition, RunContext)

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
    ) -> list[WorkflowRunResult]:
        """One pass: take the lease, run what is ready (and ``trigger``), commit, release.

        Args:
            trigger: fire this trigger (and wake runs waiting for it) in this pass.
            args: the trigger's args (strict JSON).
            lock_timeout: wait up to this many seconds for another runner's lock.
            on_progress: called as ``on_progress(finished, scheduled)`` each time a run
                is scheduled or finishes an execution in this pass (for progress display).
        """
        if trigger is not None and (not isinstance(trigger, str) or not trigger):
            raise UnknownTriggerError(f"a trigger must be a non-empty string, got {trigger!r}")
        payload = _json.normalize(args, "the args of run()")
        async with self._connected():
            deferred, self._deferred = self._deferred, []
            return await self._alongside(
                deferred, lambda: self._pass(trigger, payload, lock_timeout, on_progress)
            )

    async def _pass(
        self,
        trigger: str | None,
        payload: Any,
        lock_timeout: float | None,
        on_progress: Callable[[int, int], None] | None,
    ) -> list[WorkflowRunResult]:
        first_view = None
        if trigger is not None and trigger not in self._registry.string_triggers():
            first_view, listened = await self._waiters_of(trigger)
            if not listened:
                raise UnknownTriggerError(
                    f"no workflow has trigger {trigger!r} and no suspended run waits for "
                    f"it; registered triggers: {sorted(self._registry.string_triggers())}"
                )
        lease = Lease(self.store, self.lease_seconds)
        try:
            view = await lease.acquire(lock_timeout, first_view=first_view)
        except StateLockedError:
            if trigger is None:
                raise
            await self._queue("trigger", trigger, payload)
            raise StateLockedError(lease.locked_message(queued=True), queued=True) from None
        runner = Pass(
            self._registry,
            lease,
            view,
            max_concurrency=self.max_concurrency,
            on_progress=on_progress,
        )
        try:
            results = await runner.run(trigger, payload)
        except LeaseLost:
            queued = False
            if trigger is not None:
                await self._queue("trigger", trigger, payload)
                queued = True
            raise StateLockedError(
                f"the lease on {self.store.description} expired and another runner took "
                "it over, so nothing of this run() was committed"
                + ("; the trigger was queued in the inbox" if queued else ""),
                queued=queued,
            ) from None
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

    async def _waiters_of(self, trigger: str) -> tuple[StoreView | None, bool]:
        """Whether a suspended run waits for ``trigger``, and the view that says so."""
        try:
            view = await read_view(self.store)
            return view, await view.has_waiters(trigger)
        except BlobNotFound:  # a commit replaced what we were reading: read again
            return None, await self._inspect(lambda view: view.has_waiters(trigger))

    async def _queue(self, kind: str, name: str, args: Any) -> None:
        item_id, data = inbox_item(kind, name, args)
        await self.store.inbox_put(item_id, data)

    async def send_event(self, name: str, args: Any = None) -> None:
        """Store a user event durably (no lock); the next ``run()`` delivers it."""
        check_event_name(name)
        payload = _json.normalize(args, f"the args of event {name!r}")
        async with self._connected():
            await self._queue("event", name, payload)

    # -- inspection ----------------------------------------------------------------

    async def _read(self, read: Callable[[Store], Awaitable[T]]) -> T:
        async with self._connected():
            for attempt in range(5):
                try:
                    return await read(self.store)
                except BlobNotFound:  # a commit replaced what we were reading: read again
                    if attempt == 4:
                        raise
        raise AssertionError("unreachable")

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
                    )
                    for run_id, rec in runs.items()
                ),
                key=lambda r: (r.since, r.run_id),
            )

        return await self._inspect(read)

    async def run_history(self) -> list[RunHistoryEntry]:
        """Finished runs (the most recent 1000), oldest first."""

        async def read(view: StoreView) -> list[RunHistoryEntry]:
            return [
                RunHistoryEntry(
                    workflow_name=e["w"],
                    run_id=e["r"],
                    timestamp=to_datetime(e["t"]),
                    status=e["s"],
                )
                for e in await view.history.read(view.fetch)
            ]

        return await self._inspect(read)

    async def event_log(self) -> list[EventLogEntry]:
        """Delivered events (the most recent 1000), oldest first."""

        async def read(view: StoreView) -> list[EventLogEntry]:
            return [
                EventLogEntry(event_name=e["n"], args=e["a"], timestamp=to_datetime(e["t"]))
                for e in await view.events.read(view.fetch)
            ]

        return await self._inspect(read)

    async def traces(self) -> list[Trace]:
        """Execution traces of the most recent 500 ``run()`` calls, oldest first."""

        async def read(view: StoreView) -> list[Trace]:
            return [
                Trace(
                    trace_id=t["id"],
                    timestamp=to_datetime(t["t"]),
                    trigger_name=t["tr"],
                    executions=[
                        TraceExecution(
                            workflow_name=x["w"],
                            run_id=x["r"],
                            status=x["s"],
                            triggered_by=x["tb"],
                            state_changes=state_changes_of(x["sc"]),
                        )
                        for x in t["x"]
                    ],
                )
                for t in await view.traces.read(view.fetch)
            ]

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
            return list(journal["logs"])

        return await self._inspect(read)

    async def get_state(self, name: str, default: Any = None) -> Any:
        """Read a state value outside a run."""
        check_state_name(name)

        async def read(view: StoreView) -> Any:
            found, value = await view.read_state(name)
            return _json.copy_json(value) if found else default

        return await self._inspect(read)

    async def is_locked(self) -> bool:
        """Whether a live lease is held on the store."""
        view = await self._read(StoreView.read)
        return lease_is_live(view.root)

    async def next_wakeup(self) -> datetime | None:
        """The earliest time a sleeping run or a wait timeout falls due, or None."""

        async def read(view: StoreView) -> datetime | None:
            due = view.next_due()
            return None if due is None else to_datetime(due)

        return await self._inspect(read)

    # -- administration ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _holding_lease(self, lock_timeout: float | None) -> AsyncIterator[Lease]:
        async with self._connected():
            lease = Lease(self.store, self.lease_seconds)
            await lease.acquire(lock_timeout)
            try:
                yield lease
            finally:
                await lease.release()

    async def set_state(self, name: str, value: Any, *, lock_timeout: float | None = None) -> None:
        """Write a state value outside a run (takes the lock; emits no event)."""
        check_state_name(name)
        new = _json.normalize(value, f"the value of state {name!r}")
        async with self._holding_lease(lock_timeout) as lease:
            view = StoreView(self.store, lease.root, lease.version)
            await view.load_head()
            await view.read_state(name)
            view.write_state(name, new)
            head_id = await view.stage_head()
            await self.store.put_blobs(view.new_blobs)
            await lease.write({**lease.root, "head": head_id}, keep=False)
            await view.delete_garbage()

    async def clear_state(self, *, lock_timeout: float | None = None) -> None:
        """Delete everything in the store (takes the lock)."""
        async with self._holding_lease(lock_timeout) as lease:
            await lease.write({**lease.root, "head": None, "consumed": []}, keep=True)
            blobs, inbox = await gather(self.store.list_blobs, self.store.inbox_list)
            await gather(
                lambda: self.store.delete_blobs(blobs),
                lambda: self.store.inbox_delete([item_id for item_id, _ in inbox]),
            )

    async def ensure_store(self) -> None:
        """Create the S3 bucket or DynamoDB table if missing (a no-op elsewhere)."""
        async with self._connected():
            await self.store.ensure()

    async def collect_garbage(self, *, older_than: float = GC_SAFETY_WINDOW_SECONDS) -> int:
        """Delete blobs no root references that are older than ``older_than`` seconds.

        Also runs by itself after a commit about once an hour. Returns how many blobs
        were deleted.
        """
        async with self._connected():
            view = await self._read(read_view)
            return await self._collect(view, older_than)

    async def _collect(self, view: StoreView, older_than: float) -> int:
        referenced, listed = await gather(view.referenced_blobs, self.store.list_blobs)
        cutoff = time.time() - older_than
        stale = [
            blob_id
            for blob_id in listed
            if blob_id not in referenced and (blob_time(blob_id) or 0.0) < cutoff
        ]
        await self.store.delete_blobs(stale)
        return len(stale)

    async def _collect_quietly(self) -> None:
        try:
            await self._collect(await self._read(read_view), GC_SAFETY_WINDOW_SECONDS)
        except Exception:  # never raises: it may run alongside another call
            logger.warning("garbage collection of %s failed", self.store.description)


def setup(spec_or_repository: str | Store = "local:state.json", **options: Any) -> Client:
    """Create a client for a store spec (``"local:state.json"``, ``"onmemory"``, ...).

    Options: ``lease_seconds`` (default 60), ``max_concurrency`` (default 64); other
    options are passed to the store backend.
    """
    client_options = {
        k: options.pop(k) for k in ("lease_seconds", "max_concurrency") if k in options
    }
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
