"""The run context: the API a workflow awaits, journaled so that replay is exact.

:class:`RunContext` is composed of its core (``_context_core``), its state calls
(``_context_state``), its logs, events and waits (``_context_events``) and child runs
and callbacks (``_composition``). This module adds the calls that run user code in
contexts of their own: branches of ``parallel``/``map``, and side-effect bodies.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import _steps
from ._composition import CompositionMixin
from ._context_core import RunHost, RunState
from ._context_events import EventsMixin, check_event_name, to_seconds
from ._context_state import StateMixin, check_state_name
from ._definitions import SideeffectDef
from ._errors import InvalidStateError, NondeterminismError
from ._journal import Suspend, current_task_id

if TYPE_CHECKING:
    from . import _batch

__all__ = [
    "RunContext",
    "RunHost",
    "RunState",
    "Suspend",
    "check_event_name",
    "check_state_name",
    "to_seconds",
]


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


class RunContext(StateMixin, EventsMixin, CompositionMixin):
    """The handle a workflow uses to read and write state, log, emit events and wait.

    Every call is journaled by its position: when a suspended run resumes, its
    function is called again from the start and each call returns what it returned
    the first time, without doing its work again.
    """

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
        from . import _batch  # here: ``import ttflow_async`` does not load the batches

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
            entry, step = frame.reserve_sideeffect(definition.name)
        except NondeterminismError as exc:
            self._shared.nondeterminism = exc
            raise
        return _steps.run_sideeffect(self, definition, frame, entry, step, args, kwargs)
