"""Running on the client: ``run()`` (one pass under the lease) and ``send_event()``."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from . import _json
from ._client_core import ClientCore, _check_key, _check_lock_timeout
from ._concurrency import gather
from ._context import check_event_name
from ._errors import (
    BlobNotFound,
    InvalidStateError,
    StateLockedError,
    UnknownTriggerError,
)
from ._idle import prefetch_hint
from ._lease import LeaseLost
from ._view import StoreView, read_view

if TYPE_CHECKING:
    from ._records import WorkflowRunResult

T = TypeVar("T")


class RunningMixin(ClientCore):
    """Passes of the engine, and the inbox that queues what a pass delivers."""

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
            early, late = self._deferred, self._deferred_late
            self._deferred, self._deferred_late = [], []
            under_way = anyio.Event() if late else None
            return await self._alongside(
                early,
                late,
                under_way,
                lambda: self._guarded(
                    lambda: self._pass(
                        trigger,
                        payload,
                        lock_timeout,
                        on_progress,
                        key,
                        on_under_way=None if under_way is None else under_way.set,
                    )
                ),
            )

    async def _pass(
        self,
        trigger: str | None,
        payload: Any,
        lock_timeout: float | None,
        on_progress: Callable[[int, int], None] | None,
        key: str | None = None,
        *,
        on_under_way: Callable[[], None] | None = None,
    ) -> list[WorkflowRunResult]:
        first_view = None
        if trigger is None:
            idle, first_view = await self._idle.nothing_to_do(
                self.store, self._registry, self.clock()
            )
            if idle:
                return []  # nothing written, no trace (SPEC §9)
        elif trigger not in self._registry.string_triggers():
            first_view, listened = await self._waiters_of(trigger)
            if not listened:
                shown = trigger if len(trigger) <= 200 else trigger[:200] + "..."
                raise UnknownTriggerError(
                    f"no workflow has trigger {shown!r} and no suspended run waits for it; "
                    "check the name against client.workflows"
                )
        lease = self._lease()
        try:
            view = await lease.acquire(lock_timeout, first_view=first_view, read_ahead=_read_ahead)
        except StateLockedError:
            if trigger is None:
                raise
            await self._queue("trigger", trigger, payload, key)
            raise StateLockedError(lease.locked_message(queued=True), queued=True) from None
        from ._runner import Pass  # here: an idle run() never loads the pass machinery

        runner = Pass(
            self._registry,
            lease,
            view,
            self._options,
            on_progress=on_progress,
            on_under_way=on_under_way,
        )
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
        if runner.lease.released and not runner.lease.lost:
            self._idle.committed(runner.lease.version, runner.consumed)
        if self._entered_by_user:
            # Entered by the caller: run() returns right after its commit, and deleting
            # what the commit left behind overlaps the next run() (or the exit).
            self._deferred.append(runner.delete_consumed)
            self._deferred_late.append(runner.delete_garbage)
        else:
            await runner.delete_garbage()
            await runner.delete_consumed()
        if runner.gc_due:
            # Here, not beside the next call: a collection takes the lease, and beside
            # the next run() it could take it first and make that run() report the store
            # locked by another runner.
            await self._collect_quietly()
        return results

    @staticmethod
    async def _alongside(
        early: list[Callable[[], Coroutine[Any, Any, None]]],
        late: list[Callable[[], Coroutine[Any, Any, None]]],
        under_way: anyio.Event | None,
        work: Callable[[], Awaitable[T]],
    ) -> T:
        """Await ``work()`` while earlier passes' cleanups (which never raise) run too.

        The ``early`` ones start with it; the ``late`` ones once ``under_way`` is set
        (by the pass, once it holds the lease and has read what it needs) or the work
        has ended, so that they do not slow the start of the pass.
        """
        if not early and not late:
            return await work()
        outcome: list[T] = []
        errors: list[Exception] = []

        async def do_work() -> None:
            try:
                outcome.append(await work())
            except Exception as exc:  # raised below, as itself rather than in a group
                errors.append(exc)
            finally:
                if under_way is not None:
                    under_way.set()

        async def when_under_way(cleanup: Callable[[], Coroutine[Any, Any, None]]) -> None:
            if under_way is not None:
                await under_way.wait()
            await cleanup()

        async with anyio.create_task_group() as tg:
            tg.start_soon(do_work)
            for cleanup in early:
                tg.start_soon(cleanup)
            for cleanup in late:
                tg.start_soon(when_under_way, cleanup)
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


async def _read_ahead(view: StoreView) -> None:
    """What a pass reads first, read beside its lease-taking write (never raises).

    The head the root names, the inbox listing and the journals the root's summary
    names (:func:`~._idle.prefetch_hint`): a listing made before the lease is taken
    over this very root is still whole, as no commit happened in between (see
    :mod:`._idle`); blobs never change under their id, so a journal read ahead is
    the one the head names; if a read fails, the pass reads it again once it holds
    the lease.
    """

    async def head() -> None:
        if not view.head_loaded:
            with contextlib.suppress(Exception):
                await view.load_head()

    async def inbox() -> None:
        if view.inbox is None:
            with contextlib.suppress(Exception):
                view.inbox = await view.store.inbox_list()

    async def journals() -> None:
        ids = prefetch_hint(view.root)
        if ids:
            with contextlib.suppress(Exception):
                await view.fetch(ids)

    await gather(head, inbox, journals)
