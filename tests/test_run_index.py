"""The suspended-run index: every claim, insert and due-time path, with no store at all.

Each test reopens the index from what it flushed, loading only the shards the index
says an operation needs, the way a pass does: an operation that touched a shard it did
not ask for would raise ``KeyError`` here.
"""

from __future__ import annotations

from typing import Any

import pytest

from ttflow_async import _json
from ttflow_async._index import Rec, RunIndex, Shards
from ttflow_async._layout import TIMER_SHARDS, empty_head, shard_of


def rec(kind: str, **wait: Any) -> Rec:
    return {"w": "wf", "since": 0.0, "wait": {"kind": kind, **wait}, "j": f"j-{kind}"}


class Store:
    """The blobs an index was flushed to, and the heads of its commits."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.garbage: set[str] = set()
        self.head: dict[str, Any] = empty_head()

    def open(self) -> RunIndex:
        return RunIndex(_json.loads(_json.dumps(self.head)))

    def load(self, index: RunIndex, shards: Shards, keys: set[int] | None = None) -> None:
        waits, timers = shards
        for shards_map, wanted in ((index.waits, waits), (index.timers, timers)):
            self._load(shards_map.ids, shards_map.shards, wanted)
        self._load(index.keys.ids, index.keys.shards, keys or set())

    def _load(self, ids: list[str | None], shards: dict[int, Any], wanted: set[int]) -> None:
        for i in wanted:
            blob = ids[i]
            shards.setdefault(i, {} if blob is None else _json.loads(self.blobs[blob]))

    def commit(self, index: RunIndex) -> None:
        self.head.update(index.flush(self.blobs, self.garbage))
        self.head["keys"] = index.flush_keys(self.blobs, self.garbage)


def inserted(store: Store, runs: list[tuple[str, Rec]]) -> RunIndex:
    """Insert runs into the stored index, commit, and return it reopened."""
    index = store.open()
    store.load(index, index.shards_of(runs))
    index.insert(runs)
    store.commit(index)
    return store.open()


def claim_waiters(store: Store, index: RunIndex, names: list[str]) -> dict[str, Any]:
    store.load(index, (index.wait_shards(names), set()))
    claimed = index.take_waiters(names)
    runs = [run for found in claimed.values() for run in found]
    store.load(index, index.shards_of(runs))
    index.unlink(runs)
    return {name: [r for r, _ in found] for name, found in claimed.items()}


def claim_due(store: Store, index: RunIndex, now: float) -> list[str]:
    store.load(index, (set(), set(index.due_shards(now))))
    claimed = index.due(now)
    store.load(index, (index.shards_of(claimed)[0], set()))
    index.unlink(claimed)
    return sorted(r for r, _ in claimed)


def everything(store: Store) -> dict[str, Rec]:
    index = store.open()
    store.load(index, (set(range(len(index.waits.ids))), set(range(TIMER_SHARDS))))
    return index.all_suspended()


def ids_in_distinct_timer_shards(count: int) -> list[str]:
    found: dict[int, str] = {}
    n = 0
    while len(found) < count:
        found.setdefault(shard_of(f"run-{n}", TIMER_SHARDS), f"run-{n}")
        n += 1
    return list(found.values())


def test_an_event_waiter_is_claimed_once_and_leaves_nothing_behind() -> None:
    store = Store()
    index = inserted(store, [("r1", rec("event", name="ping"))])
    store.load(index, (index.wait_shards(["ping"]), set()))
    assert index.has_waiters("ping")
    assert not index.dirty()

    assert claim_waiters(store, index, ["ping"]) == {"ping": ["r1"]}
    assert index.dirty()
    assert claim_waiters(store, index, ["ping"]) == {}  # claiming twice finds nothing
    store.commit(index)
    assert everything(store) == {}
    assert not any(store.head["waits"])


def test_a_run_waiting_for_two_events_both_delivered_is_claimed_once() -> None:
    store = Store()
    index = inserted(store, [("r1", rec("batch", events=["a", "b", "a"], size=2))])
    assert claim_waiters(store, index, ["b", "a", "b"]) == {"b": ["r1"]}
    store.commit(index)
    assert everything(store) == {}


def test_a_run_waiting_for_two_events_is_unlinked_from_the_one_not_delivered() -> None:
    store = Store()
    index = inserted(store, [("r1", rec("batch", events=["a", "b"], due=50.0))])
    assert claim_waiters(store, index, ["a"]) == {"a": ["r1"]}
    store.commit(index)
    again = store.open()
    store.load(again, (again.wait_shards(["b"]), set()))
    assert not again.has_waiters("b")
    assert not any(store.head["waits"])  # no empty waiter list is left stored
    assert store.head["timer_min"] == [None] * TIMER_SHARDS  # its deadline went too


def test_two_runs_waiting_for_one_event_are_both_claimed() -> None:
    store = Store()
    index = inserted(store, [("r1", rec("event", name="go")), ("r2", rec("event", name="go"))])
    assert claim_waiters(store, index, ["go"]) == {"go": ["r1", "r2"]}


def test_an_event_with_no_waiter_changes_nothing() -> None:
    store = Store()
    index = inserted(store, [("r1", rec("event", name="go"))])
    assert claim_waiters(store, index, ["other"]) == {}
    assert not index.dirty()


def test_runs_due_at_the_same_time_are_claimed_together_in_any_shard() -> None:
    store = Store()
    first, second = ids_in_distinct_timer_shards(2)
    runs = [(first, rec("timer", due=10.0)), (second, rec("timer", due=10.0))]
    index = inserted(store, runs)
    assert index.next_due() == 10.0
    assert sorted(index.due_shards(10.0)) == sorted(
        shard_of(r, TIMER_SHARDS) for r in (first, second)
    )
    assert claim_due(store, index, 9.999) == []
    assert claim_due(store, index, 10.0) == sorted([first, second])  # due <= now
    assert claim_due(store, index, 10.0) == []  # claiming twice finds nothing
    store.commit(index)
    assert store.open().next_due() is None


def test_only_the_runs_due_are_claimed_from_a_shard() -> None:
    store = Store()
    index = inserted(store, [("r1", rec("timer", due=5.0))])
    same_shard = next(
        f"x{n}"
        for n in range(1000)
        if shard_of(f"x{n}", TIMER_SHARDS) == shard_of("r1", TIMER_SHARDS)
    )
    index = inserted(store, [(same_shard, rec("timer", due=20.0))])
    assert index.next_due() == 5.0
    assert claim_due(store, index, 6.0) == ["r1"]
    store.commit(index)
    reopened = store.open()
    assert reopened.next_due() == 20.0  # the shard's minimum is recomputed at flush
    assert claim_due(store, reopened, 30.0) == [same_shard]


def test_a_timed_out_event_wait_is_unlinked_from_its_event() -> None:
    store = Store()
    index = inserted(store, [("r1", rec("event", name="ping", deadline=7.0))])
    assert claim_due(store, index, 7.0) == ["r1"]
    assert claim_waiters(store, index, ["ping"]) == {}


def test_an_event_claim_drops_the_timer_of_the_wait_timeout() -> None:
    store = Store()
    index = inserted(store, [("r1", rec("event", name="ping", deadline=7.0))])
    assert index.next_due() == 7.0
    assert claim_waiters(store, index, ["ping"]) == {"ping": ["r1"]}
    store.commit(index)
    assert store.open().next_due() is None
    assert everything(store) == {}


def test_callback_and_child_waits_are_indexed_by_their_wake_event() -> None:
    store = Store()
    runs = [
        ("r1", rec("callback", id="c1", event="_cb:c1", due=9.0)),
        ("r2", rec("child", run="k1", event="_child:k1")),
    ]
    index = inserted(store, runs)
    assert claim_waiters(store, index, ["_cb:c1", "_child:k1"]) == {
        "_cb:c1": ["r1"],
        "_child:k1": ["r2"],
    }
    store.commit(index)
    assert store.open().next_due() is None


def test_next_run_and_blocked_runs_are_claimed_once() -> None:
    store = Store()
    runs = [
        ("r1", rec("next_run")),
        ("r2", rec("blocked", error_message="gone")),
        ("r3", rec("batch", events=["e"], next_run=True)),
    ]
    index = inserted(store, runs)
    assert [r for r, _ in index.claim_next_run()] == ["r1", "r3"]
    assert index.claim_next_run() == []
    assert [r for r, _ in index.claim_blocked()] == ["r2"]
    assert index.claim_blocked() == []
    assert index.dirty()
    # A batch flushed at the next pass is still indexed under its event until claimed.
    assert claim_waiters(store, index, ["e"]) == {"e": ["r3"]}


def test_claiming_nothing_leaves_the_index_clean() -> None:
    store = Store()
    index = store.open()
    assert index.claim_next_run() == []
    assert index.claim_blocked() == []
    assert index.due_shards(1e12) == []
    assert index.due(1e12) == []
    index.insert([])
    assert not index.dirty()
    assert index.next_due() is None


def test_remove_takes_a_run_out_wherever_it_is_indexed() -> None:
    store = Store()
    runs = [
        ("r1", rec("batch", events=["a", "b"], due=3.0)),
        ("r2", rec("next_run")),
        ("r3", rec("blocked")),
        ("r4", rec("event", name="a")),
    ]
    index = inserted(store, runs)
    for run_id, run_rec in runs[:3]:
        store.load(index, index.remove_shards(run_id, run_rec))
        index.remove(run_id, run_rec)
    store.commit(index)
    assert list(everything(store)) == ["r4"]
    assert store.open().next_due() is None


def test_all_suspended_lists_every_run_once() -> None:
    store = Store()
    runs = [
        ("r1", rec("batch", events=["a", "b"], due=3.0)),
        ("r2", rec("next_run")),
        ("r3", rec("timer", due=4.0)),
    ]
    inserted(store, runs)
    assert everything(store) == dict(runs)


def test_an_operation_reads_only_the_shards_it_asked_for() -> None:
    store = Store()
    index = inserted(store, [("r1", rec("event", name="ping"))])
    with pytest.raises(KeyError):
        index.take_waiters(["ping"])  # its wait shard was never loaded


def test_idempotency_keys_expire_and_old_keys_of_a_shard_are_dropped() -> None:
    store = Store()
    index = store.open()
    store.load(index, (set(), set()), index.key_shards(["k1", "k2"]))
    index.use_key("k1", expires=10.0, now=0.0)
    assert index.key_used("k1", 9.9)
    assert not index.key_used("k1", 10.0)
    assert not index.key_used("k2", 0.0)
    assert index.dirty()
    store.commit(index)

    later = store.open()
    same_shard = next(
        f"k{n}" for n in range(2, 1000) if later.keys.index(f"k{n}") == later.keys.index("k1")
    )
    store.load(later, (set(), set()), later.key_shards([same_shard]))
    assert later.key_used("k1", 5.0)
    later.use_key(same_shard, expires=30.0, now=20.0)  # k1 expired at 10: dropped
    assert later.keys.shards[later.keys.index("k1")] == {same_shard: 30.0}
