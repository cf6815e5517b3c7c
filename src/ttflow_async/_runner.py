"""One pass of ``client.run()``: waves of ready runs, executed concurrently, one commit.

A pass holds the lease from start to commit. It delivers the pending triggers and
events (``workflows_changed``, ``_every``, the given trigger, the inbox), claims the
suspended runs that are due, and runs everything ready in one anyio task group per
wave. Events emitted in a wave are delivered in the next one. When nothing is ready
and the inbox is drained, every change is committed by one compare-and-swap of the
root, which also releases the lease.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from . import _json
from ._concurrency import gather
from ._context import RunContext, RunState, Suspend
from ._definitions import Registry, WorkflowDef
from ._lease import Lease, LeaseLost
from ._records import RunStatus, StateChange, WorkflowRunResult
from ._triggers import EVERY_EVENT, WORKFLOWS_CHANGED_EVENT
from ._view import Rec, StoreView

logger = logging.getLogger("ttflow_async")

MAX_DRAIN_ROUNDS = 20
GC_INTERVAL_SECONDS = 3600.0


@dataclass
class Delivery:
    """A trigger or event to deliver in a wave."""

    kind: str  # "trigger" or "event"
    name: str
    args: Any
    inbox_id: str | None = None


@dataclass
class _Outcome:
    run: RunState
    triggered_by: str
    status: RunStatus = "paused"
    error_message: str | None = None
    rec: Rec | None = None


def inbox_item(kind: str, name: str, args: Any) -> tuple[str, bytes]:
    """An inbox id (sorted by arrival) and the item's bytes."""
    item_id = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
    return item_id, _json.dumps({"k": kind, "n": name, "a": args, "t": time.time()})


