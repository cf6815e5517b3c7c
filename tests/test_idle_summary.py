"""The root's summary of its head: a pass decided from the root and the inbox alone.

Every commit writes into the root the definitions fingerprint of its head and the
earliest time anything falls due. A pass with nothing to do then reads no blob at all
(one request wave on S3 and DynamoDB), and a pass with work reads the head beside its
lease-taking write. Each test runs on every store, with an injected clock; blob reads
are counted between the engine and the real backend.
"""

from __future__ import annotations

from collections.abc import Collection

import anyio

from tests.conftest import MakeClient
from tests.faulty_store import FaultyStore
from ttflow_async import Client, RunContext, event_trigger, setup
from ttflow_async._idle import prefetch_hint
from ttflow_async.testing import TestClock


class BlobReads(FaultyStore):
    """Forwards every call; counts the blobs read."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.read: list[str] = []

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        self.read.extend(ids)
        return await super().get_blobs(ids)


def _sleeper(client: Client) -> None:
    @client.workflow()
    async def sleeper(c: RunContext) -> None:
        await c.log("asleep")
        await c.sleep(60)
        await c.log("awake")


async def test_a_pass_with_nothing_due_reads_no_blob(make_client: MakeClient) -> None:
    clock = TestClock(1_000_000.0)
    first = make_client(clock=clock)
    _sleeper(first)
    (asleep,) = await first.run("sleeper")
    assert asleep.status == "paused"

    clock.advance(30)
    reads = BlobReads(make_client().store)
    fresh = setup(reads, clock=clock)  # a new process: no head kept from an earlier pass
    _sleeper(fresh)
    assert await fresh.run() == []
    assert reads.read == []  # decided from the root and the inbox listing

    clock.advance(31)  # the sleep is due: the summary says so, and the run wakes
    (awake,) = await fresh.run()
    assert (awake.run_id, awake.status) == (asleep.run_id, "succeeded")
    assert awake.logs == ["asleep", "awake"]
    assert await fresh.run() == []


async def test_new_definitions_are_delivered_though_nothing_is_due(make_client: MakeClient) -> None:
    clock = TestClock(1_000_000.0)
    old = make_client(clock=clock)
    _sleeper(old)
    await old.run("sleeper")
    assert await old.run() == []

    new = make_client(clock=clock)
    _sleeper(new)

    @new.workflow()
    async def added(c: RunContext) -> None:
        await c.log("added")

    assert await new.run() == []  # nothing to run, but the change is delivered and logged
    assert [e.event_name for e in await new.event_log()].count("workflows_changed") == 2
    assert await new.run() == []
    assert await old.run() == []  # the old code sees other definitions again
    assert [e.event_name for e in await old.event_log()].count("workflows_changed") == 3


async def test_an_admin_commit_updates_the_summary(make_client: MakeClient) -> None:
    clock = TestClock(1_000_000.0)
    client = make_client(clock=clock)
    _sleeper(client)
    (asleep,) = await client.run("sleeper")
    await client.cancel(asleep.run_id, "not needed")

    clock.advance(120)  # the cancelled sleep would be due now
    reads = BlobReads(make_client().store)
    fresh = setup(reads, clock=clock)
    _sleeper(fresh)
    root_before = await fresh.store.read_root()
    assert await fresh.run() == []
    assert reads.read == []
    assert await fresh.store.read_root() == root_before

    await client.set_state("mode", "on")  # a commit with no run: still nothing due
    assert await fresh.run() == []
    assert await fresh.get_state("mode") == "on"


async def test_a_run_paused_until_the_next_pass_is_due_at_once(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def twice(c: RunContext) -> None:
        await c.pause_once()
        await c.log("resumed")

    await client.run("twice")
    reads = BlobReads(make_client().store)
    fresh = setup(reads)

    @fresh.workflow()
    async def twice(c: RunContext) -> None:  # noqa: F811 - the same code, another process
        await c.pause_once()
        await c.log("resumed")

    (done,) = await fresh.run()
    assert (done.status, done.logs) == ("succeeded", ["resumed"])
    assert await fresh.run() == []


class RootWrites(FaultyStore):
    """Forwards every call; counts the root writes (lease-taking ones included)."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.root_writes = 0

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        self.root_writes += 1
        return await super().write_root(data, expected, durable=durable)


