"""One pass of ``client.run()``: waves of ready runs, executed concurrently, one commit.

A pass holds the lease from start to commit. It delivers the pending triggers and
events (``workflows_changed``, ``_every``, the given trigger, what an earlier pass left
pending, the inbox), claims the suspended runs that are due, and runs everything ready
in one anyio task group per wave. Events emitted in a wave are delivered in the next
one. When nothing is ready and the inbox is drained (or ``max_waves`` is reached), every
change is committed by one compare-and-swap of the root, which also releases the lease.

The failure model (SPEC §10.1): only user code fails a run. An error of the store or
the engine while a run executes is turned into :class:`PassAborted`, a
``BaseException`` that user code does not catch as an ordinary error; it unwinds the
run and aborts the whole pass: nothing is committed and the lease is released.
"""

from __future__ import annotations

import hashlib
import logging
import math
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.abc
import anyio.lowlevel

from . import _format, _json
from ._composition import callback_due, child_key
from ._context import RunContext, RunState, Suspend
from ._definitions import Registry, WorkflowDef
from ._errors import (
    BlobNotFound,
    CorruptStateError,
    InvalidStateError,
    RootConflict,
    StoreError,
    TtflowError,
    WorkflowDefinitionError,
    WorkflowTimeoutError,
)
from ._journal import describe
from ._lease import Clock, Lease, LeaseLost
from ._records import RunStatus, WorkflowRunResult
from ._retry import qualified_name
from ._triggers import EVERY_EVENT, WORKFLOWS_CHANGED_EVENT
from ._view import Rec, StoreView, commit_view

logger = logging.getLogger("ttflow_async")

GC_INTERVAL_SECONDS = 3600.0
MARKER_PREFIX = "am-"


class PassAborted(BaseException):
    """Unwinds a run when the engine or the store failed under it; the pass aborts.

    A ``BaseException``, so a workflow's ``except Exception`` cannot turn an engine
    failure into a committed, failed run.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class Delivery:
    """A trigger or event to deliver in a wave."""

    kind: Literal["trigger", "event", "child"]
    name: str
    args: Any
    inbox_id: str | None = None
    key: str | None = None


_OPERATION_KINDS = frozenset({"se", "er", "fe", "ba", "we", "iv", "cb", "cr"})


def operations_of(entries: list[Any], waiting: dict[str, Any] | None) -> list[str]:
    """The named operations among journal entries, and the named timer a run waits on."""
    names = [
        describe(entry[0], entry[1])
        for entry in entries
        if isinstance(entry, list) and entry and entry[0] in _OPERATION_KINDS
    ]
    if waiting is not None and waiting.get("name") and waiting.get("kind") == "timer":
        names.append(f"sleep {waiting['name']!r}")
    return names


@dataclass
class _Outcome:
    run: RunState
    triggered_by: str
    started: float
    parent: str | None = None
    operations: list[str] = field(default_factory=list)
    status: RunStatus = "paused"
    error_message: str | None = None
    error_traceback: str | None = None
    result: Any = None
    rec: Rec | None = None


@dataclass
class PassOptions:
    """What a pass is allowed to do (from ``setup()``)."""

    max_concurrency: int = 64
    max_waves: int = 100
    run_timeout: float | None = None
    idempotency_window: float = 86_400.0
    clock: Clock = field(default=lambda: 0.0)


def marker_blob_id(marker: str) -> str:
    """The blob id of an at-most-once attempt marker (never collected as garbage)."""
    return MARKER_PREFIX + hashlib.sha256(marker.encode()).hexdigest()[:40]


def format_traceback(exc: BaseException) -> str:
    """The formatted traceback of a run's failure, cut to the kept size."""
    return _format.cut_traceback("".join(traceback.format_exception(exc)))


