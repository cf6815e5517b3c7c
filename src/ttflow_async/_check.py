"""The pre-deploy check: a dry replay of every suspended and blocked run (SPEC §10.7).

Each run's function is called again over its journal, exactly as a resume would, but
against a host that writes nothing, and over frames that stop the replay at the first
step the journal does not hold yet: no side-effect body runs, no state is written, no
event is emitted, nothing is committed and no lease is taken. A replay that reaches a
different call than its journal is reported ``would block`` with the position; one
that reaches the end of its journal (or a wait it recorded) is ``ok``.

What it cannot see: a side effect whose body changed but whose name and position did
not (the journaled result replays), code after the end of the journal, and behaviour
that depends on state written after the run suspended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from . import _json, _packs
from ._context import RunContext, RunState
from ._definitions import Registry
from ._errors import NondeterminismError
from ._journal import Entry, Frame, Suspend, is_closed
from ._lease import Clock
from ._records import CheckResult
from ._view import Rec, StoreView

if TYPE_CHECKING:
    from ._format import JournalBlob

REPLAY_SECONDS = 10.0
"""How long one dry replay may take (user code between context calls included)."""


class _ReplayDone(BaseException):
    """The dry replay reached the end of what the journal recorded."""


class _DryFrame(Frame):
    """A frame that stops the replay instead of recording a new step."""

    def next(self, kind: str, name: str | None) -> Entry | None:
        if self.pos >= len(self.entries):
            raise _ReplayDone
        return super().next(kind, name)

    def append(self, kind: str, name: str | None, result: Any) -> Entry:
        raise _ReplayDone

    def reserve_sideeffect(self, name: str) -> tuple[Entry, int]:
        if self.pos >= len(self.entries):
            raise _ReplayDone
        entry, index = super().reserve_sideeffect(name)
        if not is_closed(entry):
            raise _ReplayDone  # its body would run: stop before it does
        return entry, index

    def child(self, entries: list[Entry], step: int | str, owner: int | None) -> Frame:
        return _DryFrame(
            entries,
            run_id=self.run_id,
            workflow_name=self.workflow_name,
            path=(*self.path, step),
            owner=owner,
        )


class _DryHost:
    """A run host that reads the committed state and writes nothing."""

    def __init__(self, view: StoreView, clock: Clock) -> None:
        self.view = view
        self.clock = clock

    async def read_state(self, name: str) -> tuple[bool, Any]:
        raise _ReplayDone  # only a new step reads: replayed reads come from the journal

    def write_state(self, name: str, value: Any) -> None:
        return None

    def emit(self, name: str, args: Any) -> None:
        return None

    async def append_state(self, name: str, item: Any, max_length: int | None, run_id: str) -> bool:
        raise _ReplayDone  # a new step: replayed appends never reach the host

    def now(self) -> float:
        return self.clock()

    async def mark_attempt(self, marker: str) -> None:
        raise _ReplayDone

    async def attempt_interrupted(self, marker: str) -> bool:
        raise _ReplayDone


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def check_runs(registry: Registry, view: StoreView, clock: Clock) -> list[CheckResult]:
    """Dry-replay every suspended and blocked run of ``view`` against ``registry``."""
    suspended = await view.all_suspended()
    ordered = sorted(suspended.items(), key=lambda item: (item[1]["since"], item[0]))
    journals = await _packs.read(view.fetch, [rec for _, rec in ordered], view.store.description)
    results = []
    for (run_id, rec), journal in zip(ordered, journals, strict=True):
        problem = await _check_one(registry, view, clock, run_id, rec, journal)
        results.append(
            CheckResult(run_id=run_id, workflow_name=rec["w"], ok=problem is None, problem=problem)
        )
    return results


async def _check_one(
    registry: Registry,
    view: StoreView,
    clock: Clock,
    run_id: str,
    rec: Rec,
    stored: JournalBlob,
) -> str | None:
    definition = registry.workflows.get(rec["w"])
    if definition is None:
        return (
            f"workflow {rec['w']!r} is not registered in the loaded code: the run would stay "
            "blocked until a workflow of that name is deployed again"
        )
    run = RunState(
        run_id=run_id,
        workflow_name=rec["w"],
        args=_json.copy_json(stored["args"]),
        entries=_json.copy_json(stored["entries"]),
        logs=list(stored["logs"]),
        since=rec["since"],
        wake=None,
    )
    context = RunContext(run, _DryHost(view, clock))
    root = context._root
    context._root = _DryFrame(run.entries, run_id=run_id, workflow_name=rec["w"], owner=root.owner)
    error: BaseException | None = None
    with anyio.move_on_after(REPLAY_SECONDS) as budget:
        try:
            if definition.takes_args:
                await definition.fn(context, definition.convert_args(run.args))
            else:
                await definition.fn(context)
        except BaseException as exc:  # the replay's own outcome, inspected below
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            error = exc
        finally:
            context.close()
    if context.nondeterminism is not None:
        return str(context.nondeterminism)
    if budget.cancelled_caught:
        return (
            f"the dry replay of run {run_id} did not reach the end of its journal within "
            f"{REPLAY_SECONDS:g} seconds (user code between context calls waits on "
            "something outside the engine); it could not be checked"
        )
    leaves = [] if error is None else _leaves(error)
    nondeterministic = [e for e in leaves if isinstance(e, NondeterminismError)]
    if nondeterministic:
        return str(nondeterministic[0])
    if all(isinstance(e, _ReplayDone | Suspend) for e in leaves):
        return None
    if error is not None and rec["wait"]["kind"] != "blocked":
        # The code raised before reaching the end of the journal: a resume would fail
        # (or take another path) where the journal went on.
        first = next(e for e in leaves if not isinstance(e, _ReplayDone | Suspend))
        return (
            f"the dry replay of run {run_id} raised {first!r} before reaching the end of "
            "its journal: the loaded code no longer follows the path this run took"
        )
    return None
