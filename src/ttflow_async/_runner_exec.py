"""The execution of one run in a pass: replay, time budget, failure classification.

A run ends ``succeeded``, ``failed`` (only user code fails a run), ``paused`` (its
suspended record is indexed at the end of the wave) or ``blocked`` (an unknown
workflow or a nondeterministic replay). An engine or store error under a run is a
:class:`~._runner_host.PassAborted`: the run's outcome is not recorded and the pass aborts.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from . import _format, _json, _packs
from ._context import RunContext, RunState, Suspend
from ._definitions import WorkflowDef
from ._errors import InvalidStateError, WorkflowTimeoutError
from ._journal import describe
from ._runner_host import PassAborted, PassHost
from ._view import Rec

if TYPE_CHECKING:
    from ._records import RunStatus

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


def format_traceback(exc: BaseException) -> str:
    """The formatted traceback of a run's failure, cut to the kept size."""
    return _format.cut_traceback("".join(traceback.format_exception(exc)))


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


class PassExecution(PassHost):
    """Loads, executes and records the runs of a pass."""

    async def _load_runs(self, recs: list[tuple[str, Rec]]) -> list[RunState]:
        live = {run_id: o.run for run_id, o in self.outcomes.items()}
        stored = [rec for run_id, rec in recs if run_id not in live]
        journals = iter(await _packs.read(self.view.fetch, stored, self.store.description))
        runs = []
        for run_id, rec in recs:
            if run_id in live:
                runs.append(live[run_id])
                continue
            journal = next(journals)
            runs.append(
                RunState(
                    run_id=run_id,
                    workflow_name=rec["w"],
                    args=journal["args"],
                    entries=journal["entries"],
                    logs=journal["logs"],
                    since=rec["since"],
                    wake=journal.get("wake"),
                    journal_blob=rec["j"],
                    journal_packed="js" in rec,
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
