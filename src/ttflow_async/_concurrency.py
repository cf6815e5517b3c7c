"""Concurrency helpers on anyio: await independent calls together, errors unwrapped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

_T = TypeVar("_T")


async def gather_bounded(calls: Sequence[Callable[[], Awaitable[_T]]], limit: int) -> list[_T]:
    """Run independent calls concurrently, at most ``limit`` at a time.

    Results come back in the order of ``calls``. If any call fails, the others are
    cancelled and the first failure is raised as itself (not as an exception group),
    so callers can catch ``BlobNotFound`` or ``StoreError`` directly. Cancellation of
    the caller is never swallowed: only groups of ordinary exceptions are unwrapped.
    """
    if not calls:
        return []
    if len(calls) == 1:
        return [await calls[0]()]
    results: list[Any] = [None] * len(calls)
    limiter = anyio.CapacityLimiter(limit)

    async def run_one(index: int) -> None:
        async with limiter:
            results[index] = await calls[index]()

    try:
        async with anyio.create_task_group() as group:
            for index in range(len(calls)):
                group.start_soon(run_one, index, name="ttflow-async store request")
    except ExceptionGroup as failures:
        first = _first_leaf(failures)
        raise first from first.__cause__
    return results


async def gather(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Await a few independent calls together (see :func:`gather_bounded`)."""
    return await gather_bounded(calls, len(calls) or 1)


async def gather_reads(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Await a few independent reads together on asyncio alone (no anyio task group).

    For the idle check (``_idle.py``): in a fresh process, the first anyio task group
    imports anyio's asyncio backend (20-30 ms), which a pass with nothing to do need
    not pay. The first failure is raised as itself; the other calls are cancelled.
    """
    import asyncio  # here: importing this module must not import asyncio (B10)

    tasks = [asyncio.ensure_future(call()) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _first_leaf(group: BaseExceptionGroup[Exception]) -> Exception:
    first = group.exceptions[0]
    if isinstance(first, BaseExceptionGroup):
        return _first_leaf(first)
    return first