async def test_the_pass_after_an_entered_clients_drain_writes_nothing(
    make_client: MakeClient,
) -> None:
    # The drained items are deleted beside the next run(), so that run() still lists
    # them; the head its commit wrote names them consumed, so they are no work.
    store = RootWrites(make_client().store)
    client = setup(store)
    ran: list[int] = []

    @client.workflow(trigger=event_trigger("go"))
    async def noted(c: RunContext, n: int) -> None:
        ran.append(n)

    async with client:
        await client.run()
        for n in range(3):
            await client.send_event("go", n)
        assert len(await client.run()) == 3
        before = store.root_writes
        assert await client.run() == []
        assert store.root_writes == before  # was a lease write and a commit
        assert await client.run() == []
        assert store.root_writes == before
    assert sorted(ran) == [0, 1, 2]


class Overlaps(FaultyStore):
    """Forwards every call after a short delay (a request's latency); records which
    blobs were read while the first root write (the lease-taking one) was in flight.

    That write lasts until a journal read has started beside it, or 5 seconds: the
    test does not depend on how busy the machine is (only a failing one waits).
    """

    def __init__(self, inner: object) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.writing_root = False
        self.root_writes = 0
        self.read_beside_lease: list[str] = []
        self.read_after_lease: list[str] = []
        self.journal_read = anyio.Event()

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        self.root_writes += 1
        first = self.root_writes == 1
        self.writing_root = first
        try:
            if first:
                with anyio.move_on_after(5):
                    await self.journal_read.wait()
            await anyio.sleep(0.01)
            return await super().write_root(data, expected, durable=durable)
        finally:
            if first:
                self.writing_root = False

    async def get_blobs(self, ids: Collection[str]) -> dict[str, bytes]:
        (self.read_beside_lease if self.writing_root else self.read_after_lease).extend(ids)
        if self.writing_root and any(i.startswith("j") for i in ids):
            self.journal_read.set()
        await anyio.sleep(0.01)
        return await super().get_blobs(ids)


def _paused_workers(client: Client) -> None:
    @client.workflow()
    async def fanout(c: RunContext, n: int) -> None:
        for i in range(n):
            await c.event("work", i)

    @client.workflow(trigger=event_trigger("work"))
    async def work(c: RunContext, i: int) -> None:
        await c.pause_once()
        await c.log(f"resumed {i}")


async def test_a_pass_reads_the_journals_of_paused_runs_beside_its_lease_write(
    make_client: MakeClient,
) -> None:
    # The root names the journals of the runs paused until the next pass, so the pass
    # that resumes them reads them with the head, one request wave before the head
    # would name them (B5: 6 waves on S3 and DynamoDB, now 5).
    first = make_client()
    _paused_workers(first)
    await first.run("fanout", 10)
    store = Overlaps(make_client().store)
    fresh = setup(store)  # a new process: nothing cached
    _paused_workers(fresh)
    done = await fresh.run()
    assert sorted(r.logs[0] for r in done) == sorted(f"resumed {i}" for i in range(10))
    journals = [i for i in store.read_beside_lease if i.startswith("j")]
    assert journals  # the pack of the ten journals, read ahead
    assert not [i for i in store.read_after_lease if i.startswith("j")]
    assert await fresh.run() == []


def test_a_root_naming_journals_it_should_not_is_read_as_naming_none() -> None:
    # The ids go to the store as they are: anything but a blob id is left out.
    good = "jp-18edc60617b93902-bb40eb0d7f132135"
    assert prefetch_hint({"idle": {"fp": "f", "due": 0, "pf": [good]}}) == [good]
    for bad in (["../../etc/passwd"], [good + "/x"], [7], "jp-1-2", {"a": 1}):
        assert prefetch_hint({"idle": {"fp": "f", "due": 0, "pf": bad}}) == []
    assert prefetch_hint({"idle": {"pf": [good] * 9}}) == []  # more than a root names
    assert prefetch_hint({"idle": None}) == prefetch_hint({}) == []
