"""``add_list_state``: linear in appends, coalesced events, traces that record changes."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.conftest import MakeClient
from tests.faulty_store import FaultyStore
from ttflow_async import RunContext, Store, event_trigger, setup, state_trigger


class CountingStore(FaultyStore):
    """Forwards to a real store and counts the bytes of every blob and root written."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.written = 0
        self.largest = 0

    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        self.written += sum(len(b) for b in blobs.values())
        self.largest = max([self.largest, *(len(b) for b in blobs.values())])
        await super().put_blobs(blobs)

    async def write_root(self, data: bytes, expected: str | None, *, durable: bool = True) -> str:
        self.written += len(data)
        return await super().write_root(data, expected, durable=durable)


async def test_4000_appends_in_one_run_write_at_most_5_mb(tmp_path: Path) -> None:
    store = CountingStore(setup(f"local:{tmp_path / 'state.json'}").store)
    client = setup(store)

    @client.workflow()
    async def seed(c: RunContext) -> None:
        await c.set_state("readings", list(range(1000)))

    @client.workflow()
    async def collect(c: RunContext) -> None:
        for i in range(4000):
            await c.add_list_state("readings", {"n": i, "v": i * 0.5})

    await client.run("seed")
    store.written = 0
    (result,) = await client.run("collect")
    assert result.status == "succeeded"
    assert store.written <= 5_000_000, f"{store.written} bytes written for 4000 appends"
    readings = await client.get_state("readings")
    assert len(readings) == 5000
    assert readings[999] == 999
    assert readings[1000] == {"n": 0, "v": 0.0}
    assert readings[-1] == {"n": 3999, "v": 1999.5}


async def test_appends_of_one_run_fire_the_state_trigger_once_with_old_and_new(
    make_client: MakeClient,
) -> None:
    client = make_client()
    seen: list[Any] = []

    @client.workflow()
    async def collect(c: RunContext) -> None:
        for i in range(5):
            await c.add_list_state("items", i)

    @client.workflow(trigger=state_trigger("items"))
    async def watch(c: RunContext, args: Any) -> None:
        seen.append(args)

    results = await client.run("collect")
    assert [r.workflow_name for r in results] == ["collect", "watch"]
    assert seen == [{"old": None, "new": [0, 1, 2, 3, 4]}]
    changes = [e.args for e in await client.event_log() if e.event_name == "state_changed_items"]
    assert changes == [{"old": None, "new": [0, 1, 2, 3, 4]}]
    await client.run("collect")
    assert seen[-1] == {"old": [0, 1, 2, 3, 4], "new": [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]}


async def test_trace_records_the_appended_items_not_the_whole_list(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def collect(c: RunContext) -> None:
        await c.set_state("other", 1)
        for i in range(3):
            await c.add_list_state("items", i, max_length=2)
        await c.set_state("items", ["reset"])
        await c.add_list_state("items", "x")

    await client.run("collect")
    (execution,) = (await client.traces())[-1].executions
    assert [c.model_dump() for c in execution.state_changes] == [
        {"name": "other", "old": None, "new": 1},
        {"name": "items", "old": [1, 2], "new": ["reset"]},
    ]
    assert [a.model_dump() for a in execution.state_appends] == [
        {"name": "items", "values": [0, 1, 2], "max_length": 2},
        {"name": "items", "values": ["x"], "max_length": None},
    ]
    assert await client.get_state("items") == ["reset", "x"]


async def test_a_read_between_appends_is_replayed_unchanged(make_client: MakeClient) -> None:
    client = make_client()

    @client.workflow()
    async def collect(c: RunContext) -> list[Any]:
        await c.add_list_state("items", "a")
        await c.add_list_state("items", "b")
        first = await c.get_state("items")
        await c.add_list_state("items", "c")
        await c.add_list_state("items", "d")
        await c.pause_once()
        second = await c.get_state("items")
        return [first, second]

    (paused,) = await client.run("collect")
    assert paused.status == "paused"
    (done,) = await client.run()
    assert done.status == "succeeded"
    assert done.result == [["a", "b"], ["a", "b", "c", "d"]]


async def test_concurrent_appenders_keep_every_item_and_a_consistent_chain(
    make_client: MakeClient,
) -> None:
    client = make_client()
    seen: list[Any] = []

    @client.sideeffect()
    async def io(c: RunContext) -> None:
        return None

    @client.workflow(trigger=event_trigger("add"))
    async def add(c: RunContext, args: int) -> None:
        await c.add_list_state("items", args)
        await io(c)
        await c.add_list_state("items", args + 100)

    @client.workflow(trigger=state_trigger("items"))
    async def watch(c: RunContext, args: Any) -> None:
        seen.append(args)

    for i in range(3):
        await client.send_event("add", i)
    await client.run()
    items = await client.get_state("items")
    assert sorted(items) == [0, 1, 2, 100, 101, 102]
    # Each event starts where the one before it ended, and the last ends at the value.
    assert seen[0]["old"] is None
    for before, after in itertools.pairwise(seen):
        assert after["old"] == before["new"]
    assert seen[-1]["new"] == items


async def test_an_event_delivered_is_not_changed_by_later_appends(
    make_client: MakeClient,
) -> None:
    client = make_client()

    @client.workflow()
    async def collect(c: RunContext) -> None:
        await c.add_list_state("items", 1)
        await c.add_list_state("items", 2)

    @client.workflow(trigger=state_trigger("items"))
    async def echo(c: RunContext, args: Any) -> None:
        if len(args["new"]) < 4:
            await c.add_list_state("items", len(args["new"]) + 1)

    await client.run("collect")
    changes = [e.args for e in await client.event_log() if e.event_name == "state_changed_items"]
    assert changes == [
        {"old": None, "new": [1, 2]},
        {"old": [1, 2], "new": [1, 2, 3]},
        {"old": [1, 2, 3], "new": [1, 2, 3, 4]},
    ]
    assert await client.get_state("items") == [1, 2, 3, 4]


async def test_appending_to_a_full_list_of_the_same_value_changes_nothing(
    make_client: MakeClient,
) -> None:
    client = make_client()
    seen: list[Any] = []

    @client.workflow()
    async def collect(c: RunContext) -> None:
        for _ in range(4):
            await c.add_list_state("items", 7, max_length=2)

    @client.workflow(trigger=state_trigger("items"))
    async def watch(c: RunContext, args: Any) -> None:
        seen.append(args)

    await client.run("collect")
    assert seen == [{"old": None, "new": [7, 7]}]
    await client.run("collect")
    assert len(seen) == 1
    assert await client.get_state("items") == [7, 7]
    (execution,) = (await client.traces())[-1].executions
    assert execution.state_appends == []
