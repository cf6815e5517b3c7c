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

The pass is built in layers, one module each: :mod:`._runner_host` (the state of a
pass and what its runs call), :mod:`._runner_exec` (executing one run),
:mod:`._runner_waves` (deliveries, waves, the inbox) and this module (the lease, the
errors ``run()`` raises, the trace and history records, the commit).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from . import _format, _json, _packs
from ._errors import BlobNotFound, CorruptStateError, RootConflict, StoreError, TtflowError
from ._ids import random_uuid
from ._lease import LeaseLost
from ._pass_options import MARKER_PREFIX, PassOptions, check_positive
from ._runner_exec import format_traceback, operations_of
from ._runner_host import (
    Delivery,
    PassAborted,
    _callback_ids,
    marker_blob_id,
)
from ._runner_waves import WAKE_PREFIXES, PassWaves
from ._view import StoreView, commit_view

if TYPE_CHECKING:
    from ._records import WorkflowRunResult

__all__ = [
    "GC_INTERVAL_SECONDS",
    "MARKER_PREFIX",
    "WAKE_PREFIXES",
    "Delivery",
    "Pass",
    "PassAborted",
    "PassOptions",
    "_callback_ids",
    "check_positive",
    "format_traceback",
    "marker_blob_id",
    "operations_of",
]

logger = logging.getLogger("ttflow_async")

GC_INTERVAL_SECONDS = 3600.0


class Pass(PassWaves):
    """One ``run()``: owns the lease and the view until it commits or gives up."""

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

    # -- commit --------------------------------------------------------------------

    def _finalize(self, trigger: str | None) -> None:
        view = self.view
        now = self.now()
        executions = []
        journals: list[tuple[dict[str, Any], bytes]] = []
        for run_id, outcome in self.outcomes.items():
            run = outcome.run
            _packs.release(view.head, view.garbage, run.journal_blob, run.journal_packed)
            if outcome.rec is not None:
                journal = _format.journal_blob(run.args, run.entries, run.logs, run.wake)
                journals.append((outcome.rec, _json.dumps(journal)))
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
                    outcome.parent,
                    appends=run.state_appends,
                )
            )
        if journals:
            packs = dict(view.head.get("packs") or {})
            _packs.stage(journals, view.new_blobs, packs)
            view.head["packs"] = packs
        if executions or view.events.pending:
            view.traces.append(
                _format.trace_entry(random_uuid(), self.started, trigger, executions)
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

    async def delete_consumed(self) -> None:
        """Delete the inbox items the commit consumed.

        Never raises: the head names them consumed, so the next pass skips them and
        deletes them again.
        """
        try:
            await self.store.inbox_delete(self.consumed)
        except Exception:
            logger.warning(
                "deleting the inbox items consumed by the commit of %s failed",
                self.store.description,
            )

    async def delete_garbage(self) -> None:
        """Delete the blobs and markers the committed head no longer references.

        Never raises: what is left is found again by garbage collection.
        """
        self.view.garbage.update(self.markers)
        await self.view.delete_garbage()

    def _results(self) -> list[WorkflowRunResult]:
        if not self.outcomes:  # an idle pass builds no record model (issue 14)
            return []
        from ._records import WorkflowRunResult

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
