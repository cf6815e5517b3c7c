"""The lease: one runner at a time, with an expiry, fenced by the root's CAS."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import anyio

from . import _json
from ._errors import StateLockedError, TtflowError
from ._layout import decode_root
from ._stores import CommitStore, RootConflict, Store
from ._view import StoreView

logger = logging.getLogger("ttflow_async")

Clock = Callable[[], float]
"""Returns the current time as epoch seconds (``time.time`` unless a test injects one)."""

ONE_STEP_COMMIT_BLOBS = 64
ONE_STEP_COMMIT_BYTES = 4 * 1024 * 1024
"""A commit of at most this many blobs and bytes is one step on a :class:`CommitStore`."""

RELEASE_SECONDS = 10.0
RELEASE_ATTEMPTS = 3
"""How long a shielded release may take before it is abandoned (the lease then expires)."""


class LeaseLost(TtflowError):
    """Raised inside the engine when the lease expired and another runner took it over."""


def _small(blobs: Mapping[str, bytes]) -> bool:
    if len(blobs) > ONE_STEP_COMMIT_BLOBS:
        return False
    return sum(len(data) for data in blobs.values()) <= ONE_STEP_COMMIT_BYTES


def lease_is_live(root: dict[str, Any], now: float) -> bool:
    """Whether the root carries a lease that has not expired at ``now``."""
    lease: dict[str, Any] | None = root.get("lease")
    if not lease:
        return False
    return float(lease["expires"]) > now


class Lease:
    """A held lease. Every root write of the holder goes through here, serialised."""

    def __init__(self, store: Store, lease_seconds: float, clock: Clock = time.time) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.owner = os.urandom(12).hex()
        self.version: str | None = None
        self.root: dict[str, Any] = {}
        self.lost = False
        self.released = False
        self._lock = anyio.Lock()

    def _stamp(self, root: dict[str, Any]) -> dict[str, Any]:
        stamped = dict(root)
        stamped["lease"] = {"owner": self.owner, "expires": self.clock() + self.lease_seconds}
        return stamped

    async def try_acquire(self, view: StoreView) -> bool:
        """Take the lease over the root ``view`` read; False if a live lease is held.

        If the lease-taking write does not return normally (cancelled in flight, a
        timeout, a lost answer), the server may have applied it, or may still apply it
        later: :meth:`_undo_acquire` then fences it out or releases it, so the store is
        never left locked by a runner that does not know it holds the lease.
        """
        if lease_is_live(view.root, self.clock()):
            return False
        root = self._stamp(view.root)
        settled = False
        try:
            self.version = await self.store.write_root(
                _json.dumps(root), view.version, durable=False
            )
            settled = True
        except RootConflict:
            settled = True
            return False
        finally:
            if not settled:
                with anyio.move_on_after(RELEASE_SECONDS, shield=True):
                    await self._undo_acquire(view)
        self.root = root
        view.root = root
        view.version = self.version
        return True

    async def _undo_acquire(self, view: StoreView) -> None:
        """Undo a lease-taking write that may have been applied, or may still be.

        A request whose answer was lost can land after the requests that follow it, so
        reading the root is not enough: a root without our lease may still receive it.
        First a CAS over the version the lease was taken from, with an expired lease of
        a fresh owner (new content, so a new version even on a store whose version is a
        hash of the bytes): once it succeeds the in-flight write can only fail. If that
        CAS conflicts, the write landed (or another runner wrote): a lease of ours found
        in the root is then released.
        """
        fence = {"owner": f"{self.owner}-undone-{os.urandom(4).hex()}", "expires": 0.0}
        try:
            try:
                await self.store.write_root(
                    _json.dumps({**view.root, "lease": fence}), view.version, durable=False
                )
                return
            except RootConflict:
                pass
            found = await self.store.read_root()
            if found is None:
                return
            data, version = found
            current = decode_root(data, self.store.description)
            lease = current.get("lease") or {}
            if lease.get("owner") != self.owner:
                return
            await self.store.write_root(
                _json.dumps({**current, "lease": None}), version, durable=False
            )
        except Exception:  # the lease expires by itself; nothing else was written
            logger.warning(
                "could not release the lease of %s after an interrupted acquire; it expires "
                "in at most %g seconds",
                self.store.description,
                self.lease_seconds,
            )

    async def acquire(
        self,
        wait_seconds: float | None,
        *,
        first_view: StoreView | None = None,
        read_ahead: Callable[[StoreView], Coroutine[Any, Any, None]] | None = None,
    ) -> StoreView:
        """Take the lease, waiting up to ``wait_seconds``; returns the view it read.

        ``first_view``, a view read just before, saves a read of the root when it is
        still current. ``read_ahead(view)`` runs beside each lease-taking write (a pass
        reads the head and lists the inbox then, one request wave fewer); what it read
        is kept only with the view the lease was taken over, so it must not raise.
        """
        deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
        delay = 0.02
        while True:
            view, first_view = first_view or await StoreView.read(self.store), None
            if read_ahead is None or lease_is_live(view.root, self.clock()):
                taken = await self.try_acquire(view)
            else:
                taken = await self._acquire_reading_ahead(view, read_ahead)
            if taken:
                return view
            if deadline is None or time.monotonic() >= deadline:
                raise StateLockedError(self.locked_message(queued=False), queued=False)
            await anyio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)

    async def _acquire_reading_ahead(
        self, view: StoreView, read_ahead: Callable[[StoreView], Coroutine[Any, Any, None]]
    ) -> bool:
        """:meth:`try_acquire` with ``read_ahead(view)`` beside it.

        Cancelled once the lease is taken but before the reads are done, the lease is
        released again: the caller, who never learns it held the lease, cannot.
        """
        taken = False
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(read_ahead, view, name="ttflow-async read ahead")
                try:
                    taken = await self.try_acquire(view)
                except Exception as exc:  # raised below as itself, not in a group
                    error = exc
                if not taken:
                    tg.cancel_scope.cancel()
        except BaseException:
            if taken:
                await self.release()
            raise
        if error is not None:
            raise error
        return taken

    def locked_message(self, *, queued: bool) -> str:
        """What a StateLockedError says, with or without a queued trigger."""
        where = self.store.description
        if queued:
            return (
                f"another runner holds the lock of {where}; the trigger was stored in the "
                "inbox and fires at the next run() (nothing is lost)"
            )
        return (
            f"another runner holds the lock of {where}; try again later, or pass "
            "lock_timeout=<seconds> to wait for it"
        )

    async def write(self, root: dict[str, Any], *, keep: bool, durable: bool | None = None) -> None:
        """CAS the root (keeping or clearing the lease); raises LeaseLost on conflict.

        ``durable`` defaults to ``not keep``: a commit clears the lease and must be on
        stable storage; lease-only writes need not be (losing one in a crash only brings
        back an earlier lease, which expires).
        """
        async with self._lock:
            await self._write_locked(root, keep=keep, durable=durable)

    async def commit(self, root: dict[str, Any], blobs: Mapping[str, bytes]) -> None:
        """Write a commit's blobs, then CAS the root that refers to them (clearing the lease).

        A store that can do both in one step (:class:`CommitStore`) does, for a commit of
        a few small blobs; the lease's lock is then held while the blobs are written, so
        a renewal waits for them. Larger commits write their blobs first, as renewals go
        on, and then CAS the root.
        """
        if isinstance(self.store, CommitStore) and _small(blobs):
            async with self._lock:
                await self._write_locked(root, keep=False, blobs=blobs)
            return
        await self.store.put_blobs(blobs)
        await self.write(root, keep=False)

    async def _write_locked(
        self,
        root: dict[str, Any],
        *,
        keep: bool,
        durable: bool | None = None,
        blobs: Mapping[str, bytes] | None = None,
    ) -> None:
        if self.lost:
            raise LeaseLost(self.store.description)
        if self.released:
            raise RuntimeError("the lease was released: a released lease writes no root")
        new_root = self._stamp(root) if keep else {**root, "lease": None}
        data = _json.dumps(new_root)
        try:
            if blobs is not None and isinstance(self.store, CommitStore):
                self.version = await self.store.commit_root(blobs, data, self.version)
            else:
                self.version = await self.store.write_root(
                    data, self.version, durable=(not keep) if durable is None else durable
                )
        except RootConflict:
            self.lost = True
            raise LeaseLost(self.store.description) from None
        self.root = new_root
        if not keep:
            self.released = True

    async def renew(self) -> None:
        """Push the expiry forward of the root as it is when the renewal's turn comes.

        A renewal due while the commit is being written waits for it; it then renews
        nothing, as the commit cleared the lease. (Renewing the root read before the
        commit would bring back the old head, whose blobs the pass then deletes.)
        """
        async with self._lock:
            if self.released:
                return
            await self._write_locked(self.root, keep=True)

    async def release(self) -> None:
        """Clear the lease without changing anything else (best effort, shielded)."""
        with anyio.move_on_after(RELEASE_SECONDS, shield=True):
            for attempt in range(RELEASE_ATTEMPTS):
                try:
                    async with self._lock:
                        if self.released or self.lost:
                            return
                        await self._write_locked(self.root, keep=False, durable=False)
                    return
                except LeaseLost:  # someone else holds it now
                    return
                except Exception:  # a transient store error: try again, then let it expire
                    if attempt == RELEASE_ATTEMPTS - 1:
                        logger.warning(
                            "could not release the lease of %s; it expires in at most %g s",
                            self.store.description,
                            self.lease_seconds,
                        )
                    else:
                        await anyio.sleep(0.05 * (attempt + 1))
