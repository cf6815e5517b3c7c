"""The stored layout: root, head, sharded maps and capped logs over immutable blobs.

::

    root (CAS)  {format, v, lease, head: <blob id>, consumed: [inbox ids], gen}
      └─ head blob  {fp, states[16], waits[64..1024], timers[16], timer_min[16],
                     next_run{run_id: rec}, blocked{run_id: rec},
                     history[[seg, n]...], events[...], traces[...], last_gc}
           ├─ state shards   state name  -> value
           ├─ wait shards    event name  -> {run_id: rec}
           ├─ timer shards   run_id      -> rec           (min due time kept in the head)
           ├─ journals       {args, entries, logs, wake}: one blob per run, or packs
           │                 of the runs suspended by one commit (see _packs)
           └─ log segments   capped, append-only lists (history, event log, traces)

A run record ``rec`` is ``{"w": workflow, "since": t, "wait": {...}, "j": journal id}``
(and ``"js": [start, end]``, the journal's bytes in the pack ``j``).
Only what a pass needs is read: the head, the shards of delivered event names, the
timer shards that are due, and the journals of ready runs. Every write goes to a fresh
blob id; the old blobs become garbage deleted after the commit.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from . import _json
from ._errors import CorruptStateError

FORMAT = "ttflow-async"
FORMAT_VERSION = 4
"""Written by this engine. Version 2 added the optional head keys ``keys``,
``consumed`` and ``pending`` and history/run-record keys; it moved the consumed inbox
ids from the root into the head, which an engine of version 1 would not see. Version 3
added journal packs (:mod:`._packs`: blobs ``jp-``, the run-record key ``js`` and the
head's ``packs`` counts), which an engine of version 2 would read as corrupt journals.
Version 4 keeps the local store's inbox in append logs (:mod:`._stores._local_inbox`,
``<path>.d/inbox-logs/``), which an engine of version 3 would never deliver, and lets a
head hold more wait shards than 64 (a power of two up to 1024, doubled by a commit while
a shard it changed holds more than :data:`WAIT_SPLIT_AT` names), which an engine of
version 3 refuses."""

READ_VERSIONS = (1, 2, 3, 4)
"""Read (and resumed) by this engine; a store of version 1 to 3 becomes version 4 at its
first commit (nothing is rewritten: its journal blobs and inbox item files stay valid)."""

STATE_SHARDS = 16
WAIT_SHARDS = 64
"""The wait shards of a new store; a commit doubles them while a changed shard holds
more than :data:`WAIT_SPLIT_AT` event names, up to :data:`WAIT_SHARDS_MAX` (version 4)."""
WAIT_SPLIT_AT = 64
WAIT_SHARDS_MAX = 1024
TIMER_SHARDS = 16
KEY_SHARDS = 16
CALLBACK_SHARDS = 16

HISTORY_CAP = 1000
EVENT_LOG_CAP = 1000
TRACE_CAP = 500
SEGMENT_SIZE = 100
SEGMENT_BYTES = 64 * 1024
MERGE_AFTER = 8
"""Small segments a log may trail before a flush merges them (:class:`CappedLog`)."""

Fetch = Callable[[Iterable[str]], Awaitable[dict[str, Any]]]


def new_id(kind: str) -> str:
    """A fresh, unique, time-ordered blob id such as ``j-18c1f2...-9f3a...``.

    The time is informative only: garbage collection is fenced by the lease, never
    decided by the times in ids (runners' clocks may disagree).
    """
    return f"{kind}-{time.time_ns():x}-{os.urandom(8).hex()}"


_HEX = frozenset("0123456789abcdef")


def is_blob_id(text: str) -> bool:
    """Whether ``text`` has the shape :func:`new_id` gives (``<kind>-<hex time>-<16 hex>``)."""
    parts = text.split("-")
    return (
        len(parts) == 3
        and 1 <= len(parts[0]) <= 3
        and parts[0].isalpha()
        and parts[0].islower()
        and parts[0].isascii()
        and 1 <= len(parts[1]) <= 20
        and len(parts[2]) == 16
        and _HEX.issuperset(parts[1] + parts[2])
    )


def blob_time(blob_id: str) -> float | None:
    """The creation time encoded in a blob id, or None if it has none."""
    parts = blob_id.split("-")
    if len(parts) < 3:
        return None
    try:
        return int(parts[1], 16) / 1e9
    except ValueError:
        return None


def shard_of(key: str, shards: int) -> int:
    """The stable shard of a key."""
    return zlib.crc32(key.encode()) % shards


def empty_root() -> dict[str, Any]:
    """A root with no data and no lease."""
    return {"format": FORMAT, "v": FORMAT_VERSION, "lease": None, "head": None, "consumed": []}


def decode_root(data: bytes, where: str) -> dict[str, Any]:
    """Parse a root record or raise CorruptStateError (the data is never overwritten)."""
    try:
        root = _json.loads(data)
    except ValueError as exc:
        raise CorruptStateError(
            f"{where} does not hold a ttflow-async store (it is not JSON: {exc}); it was left "
            "untouched: move it aside or point setup() at another location"
        ) from None
    if not isinstance(root, dict) or root.get("format") != FORMAT:
        raise CorruptStateError(
            f"{where} holds data that is not a ttflow-async store; it was left untouched: "
            "move it aside or point setup() at another location"
        )
    if root.get("v") not in READ_VERSIONS:
        raise CorruptStateError(
            f"{where} holds a ttflow-async store of format version {root.get('v')!r}, but this "
            f"engine reads versions {', '.join(map(str, READ_VERSIONS))}; upgrade "
            "ttflow-async to read it"
        )
    return root


def empty_head() -> dict[str, Any]:
    """A head with no state, no suspended runs and empty logs."""
    return {
        "fp": None,
        "states": [None] * STATE_SHARDS,
        "waits": [None] * WAIT_SHARDS,
        "timers": [None] * TIMER_SHARDS,
        "timer_min": [None] * TIMER_SHARDS,
        "next_run": {},
        "blocked": {},
        "history": [],
        "events": [],
        "traces": [],
        "last_gc": time.time(),
    }


def rec_due(rec: dict[str, Any]) -> float | None:
    """When a suspended run falls due by time (a sleep, a timeout, a retry), if ever."""
    wait = rec["wait"]
    kind = wait["kind"]
    if kind == "timer":
        return float(wait["due"])
    if kind == "event" and wait.get("deadline") is not None:
        return float(wait["deadline"])
    if kind in ("batch", "callback") and wait.get("due") is not None:
        return float(wait["due"])
    return None


def rec_event_names(rec: dict[str, Any]) -> list[str]:
    """The event names a suspended run is indexed under (a batch may wait for several)."""
    wait = rec["wait"]
    kind = wait["kind"]
    if kind == "event":
        return [str(wait["name"])]
    if kind == "batch":
        return [str(n) for n in dict.fromkeys(wait.get("events") or [])]
    if kind in ("callback", "child") and wait.get("event"):
        return [str(wait["event"])]
    return []


class ShardedMap:
    """A key -> value map split into shard blobs, loaded lazily.

    With ``split_at``, :meth:`grow` doubles the number of shards (up to ``max_shards``)
    while a changed shard holds more than ``split_at`` keys, so that a shard a pass reads
    and rewrites stays small however many keys the map holds. It reads every shard (one
    request wave, once per doubling: a map of 64 shards doubles at most four times) and
    rewrites them all, so that every blob always holds the keys of one shard only.
    """

    def __init__(
        self,
        kind: str,
        ids: list[str | None],
        *,
        split_at: int | None = None,
        max_shards: int = 0,
    ) -> None:
        self.kind = kind
        self.ids = list(ids)
        self.shards: dict[int, dict[str, Any]] = {}
        self.dirty: set[int] = set()
        self.split_at = split_at
        self.max_shards = max_shards
        self.retired: set[str] = set()  # the blobs of the shards before a doubling

    def index(self, key: str) -> int:
        """The shard holding ``key``."""
        return shard_of(key, len(self.ids))

    async def load(self, indexes: Iterable[int], fetch: Fetch) -> None:
        """Fetch the given shards (concurrently) unless already loaded."""
        wanted = {i for i in indexes if i not in self.shards}
        for i in [i for i in wanted if self.ids[i] is None]:
            self.shards[i] = {}
            wanted.discard(i)
        if wanted:
            blobs = await fetch([self.ids[i] or "" for i in wanted])
            for i in wanted:
                # A concurrent load may have won and been written to meanwhile: keep it.
                self.shards.setdefault(i, blobs[self.ids[i] or ""])

    def _crowded(self) -> bool:
        return (
            self.split_at is not None
            and len(self.ids) < self.max_shards
            and any(len(self.shards[i]) > self.split_at for i in self.dirty)
        )

    async def grow(self, fetch: Fetch) -> None:
        """Before a flush: double the shards while a changed one is crowded."""
        if not self._crowded():
            return
        await self.load_all(fetch)
        while self._crowded():
            n = 2 * len(self.ids)
            self.retired.update(i for i in self.ids if i is not None)
            self.ids = [None] * n  # every old blob is garbage once the new head is in
            halves: dict[int, dict[str, Any]] = {i: {} for i in range(n)}
            for shard in self.shards.values():
                for key, value in shard.items():
                    halves[shard_of(key, n)][key] = value
            self.shards = halves
            self.dirty = set(range(n))

    async def load_all(self, fetch: Fetch) -> None:
        """Fetch every shard."""
        await self.load(range(len(self.ids)), fetch)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (its shard must be loaded)."""
        return self.shards[self.index(key)].get(key, default)

    def contains(self, key: str) -> bool:
        """Whether ``key`` is present (its shard must be loaded)."""
        return key in self.shards[self.index(key)]

    def put(self, key: str, value: Any) -> None:
        """Set ``key`` (its shard must be loaded)."""
        i = self.index(key)
        self.shards[i][key] = value
        self.dirty.add(i)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present (its shard must be loaded)."""
        i = self.index(key)
        if self.shards[i].pop(key, None) is not None:
            self.dirty.add(i)

    def touch(self, key: str) -> None:
        """Mark the shard of ``key`` as changed (a value was mutated in place)."""
        self.dirty.add(self.index(key))

    def items(self) -> Iterable[tuple[str, Any]]:
        """Every loaded item."""
        for shard in self.shards.values():
            yield from shard.items()

    def flush(self, blobs: dict[str, bytes], garbage: set[str]) -> list[str | None]:
        """Write changed shards under fresh ids; returns the new id list."""
        garbage.update(self.retired)
        self.retired.clear()
        for i in sorted(self.dirty):
            old = self.ids[i]
            if old is not None:
                garbage.add(old)
            shard = self.shards[i]
            if shard:
                blob_id = new_id(self.kind)
                blobs[blob_id] = _json.dumps(shard)
                self.ids[i] = blob_id
            else:
                self.ids[i] = None
        self.dirty.clear()
        return list(self.ids)


class CappedLog:
    """An append-only list keeping about the last ``cap`` entries in bounded segments.

    A segment holds at most ``SEGMENT_SIZE`` entries and about ``SEGMENT_BYTES`` bytes.
    A flush writes the pending entries as new segments without reading any: on S3 a
    commit costs no read of the log it appends to. Once :data:`MERGE_AFTER` small
    segments (under half full) trail the log, the next flush reads them and rewrites
    them with its entries into full ones, so a log of ``cap`` entries stays a bounded
    number of segments and the reads it costs are one flush in :data:`MERGE_AFTER`
    (announced by :meth:`merge_ids`, which a pass reads ahead). Whole segments fall off
    the front once the rest still holds ``cap`` entries. A segment is recorded in the
    head as ``[blob id, entry count, byte size]``.
    """

    def __init__(self, kind: str, segments: list[list[Any]], cap: int) -> None:
        self.kind = kind
        self.segments: list[list[Any]] = [list(s) for s in segments]
        self.cap = cap
        self.pending: list[Any] = []

    def append(self, entry: Any) -> None:
        """Add an entry (written at the next flush)."""
        self.pending.append(entry)

    async def read(self, fetch: Fetch) -> list[Any]:
        """Every stored entry, oldest first, capped."""
        ids = [seg[0] for seg in self.segments]
        blobs = await fetch(ids) if ids else {}
        entries = [e for blob_id in ids for e in blobs[blob_id]]
        entries.extend(self.pending)
        return entries[-self.cap :]

    def _small_tail(self) -> int:
        """How many small segments trail the log."""
        n = 0
        for seg in reversed(self.segments):
            size = seg[2] if len(seg) > 2 else 0
            if seg[1] * 2 > SEGMENT_SIZE or size * 2 > SEGMENT_BYTES:
                break
            n += 1
        return n

    def merge_ids(self) -> list[str]:
        """The segments the next flush reads and rewrites (none until a merge is due)."""
        n = self._small_tail()
        if n < MERGE_AFTER:
            return []
        return [str(seg[0]) for seg in self.segments[-n:]]

    async def flush(self, fetch: Fetch, blobs: dict[str, bytes], garbage: set[str]) -> None:
        """Write pending entries as new segments (merging a small tail), drop old ones."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        merged = self.merge_ids()
        if merged:
            found = await fetch(merged)
            del self.segments[-len(merged) :]
            garbage.update(merged)
            pending = [e for blob_id in merged for e in found[blob_id]] + pending
        chunk: list[Any] = []
        size = 0
        for entry in pending:
            encoded = len(_json.dumps(entry))
            if chunk and (len(chunk) >= SEGMENT_SIZE or size + encoded > SEGMENT_BYTES):
                self._close(chunk, size, blobs)
                chunk, size = [], 0
            chunk.append(entry)
            size += encoded
        self._close(chunk, size, blobs)
        total = sum(seg[1] for seg in self.segments)
        while self.segments and total - self.segments[0][1] >= self.cap:
            total -= self.segments[0][1]
            garbage.add(self.segments.pop(0)[0])

    def _close(self, chunk: list[Any], size: int, blobs: dict[str, bytes]) -> None:
        blob_id = new_id(self.kind)
        blobs[blob_id] = _json.dumps(chunk)
        self.segments.append([blob_id, len(chunk), size])

    def blob_ids(self) -> list[str]:
        """Every segment blob id."""
        return [seg[0] for seg in self.segments]
