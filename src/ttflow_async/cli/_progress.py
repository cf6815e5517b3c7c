"""The live progress line a long ``run()`` shows on a terminal."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from rich.console import Console
from rich.text import Text

from ._tasks import beside

_T = TypeVar("_T")

#: Past this many seconds a running ``run()`` shows a live progress line on a terminal.
PROGRESS_DELAY_SECONDS = 0.5


class _LogCounter(logging.Handler):
    """Counts the workflow log lines emitted while a ``run()`` is in flight."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.count = 0
        self.last = ""
        self.run_ids: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last = record.getMessage()
        run_id = getattr(record, "run_id", None)
        if isinstance(run_id, str):
            self.run_ids.add(run_id)


@asynccontextmanager
async def _workflow_log_counter() -> AsyncIterator[_LogCounter]:
    logger = logging.getLogger("ttflow_async.workflow")
    handler = _LogCounter()
    previous_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


ProgressCallback = Callable[[int, int], None]


async def with_progress(
    console: Console, work: Callable[[ProgressCallback | None], Awaitable[_T]]
) -> _T:
    """Await ``work(on_progress)``; on a terminal, show a live line once it takes a while.

    The line shows the elapsed time, the runs finished out of those scheduled so far in
    the pass (from the engine's ``on_progress`` callback) and the latest workflow log
    line. It disappears when the work is done, so the summary that follows stands alone.
    """
    if not console.is_terminal:
        return await work(None)
    counts = [0, 0]

    def on_progress(finished: int, scheduled: int) -> None:
        counts[:] = [finished, scheduled]

    async def show(_scope: anyio.CancelScope) -> None:
        await anyio.sleep(PROGRESS_DELAY_SECONDS)
        started = time.monotonic()
        with console.status("running workflows…") as status:
            while True:
                elapsed = time.monotonic() - started + PROGRESS_DELAY_SECONDS
                message = f"running workflows… {elapsed:.0f}s"
                finished, scheduled = counts
                if scheduled:
                    message += f", runs finished {finished}/{scheduled}"
                if counter.count:
                    message += f", {counter.count} log lines, last: {counter.last[:60]}"
                status.update(Text(message))
                await anyio.sleep(0.2)

    async with _workflow_log_counter() as counter:
        (outcome,) = await beside(lambda: work(on_progress), show)
    return outcome
