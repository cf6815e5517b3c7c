"""Small concurrency helpers on anyio."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio


async def gather(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Await calls concurrently; the first failure is raised as itself (not a group)."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        results[i] = await calls[i]()

    try:
        async with anyio.create_task_group() as tg:
            for i in range(len(calls)):
                tg.start_soon(one, i)
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return results
