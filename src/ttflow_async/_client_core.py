"""The client's core: its options, its store connections and the guarded store calls.

Every client call goes through these: store exceptions leave as TtflowErrors, reads
retry when a commit replaced what they read, and administrative calls hold the lease.
Garbage collection lives here too, because a pass starts it after its commit.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from . import _format, _json
from ._concurrency import gather
from ._definitions import Registry
from ._errors import (
    BlobNotFound,
    CorruptStateError,
    InvalidStateError,
    RootConflict,
    StateLockedError,
    StoreError,
    TtflowError,
)
from ._idle import IdleCheck
from ._lease import Clock, Lease, LeaseLost
from ._pass_options import MARKER_PREFIX, PassOptions, check_positive
from ._stores import Store
from ._view import StoreView, read_view

if TYPE_CHECKING:
    from ._runner import Pass

logger = logging.getLogger("ttflow_async")

T = TypeVar("T")

READ_ATTEMPTS = 5


def _check_lock_timeout(lock_timeout: float | None) -> None:
    if lock_timeout is None:
        return
    if (
        isinstance(lock_timeout, bool)
        or not isinstance(lock_timeout, int | float)
        or not math.isfinite(lock_timeout)
        or lock_timeout < 0
    ):
        raise ValueError(
            f"lock_timeout must be a finite number of seconds >= 0, got {lock_timeout!r}"
        )


def _check_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key:
        raise InvalidStateError(f"an idempotency key must be a non-empty string, got {key!r}")
    _json.normalize(key, "the idempotency key")
    return key


def _seconds(value: float | timedelta, name: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return check_positive(name, value)


class ClientState(enum.Enum):
    """Where a client is in its life (as httpx's clients do)."""

    #: Not entered yet: every call opens the store's connection for its own length.
    UNOPENED = "unopened"
    #: Inside ``async with client``: calls share one connection.
    OPENED = "opened"
    #: ``aclose()`` closed it (or ``async with`` ended): calls open their own again.
    CLOSED = "closed"


class ClientCore:
    """What every part of :class:`Client` shares: the store, the options, the plumbing."""

    def __init__(
        self,
        store: Store,
        *,
        lease_seconds: float = 60.0,
        max_concurrency: int = 64,
        max_waves: int = 100,
        run_timeout: float | timedelta | None = None,
        idempotency_window: float | timedelta = 86_400.0,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.lease_seconds = _seconds(lease_seconds, "lease_seconds")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        check_positive("max_concurrency", max_concurrency)
        if isinstance(max_waves, bool) or not isinstance(max_waves, int):
            raise ValueError(f"max_waves must be an int >= 1, got {max_waves!r}")
        check_positive("max_waves", max_waves)
        if clock is not None and not callable(clock):
            raise ValueError(f"clock must be a callable returning epoch seconds, got {clock!r}")
        self.max_concurrency = max_concurrency
        self.clock: Clock = clock or time.time
        self._options = PassOptions(
            max_concurrency=max_concurrency,
            max_waves=max_waves,
            run_timeout=None if run_timeout is None else _seconds(run_timeout, "run_timeout"),
            idempotency_window=_seconds(idempotency_window, "idempotency_window"),
            clock=self.clock,
        )
        self._registry = Registry()
        self._state = ClientState.UNOPENED
        self._depth = 0  # how deeply ``async with client`` is nested
        self._in_use = 0  # calls running on the store's connection
        # What an entered client's last commit left to delete, done during its next
        # run(): the consumed inbox items at once (before that pass lists the inbox),
        # unreferenced blobs once that pass is under way (they concern no pass).
        self._deferred: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._deferred_late: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._passes: list[Pass] = []  # this client's passes in progress
        self._idle = IdleCheck()  # decides idle passes without the lease

    # -- connections ---------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """Whether ``async with`` opened this client, and whether ``aclose()`` closed it."""
        return self._state

    @property
    def _entered_by_user(self) -> bool:
        return self._state is ClientState.OPENED

    async def __aenter__(self) -> Self:
        if self._state is not ClientState.OPENED:
            if self._in_use == 0:
                await self.store.open()
            self._state = ClientState.OPENED
        self._depth += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth <= 0:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the client: finish what its last ``run()`` left to clean up, then close
        the store's connections, however deeply ``async with`` was nested.

        Calls still running keep the connection until they end. A call made after
        ``aclose()`` works as on a client never entered: it opens a connection for its
        own length.
        """
        if self._state is not ClientState.OPENED:
            return
        self._state, self._depth = ClientState.CLOSED, 0
        if self._in_use == 0:
            await self._disconnect()

    async def _disconnect(self) -> None:
        deferred = self._deferred + self._deferred_late
        self._deferred, self._deferred_late = [], []
        try:
            for cleanup in deferred:
                await cleanup()
        finally:
            await self.store.aclose()

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[None]:
        """Hold the store's connection for one call (opening it if the client is not)."""
        if self._in_use == 0 and self._state is not ClientState.OPENED:
            await self.store.open()
        self._in_use += 1
        try:
            yield
        finally:
            self._in_use -= 1
            if self._in_use == 0 and self._state is not ClientState.OPENED:
                await self._disconnect()

    # -- guarded store calls -------------------------------------------------------

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a client call so that only TtflowErrors leave it (store exceptions wrapped)."""
        try:
            return await call()
        except (BlobNotFound, RootConflict) as exc:
            raise StoreError(
                f"{self.store.description} changed under this call ({exc}); nothing was "
                "changed by it: call again"
            ) from exc
        except TtflowError:
            raise
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise StoreError(
                f"{self.store.description} failed ({exc!r}); nothing was changed: call "
                "again once the store is reachable"
            ) from exc
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: Exception) -> CorruptStateError:
        return CorruptStateError(
            f"{self.store.description} holds data this engine cannot read ({exc!r}); it "
            "was left untouched: restore it from a backup or point setup() elsewhere"
        )

    async def _queue(self, kind: Any, name: str, args: Any, key: str | None = None) -> None:
        item_id, data = _format.inbox_item(kind, name, args, now=self.clock(), key=key)
        await self.store.inbox_put(item_id, data)

    async def _read(self, read: Callable[[Store], Awaitable[T]]) -> T:
        async with self._connected():
            for attempt in range(READ_ATTEMPTS):
                try:
                    return await self._guarded_read(read)
                except BlobNotFound as exc:  # a commit replaced what we read: read again
                    if attempt == READ_ATTEMPTS - 1:
                        raise CorruptStateError(
                            f"blob {exc.blob_id} of {self.store.description} is referenced "
                            "but missing (read 5 times); the store was left untouched: "
                            "restore it from a backup"
                        ) from exc
        raise AssertionError("unreachable")

    async def _guarded_read(self, read: Callable[[Store], Awaitable[T]]) -> T:
        try:
            return await read(self.store)
        except (BlobNotFound, TtflowError):
            raise
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise StoreError(f"reading {self.store.description} failed ({exc!r})") from exc
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            raise self._unreadable(exc) from exc

    @staticmethod
    async def _fresh(store: Store, read: Callable[[StoreView], Awaitable[T]]) -> T:
        return await read(await read_view(store))

    async def _inspect(self, read: Callable[[StoreView], Awaitable[T]]) -> T:
        return await self._read(lambda store: self._fresh(store, read))

    # -- the lease and garbage collection ------------------------------------------

    def _lease(self) -> Lease:
        return Lease(self.store, self.lease_seconds, self.clock)

    @contextlib.asynccontextmanager
    async def _holding_lease(self, lock_timeout: float | None) -> AsyncIterator[Lease]:
        """Hold the lease for an administrative call; released on every path.

        Callers check ``lock_timeout`` before their guarded call, so that a bad value
        leaves as the ValueError it is.
        """
        async with self._connected():
            lease = self._lease()
            await lease.acquire(lock_timeout)
            try:
                yield lease
            except LeaseLost:
                raise StateLockedError(
                    f"the lease on {self.store.description} expired and another runner took "
                    "it over, so this call changed nothing; call it again"
                ) from None
            finally:
                if not lease.released:
                    await lease.release()

    async def _collect(self, lease: Lease) -> int:
        view = StoreView(self.store, lease.root, lease.version)
        await view.load_head()
        referenced, listed = await gather(view.referenced_blobs, self.store.list_blobs)
        await lease.renew()  # the fence: raises LeaseLost if the lease was taken over
        stale = [
            blob_id
            for blob_id in listed
            if blob_id not in referenced and not blob_id.startswith(MARKER_PREFIX)
        ]
        await self.store.delete_blobs(stale)
        return len(stale)

    async def _collect_quietly(self) -> None:
        """Collect garbage if the lease is free now; never raises, never waits."""
        try:
            async with self._holding_lease(None) as lease:
                await self._collect(lease)
        except Exception:  # never raises: it may run alongside another call
            logger.info("garbage collection of %s skipped this time", self.store.description)
