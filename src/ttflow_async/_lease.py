"""The lease: one runner at a time, with an expiry, fenced by the root's CAS."""

from __future__ import annotations

import os
import time
from typing import Any

import anyio

from . import _json
from ._errors import StateLockedError
from ._stores import RootConflict, Store
from ._view import StoreView


class LeaseLost(Exception):
    """Raised when the lease expired and another runner took it over (fencing)."""


def lease_is_live(root: dict[str, Any], now: float | None = None) -> bool:
    """Whether the root carries a lease that has not expired."""
    lease: dict[str, Any] | None = root.get("lease")
    if not lease:
        return False
    return float(lease["expires"]) > (time.time() if now is None else now)


class Lease:
    """A held lease. Every root write of the holder goes through here, serialised."""

    def __init__(self, store: Store, lease_seconds: float) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.owner = os.urandom(12).hex()
        self.version: str | None = None
        self.root: dict[str, Any] = {}
        self.lost = False
        self._lock = anyio.Lock()

    def _stamp(self, root: dict[str, Any]) -> dict[str, Any]:
        stamped = dict(root)
        stamped["lease"] = {"owner": self.owner, "expires": time.time() + self.lease_seconds}
        return stamped

    async def try_acquire(self, view: StoreView) -> bool:
        """Take the lease over the root ``view`` read; False if a live lease is held."""
        if lease_is_live(view.root):
            return False
        root = self._stamp(view.root)
        try:
            self.version = await self.store.write_root(
                _json.dumps(root), view.version, durable=False
            )
        except RootConflict:
            return False
        self.root = root
        view.root = root
        view.version = self.version
        return True

    async def acquire(
        self, wait_seconds: float | None, *, first_view: StoreView | None = None
    ) -> StoreView:
        """Take the lease, waiting up to ``wait_seconds``; returns the view it read.

        ``first_view``, a view read just before, saves a read of the root when it is
        still current.
        """
        deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
        delay = 0.02
        while True:
            view, first_view = first_view or await StoreView.read(self.store), None
            if await self.try_acquire(view):
                return view
            if deadline is None or time.monotonic() >= deadline:
                raise StateLockedError(self.locked_message(queued=False), queued=False)
            await anyio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)

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

    async def write(self, root: dict[str, Any], *, keep: bool) -> None:
        """CAS the root (keeping or clearing the lease); raises LeaseLost on conflict."""
        async with self._lock:
            if self.lost:
                raise LeaseLost(self.store.description)
            new_root = self._stamp(root) if keep else {**root, "lease": None}
            try:
                self.version = await self.store.write_root(
                    _json.dumps(new_root), self.version, durable=not keep
                )
            except RootConflict:
                self.lost = True
                raise LeaseLost(self.store.description) from None
            self.root = new_root

    async def renew(self) -> None:
        """Push the expiry forward."""
        await self.write(self.root, keep=True)

    async def release(self) -> None:
        """Clear the lease without changing anything else (best effort)."""
        try:
            await self.write(self.root, keep=False)
        except Exception:  # LeaseLost included: someone else holds it now
            return
