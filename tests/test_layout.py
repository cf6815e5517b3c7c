"""The stored layout: ids, roots, wait records, sharded maps and capped logs."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pytest

from ttflow_async import CorruptStateError
from ttflow_async._json import dumps, loads
from ttflow_async._layout import (
    FORMAT_VERSION,
    MERGE_AFTER,
    SEGMENT_BYTES,
    SEGMENT_SIZE,
    CappedLog,
    ShardedMap,
    blob_time,
    decode_root,
    empty_head,
    empty_root,
    new_id,
    rec_due,
    rec_event_names,
    shard_of,
)


class Blobs:
    """A dict of encoded blobs with the fetch function the layout classes take."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.fetched: list[str] = []

    async def fetch(self, ids: Iterable[str]) -> dict[str, Any]:
        wanted = list(ids)
        self.fetched.extend(wanted)
        return {i: loads(self.data[i]) for i in wanted}


def test_new_ids_are_unique_time_ordered_and_carry_their_time() -> None:
    before = time.time()
    ids = [new_id("j") for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(i.startswith("j-") for i in ids)
    stamp = blob_time(ids[0])
    assert stamp is not None
    assert before - 1 <= stamp <= time.time() + 1
    assert blob_time("root") is None
    assert blob_time("j-zz-00") is None


def test_shards_are_stable_and_in_range() -> None:
    assert shard_of("count", 16) == shard_of("count", 16)
    assert {shard_of(f"k{i}", 16) for i in range(500)} == set(range(16))


def test_root_round_trips_and_foreign_data_is_refused() -> None:
    root = empty_root()
    assert decode_root(dumps(root), "the store") == root
    assert root["v"] == FORMAT_VERSION
    with pytest.raises(CorruptStateError, match="not JSON"):
        decode_root(b"{oops", "state.json")
    with pytest.raises(CorruptStateError, match="not a ttflow-async store"):
        decode_root(dumps({"format": "other"}), "state.json")
    with pytest.raises(CorruptStateError, match="format version 99"):
        decode_root(dumps({**root, "v": 99}), "state.json")


def test_empty_head_has_every_shard_empty() -> None:
    head = empty_head()
    assert all(i is None for i in head["states"] + head["waits"] + head["timers"])
    assert head["history"] == head["events"] == head["traces"] == []


def test_wait_records_say_when_and_what_they_wait_for() -> None:
    assert rec_due({"wait": {"kind": "timer", "due": 5}}) == 5.0
    assert rec_due({"wait": {"kind": "event", "name": "go", "deadline": 7}}) == 7.0
    assert rec_due({"wait": {"kind": "event", "name": "go", "deadline": None}}) is None
    assert rec_due({"wait": {"kind": "callback", "due": 9}}) == 9.0
    assert rec_due({"wait": {"kind": "child"}}) is None
    assert rec_event_names({"wait": {"kind": "event", "name": "go"}}) == ["go"]
    batch = {"wait": {"kind": "batch", "events": ["a", "b", "a"]}}
    assert rec_event_names(batch) == ["a", "b"]
    assert rec_event_names({"wait": {"kind": "timer", "due": 1}}) == []
    assert rec_event_names({"wait": {"kind": "child", "event": "_done:x"}}) == ["_done:x"]


async def test_sharded_map_writes_only_changed_shards() -> None:
    blobs = Blobs()
    states = ShardedMap("s", [None] * 4)
    await states.load_all(blobs.fetch)
    assert blobs.fetched == []  # empty shards need no read
    assert states.index("a") != states.index("b")  # two shards, so one can empty alone
    states.put("a", 1)
    states.put("b", 2)
    new_blobs: dict[str, bytes] = {}
    garbage: set[str] = set()
    ids = states.flush(new_blobs, garbage)
    assert garbage == set()
    assert len(new_blobs) == 2
    blobs.data.update(new_blobs)

    again = ShardedMap("s", ids)
    await again.load([again.index("a")], blobs.fetch)
    assert again.get("a") == 1
    assert again.contains("a")
    again.delete("a")
    again.delete("never-there")
    more: dict[str, bytes] = {}
    dropped: set[str] = set()
    after = again.flush(more, dropped)
    old = ids[again.index("a")]
    assert old in dropped
    assert after[again.index("a")] is None  # an emptied shard is not written
    assert after[again.index("b")] == ids[again.index("b")]  # an untouched one is kept
    assert more == {}


async def test_capped_log_keeps_the_last_entries_in_bounded_segments() -> None:
    blobs = Blobs()
    log = CappedLog("h", [], cap=250)
    garbage: set[str] = set()
    for i in range(600):
        log.append({"i": i})
        if i % 37 == 0:
            new_blobs: dict[str, bytes] = {}
            await log.flush(blobs.fetch, new_blobs, garbage)
            blobs.data.update(new_blobs)
    new_blobs = {}
    await log.flush(blobs.fetch, new_blobs, garbage)
    blobs.data.update(new_blobs)
    entries = await log.read(blobs.fetch)
    assert [e["i"] for e in entries] == list(range(350, 600))
    assert all(seg[1] <= SEGMENT_SIZE for seg in log.segments)
    assert sum(seg[1] for seg in log.segments) < 250 + SEGMENT_SIZE
    assert set(log.blob_ids()).isdisjoint(garbage)


async def test_capped_log_closes_a_segment_at_its_byte_budget() -> None:
    blobs = Blobs()
    log = CappedLog("t", [], cap=1000)
    big = "x" * (SEGMENT_BYTES // 3)
    for _ in range(5):
        log.append(big)
    new_blobs: dict[str, bytes] = {}
    await log.flush(blobs.fetch, new_blobs, set())
    blobs.data.update(new_blobs)
    assert [seg[1] for seg in log.segments] == [2, 2, 1]
    assert all(seg[2] <= SEGMENT_BYTES for seg in log.segments)
    assert await log.read(blobs.fetch) == [big] * 5


async def test_capped_log_appends_without_reading_and_merges_its_small_tail() -> None:
    blobs = Blobs()
    log = CappedLog("e", [], cap=1000)
    reads: list[list[str]] = []

    async def fetch(ids: Iterable[str]) -> dict[str, Any]:
        reads.append(sorted(ids))
        return await blobs.fetch(ids)

    for round_ in range(MERGE_AFTER):
        log.append(round_)
        new_blobs: dict[str, bytes] = {}
        garbage: set[str] = set()
        assert log.merge_ids() == []
        await log.flush(fetch, new_blobs, garbage)
        blobs.data.update(new_blobs)
        assert len(new_blobs) == 1
        assert garbage == set()
    assert reads == []  # eight appends, eight new segments, nothing read
    small = log.blob_ids()
    assert log.merge_ids() == small

    log.append(MERGE_AFTER)
    new_blobs = {}
    garbage = set()
    await log.flush(fetch, new_blobs, garbage)
    blobs.data.update(new_blobs)
    assert reads == [sorted(small)]  # the ninth merges them: one read
    assert garbage == set(small)
    assert len(log.segments) == 1
    assert await log.read(blobs.fetch) == list(range(MERGE_AFTER + 1))
