"""Wait shards that grow: waking one run of many reads and rewrites a small shard.

A store starts with 64 wait shards; a commit doubles them (up to 1024) while a shard it
changed holds more than 64 event names (storage format 4). Doubling reads every shard
in one wave and rewrites them all: a blob always holds the keys of one shard only.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest

from tests.test_layout import Blobs
from ttflow_async import CorruptStateError, RunContext, _index, _json, event_trigger, setup
from ttflow_async._layout import ShardedMap, empty_head
from ttflow_async._stores._memory import MemoryStore
from ttflow_async._view import check_head


async def _reopened(blobs: Blobs, ids: list[str | None]) -> dict[str, Any]:
    """Every key of a map as a fresh reader finds it, checking no key is found twice."""
    fresh = ShardedMap("wt", ids)
    await fresh.load_all(blobs.fetch)
    found: dict[str, Any] = {}
    for key, value in fresh.items():
        assert key not in found, f"{key} found in two shards"
        found[key] = value
    return found


async def test_a_map_doubles_while_a_changed_shard_is_too_big_and_keeps_every_key() -> None:
    blobs = Blobs()
    waits = ShardedMap("wt", [None] * 4, split_at=2, max_shards=64)
    await waits.load_all(blobs.fetch)
    for n in range(40):
        waits.put(f"ev_{n}", {"run": n})
    await waits.grow(blobs.fetch)
    ids = waits.flush(blobs.data, set())
    assert 16 <= len(ids) <= 64  # 40 names, at most 2 in a shard where it could split
    assert await _reopened(blobs, ids) == {f"ev_{n}": {"run": n} for n in range(40)}


async def test_growing_reads_every_shard_in_one_wave_and_retires_every_old_blob() -> None:
    blobs = Blobs()
    start = ShardedMap("wt", [None] * 4)
    await start.load_all(blobs.fetch)
    keys = [f"ev_{n}" for n in range(8)]
    for key in keys:
        start.put(key, key)
    ids = start.flush(blobs.data, set())
    waits = ShardedMap("wt", ids, split_at=2, max_shards=64)
    crowded = waits.index("ev_0")
    await waits.load([crowded], blobs.fetch)
    added = [f"ev_{n}" for n in range(8, 40) if waits.index(f"ev_{n}") == crowded]
    for key in added:  # three or more names in the crowded shard
        waits.put(key, "new")
    blobs.fetched.clear()
    fetches: list[list[str]] = []
    fetch = blobs.fetch

    async def counted(wanted: Iterable[str]) -> dict[str, Any]:
        fetches.append(list(wanted))
        return await fetch(fetches[-1])

    await waits.grow(counted)
    garbage: set[str] = set()
    grown = waits.flush(blobs.data, garbage)
    assert len(fetches) == 1  # one wave: the shards not loaded yet
    assert crowded not in [ids.index(i) for i in fetches[0] if i in ids]
    assert len(grown) > 4
    assert garbage == {i for i in ids if i is not None}  # no old blob is named any more
    assert not garbage & set(grown)
    found = await _reopened(blobs, grown)
    assert found == {**{k: k for k in keys}, **dict.fromkeys(added, "new")}


def test_a_head_with_a_wait_shard_count_that_is_not_a_power_of_two_is_refused() -> None:
    head = empty_head()
    assert check_head({**head, "waits": [None] * 256}, "hd-x", MemoryStore()) is not None
    for bad in (100, 32, 2048):
        with pytest.raises(CorruptStateError, match="'waits'"):
            check_head({**head, "waits": [None] * bad}, "hd-x", MemoryStore())


async def test_many_waiters_split_the_wait_shards_and_each_wakes_exactly_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_index, "WAIT_SPLIT_AT", 2)
    store = MemoryStore()
    client = setup(store)
    woken: list[int] = []

    @client.workflow(trigger=event_trigger("spawn"))
    async def waiter(c: RunContext, n: int) -> None:
        await c.wait_event(f"ev_{n}")
        woken.append(n)

    for n in range(300):  # one waiter a pass: the shards split a few at a time
        await client.send_event("spawn", n)
        await client.run()
    head_id = _json.loads((await store.read_root() or (b"", ""))[0])["head"]
    head = _json.loads((await store.get_blobs([head_id]))[head_id])
    assert len(head["waits"]) > 64
    paused = [p.run_id for p in await client.paused_runs()]
    assert len(paused) == len(set(paused)) == 300

    order = list(range(300))
    random.Random(7).shuffle(order)
    for n in order:
        await client.send_event(f"ev_{n}")
        (result,) = await client.run()
        assert result.status == "succeeded"
    assert sorted(woken) == list(range(300))
    assert await client.paused_runs() == []
    await client.run()  # the last pass's garbage is deleted beside this one
    assert [b for b in await store.list_blobs() if b.startswith("wt-")] == []