class Pass:
    """One ``run()``: owns the lease and the view until it commits or gives up."""

    def __init__(
        self,
        registry: Registry,
        lease: Lease,
        view: StoreView,
        *,
        max_concurrency: int,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.registry = registry
        self.on_progress = on_progress
        self.executions_finished = 0
        self.executions_scheduled = 0
        self.lease = lease
        self.view = view
        self.store = view.store
        self.max_concurrency = max_concurrency
        self.outcomes: dict[str, _Outcome] = {}
        self.emitted: list[tuple[str, Any]] = []
        self.suspended_now: list[tuple[str, Rec]] = []
        self.consumed: list[str] = []
        self.seen_inbox: set[str] = set()
        self.started = time.time()
        self.gc_due = False

    # -- RunHost -------------------------------------------------------------------

    async def read_state(self, name: str) -> tuple[bool, Any]:
        return await self.view.read_state(name)

    def write_state(self, name: str, value: Any) -> None:
        self.view.write_state(name, value)

    def emit(self, name: str, args: Any) -> None:
        self.emitted.append((name, args))

    def now(self) -> float:
        return time.time()

    # -- the pass ------------------------------------------------------------------

    async def run(self, trigger: str | None, args: Any) -> list[WorkflowRunResult]:
        """Execute the pass and commit; the lease is released however it ends."""
        committed = False
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as work:
                    tg.start_soon(self._keep_alive, work)
                    try:
                        await self._work(trigger, args, tg)
                        await self._commit(trigger)
                        committed = True
                    except Exception as exc:
                        error = exc
                tg.cancel_scope.cancel()
        finally:
            if not committed:
                with anyio.move_on_after(10, shield=True):
                    await self.lease.release()
        if error is not None:
            raise error
        if not committed:
            raise LeaseLost(self.store.description)
        return self._results()

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

    async def _work(self, trigger: str | None, args: Any, tg: anyio.abc.TaskGroup) -> None:
        view = self.view
        if view.head_loaded:  # read before the lease was taken; the head id is unchanged
            inbox = await self.store.inbox_list()
        else:
            _, inbox = await gather(view.load_head, self.store.inbox_list)
        tg.start_soon(view.prefetch_log_tails)
        deliveries: list[Delivery] = []
        fingerprint = self.registry.fingerprint()
        definitions_changed = view.head["fp"] != fingerprint
        if definitions_changed:
            view.head["fp"] = fingerprint
            deliveries.append(Delivery("event", WORKFLOWS_CHANGED_EVENT, None))
        deliveries.append(Delivery("event", EVERY_EVENT, None))
        if trigger is not None:
            deliveries.append(Delivery("trigger", trigger, args))
        previously_consumed = set(view.root.get("consumed") or [])
        for item_id, _data in inbox:
            if item_id in previously_consumed:
                self.consumed.append(item_id)  # its deletion was not confirmed yet
        deliveries += self._take_inbox(inbox, previously_consumed)

        due: list[tuple[str, Rec, str]] = []
        due += [(r, rec, "_resume") for r, rec in view.claim_next_run()]
        due += [(r, rec, "_timer") for r, rec in await view.claim_due(self.now())]
        if definitions_changed:
            due += [(r, rec, "_resume") for r, rec in view.claim_blocked()]

        for _ in range(MAX_DRAIN_ROUNDS):
            while deliveries or due:
                await self._wave(deliveries, due)
                due = []
                deliveries = [Delivery("event", n, a) for n, a in self.emitted]
                self.emitted = []
            deliveries = self._take_inbox(await self.store.inbox_list(), previously_consumed)
            if not deliveries:
                break

    def _take_inbox(self, inbox: list[tuple[str, bytes]], skip: set[str]) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for item_id, data in inbox:
            if item_id in skip or item_id in self.seen_inbox:
                continue
            self.seen_inbox.add(item_id)
            self.consumed.append(item_id)
            try:
                item = _json.loads(data)
                deliveries.append(Delivery(item["k"], item["n"], item.get("a"), item_id))
            except (ValueError, KeyError, TypeError):
                logger.warning("skipped unreadable inbox item %s", item_id)
        return deliveries

    async def _wave(self, deliveries: list[Delivery], due: list[tuple[str, Rec, str]]) -> None:
        view = self.view
        now = self.now()
        # No run can wait for the engine's own "_" events: skip their shard reads.
        claimed = await view.claim_waiters(d.name for d in deliveries if d.name[:1] != "_")
        new_runs: list[tuple[RunState, str]] = []
        woken: list[tuple[str, Rec, str, dict[str, Any]]] = []
        for delivery in deliveries:
            if delivery.kind == "trigger":
                starters = self.registry.started_by_trigger(delivery.name)
            else:
                starters = self.registry.started_by_event(delivery.name)
                if not delivery.name.startswith("_"):
                    view.events.append({"n": delivery.name, "a": delivery.args, "t": now})
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
        for run, triggered_by in batch:
            if run.run_id not in self.outcomes:
                self.outcomes[run.run_id] = _Outcome(run, triggered_by)
        self.executions_scheduled += len(batch)
        self._report_progress()
        # At most max_concurrency workers pull runs from the wave: cheaper than one task
        # and one limiter acquisition per run, with the same bound.
        pending = iter([run for run, _ in batch])

        async def worker() -> None:
            for run in pending:
                await self._execute(run)

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.max_concurrency, len(batch))):
                tg.start_soon(worker)
        await view.insert(self.suspended_now)
        self.suspended_now = []

    async def _load_runs(self, recs: list[tuple[str, Rec]]) -> list[RunState]:
        live = {run_id: o.run for run_id, o in self.outcomes.items()}
        blobs = await self.view.fetch(rec["j"] for run_id, rec in recs if run_id not in live)
        runs = []
        for run_id, rec in recs:
            if run_id in live:
                runs.append(live[run_id])
                continue
            stored = blobs[rec["j"]]
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
        definition = self.registry.workflows.get(run.workflow_name)
        status, error, waiting = await self._call(run, definition)
        self.executions_finished += 1
        self._report_progress()
        outcome.status = status
        outcome.error_message = error
        if status in ("paused", "blocked"):
            if status == "blocked":
                waiting = {"kind": "blocked", "error_message": error}
            rec: Rec = {"w": run.workflow_name, "since": self.now(), "wait": waiting, "j": None}
            outcome.rec = rec
            self.suspended_now.append((run.run_id, rec))
        else:
            outcome.rec = None

    def _report_progress(self) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(self.executions_finished, self.executions_scheduled)
            except Exception:  # a display callback must never break a pass
                logger.exception("the on_progress callback failed")

    async def _call(
        self, run: RunState, definition: WorkflowDef | None
    ) -> tuple[RunStatus, str | None, dict[str, Any]]:
        if definition is None:
            error = (
                f"workflow {run.workflow_name!r} is not registered any more; the run stays "
                "blocked until a workflow of that name is deployed again"
            )
            return "blocked", error, {}
        context = RunContext(run, self)
        try:
            if definition.takes_args:
                args = definition.convert_args(_json.copy_json(run.args))
                await definition.fn(context, args)
            else:
                await definition.fn(context)
        except Suspend as suspend:
            if context.nondeterminism is not None:
                return "blocked", repr(context.nondeterminism), {}
            return "paused", None, suspend.waiting
        except Exception as exc:
            if context.nondeterminism is not None:
                return "blocked", repr(context.nondeterminism), {}
            return "failed", repr(exc), {}
        finally:
            context.close()
        if context.nondeterminism is not None:
            return "blocked", repr(context.nondeterminism), {}
        return "succeeded", None, {}

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
                    "j",
                    {"args": run.args, "entries": run.entries, "logs": run.logs, "wake": run.wake},
                )
            else:
                view.history.append(
                    {
                        "w": run.workflow_name,
                        "r": run_id,
                        "t": now,
                        "s": outcome.status,
                        "l": run.logs,
                    }
                )
            executions.append(
                {
                    "w": run.workflow_name,
                    "r": run_id,
                    "s": outcome.status,
                    "tb": outcome.triggered_by,
                    "sc": [[c.name, c.old, c.new] for c in run.state_changes],
                }
            )
        view.traces.append(
            {"id": str(uuid.uuid4()), "t": self.started, "tr": trigger, "x": executions}
        )

    async def _commit(self, trigger: str | None) -> None:
        self._finalize(trigger)
        view = self.view
        if self.started - float(view.head.get("last_gc") or 0.0) >= GC_INTERVAL_SECONDS:
            view.head["last_gc"] = self.started
            self.gc_due = True
        head_id = await view.stage_head()
        await self.store.put_blobs(view.new_blobs)
        await self.lease.write(
            {**self.lease.root, "head": head_id, "consumed": self.consumed}, keep=False
        )

    async def clean_up(self) -> None:
        """Delete what the commit left behind: garbage blobs and consumed inbox items.

        Never raises: whatever is left is found again by the next pass (consumed inbox
        items) or by garbage collection (blobs).
        """
        try:
            await gather(
                self.view.delete_garbage,
                lambda: self.store.inbox_delete(self.consumed),
            )
        except Exception:  # the next pass deletes consumed items it still finds
            logger.warning("cleaning up after the commit of %s failed", self.store.description)

    def _results(self) -> list[WorkflowRunResult]:
        return [
            WorkflowRunResult(
                workflow_name=o.run.workflow_name,
                run_id=run_id,
                status=o.status,
                error_message=o.error_message,
                logs=list(o.run.logs),
                triggered_by=o.triggered_by,
            )
            for run_id, o in self.outcomes.items()
        ]


def state_changes_of(raw: list[list[Any]]) -> list[StateChange]:
    """Decode the compact state changes of a stored trace."""
    return [StateChange(name=n, old=o, new=v) for n, o, v in raw]
