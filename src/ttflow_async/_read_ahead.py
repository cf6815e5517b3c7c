"""What a pass reads beside its lease-taking write, before it holds the lease.

Taking the lease is one root write: on the local store a temporary file and a rename
under ``flock`` (~1 ms), on S3 and DynamoDB one request. Everything a pass reads first
is an immutable blob named by the root it takes the lease over, so it can be read
while that write is in flight:

1. the head the root names, the inbox listing (unless the idle check listed it with
   this root) and the journals the root's summary names (:func:`~._idle.prefetch_hint`);
2. once the head and the inbox are known: the wait shards of the names the pass will
   deliver (the inbox items, the pass's trigger, what an earlier pass left pending),
   the timer shards that are due, and the key shards of keyed items;
3. then the journals of the runs found waiting or due there (at most
   :data:`JOURNALS_MAX`), and the other shards those runs are indexed in.

A blob never changes under its id, so whatever is read ahead is the blob the pass
would read; if the lease is taken over this very root, the head is the current one.
Nothing read here changes the view: it fills the view's blob cache and loads shards
unchanged (a pass that then claims a run marks the shard changed, as always). Reads
that fail are left for the pass to make again once it holds the lease, so this never
raises. On the local store the whole chain fits inside the lease write; on S3 and
DynamoDB it costs the waves the pass would have spent after it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from . import _json
from ._concurrency import gather
from ._idle import prefetch_hint
from ._index import Rec
from ._triggers import WAKE_PREFIXES
from ._view import StoreView

JOURNALS_MAX = 64
"""Journals of woken or due runs read ahead at most (the pass reads any others)."""

ReadAhead = Callable[[StoreView], Coroutine[Any, Any, None]]


def read_ahead_for(trigger: str | None, now: Callable[[], float]) -> ReadAhead:
    """The read-ahead of a pass firing ``trigger`` (or none) on the clock ``now``."""

    async def read_ahead(view: StoreView) -> None:
        await gather(lambda: _first(view), lambda: _summary_journals(view))
        with contextlib.suppress(Exception):
            await _ready_runs(view, trigger, now())

    return read_ahead


async def _first(view: StoreView) -> None:
    async def head() -> None:
        if not view.head_loaded:
            with contextlib.suppress(Exception):
                await view.load_head()

    async def inbox() -> None:
        if view.inbox is None:
            with contextlib.suppress(Exception):
                view.inbox = await view.store.inbox_list()

    await gather(head, inbox)


async def _summary_journals(view: StoreView) -> None:
    ids = prefetch_hint(view.root)
    if ids:
        with contextlib.suppress(Exception):
            await view.fetch(ids)


def _delivered(view: StoreView, trigger: str | None) -> tuple[list[str], list[str]]:
    """The names the pass delivers that a run may wait for, and the keys it checks."""
    names = [] if trigger is None else [trigger]
    keys: list[str] = []
    pending = view.head.get("pending") or []
    names += [
        d[1] for d in pending if isinstance(d, list) and len(d) == 4 and isinstance(d[1], str)
    ]
    consumed = view.previously_consumed()
    for item_id, data in view.inbox or []:
        if item_id in consumed:
            continue
        with contextlib.suppress(ValueError):
            item = _json.loads(data)
            if isinstance(item, dict) and isinstance(item.get("n"), str):
                names.append(item["n"])
                if isinstance(item.get("key"), str):
                    keys.append(item["key"])
    # As the pass claims waiters: no run waits for an engine event but a wake event.
    wanted = [n for n in dict.fromkeys(names) if n[:1] != "_" or n.startswith(WAKE_PREFIXES)]
    return wanted, keys


async def _ready_runs(view: StoreView, trigger: str | None, now: float) -> None:
    """Read the shards and journals of the runs this pass wakes (step 2 and 3)."""
    if not view.head_loaded:
        return
    index = view.index
    names, keys = _delivered(view, trigger)
    due_shards = index.due_shards(now)
    await gather(
        lambda: index.waits.load(index.wait_shards(names), view.fetch),
        lambda: index.timers.load(due_shards, view.fetch),
        lambda: index.keys.load(index.key_shards(keys), view.fetch),
    )
    runs: dict[str, Rec] = {}
    for name in names:
        runs.update(index.waits.get(name) or {})
    runs.update(index.due(now))
    if not runs:
        return
    chosen = list(runs.items())[:JOURNALS_MAX]
    journals = list(dict.fromkeys(str(rec["j"]) for _, rec in chosen))
    waits, timers = index.shards_of(chosen)  # where claiming them unlinks them too
    await gather(
        lambda: view.fetch(journals),
        lambda: index.waits.load(waits, view.fetch),
        lambda: index.timers.load(timers, view.fetch),
    )
