"""The client's life: ``async with`` opens it once, ``aclose()`` closes it."""

from __future__ import annotations

import anyio

from ttflow_async import RunContext, setup
from ttflow_async._client_core import ClientState
from ttflow_async._stores._memory import MemoryStore


class _CountingStore(MemoryStore):
    """A memory store that counts its open connections."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self.opened = 0

    async def open(self) -> None:
        self.connections += 1
        self.opened += 1

    async def aclose(self) -> None:
        self.connections -= 1


async def test_aclose_closes_a_client_entered_more_than_once() -> None:
    store = _CountingStore()
    client = setup(store)
    async with client, client:
        await client.run()
        assert store.connections == 1
        await client.aclose()
        assert store.connections == 0
        assert client.state is ClientState.CLOSED
    assert store.connections == 0


async def test_an_unentered_client_opens_one_connection_per_call() -> None:
    store = _CountingStore()
    client = setup(store)
    assert client.state is ClientState.UNOPENED
    await client.run()
    await client.paused_runs()
    assert (store.opened, store.connections) == (2, 0)


async def test_an_entered_client_shares_one_connection_and_closes_it_at_the_exit() -> None:
    store = _CountingStore()
    client = setup(store)
    async with client:
        assert client.state is ClientState.OPENED
        await client.run()
        await client.paused_runs()
    assert (store.opened, store.connections) == (1, 0)
    assert client.state is ClientState.CLOSED
    await client.run()  # after the close: a connection of its own again
    assert (store.opened, store.connections) == (2, 0)


async def test_aclose_during_a_call_leaves_its_connection_until_it_ends() -> None:
    store = _CountingStore()
    client = setup(store)
    started, go_on = anyio.Event(), anyio.Event()

    @client.sideeffect()
    async def hold(c: RunContext) -> None:
        started.set()
        await go_on.wait()

    @client.workflow(trigger="go")
    async def slow(c: RunContext) -> None:
        await hold(c)

    async with client:
        await client.run()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(client.run, "go")
            await started.wait()
            await client.aclose()
            assert store.connections == 1  # the pass still runs on it
            go_on.set()
    assert store.connections == 0
    (entry,) = [h for h in await client.run_history() if h.workflow_name == "slow"]
    assert entry.status == "succeeded"


class _RecordingStore(MemoryStore):
    """A memory store that records the order of its root writes and blob deletions."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        await anyio.sleep(0.01)  # a request's latency: a deletion could overtake it
        version = await super().write_root(data, expected, durable=durable)
        self.calls.append("write_root")
        return version

    async def delete_blobs(self, ids: object) -> None:
        self.calls.append("delete_blobs")
        await super().delete_blobs(ids)  # type: ignore[arg-type]


async def test_the_blobs_a_commit_left_are_deleted_once_the_next_pass_holds_the_lease() -> None:
    # An entered client deletes what its commit left behind during its next run(); the
    # unreferenced blobs concern no pass, so they wait until that pass has taken its
    # lease instead of competing with its first requests.
    store = _RecordingStore()
    client = setup(store)

    @client.workflow(trigger="go")
    async def go(c: RunContext, args: int) -> None:
        await c.set_state("n", args)

    async with client:
        await client.run("go", 1)
        await client.run("go", 2)  # its commit leaves the first head and shard behind
        store.calls.clear()
        await client.run("go", 3)
        assert store.calls[:2] == ["write_root", "delete_blobs"]
        assert await client.get_state("n") == 3
