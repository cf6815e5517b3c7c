"""Administration on the client: state, cancellation, checks, clearing and collection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import _format, _json, _packs
from ._client_core import ClientCore, _check_lock_timeout
from ._composition import child_key
from ._concurrency import gather
from ._context import check_state_name
from ._errors import InvalidStateError, UnknownRunError
from ._view import Rec, StoreView, commit_view

if TYPE_CHECKING:
    from ._records import CheckResult


class AdminMixin(ClientCore):
    """Calls that change the store outside a run (under the lease), and ``check()``."""

    async def check(self) -> list[CheckResult]:
        """Dry-replay every suspended and blocked run against the code now loaded.

        Nothing is written and no lease is taken: each run is reported ``ok`` or, with
        ``problem`` naming the position, as a run the loaded code would block. Run it
        before deploying new code (``ttflow-async check`` in CI).
        """
        from ._check import check_runs

        return await self._inspect(lambda view: check_runs(self._registry, view, self.clock))

    async def _commit_admin(
        self, lock_timeout: float | None, change: Callable[[StoreView], Awaitable[None]]
    ) -> None:
        """Apply ``change`` to a view under the lease and commit it by the one commit path."""
        _check_lock_timeout(lock_timeout)

        async def call() -> None:
            async with self._holding_lease(lock_timeout) as lease:
                view = StoreView(self.store, lease.root, lease.version)
                await view.load_head()
                await change(view)
                await commit_view(view, lease, consumed=sorted(view.previously_consumed()))
                await view.delete_garbage()

        await self._guarded(call)

    async def set_state(self, name: str, value: Any, *, lock_timeout: float | None = None) -> None:
        """Write a state value outside a run (takes the lock; emits no event)."""
        check_state_name(name)
        new = _json.normalize(value, f"the value of state {name!r}")

        async def change(view: StoreView) -> None:
            await view.read_state(name)
            view.write_state(name, new)

        await self._commit_admin(lock_timeout, change)

    async def cancel(
        self, run_id: str, reason: str | None = None, *, lock_timeout: float | None = None
    ) -> None:
        """End a suspended or blocked run with status ``"cancelled"`` (takes the lock).

        Its unfinished children are cancelled with it. Raises UnknownRunError for a run
        that is not suspended.
        """
        if not isinstance(run_id, str) or not run_id:
            raise UnknownRunError(f"a run id must be a non-empty string, got {run_id!r}")
        if reason is not None and not isinstance(reason, str):
            raise InvalidStateError(f"a cancel reason must be a string, got {reason!r}")

        async def change(view: StoreView) -> None:
            suspended = await view.all_suspended()
            if run_id not in suspended:
                raise UnknownRunError(
                    f"run {run_id} is not suspended or blocked in {self.store.description} "
                    "(unknown, or already finished): nothing was cancelled; "
                    "see paused_runs() for the runs that can be cancelled"
                )
            now = self.clock()
            targets = [(run_id, suspended[run_id], reason)]
            children = _children_of(run_id, suspended)
            targets += [
                (child, suspended[child], f"cancelled with parent {run_id}: {reason or ''}")
                for child in children
            ]
            recs = [rec for _, rec, _ in targets]
            journals = await _packs.read(view.fetch, recs, self.store.description)
            for (target, rec, why), journal in zip(targets, journals, strict=True):
                await view.remove(target, rec)
                logs: list[str] = []
                if journal is not None:
                    _packs.release(view.head, view.garbage, rec["j"], "js" in rec)
                    logs = list(journal.get("logs") or [])
                    await _close_callbacks(view, target, rec, journal, why, run_id)
                view.history.append(
                    _format.history_entry(
                        rec["w"],
                        target,
                        now=now,
                        status="cancelled",
                        logs=logs,
                        error_message=why,
                        started=_format.rec_started(rec),
                        parent=rec.get("p"),
                    )
                )

        await self._commit_admin(lock_timeout, change)

    async def clear_state(self, *, lock_timeout: float | None = None) -> None:
        """Delete everything in the store (takes the lock)."""
        _check_lock_timeout(lock_timeout)

        async def call() -> None:
            async with self._holding_lease(lock_timeout) as lease:
                emptied = {**lease.root, "head": None, "consumed": []}
                emptied.pop("idle", None)  # the summary of a head that is gone
                await lease.write(emptied, keep=True)
                blobs, inbox = await gather(self.store.list_blobs, self.store.inbox_list)
                await gather(
                    lambda: self.store.delete_blobs(blobs),
                    lambda: self.store.inbox_delete([item_id for item_id, _ in inbox]),
                )

        await self._guarded(call)

    async def ensure_store(self) -> None:
        """Create the S3 bucket or DynamoDB table if missing (a no-op elsewhere)."""
        async with self._connected():
            await self.store.ensure()

    async def collect_garbage(self, *, lock_timeout: float | None = None) -> int:
        """Delete the blobs that the committed state no longer references.

        Collection is fenced, not timed: it holds the lease, lists the blobs, then proves
        with a compare-and-swap of the root that nobody took the lease over meanwhile.
        Any blob listed then is either referenced by that root or belongs to a commit
        that can never succeed (its runner lost the lease), whatever the runners' clocks
        say. Also runs by itself after a commit about once an hour. Returns how many
        blobs were deleted.
        """
        _check_lock_timeout(lock_timeout)

        async def call() -> int:
            async with self._holding_lease(lock_timeout) as lease:
                return await self._collect(lease)

        return await self._guarded(call)


async def _close_callbacks(
    view: StoreView, target: str, rec: Rec, journal: Any, why: str | None, cancelled: str
) -> None:
    """A cancelled run's callbacks close; a child cancelled alone wakes its parent."""
    from ._runner_host import _callback_ids

    for callback_id in _callback_ids(journal.get("entries") or []):
        await view.callback(callback_id)
        view.callbacks.delete(callback_id)
    parent = rec.get("p")
    key = child_key(target)
    entry = await view.callback(key)
    if parent is None or entry is None or target != cancelled:
        if entry is not None:
            view.callbacks.delete(key)
        return
    ended = {"status": "cancelled", "error_type": "cancelled", "error_message": why or ""}
    view.callbacks.put(key, {**entry, "s": "done", "o": ended})
    view.keep_pending([["event", f"_child:{target}", ended, None]])


def _children_of(run_id: str, suspended: dict[str, Rec]) -> list[str]:
    """Every suspended descendant of ``run_id`` (children first, then theirs)."""
    found: list[str] = []
    frontier = [run_id]
    while frontier:
        parent = frontier.pop()
        for child, rec in suspended.items():
            if rec.get("p") == parent and child not in found:
                found.append(child)
                frontier.append(child)
    return found
