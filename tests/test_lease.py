"""The lease's root writes: a renewal racing the commit never brings back an old root.

On DynamoDB Local a renewal, due while the commit's write was in flight, waited for it
and then wrote the root it had read before the commit: the commit's new head was
replaced by the old one, which the pass then deleted as garbage (``CorruptStateError``
at the next read). Found by the SIGKILL test of ``tests/test_aws_runners.py`` on the
real server; here it is reproduced on the memory store with a slow root write.
"""

from __future__ import annotations

import contextlib
import json
import time

import anyio
import anyio.abc

from ttflow_async import setup
from ttflow_async._lease import Lease
from ttflow_async._stores import RootConflict
from ttflow_async._stores._memory import MemoryStore
from ttflow_async._view import StoreView


class _SlowRootWrites(MemoryStore):
    """A memory store whose root writes take 50 ms, as on a slower server."""

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        await anyio.sleep(0.05)
        return await super().write_root(data, expected, durable=durable)


async def _store() -> _SlowRootWrites:
    """A store with a committed root, as the first pass leaves it."""
    store = _SlowRootWrites()
    async with setup(store) as client:
        await client.run()
    return store


async def _stored_root(store: MemoryStore) -> dict[str, object]:
    found = await store.read_root()
    assert found is not None
    root: dict[str, object] = json.loads(found[0])
    return root


async def test_a_renewal_during_the_commit_keeps_the_committed_root() -> None:
    store = await _store()
    lease = Lease(store, lease_seconds=60)
    assert await lease.try_acquire(await StoreView.read(store))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: lease.write({**lease.root, "head": "hd-new"}, keep=False))
        await anyio.sleep(0.01)  # the commit's write is in flight
        tasks.start_soon(lease.renew)

    root = await _stored_root(store)
    assert root["head"] == "hd-new"
    assert root["lease"] is None  # the commit cleared the lease; nothing took it again


async def test_a_renewal_before_the_commit_is_kept_by_the_commit() -> None:
    store = await _store()
    lease = Lease(store, lease_seconds=60)
    assert await lease.try_acquire(await StoreView.read(store))

    await lease.renew()
    await lease.write({**lease.root, "head": "hd-new"}, keep=False)
    await lease.renew()  # after the commit: nothing to renew, nothing written

    root = await _stored_root(store)
    assert root["head"] == "hd-new"
    assert root["lease"] is None


async def test_a_release_after_the_commit_writes_nothing() -> None:
    store = await _store()
    lease = Lease(store, lease_seconds=60)
    assert await lease.try_acquire(await StoreView.read(store))
    await lease.write({**lease.root, "head": "hd-new"}, keep=False)
    found = await store.read_root()
    assert found is not None
    await lease.release()
    after = await store.read_root()
    assert after == found


class _LateRootWrites(MemoryStore):
    """A memory store where a root write the caller gave up on is applied 50 ms later.

    As a server does with a request whose client went away: it was sent, the answer
    is lost, and it still lands after the client's next requests.
    """

    def __init__(self, tasks: anyio.abc.TaskGroup) -> None:
        super().__init__()
        self.tasks = tasks
        self.delay_next = False
        self.landed = anyio.Event()

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        if not self.delay_next:
            return await super().write_root(data, expected, durable=durable)
        self.delay_next = False
        try:
            await anyio.sleep(3600)  # the answer never comes back; the caller cancels
        finally:
            self.tasks.start_soon(self._land, data, expected)
        raise AssertionError("unreachable")

    async def _land(self, data: bytes, expected: str | None) -> None:
        await anyio.sleep(0.05)
        with contextlib.suppress(RootConflict):  # the CAS refuses it: fenced out
            await super().write_root(data, expected)
        self.landed.set()


async def test_a_cancelled_acquire_whose_write_lands_late_leaves_no_lease() -> None:
    # Found on DynamoDB under load: the undo read the root before the cancelled
    # lease-taking write was applied, saw no lease and left; the write then landed and
    # the store stayed locked until the lease expired.
    async with anyio.create_task_group() as tasks:
        store = _LateRootWrites(tasks)
        async with setup(store) as client:
            await client.run()
        lease = Lease(store, lease_seconds=60)
        store.delay_next = True
        view = await StoreView.read(store)
        with anyio.move_on_after(0.01):
            await lease.try_acquire(view)
        await store.landed.wait()
    root = await _stored_root(store)
    held = root["lease"]
    assert not held or held["owner"] != lease.owner  # type: ignore[index]
    async with setup(store) as client:
        assert not await client.is_locked()


class _OneSlowRootWrite(MemoryStore):
    """A memory store whose next root write lands late once, as a request can."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_writes = 0

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        if self.slow_writes:
            self.slow_writes -= 1
            await anyio.sleep(0.05)
        return await super().write_root(data, expected, durable=durable)


async def test_a_garbage_collection_due_never_takes_the_lease_from_the_next_run() -> None:
    # An hour after the store was made, a commit makes a garbage collection due; an
    # entered client runs it after that run() returned, beside its next call. When the
    # next run()'s lease-taking write lands late, the collection must still not take
    # the lease that run() needs.
    store = _OneSlowRootWrite()
    async with setup(store) as first:
        await first.run()  # the store is made now; its first collection is due in an hour
    now = [time.time() + 3601]
    client = setup(store, clock=lambda: now[0])
    seen: list[int] = []

    @client.workflow(trigger="go")
    async def go(c: object, args: int) -> None:
        seen.append(args)

    async with client:
        await client.run("go", 1)
        store.slow_writes = 1
        results = await client.run("go", 2)
    assert [r.status for r in results] == ["succeeded"]
    assert seen == [1, 2]
