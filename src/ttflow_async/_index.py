"""The suspended-run index and the idempotency keys: plain structures, no I/O.

A suspended run (a run record, ``Rec``, see :mod:`._format`) is indexed by what wakes it:

* the **wait shards** map an event name to ``{run id: rec}`` (an event wait, a batch
  waiting for several events, a callback or child wait with its wake event); there are
  64 of them, doubled by a commit while a changed one holds more than 64 names (up to
  1024, format 4), so that waking one run of many reads and rewrites a small shard;
* the **timer shards** map a run id to its rec when the run falls due by time (a
  sleep, a wait timeout, a batch or callback deadline); the head keeps the earliest
  due time of every timer shard in ``timer_min``, so a pass reads only the due shards;
* ``next_run`` holds the runs paused until the next pass, ``blocked`` the runs
  stopped until the definitions change.

The shards live in :class:`~._layout.ShardedMap` objects loaded by the owner of the
index (:class:`~._view.StoreView`): every method here says which shards it needs
(``*_shards``) or requires them to be loaded already, and never reads anything itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._layout import (
    KEY_SHARDS,
    WAIT_SHARDS_MAX,
    WAIT_SPLIT_AT,
    ShardedMap,
    rec_due,
    rec_event_names,
)

Rec = dict[str, Any]
Shards = tuple[set[int], set[int]]
"""``(wait shards, timer shards)`` an operation needs loaded."""


class RunIndex:
    """Where every suspended run is indexed, and the idempotency keys of deliveries."""

    def __init__(self, head: dict[str, Any]) -> None:
        """Bind the index to a decoded head (its ``next_run``/``blocked`` dicts are shared)."""
        self.waits = ShardedMap(
            "wt", head["waits"], split_at=WAIT_SPLIT_AT, max_shards=WAIT_SHARDS_MAX
        )
        self.timers = ShardedMap("tm", head["timers"])
        self.timer_min: list[float | None] = list(head["timer_min"])
        self.next_run: dict[str, Rec] = head["next_run"]
        self.blocked: dict[str, Rec] = head["blocked"]
        self.keys = ShardedMap("ky", head.get("keys") or [None] * KEY_SHARDS)
        self.changed = False

    # -- which shards an operation needs ------------------------------------------------

    def wait_shards(self, names: Iterable[str]) -> set[int]:
        """The wait shards holding these event names."""
        return {self.waits.index(n) for n in names}

    def shards_of(self, runs: Iterable[tuple[str, Rec]]) -> Shards:
        """The shards where these runs are (or would be) indexed by name and by time."""
        runs = list(runs)
        names = {n for _, rec in runs for n in rec_event_names(rec)}
        timed = {self.timers.index(r) for r, rec in runs if rec_due(rec) is not None}
        return self.wait_shards(names), timed

    def due_shards(self, now: float) -> list[int]:
        """The timer shards holding a run due at ``now`` (from the head, nothing read)."""
        return [i for i, t in enumerate(self.timer_min) if t is not None and t <= now]

    def key_shards(self, keys: Iterable[str]) -> set[int]:
        """The shards of these idempotency keys."""
        return {self.keys.index(k) for k in keys}

    # -- reading (the shards must be loaded) --------------------------------------------

    def has_waiters(self, name: str) -> bool:
        """Whether a suspended run waits for the event or trigger ``name``."""
        return bool(self.waits.get(name))

    def due(self, now: float) -> list[tuple[str, Rec]]:
        """The runs whose timer or wait timeout is due at ``now`` (due shards loaded)."""
        found: list[tuple[str, Rec]] = []
        for i in self.due_shards(now):
            for run_id, rec in list(self.timers.shards[i].items()):
                due = rec_due(rec)
                if due is not None and due <= now:
                    found.append((run_id, rec))
        return found

    def all_suspended(self) -> dict[str, Rec]:
        """Every suspended run by id (every wait and timer shard loaded)."""
        runs: dict[str, Rec] = {}
        runs.update(self.next_run)
        runs.update(self.blocked)
        for waiting in (value for _, value in self.waits.items()):
            runs.update(waiting)
        runs.update(dict(self.timers.items()))
        return runs

    def next_due(self) -> float | None:
        """The earliest due time of a timer or wait timeout (from the head)."""
        times = [t for t in self.timer_min if t is not None]
        return min(times) if times else None

    # -- claiming and indexing (the shards must be loaded) ------------------------------

    def take_waiters(self, names: Iterable[str]) -> dict[str, list[tuple[str, Rec]]]:
        """Remove the waiter lists of these names; a run is returned under its first name.

        The claimed runs are still indexed under their other names and timers until
        :meth:`unlink` (which needs ``shards_of`` the claimed runs loaded).
        """
        claimed: dict[str, list[tuple[str, Rec]]] = {}
        taken: set[str] = set()
        for name in dict.fromkeys(names):
            waiting: dict[str, Rec] = self.waits.get(name) or {}
            if waiting:
                self.waits.delete(name)
                self.changed = True
                fresh = [(r, rec) for r, rec in waiting.items() if r not in taken]
                taken.update(r for r, _ in fresh)
                if fresh:
                    claimed[name] = fresh
        return claimed

    def unlink(self, runs: Iterable[tuple[str, Rec]]) -> None:
        """Drop claimed runs from every wait list and timer they are still indexed in."""
        for run_id, rec in runs:
            for name in rec_event_names(rec):
                self._drop_waiter(name, run_id)
            if rec_due(rec) is not None:
                self.timers.delete(run_id)
            self.changed = True

    def _drop_waiter(self, name: str, run_id: str) -> None:
        waiting = self.waits.get(name) or {}
        if waiting.pop(run_id, None) is not None:
            if waiting:
                self.waits.touch(name)
            else:
                self.waits.delete(name)

    def claim_next_run(self) -> list[tuple[str, Rec]]:
        """Remove and return the runs paused by ``pause_once``."""
        claimed = list(self.next_run.items())
        self.next_run.clear()
        if claimed:
            self.changed = True
        return claimed

    def claim_blocked(self) -> list[tuple[str, Rec]]:
        """Remove and return the blocked runs (retried after a change of definitions)."""
        claimed = list(self.blocked.items())
        self.blocked.clear()
        if claimed:
            self.changed = True
        return claimed

    def insert(self, runs: list[tuple[str, Rec]]) -> None:
        """Index suspended runs by what they wait for (``shards_of(runs)`` loaded)."""
        if not runs:
            return
        self.changed = True
        for run_id, rec in runs:
            wait = rec["wait"]
            kind = wait["kind"]
            if kind == "next_run" or (kind == "batch" and wait.get("next_run")):
                self.next_run[run_id] = rec
            elif kind == "blocked":
                self.blocked[run_id] = rec
        for run_id, rec in runs:
            for name in rec_event_names(rec):
                waiting = self.waits.get(name)
                if waiting is None:
                    self.waits.put(name, {run_id: rec})
                else:
                    waiting[run_id] = rec
                    self.waits.touch(name)
        for run_id, rec in runs:
            if rec_due(rec) is not None:
                self.timers.put(run_id, rec)

    def remove_shards(self, run_id: str, rec: Rec) -> Shards:
        """The shards :meth:`remove` needs loaded."""
        return self.wait_shards(rec_event_names(rec)), {self.timers.index(run_id)}

    def remove(self, run_id: str, rec: Rec) -> None:
        """Take one suspended run out of the index, wherever it is indexed."""
        for name in rec_event_names(rec):
            self._drop_waiter(name, run_id)
        self.timers.delete(run_id)
        self.next_run.pop(run_id, None)
        self.blocked.pop(run_id, None)
        self.changed = True

    # -- idempotency keys (their shards must be loaded) ---------------------------------

    def key_used(self, key: str, now: float) -> bool:
        """Whether ``key`` was used within its window."""
        expires = self.keys.get(key)
        return expires is not None and float(expires) > now

    def use_key(self, key: str, expires: float, now: float) -> None:
        """Record ``key`` until ``expires``; expired keys of its shard are dropped."""
        shard = self.keys.shards[self.keys.index(key)]
        for old in [k for k, t in shard.items() if float(t) <= now]:
            del shard[old]
        self.keys.put(key, expires)

    # -- commit -------------------------------------------------------------------------

    def dirty(self) -> bool:
        """Whether the index changed in a way a commit must write."""
        return bool(self.changed or self.waits.dirty or self.timers.dirty or self.keys.dirty)

    def flush(self, blobs: dict[str, bytes], garbage: set[str]) -> dict[str, Any]:
        """Write changed shards under fresh ids; returns the head keys of the index."""
        waits = self.waits.flush(blobs, garbage)
        for i in self.timers.dirty:
            dues = [rec_due(rec) for rec in self.timers.shards[i].values()]
            self.timer_min[i] = min((d for d in dues if d is not None), default=None)
        timers = self.timers.flush(blobs, garbage)
        return {
            "waits": waits,
            "timers": timers,
            "timer_min": list(self.timer_min),
            "next_run": self.next_run,
            "blocked": self.blocked,
        }

    def flush_keys(self, blobs: dict[str, bytes], garbage: set[str]) -> list[str | None]:
        """Write the changed key shards; returns the head's ``keys`` ids."""
        return self.keys.flush(blobs, garbage)
