"""A process that queues inbox items on a local store and reports each one stored."""

from __future__ import annotations

from multiprocessing.connection import Connection

import anyio

from ttflow_async._stores._local import LocalFileStore


def item_id(n: int) -> str:
    """The id of the ``n``-th item (ids sort in the order they were sent)."""
    return f"{n:020d}-000000000000-writer"


async def _send(path: str, count: int, report: Connection) -> None:
    store = LocalFileStore(path)
    for n in range(count):
        await store.inbox_put(item_id(n), f"item {n}".encode() * (1 + n % 7))
        report.send(n)  # acknowledged: inbox_put returned


def writer_process(path: str, count: int, report: Connection) -> None:
    """Queue ``count`` items, reporting each as soon as ``inbox_put`` returned."""
    anyio.run(_send, path, count, report)
