"""A pass reads the shards and journals of the runs it wakes beside its lease write.

Taking the lease is one root write (a rename under ``flock`` on the local store, one
request on S3 and DynamoDB). While it is in flight, the pass reads the head, then the
wait shards of the names it delivers, the due timer shards and the key shards, then
the journals of the runs found there: blobs never change under their id, so nothing
read ahead can be stale. Each test runs on every store, through a wrapper whose lease
write waits (at most a few seconds) until the reads the test expects ahead are done,
and which records the blobs read while the lease write was in flight and after it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import anyio
import pytest

from tests.conftest import MakeClient
from tests.faulty_store import FaultyStore
from ttflow_async import Client, RunContext, event_trigger, setup
from ttflow_async.testing import TestClock

WAIT_SECONDS = 5.0
"""How long the lease write waits for the expected reads (only a failing test waits)."""


def kinds(ids: Collection[str]) -> set[str]:
    return {i.split("-", 1)[0] for i in ids}


class SlowLease(FaultyStore):
    """Holds the lease-taking write (the first root write) until ``ahead(read)`` holds
    for the blobs read so far, or :data:`WAIT_SECONDS` have passed; records the blobs
    read while that write was in flight (``beside``) and after it (``after``)."""

    def __init__(self, inner: object, ahead: Callable[[SlowLease], bool]) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.ahead = ahead
        self.root_writes = 0
        self.leasing = False
        self.beside: list[str] = []
        self.after: list[str] = []
        self.tried: list[str] = []  # every read asked for, failed ones included
        self.progress = anyio.Event()

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        self.root_writes += 1
        if self.root_writes > 1:
            return await super().write_root(data, expected, durable=durable)
        self.leasing = True
        try:
            with anyio.move_on_after(WAIT_SECONDS):
                while not self.ahead(self):
                    await self.progress.wait()
                    self.progress = anyio.Event()
            return await super().write_root(data, expected, durable=durable)
        finally:
            self.leasing = False
            self.fail_blob_prefix = None

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        self.tried.extend(ids)
        try:
            found = await super().get_blobs(ids)
        finally:
            self.progress.set()
        (self.beside if self.leasing else self.after).extend(ids)
        return found


def _waiters(client: Client) -> None:
    @client.workflow(trigger=event_trigger("spawn"))
    async def waiter(c: RunContext, name: str) -> None:
        woke = await c.wait_event(name)
        await c.log(f"{name} woke with {woke}")

    @client.workflow()
    async def sleeper(c: RunContext, n: int) -> None:
        await c.sleep(60)
        await c.log(f"sleeper {n} woke")

    @client.workflow(trigger=event_trigger("ping"))
    async def ping(c: RunContext) -> None:
        await c.log("pinged")


async def _spawn(client: Client, names: list[str]) -> None:
    for name in names:
        await client.send_event("spawn", name)
    await client.run()


async def test_the_shards_and_journals_of_the_runs_an_event_wakes_are_read_beside_the_lease(
    make_client: MakeClient,
) -> None:
    first = make_client()
    _waiters(first)
    await _spawn(first, ["go", "go", "go", "other-1", "other-2"])
    await first.send_event("go", 7)
    store = SlowLease(first.store, lambda s: "j" in kinds(s.beside) or "jp" in kinds(s.beside))
    fresh = setup(store)  # a new process: nothing cached
    _waiters(fresh)
    done = await fresh.run()
    assert [r.logs for r in done] == [["go woke with 7"]] * 3
    assert {"hd", "wt"} <= kinds(store.beside)
    assert kinds(store.beside) & {"j", "jp"}
    assert not kinds(store.after) & {"hd", "wt", "j", "jp"}
    assert sorted(str(p.waiting_for) for p in await fresh.paused_runs()) == sorted(
        str(p.waiting_for) for p in await first.paused_runs()
    )
    assert len(await fresh.paused_runs()) == 2


async def test_the_timer_shards_and_journals_of_due_runs_are_read_beside_the_lease(
    make_client: MakeClient,
) -> None:
    clock = TestClock()
    first = make_client(clock=clock)
    _waiters(first)
    for n in range(3):
        await first.run("sleeper", n)
    clock.advance(61)
    store = SlowLease(first.store, lambda s: "j" in kinds(s.beside) or "jp" in kinds(s.beside))
    fresh = setup(store, clock=clock)
    _waiters(fresh)
    done = await fresh.run()
    assert sorted(r.logs[0] for r in done) == [f"sleeper {n} woke" for n in range(3)]
    assert {"hd", "tm"} <= kinds(store.beside)
    assert not kinds(store.after) & {"hd", "tm", "j", "jp"}


async def test_the_key_shard_of_a_keyed_event_is_read_beside_the_lease(
    make_client: MakeClient,
) -> None:
    first = make_client()
    _waiters(first)
    await first.send_event("ping", key="order-1")
    assert [r.logs for r in await first.run()] == [["pinged"]]
    await first.send_event("ping", key="order-1")  # a duplicate: skipped by its key
    store = SlowLease(first.store, lambda s: "ky" in kinds(s.beside))
    fresh = setup(store)
    _waiters(fresh)
    assert await fresh.run() == []
    assert "ky" in kinds(store.beside)
    assert "ky" not in kinds(store.after)


async def test_a_read_ahead_that_fails_is_made_again_once_the_lease_is_held(
    make_client: MakeClient,
) -> None:
    first = make_client()
    _waiters(first)
    await _spawn(first, ["go"])
    await first.send_event("go", 1)
    store = SlowLease(first.store, lambda s: "wt" in kinds(s.tried))
    store.fail_blob_prefix = "wt"  # cleared when the lease write returns
    fresh = setup(store)
    _waiters(fresh)
    done = await fresh.run()
    assert [r.logs for r in done] == [["go woke with 1"]]
    assert "wt" not in kinds(store.beside)
    assert "wt" in kinds(store.after)


async def test_the_journals_read_ahead_are_bounded(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_client()
    _waiters(first)
    for _ in range(3):  # three passes: three journal blobs
        await _spawn(first, ["go"])
    await first.send_event("go", 2)
    monkeypatch.setattr("ttflow_async._read_ahead.JOURNALS_MAX", 2)
    journals = {"j", "jp"}
    store = SlowLease(
        first.store, lambda s: len([i for i in s.beside if kinds([i]) & journals]) >= 2
    )
    fresh = setup(store)
    _waiters(fresh)
    done = await fresh.run()
    assert [r.logs for r in done] == [["go woke with 2"]] * 3
    assert len([i for i in store.beside if kinds([i]) & journals]) == 2
    assert len([i for i in store.after if kinds([i]) & journals]) == 1
