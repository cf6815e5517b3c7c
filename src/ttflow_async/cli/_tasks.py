"""Await the command's work beside a helper task (a signal watcher, a progress line)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio

_T = TypeVar("_T")


async def beside(
    work: Callable[[], Awaitable[_T]],
    helper: Callable[[anyio.CancelScope], Coroutine[Any, Any, None]] | None,
) -> list[_T]:
    """Await ``work()`` while ``helper(scope)`` runs; stop the helper once the work ends.

    The work's error is raised as itself, outside the task group (never as an exception
    group), so that callers catch ``TtflowError`` directly. The helper may cancel
    ``scope`` to stop the work early.

    Returns:
        ``[result]``, or ``[]`` when the helper cancelled the work before it finished.
    """
    result: list[_T] = []
    error: list[Exception] = []
    async with anyio.create_task_group() as group:
        if helper is not None:
            group.start_soon(helper, group.cancel_scope)
        try:
            result.append(await work())
        except Exception as exc:  # re-raised below, outside the task group
            error.append(exc)
        group.cancel_scope.cancel()
    if error:
        raise error[0]
    return result
