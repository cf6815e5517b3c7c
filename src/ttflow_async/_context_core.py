"""The core of the run context: what a run shares, journal frames, suspension, patches.

:class:`ContextCore` holds a context's state and the checks every context call makes
before it touches the journal (``_frame``, ``_next``), and records suspensions
(``_suspend``). The calls a workflow makes are built on it in ``_context_state``,
``_context_events``, ``_composition`` and ``_context``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, Self

import anyio

from ._errors import InvalidStateError, NondeterminismError, TtflowError
from ._journal import Frame, Suspend, current_frame, current_task_id

if TYPE_CHECKING:
    import asyncio

    from ._records import ContextData, StateChange


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

    async def append_state(self, name: str, item: Any, max_length: int | None, run_id: str) -> bool:
        """Append to a list state (emitting its change event); whether the value changed."""
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


class RunState:
    """Everything the engine keeps about one run while a pass executes it.

    A plain class, as are this module's other records: building a dataclass costs
    ~0.5-1 ms at import, which every fresh process pays (issue 14).
    """

    def __init__(
        self,
        run_id: str,
        workflow_name: str,
        args: Any,
        entries: list[Any],
        logs: list[str],
        since: float,
        wake: dict[str, Any] | None = None,
        journal_blob: str | None = None,
        journal_packed: bool = False,
    ) -> None:
        self.run_id = run_id
        self.workflow_name = workflow_name
        self.args = args
        self.entries = entries
        self.logs = logs
        self.since = since
        self.wake = wake
        self.journal_blob = journal_blob
        #: Whether ``journal_blob`` is a pack holding this journal among others.
        self.journal_packed = journal_packed
        self.state_changes: list[StateChange] = []
        #: ``[name, items, max_length]`` per run of consecutive ``add_list_state`` calls.
        self.state_appends: list[list[Any]] = []

    def __repr__(self) -> str:
        return f"RunState(run_id={self.run_id!r}, workflow_name={self.workflow_name!r})"


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


class _Shared:
    """What every context of one run (the workflow's and its branches') shares."""

    def __init__(self, run: RunState, host: RunHost, wake: dict[str, Any] | None) -> None:
        self.run = run
        self.host = host
        self.wake = wake
        self.nondeterminism: NondeterminismError | None = None
        self.finished = False
        self.fresh_reads: dict[str, tuple[bool, Any]] = {}
        self.open_append: list[Any] | None = None  # the trace entry further appends extend
        self.spawned: set[asyncio.Task[Any]] = set()


class ContextCore:
    """A context's state and journal plumbing, shared by every call of :class:`RunContext`."""

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
    def _branch(cls, parent: ContextCore, frame: Frame) -> Self:
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
        from ._records import ContextData

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
            from . import _batch  # here: only concurrent suspensions need it

            first = self._suspended.waiting
            combined = first if first.get("concurrent") else _batch.batch_waiting(None, [first])
            combined["concurrent"] = True
            _batch.add_waiting(combined, len(combined["waiting"]), waiting)
            if combined is not first:
                first.clear()
                first.update(combined)
        return Suspend(self._suspended.waiting)

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
