"""A write-buffered view of the store for one pass: lazy reads, a write set, one commit."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _json, _packs
from ._concurrency import gather
from ._errors import CorruptStateError
from ._index import Rec, RunIndex, Shards
from ._layout import (
    CALLBACK_SHARDS,
    EVENT_LOG_CAP,
    FORMAT_VERSION,
    HISTORY_CAP,
    TRACE_CAP,
    WAIT_SHARDS,
    WAIT_SHARDS_MAX,
    CappedLog,
    ShardedMap,
    decode_root,
    empty_head,
    empty_root,
    new_id,
)
from ._stores import Store

if TYPE_CHECKING:
    import asyncio

    from ._lease import Lease

logger = logging.getLogger("ttflow_async")

#: A state map of at most this many non-empty shards is read ahead by every pass.
PREFETCHED_STATE_SHARDS = 2

__all__ = ["Rec", "StoreView", "check_head", "commit_view", "read_view"]

#: What each kind of blob decodes to (maps and journals are objects, log segments lists).
_BLOB_SHAPES: dict[str, type] = {
    **dict.fromkeys(("hd", "st", "wt", "tm", "ky", "cb", "j"), dict),
    **dict.fromkeys(("hi", "ev", "tr"), list),
}

_HEAD_LISTS = ("states", "waits", "timers", "timer_min", "history", "events", "traces")


def _wait_shard_count(n: int) -> bool:
    """Whether a head may have ``n`` wait shards: a power of two from 64 to 1024."""
    return WAIT_SHARDS <= n <= WAIT_SHARDS_MAX and n & (n - 1) == 0


def check_head(head: Any, head_id: str, store: Store) -> dict[str, Any]:
    """A decoded head blob, or CorruptStateError naming it."""
    fresh = empty_head()
    problem = None
    if not isinstance(head, dict):
        problem = f"it is a {type(head).__name__}"
    else:
        for key in _HEAD_LISTS:
            value = head.get(key)
            if not isinstance(value, list) or (
                key in ("states", "timers", "timer_min") and len(value) != len(fresh[key])
            ):
                problem = f"its {key!r} is {value!r:.60}"
                break
            if key == "waits" and not _wait_shard_count(len(value)):
                problem = f"its {key!r} is {value!r:.60}"
                break
        for key, missing in (("next_run", None), ("blocked", None), ("packs", {})):
            value = head.get(key, missing)
            if problem is None and not isinstance(value, dict):
                problem = f"its {key!r} is {value!r:.60}"
    if problem is not None:
        raise CorruptStateError(
            f"the head blob {head_id} of {store.description} is not a ttflow-async head "
            f"({problem}); the store was left untouched: restore it from a backup"
        )
    return head  # type: ignore[no-any-return]


class StoreView:
    """What one pass (or one inspection call) sees of the store, and what it will write.

    Reads are cached; writes go to fresh blob ids in ``new_blobs``; blobs that the new
    head no longer references are collected in ``garbage`` and deleted after commit.
    """

    def __init__(self, store: Store, root: dict[str, Any], version: str | None) -> None:
        self.store = store
        self.root = root
        self.version = version
        self.cache: dict[str, Any] = {}
        self._inflight: dict[str, asyncio.Event] = {}
        self.new_blobs: dict[str, bytes] = {}
        self.garbage: set[str] = set()
        self.head: dict[str, Any] = empty_head()
        self.head_loaded = False
        #: The inbox as listed together with this root (by the idle check), if it was.
        self.inbox: list[tuple[str, bytes]] | None = None
        self._bind_head()

    @classmethod
    async def read(cls, store: Store) -> StoreView:
        """The current root of the store (no lease taken), head not loaded."""
        found = await store.read_root()
        if found is None:
            return cls(store, empty_root(), None)
        data, version = found
        return cls(store, decode_root(data, store.description), version)

    def _bind_head(self) -> None:
        head = self.head
        self.states = ShardedMap("st", head["states"])
        self.index = RunIndex(head)
        self.history = CappedLog("hi", head["history"], HISTORY_CAP)
        self.events = CappedLog("ev", head["events"], EVENT_LOG_CAP)
        self.traces = CappedLog("tr", head["traces"], TRACE_CAP)
        self.callbacks = ShardedMap("cb", head.get("callbacks") or [None] * CALLBACK_SHARDS)

    async def load_head(self) -> None:
        """Read the head blob the root points at."""
        head_id = self.root.get("head")
        if head_id:
            self.head = check_head((await self.fetch([head_id]))[head_id], head_id, self.store)
        else:
            self.head = empty_head()
        self.head_loaded = True
        self._bind_head()

    async def prefetch(self) -> None:
        """Read ahead what a pass will most likely read later, while its runs start.

        The log segments a commit merges (one commit in :data:`~._layout.MERGE_AFTER`
        reads any), and the state shards when there are at
        most :data:`PREFETCHED_STATE_SHARDS` of them (a small state map): a state read
        in a workflow then waits for no request of its own. The shards of a larger map
        are read when a run reads them.
        """
        logs = (self.history, self.events, self.traces)
        ids = [i for log in logs for i in log.merge_ids()]
        shards = [i for i in self.states.ids if i is not None]
        if len(shards) <= PREFETCHED_STATE_SHARDS:
            ids += shards
        with contextlib.suppress(Exception):  # whoever needs them reads them again
            await self.fetch(ids)

    async def fetch(self, ids: Iterable[str]) -> dict[str, Any]:
        """Decoded blobs by id, cached; concurrent requests for one id share one read."""
        ids = list(dict.fromkeys(ids))
        missing = [i for i in ids if i not in self.cache and i not in self._inflight]
        others = {self._inflight[i] for i in ids if i not in self.cache and i in self._inflight}
        if missing:
            import asyncio  # not anyio's Event: the idle check loads no anyio backend

            done = asyncio.Event()
            for blob_id in missing:
                self._inflight[blob_id] = done
            try:
                raw = await self.store.get_blobs(missing)
                for blob_id in missing:
                    self.cache[blob_id] = self._decode(blob_id, raw[blob_id])
            finally:
                for blob_id in missing:
                    del self._inflight[blob_id]
                done.set()
        for event in others:
            await event.wait()
        if any(i not in self.cache for i in ids):
            return await self.fetch(ids)  # another reader failed: try on our own
        return {i: self.cache[i] for i in ids}

    def _decode(self, blob_id: str, data: bytes) -> Any:
        if _packs.is_pack(blob_id):  # its journals are decoded one by one, when read
            return data
        try:
            value = _json.loads(data)
        except ValueError as exc:
            raise CorruptStateError(
                f"blob {blob_id} of {self.store.description} is not valid JSON ({exc}); "
                "the store was left untouched: restore the blob from a backup"
            ) from None
        expected = _BLOB_SHAPES.get(blob_id.split("-", 1)[0])
        if expected is not None and not isinstance(value, expected):
            raise CorruptStateError(
                f"blob {blob_id} of {self.store.description} holds a "
                f"{type(value).__name__} where a {expected.__name__} belongs; the store "
                "was left untouched: restore the blob from a backup"
            )
        return value

    def add_blob(self, kind: str, value: Any) -> str:
        """Stage a new blob; returns its id."""
        blob_id = new_id(kind)
        self.new_blobs[blob_id] = _json.dumps(value)
        return blob_id

    # -- state -------------------------------------------------------------------------

    async def read_state(self, name: str) -> tuple[bool, Any]:
        """``(found, value)`` of a state as buffered in this view."""
        await self.states.load([self.states.index(name)], self.fetch)
        return self.states.contains(name), self.states.get(name)

    def write_state(self, name: str, value: Any) -> None:
        """Buffer a state write (the shard was loaded by a read first)."""
        self.states.put(name, value)

    # -- suspended runs and idempotency keys: load the shards, then ask the index -------

    async def _load(self, shards: Shards) -> None:
        # Only the maps with shards to read: a task group costs ~80 us even for none.
        maps = (self.index.waits, self.index.timers)
        calls = [
            partial(shard_map.load, wanted, self.fetch)
            for shard_map, wanted in zip(maps, shards, strict=True)
            if any(i not in shard_map.shards for i in wanted)
        ]
        await gather(*calls)

    async def has_waiters(self, name: str) -> bool:
        """Whether a suspended run waits for the event or trigger ``name``."""
        await self.index.waits.load(self.index.wait_shards([name]), self.fetch)
        return self.index.has_waiters(name)

    async def claim_waiters(self, names: Iterable[str]) -> dict[str, list[tuple[str, Rec]]]:
        """Remove and return the runs waiting for each name (shards read concurrently)."""
        names = list(dict.fromkeys(names))
        await self.index.waits.load(self.index.wait_shards(names), self.fetch)
        claimed = self.index.take_waiters(names)
        runs = [run for found in claimed.values() for run in found]
        await self._load(self.index.shards_of(runs))
        self.index.unlink(runs)
        return claimed

    async def claim_due(self, now: float) -> list[tuple[str, Rec]]:
        """Remove and return the runs whose timer or wait timeout is due."""
        due_shards = self.index.due_shards(now)
        if not due_shards:
            return []
        await self.index.timers.load(due_shards, self.fetch)
        claimed = self.index.due(now)
        await self.index.waits.load(self.index.shards_of(claimed)[0], self.fetch)
        self.index.unlink(claimed)
        return claimed

    async def insert(self, runs: list[tuple[str, Rec]]) -> None:
        """Index suspended runs by what they wait for (shards read concurrently)."""
        if runs:
            await self._load(self.index.shards_of(runs))
            self.index.insert(runs)

    async def remove(self, run_id: str, rec: Rec) -> None:
        """Take one suspended run out of the index, wherever it is indexed."""
        await self._load(self.index.remove_shards(run_id, rec))
        self.index.remove(run_id, rec)

    async def all_suspended(self) -> dict[str, Rec]:
        """Every suspended run by id (reads every wait and timer shard)."""
        await gather(
            lambda: self.index.waits.load_all(self.fetch),
            lambda: self.index.timers.load_all(self.fetch),
        )
        return self.index.all_suspended()

    def next_due(self) -> float | None:
        """The earliest due time of a timer or wait timeout."""
        return self.index.next_due()

    async def load_keys(self, keys: Iterable[str]) -> None:
        """Read the shards of these idempotency keys."""
        await self.index.keys.load(self.index.key_shards(keys), self.fetch)

    # -- what the wave cap left --------------------------------------------------------

    def take_pending(self) -> list[list[Any]]:
        """Deliveries an earlier pass left for this one (``[kind, name, args, key]``)."""
        pending: list[list[Any]] = self.head.get("pending") or []
        if pending:
            self.head["pending"] = []
        return pending

    def keep_pending(self, deliveries: list[list[Any]]) -> None:
        """Leave deliveries for the next pass (committed with this one)."""
        self.head["pending"] = [*(self.head.get("pending") or []), *deliveries]

    def previously_consumed(self) -> set[str]:
        """Inbox ids the last commit consumed (their deletion may not have happened)."""
        return set(self.root.get("consumed") or []) | set(self.head.get("consumed") or [])

    async def callback(self, key: str) -> dict[str, Any] | None:
        """The callbacks-map entry of a callback id (or ``child:<run id>``), if any."""
        await self.callbacks.load([self.callbacks.index(key)], self.fetch)
        entry: dict[str, Any] | None = self.callbacks.get(key)
        return entry

    def dirty(self) -> bool:
        """Whether anything was changed that a commit must write."""
        return bool(
            self.index.dirty()
            or self.states.dirty
            or self.callbacks.dirty
            or self.history.pending
            or self.events.pending
            or self.traces.pending
        )

    # -- commit ------------------------------------------------------------------------

    async def stage_head(self) -> str:
        """Write every changed shard, log segment and a new head into ``new_blobs``."""
        logs = (self.history, self.events, self.traces)
        await self.fetch([i for log in logs if log.pending for i in log.merge_ids()])
        for log in logs:
            await log.flush(self.fetch, self.new_blobs, self.garbage)
        await self.index.waits.grow(self.fetch)
        head = dict(self.head)
        head["states"] = self.states.flush(self.new_blobs, self.garbage)
        head.update(self.index.flush(self.new_blobs, self.garbage))
        head["keys"] = self.index.flush_keys(self.new_blobs, self.garbage)
        head["callbacks"] = self.callbacks.flush(self.new_blobs, self.garbage)
        head["history"] = self.history.segments
        head["events"] = self.events.segments
        head["traces"] = self.traces.segments
        old_head = self.root.get("head")
        if old_head:
            self.garbage.add(old_head)
        head_id = self.add_blob("hd", head)
        self.head = head
        return head_id

    async def delete_garbage(self) -> None:
        """Best-effort removal of blobs the committed head no longer references."""
        if not self.garbage:
            return
        try:
            await self.store.delete_blobs(sorted(self.garbage))
        except Exception:  # a later garbage collection finds them again
            logger.warning("could not delete %d unreferenced blobs", len(self.garbage))
        self.garbage.clear()

    async def referenced_blobs(self) -> set[str]:
        """Every blob id the current root references (for garbage collection)."""
        refs: set[str] = set()
        head_id = self.root.get("head")
        if not head_id:
            return refs
        refs.add(head_id)
        for ids in (
            self.head["states"],
            self.head["waits"],
            self.head["timers"],
            self.head.get("keys") or [],
            self.head.get("callbacks") or [],
        ):
            refs.update(i for i in ids if i)
        for log in (self.history, self.events, self.traces):
            refs.update(log.blob_ids())
        refs.update(rec["j"] for rec in (await self.all_suspended()).values())
        return refs


async def commit_view(view: StoreView, lease: Lease, *, consumed: list[str] | None = None) -> None:
    """The one commit path: stage the head, write its blobs, then one CAS of the root.

    The CAS also clears the lease, so it is the fence: a runner whose lease was taken
    over fails here and commits nothing. ``consumed`` names the inbox items this commit
    delivered; they are kept in the head so the next pass skips them if their deletion
    after the commit never happened.
    """
    from ._idle import root_hint  # here: _idle reads views

    view.head["consumed"] = list(consumed or [])
    head_id = await view.stage_head()
    root = {**lease.root, "v": FORMAT_VERSION, "head": head_id, "consumed": []}
    root.pop("idle", None)
    hint = root_hint(view.head)
    if hint is not None:
        root["idle"] = hint
    await lease.commit(root, view.new_blobs)  # a version-1 root is migrated here
    view.root = lease.root
    view.version = lease.version


async def read_view(store: Store) -> StoreView:
    """The current root and head, read without taking the lease."""
    view = await StoreView.read(store)
    await view.load_head()
    return view