class Pass:
    """One ``run()``: owns the lease and the view until it commits or gives up."""

    def __init__(
        self,
        registry: Registry,
        lease: Lease,
        view: StoreView,
        options: PassOptions,
        *,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.registry = registry
        self.options = options
        self.clock = options.clock
        self.on_progress = on_progress
        self.executions_finished = 0
        self.executions_scheduled = 0
        self.lease = lease
        self.view = view
        self.store = view.store
        self.outcomes: dict[str, _Outcome] = {}
        self.emitted: list[tuple[str, Any]] = []
        self.children: list[Delivery] = []
        self.child_parents: dict[str, str] = {}
        self.open_callbacks: set[str] = set()  # created by this pass, not committed yet
        self.suspended_now: list[tuple[str, Rec]] = []
        self.consumed: list[str] = []
        self.seen_inbox: set[str] = set()
        self.markers: set[str] = set()
        self.started = self.clock()
        self.gc_due = False
        self.changed = False
        self.waves = 0
        self.abort_error: Exception | None = None

    # -- RunHost -------------------------------------------------------------------

    def _abort(self, exc: Exception) -> PassAborted:
        if self.abort_error is None:
            self.abort_error = exc
        return PassAborted(exc)

    async def read_state(self, name: str) -> tuple[bool, Any]:
        try:
            return await self.view.read_state(name)
        except Exception as exc:
            raise self._abort(exc) from exc

    def write_state(self, name: str, value: Any) -> None:
        self.view.write_state(name, value)

    def emit(self, name: str, args: Any) -> None:
        self.emitted.append((name, args))

    def now(self) -> float:
        return self.clock()

    async def start_child(self, workflow_name: str, args: Any, parent: str) -> str:
        """Start a child run in the next wave; returns its run id."""
        if workflow_name not in self.registry.workflows:
            raise WorkflowDefinitionError(
                f"invoke({workflow_name!r}): no workflow of that name is registered; "
                "check the name against client.workflows"
            )
        run_id = str(uuid.uuid4())
        await self.create_callback(child_key(run_id), {"r": parent, "s": "open", "k": "child"})
        payload = {"run_id": run_id, "parent": parent, "args": args}
        self.children.append(Delivery("child", workflow_name, payload))
        return run_id

    async def callback_entry(self, key: str) -> dict[str, Any] | None:
        """The callbacks-map entry of ``key`` (a callback id or ``child:<run id>``)."""
        try:
            return await self.view.callback(key)
        except Exception as exc:
            raise self._abort(exc) from exc

    async def create_callback(self, key: str, entry: dict[str, Any]) -> None:
        """Add an entry to the callbacks map (committed with the pass)."""
        await self.callback_entry(key)
        self.view.callbacks.put(key, entry)
        if entry.get("k") != "child":
            self.open_callbacks.add(key)

    async def forget_callback(self, key: str) -> None:
        """Drop a finished callback (or child) from the callbacks map."""
        await self.callback_entry(key)
        self.view.callbacks.delete(key)

    async def _ended(self, run: RunState, outcome: _Outcome, error: Any) -> None:
        """A run finished: close its callbacks; a child tells its parent's entry and wakes it."""
        for callback_id in _callback_ids(run.entries):
            await self.forget_callback(callback_id)
        if outcome.parent is None:
            return
        key = child_key(run.run_id)
        entry = await self.callback_entry(key)
        ended: dict[str, Any] = {"status": outcome.status, "result": outcome.result}
        if isinstance(error, BaseException):
            ended["error_type"] = qualified_name(type(error))
            ended["error_message"] = str(error)
        if entry is not None:
            self.view.callbacks.put(key, {**entry, "s": "done", "o": ended})
        self.emit(f"_child:{run.run_id}", ended)

    async def _callback_deliveries(self, deliveries: list[Delivery], now: float) -> list[Delivery]:
        """Apply completions and heartbeats to the callbacks map; drop those too late."""
        kept: list[Delivery] = []
        for delivery in deliveries:
            if delivery.kind != "event" or not delivery.name.startswith("_cb:"):
                kept.append(delivery)
                continue
            callback_id = delivery.name[4:]
            entry = await self.view.callback(callback_id)
            op = delivery.args.get("op") if isinstance(delivery.args, dict) else None
            due = None if entry is None else callback_due(entry)
            if entry is None or entry.get("s") != "open" or (due is not None and now >= due):
                logger.warning(
                    "dropped a %s of callback %s: it is unknown, already completed or timed "
                    "out (the first completion delivered wins)",
                    op or "message",
                    callback_id,
                )
                self.changed = True
                continue
            if op == "heartbeat":
                entry["hb"] = now
            elif op == "fail":
                entry.update(s="done", o={"error": str(delivery.args.get("error"))})
            else:
                entry.update(s="done", o={"result": delivery.args.get("result")})
            self.view.callbacks.touch(callback_id)
            self.changed = True
            kept.append(delivery)
        return kept

    async def mark_attempt(self, marker: str) -> None:
        """Make the start of an at-most-once attempt durable before its body runs."""
        blob_id = marker_blob_id(marker)
        try:
            await self.store.put_blobs({blob_id: _json.dumps({"m": marker, "t": self.now()})})
        except Exception as exc:
            raise self._abort(exc) from exc
        self.markers.add(blob_id)

    async def attempt_interrupted(self, marker: str) -> bool:
        """Whether an earlier pass started this attempt and died before its outcome."""
        blob_id = marker_blob_id(marker)
        try:
            await self.store.get_blobs([blob_id])
        except BlobNotFound:
            return False
        except Exception as exc:
            raise self._abort(exc) from exc
        self.markers.add(blob_id)
        return True

    # -- the pass ------------------------------------------------------------------

    async def run(
        self, trigger: str | None, args: Any, key: str | None = None
    ) -> list[WorkflowRunResult]:
        """Execute the pass and commit; the lease is released however it ends."""
        committed = False
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as work:
                    tg.start_soon(self._keep_alive, work)
                    try:
                        await self._work(trigger, args, key, tg)
                        if self.abort_error is not None:
                            raise self.abort_error
                        await self._commit(trigger)
                        committed = True
                    except Exception as exc:
                        error = exc
                tg.cancel_scope.cancel()
            if error is not None:  # decided while the lease is still ours, if it is
                error = await self._public_error(error)
        finally:
            if not committed:
                await self.lease.release()
        if error is not None:
            raise error
        if not committed:
            raise LeaseLost(self.store.description)
        return self._results()

    async def _public_error(self, error: Exception) -> Exception:
        """What ``run()`` raises for a pass that failed: a TtflowError, never an internal one."""
        while isinstance(error, ExceptionGroup):
            error = error.exceptions[0]
        if isinstance(error, LeaseLost | RootConflict):
            return LeaseLost(self.store.description)
        if isinstance(error, BlobNotFound):
            if not await self._still_ours():
                return LeaseLost(self.store.description)
            return CorruptStateError(
                f"blob {error.blob_id} of {self.store.description} is referenced by the "
                "store but missing; nothing was committed and the store was left untouched: "
                "restore it from a backup (or clear_state() to start over)"
            )
        if isinstance(error, TtflowError):
            return error
        if isinstance(error, KeyError | TypeError | AttributeError | ValueError | IndexError):
            wrapped_corrupt = CorruptStateError(
                f"{self.store.description} holds data this engine cannot read ({error!r}); "
                "nothing was committed and the store was left untouched: restore it from "
                "a backup or point setup() elsewhere"
            )
            wrapped_corrupt.__cause__ = error
            return wrapped_corrupt
        if isinstance(error, OSError | ConnectionError | TimeoutError):
            wrapped: Exception = StoreError(
                f"{self.store.description} failed during a pass ({error!r}); nothing was "
                "committed and the lease was released: run() again once the store is reachable"
            )
        else:
            wrapped = TtflowError(
                f"ttflow-async failed during a pass on {self.store.description} ({error!r}); "
                "nothing was committed and the lease was released. This is a bug: please "
                "report it with the traceback"
            )
        wrapped.__cause__ = error
        return wrapped

    async def _still_ours(self) -> bool:
        try:
            with anyio.move_on_after(10, shield=True):
                fresh = await StoreView.read(self.store)
                lease = fresh.root.get("lease") or {}
                return bool(lease.get("owner") == self.lease.owner)
        except Exception:
            return True
        return True

    async def _keep_alive(self, work: anyio.CancelScope) -> None:
        """Renew the lease (four times per lease) while the pass works; stop the pass
        once it is taken over.

        A renewal that fails for another reason (a transient store error) is retried at
        the next interval: the lease is still ours until it expires, and the commit's
        compare-and-swap fences this runner anyway if it was taken over meanwhile.
        """
        interval = max(self.lease.lease_seconds / 4, 0.01)
        while True:
            await anyio.sleep(interval)
            try:
                await self.lease.renew()
            except LeaseLost:
                work.cancel()
                return
            except Exception:
                logger.warning("renewing the lease of %s failed; retrying", self.store.description)

    async def _work(
        self, trigger: str | None, args: Any, key: str | None, tg: anyio.abc.TaskGroup
    ) -> None:
        view = self.view
        if view.head_loaded:  # read before the lease was taken; the head id is unchanged
            inbox = await self.store.inbox_list()
        else:
            await view.load_head()
            inbox = await self.store.inbox_list()
        tg.start_soon(view.prefetch_log_tails)
        deliveries: list[Delivery] = []
        fingerprint = self.registry.fingerprint()
        definitions_changed = view.head["fp"] != fingerprint
        if definitions_changed:
            view.head["fp"] = fingerprint
            self.changed = True
            deliveries.append(Delivery("event", WORKFLOWS_CHANGED_EVENT, None))
        deliveries.append(Delivery("event", EVERY_EVENT, None))
        if trigger is not None:
            deliveries.append(Delivery("trigger", trigger, args, key=key))
        pending = view.take_pending()
        if pending:
            self.changed = True
            deliveries += [Delivery(k, n, a, key=ky) for k, n, a, ky in pending]
        previously_consumed = view.previously_consumed()
        for item_id, _data in inbox:
            if item_id in previously_consumed:
                self.consumed.append(item_id)  # its deletion was not confirmed yet
                self.changed = True
        deliveries += self._take_inbox(inbox, previously_consumed)

        due: list[tuple[str, Rec, str]] = []
        due += [(r, rec, "_resume") for r, rec in view.claim_next_run()]
        due += [(r, rec, "_timer") for r, rec in await view.claim_due(self.now())]
        if definitions_changed:
            due += [(r, rec, "_resume") for r, rec in view.claim_blocked()]

        while True:
            if not deliveries and not due:
                if self.waves >= self.options.max_waves:
                    break
                # Each drain round is a wave of its own: take only what is delivered now.
                deliveries = self._take_inbox(await self.store.inbox_list(), previously_consumed)
                if not deliveries:
                    break
            if self.waves >= self.options.max_waves:
                await self._leave_pending(deliveries, due)
                break
            await self._wave(deliveries, due)
            if self.abort_error is not None:
                return
            self.waves += 1
            due = []
            deliveries = [Delivery("event", n, a) for n, a in self.emitted] + self.children
            self.emitted, self.children = [], []

    async def _leave_pending(
        self, deliveries: list[Delivery], due: list[tuple[str, Rec, str]]
    ) -> None:
        """Keep what the wave cap stopped for the next ``run()``: nothing is dropped."""
        logger.warning(
            "a pass on %s reached max_waves=%d with %d deliveries still to make; they stay "
            "queued for the next run() (an event cycle? a workflow that emits the event "
            "that starts it never ends)",
            self.store.description,
            self.options.max_waves,
            len(deliveries),
        )
        kept: list[Delivery] = []
        for delivery in deliveries:
            if delivery.inbox_id is not None:
                # Not consumed: it stays in the inbox and is taken by a later pass.
                self.consumed.remove(delivery.inbox_id)
            else:
                kept.append(delivery)
        self.view.keep_pending([[d.kind, d.name, d.args, d.key] for d in kept])
        await self.view.insert([(run_id, rec) for run_id, rec, _ in due])
        self.changed = True

    def _take_inbox(self, inbox: list[tuple[str, bytes]], skip: set[str]) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for item_id, data in inbox:
            if item_id in skip or item_id in self.seen_inbox:
                continue
            item = _format.decode_inbox_item(item_id, data, self.store.description)
            self.seen_inbox.add(item_id)
            self.consumed.append(item_id)
            self.changed = True
            deliveries.append(
                Delivery(item["k"], item["n"], item.get("a"), item_id, item.get("key"))
            )
        return deliveries

    async def _wave(self, deliveries: list[Delivery], due: list[tuple[str, Rec, str]]) -> None:
        view = self.view
        now = self.now()
        deliveries = await self._deduplicated(deliveries, now)
        deliveries = await self._callback_deliveries(deliveries, now)
        # Runs wait for no engine "_" event but a child's end or a callback: skip the rest.
        claimed = await view.claim_waiters(
            d.name
            for d in deliveries
            if d.kind != "child" and (d.name[:1] != "_" or d.name.startswith(WAKE_PREFIXES))
        )
        new_runs: list[tuple[RunState, str]] = []
        woken: list[tuple[str, Rec, str, dict[str, Any]]] = []
        for delivery in deliveries:
            if delivery.kind == "child":
                new_runs.append((self._child_run(delivery, now), "_invoke"))
                continue
            if delivery.kind == "trigger":
                starters = self.registry.started_by_trigger(delivery.name)
            else:
                starters = self.registry.started_by_event(delivery.name)
                if not delivery.name.startswith("_"):
                    view.events.append(_format.event_entry(delivery.name, delivery.args, now))
                    self.changed = True
            for definition in starters:
                run = RunState(
                    run_id=str(uuid.uuid4()),
                    workflow_name=definition.name,
                    args=_json.copy_json(delivery.args),
                    entries=[],
                    logs=[],
                    since=now,
                )
                new_runs.append((run, delivery.name))
            wake = {"name": delivery.name, "args": delivery.args}
            waiters = claimed.pop(delivery.name, [])
            for run_id, rec in waiters:
                woken.append((run_id, rec, delivery.name, wake))
            if delivery.kind == "trigger" and not starters and not waiters and delivery.inbox_id:
                # Queued for code this runner does not have: leave it for a runner that does.
                logger.warning(
                    "left queued trigger %r in the inbox: nothing here listens to it", delivery.name
                )
                self.consumed.remove(delivery.inbox_id)
        woken += [(run_id, rec, tb, {}) for run_id, rec, tb in due]

        resumed = await self._load_runs([(run_id, rec) for run_id, rec, _, _ in woken])
        batch: list[tuple[RunState, str]] = list(new_runs)
        for (_run_id, _rec, triggered_by, wake), run in zip(woken, resumed, strict=True):
            if wake:
                run.wake = {"name": wake["name"], "args": _json.copy_json(wake["args"])}
            batch.append((run, triggered_by))
        if not batch:
            return
        starts = {run_id: _format.rec_started(rec) for run_id, rec, _, _ in woken}
        parents = {run_id: rec.get("p") for run_id, rec, _, _ in woken}
        for run, triggered_by in batch:
            if run.run_id not in self.outcomes:
                self.outcomes[run.run_id] = _Outcome(
                    run,
                    triggered_by,
                    started=starts.get(run.run_id, now),
                    parent=parents.get(run.run_id) or self.child_parents.get(run.run_id),
                )
        self.changed = True
        self.executions_scheduled += len(batch)
        self._report_progress()
        # At most max_concurrency workers pull runs from the wave: cheaper than one task
        # and one limiter acquisition per run, with the same bound.
        queue = iter([run for run, _ in batch])

        async def worker() -> None:
            for run in queue:
                if self.abort_error is not None:
                    return
                await self._execute(run)

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.options.max_concurrency, len(batch))):
                tg.start_soon(worker)
        if self.abort_error is None:
            await view.insert(self.suspended_now)
        self.suspended_now = []

    def _child_run(self, delivery: Delivery, now: float) -> RunState:
        start = delivery.args
        self.child_parents[start["run_id"]] = start["parent"]
        return RunState(
            run_id=start["run_id"],
            workflow_name=delivery.name,
            args=_json.copy_json(start["args"]),
            entries=[],
            logs=[],
            since=now,
        )

    async def _deduplicated(self, deliveries: list[Delivery], now: float) -> list[Delivery]:
        """Drop keyed deliveries whose key was used within the idempotency window."""
        keyed = [d for d in deliveries if d.key is not None]
        if not keyed:
            return deliveries
        await self.view.load_keys([d.key for d in keyed if d.key is not None])
        fresh: list[Delivery] = []
        for delivery in deliveries:
            if delivery.key is not None:
                if self.view.key_used(delivery.key, now):
                    logger.info(
                        "skipped %s %r: its key %r was already used",
                        delivery.kind,
                        delivery.name,
                        delivery.key,
                    )
                    self.changed = True
                    continue
                self.view.use_key(delivery.key, now + self.options.idempotency_window, now)
                self.changed = True
            fresh.append(delivery)
        return fresh

    async def _load_runs(self, recs: list[tuple[str, Rec]]) -> list[RunState]:
        live = {run_id: o.run for run_id, o in self.outcomes.items()}
        blobs = await self.view.fetch(rec["j"] for run_id, rec in recs if run_id not in live)
        runs = []
        for run_id, rec in recs:
            if run_id in live:
                runs.append(live[run_id])
                continue
            stored = _format.decode_journal(rec["j"], blobs[rec["j"]], self.store.description)
            runs.append(
                RunState(
                    run_id=run_id,
                    workflow_name=rec["w"],
                    args=stored["args"],
                    entries=stored["entries"],
                    logs=stored["logs"],
                    since=rec["since"],
                    wake=stored.get("wake"),
                    journal_blob=rec["j"],
                )
            )
        return runs

    async def _execute(self, run: RunState) -> None:
        outcome = self.outcomes[run.run_id]
        known = len(run.entries)
        definition = self.registry.workflows.get(run.workflow_name)
        timeout = getattr(definition, "timeout", None) or self.options.run_timeout
        ended: tuple[RunStatus | None, BaseException | str | None, Any]
        if timeout is None:
            ended = await self._call(run, definition)
        else:
            with anyio.move_on_after(timeout) as budget:
                ended = await self._call(run, definition)
            if budget.cancelled_caught:
                ended = (
                    "failed",
                    WorkflowTimeoutError(
                        f"run {run.run_id} of workflow {run.workflow_name!r} was still "
                        f"executing after its time budget of {timeout:g} seconds and was "
                        "cancelled; raise the workflow's timeout= (or setup(run_timeout=)) "
                        "or split the work across passes"
                    ),
                    None,
                )
        status, error, value = ended
        if status is None:  # the pass aborts: this run's outcome is not recorded
            return
        outcome.operations += operations_of(
            run.entries[known:], value if status == "paused" else None
        )
        self.executions_finished += 1
        self._report_progress()
        outcome.status = status
        outcome.result = None
        if isinstance(error, BaseException):
            outcome.error_message = repr(error)
            outcome.error_traceback = format_traceback(error)
        else:
            outcome.error_message = error
            outcome.error_traceback = None
        if status in ("paused", "blocked"):
            waiting = value if status == "paused" else None
            if status == "blocked":
                waiting = {"kind": "blocked", "error_message": outcome.error_message}
            rec = _format.run_rec(
                run.workflow_name,
                since=self.now(),
                wait=waiting or {"kind": "next_run"},
                started=outcome.started,
                parent=outcome.parent,
            )
            outcome.rec = dict(rec)
            self.suspended_now.append((run.run_id, outcome.rec))
        else:
            outcome.rec = None
            if status == "succeeded":
                outcome.result = value
            try:
                await self._ended(run, outcome, error)
            except PassAborted:
                return
            except Exception as exc:
                self._abort(exc)

    def _report_progress(self) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(self.executions_finished, self.executions_scheduled)
            except Exception:  # a display callback must never break a pass
                logger.exception("the on_progress callback failed")

    async def _call(
        self, run: RunState, definition: WorkflowDef | None
    ) -> tuple[RunStatus | None, BaseException | str | None, Any]:
        """Execute one run: ``(status, error, waiting-or-result)``; status None = aborted."""
        if definition is None:
            error = (
                f"workflow {run.workflow_name!r} is not registered any more; the run stays "
                "blocked until a workflow of that name is deployed again"
            )
            return "blocked", error, None
        context = RunContext(run, self)
        try:
            if definition.takes_args:
                args = definition.convert_args(_json.copy_json(run.args))
                value = await definition.fn(context, args)
            else:
                value = await definition.fn(context)
        except Suspend as suspend:
            if context.nondeterminism is not None:
                return "blocked", repr(context.nondeterminism), None
            return "paused", None, suspend.waiting
        except PassAborted:
            return None, None, None
        except BaseException as exc:
            leaves = _leaves(exc)
            if any(isinstance(e, PassAborted) for e in leaves):
                return None, None, None
            if any(isinstance(e, anyio.get_cancelled_exc_class()) for e in leaves):
                # The pass's own cancellation (or the run's time budget) is delivered
                # again here; a CancelledError the workflow raised by itself is not.
                await anyio.lowlevel.checkpoint_if_cancelled()
            settled = context.settle(exc)  # a group of suspensions stands for one
            if context.nondeterminism is not None:
                return "blocked", repr(context.nondeterminism), None
            if isinstance(settled, Suspend):
                return "paused", None, settled.waiting
            return "failed", settled, None
        finally:
            context.close()
        if context.nondeterminism is not None:
            return "blocked", repr(context.nondeterminism), None
        try:
            result = _json.normalize(value, f"the result of workflow {run.workflow_name!r}")
        except InvalidStateError as exc:
            return "failed", exc, None
        return "succeeded", None, result

    # -- commit --------------------------------------------------------------------

    def _finalize(self, trigger: str | None) -> None:
        view = self.view
        now = self.now()
        executions = []
        for run_id, outcome in self.outcomes.items():
            run = outcome.run
            if run.journal_blob is not None:
                view.garbage.add(run.journal_blob)
            if outcome.rec is not None:
                outcome.rec["j"] = view.add_blob(
                    "j", _format.journal_blob(run.args, run.entries, run.logs, run.wake)
                )
            else:
                view.history.append(
                    _format.history_entry(
                        run.workflow_name,
                        run_id,
                        now=now,
                        status=outcome.status,
                        logs=run.logs,
                        result=outcome.result,
                        error_message=outcome.error_message,
                        error_traceback=outcome.error_traceback,
                        started=outcome.started,
                        parent=outcome.parent,
                    )
                )
            executions.append(
                _format.trace_execution(
                    run.workflow_name,
                    run_id,
                    outcome.status,
                    outcome.triggered_by,
                    run.state_changes,
                    outcome.operations,
                )
            )
        if executions or view.events.pending:
            view.traces.append(
                _format.trace_entry(str(uuid.uuid4()), self.started, trigger, executions)
            )

    async def _commit(self, trigger: str | None) -> None:
        if not self.changed and not self.view.dirty():
            # Nothing to do: no trace, no new head; the release clears the lease.
            await self.lease.release()
            return
        self._finalize(trigger)
        view = self.view
        if self.started - float(view.head.get("last_gc") or 0.0) >= GC_INTERVAL_SECONDS:
            view.head["last_gc"] = self.started
            self.gc_due = True
        await commit_view(view, self.lease, consumed=self.consumed)

    async def clean_up(self) -> None:
        """Delete what the commit left behind: garbage blobs, markers, consumed inbox items.

        Never raises: whatever is left is found again by the next pass (consumed inbox
        items) or by garbage collection (blobs).
        """
        try:
            self.view.garbage.update(self.markers)
            await self.view.delete_garbage()
            await self.store.inbox_delete(self.consumed)
        except Exception:  # the next pass deletes consumed items it still finds
            logger.warning("cleaning up after the commit of %s failed", self.store.description)

    def _results(self) -> list[WorkflowRunResult]:
        return [
            WorkflowRunResult(
                workflow_name=o.run.workflow_name,
                run_id=run_id,
                status=o.status,
                error_message=o.error_message,
                error_traceback=o.error_traceback,
                result=o.result,
                logs=list(o.run.logs),
                triggered_by=o.triggered_by,
                parent_run_id=o.parent,
            )
            for run_id, o in self.outcomes.items()
        ]


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


WAKE_PREFIXES = ("_child:", "_cb:")


def _callback_ids(entries: list[Any]) -> list[str]:
    """The ids of the callbacks a journal created (its branches and bodies included)."""
    found: list[str] = []
    for entry in entries:
        if not isinstance(entry, list) or not entry:
            continue
        if entry[0] == "cb" and len(entry) > 2 and isinstance(entry[2], dict):
            found.append(str(entry[2].get("id")))
        for part in entry[2:]:
            if isinstance(part, list):
                found += _callback_ids(part)
            elif isinstance(part, dict):
                for value in part.values():
                    if isinstance(value, list):
                        found += _callback_ids(value)
    return found


def check_positive(name: str, value: object) -> float:
    """A finite number > 0 for an option, else ValueError naming it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number greater than 0, got {value!r}")
    return float(value)
