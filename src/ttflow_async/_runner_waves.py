"""The waves of a pass: what is delivered, which runs wake, and the inbox drained.

A pass first delivers ``workflows_changed`` (when the definitions changed), ``_every``,
the given trigger, what an earlier pass left pending and the inbox, and claims the
suspended runs that are due. Each wave then runs everything ready concurrently (at most
``max_concurrency`` at a time); events emitted in a wave are delivered in the next one.
Once nothing is ready, the inbox is drained again, one wave per round, up to
``max_waves``; what the cap stops is kept for the next pass.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.abc

from . import _format, _json
from ._concurrency import gather
from ._context import RunState
from ._ids import random_uuid
from ._runner_exec import PassExecution
from ._runner_host import Delivery, RunOutcome
from ._triggers import EVERY_EVENT, WORKFLOWS_CHANGED_EVENT
from ._view import Rec

logger = logging.getLogger("ttflow_async")

WAKE_PREFIXES = ("_child:", "_cb:")


class PassWaves(PassExecution):
    """Delivers triggers and events in waves and runs what they wake."""

    async def _work(
        self, trigger: str | None, args: Any, key: str | None, tg: anyio.abc.TaskGroup
    ) -> None:
        view = self.view
        if view.head_loaded:  # read before the lease was taken; the head id is unchanged
            inbox = view.inbox if view.inbox is not None else await self.store.inbox_list()
        else:  # the head and the inbox listing are independent: read them together
            _, inbox = await gather(view.load_head, self.store.inbox_list)
        tg.start_soon(view.prefetch)
        if self.on_under_way is not None:
            self.on_under_way()
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
        due += [(r, rec, "_resume") for r, rec in view.index.claim_next_run()]
        due += [(r, rec, "_timer") for r, rec in await view.claim_due(self.now())]
        if definitions_changed:
            due += [(r, rec, "_resume") for r, rec in view.index.claim_blocked()]

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
                    run_id=random_uuid(),
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
                self.outcomes[run.run_id] = RunOutcome(
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
                tg.start_soon(worker, name="ttflow-async run worker")
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
                if self.view.index.key_used(delivery.key, now):
                    logger.info(
                        "skipped %s %r: its key %r was already used",
                        delivery.kind,
                        delivery.name,
                        delivery.key,
                    )
                    self.changed = True
                    continue
                self.view.index.use_key(delivery.key, now + self.options.idempotency_window, now)
                self.changed = True
            fresh.append(delivery)
        return fresh
