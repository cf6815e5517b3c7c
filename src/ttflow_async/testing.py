"""Helpers for testing workflows without waiting: a settable clock and a run-to-idle loop.

Give the client a :class:`TestClock` (``setup("onmemory", clock=clock)``) and every time
the engine reads (timers, timeouts, retry delays, leases, timestamps) comes from it.
:func:`run_until_idle` then advances that clock to each wake-up and runs the pass, so a
three-day sleep finishes in milliseconds. This module does not import pytest; the
fixtures live in :mod:`ttflow_async.pytest_plugin`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ttflow_async._client import Client
from ttflow_async._errors import TtflowError
from ttflow_async._view import StoreView

if TYPE_CHECKING:
    from ttflow_async._records import WorkflowRunResult

__all__ = ["TestClock", "run_until_idle"]


def _epoch(moment: datetime | float | int, what: str) -> float:
    if isinstance(moment, datetime):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(
                f"{what} must be a timezone-aware datetime (use tzinfo=UTC), got {moment!r}"
            )
        return moment.timestamp()
    if isinstance(moment, bool) or not isinstance(moment, int | float):
        raise TypeError(f"{what} must be a UTC datetime or epoch seconds, got {moment!r}")
    return float(moment)


class TestClock:
    """A clock that moves only when told to; pass it as ``setup(..., clock=TestClock())``.

    Calling it returns epoch seconds (a float), as ``time.time()`` does.

    Args:
        start: the initial time, a timezone-aware ``datetime`` or epoch seconds;
            ``None`` (the default) starts at the current wall-clock time.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, start: datetime | float | None = None) -> None:
        self._now = time.time() if start is None else _epoch(start, "TestClock(start=...)")

    def __call__(self) -> float:
        return self._now

    def __repr__(self) -> str:
        return f"TestClock({self.now().isoformat()})"

    def now(self) -> datetime:
        """The clock's current time as a UTC ``datetime``."""
        return datetime.fromtimestamp(self._now, tz=UTC)

    def advance(self, by: float | timedelta) -> datetime:
        """Move the clock forward by ``by`` (seconds or a ``timedelta``); returns the new time."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else by
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"advance() takes seconds or a timedelta, got {by!r}")
        if seconds < 0:
            raise ValueError(f"advance() cannot move the clock backwards, got {by!r}")
        self._now += float(seconds)
        return self.now()

    def set(self, moment: datetime | float) -> datetime:
        """Put the clock at ``moment`` (a timezone-aware ``datetime`` or epoch seconds)."""
        self._now = _epoch(moment, "TestClock.set()")
        return self.now()


async def run_until_idle(
    client: Client, clock: TestClock | None = None, *, max_passes: int = 100
) -> list[WorkflowRunResult]:
    """Run passes, moving ``clock`` to each wake-up, until nothing is left to fall due.

    Each pass calls ``client.run()``; then, while ``client.next_wakeup()`` names a time,
    the clock is advanced to it (never backwards) and another pass runs. Runs waiting only
    for an event or a callback without a timeout leave nothing due and end the loop.

    Args:
        client: the client to drive.
        clock: the clock to advance; by default the client's own clock when it is a
            :class:`TestClock`. With a real clock nothing is advanced, and the loop stops
            at the first wake-up that lies in the future.
        max_passes: the most ``run()`` passes to make.

    Returns:
        Every ``WorkflowRunResult`` of the passes made, in order.

    Raises:
        TtflowError: ``max_passes`` passes were made and work is still due (for example a
            workflow that sleeps in an endless loop).
    """

    async def next_due(view: StoreView) -> float | None:
        # next_wakeup() as exact epoch seconds: a datetime keeps only microseconds, and a
        # clock set to the rounded-down value would stop just short of the due time.
        return view.next_due()

    if isinstance(max_passes, bool) or not isinstance(max_passes, int) or max_passes < 1:
        raise ValueError(f"max_passes must be an int >= 1, got {max_passes!r}")
    if clock is None and isinstance(client.clock, TestClock):
        clock = client.clock
    results: list[WorkflowRunResult] = []
    due: float | None = None
    for _ in range(max_passes):
        results.extend(await client.run())
        due = await client._inspect(next_due)
        if due is None:
            return results
        if clock is not None:
            if due > clock():
                clock.set(due)
        elif due > client.clock():
            return results
    raise TtflowError(
        f"run_until_idle() made {max_passes} passes and work is still due at "
        f"{datetime.fromtimestamp(due or 0.0, tz=UTC).isoformat()}; a workflow may sleep "
        "in an endless loop, or pass a larger max_passes"
    )
