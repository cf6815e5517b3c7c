"""The pass with nothing to do, decided from reads alone (SPEC §9, issue 14).

A cron tick or a schedule usually finds nothing to do. Taking the lease to find that
out costs two root writes (on S3 and DynamoDB two request waves, on the local store two
renames), so :func:`nothing_to_do` first looks without the lease: the root and the
inbox listing are read concurrently, then the head the root names. The pass is idle
when all of these hold:

- no live lease (a held lock is reported as such by the normal path);
- the definitions are those the store knows (no ``workflows_changed`` to deliver);
- no workflow starts at every pass and no suspended run waits for ``_every``;
- nothing was left pending by the wave cap, no run is paused until the next pass and
  no timer or wait timeout is due;
- the inbox is empty (not even items a commit consumed and left to delete), but for
  the items this client's own last commit consumed while the root is still the one it
  wrote: its cleanup deletes them, and the head it wrote names them consumed, so a pass
  would only name them again (a commit for nothing after every draining pass).

An idle pass then writes nothing and records no trace. Skipping the lease is safe:
nothing is committed, so the outcome is that of a pass made at the moment of the reads;
an event or trigger stored after them is delivered by the next pass, as it would be
after a locked one. If the answer is "not idle", the view read here is handed to the
normal path, which takes the lease over it without reading the root, the head or the
inbox again (if the lease is taken over this very root, no commit happened since, so
every item listed is still there and no other was consumed; later items are found by
the pass's drain of the inbox).

Every commit also writes a summary of its head into the root (:func:`root_hint`,
``"idle": {"fp", "due"}``: the definitions fingerprint and the earliest time anything
falls due, 0 for at once, null for never), unless a suspended run may wait for
``_every``. When runs are paused until the next pass (``pause_once``), the summary
also names their journal blobs (``"pf"``, at most :data:`PREFETCH_MAX`), which the pass
reads beside its lease-taking write, one request wave before it would find them in the
head. With it the pass is decided from the root and the inbox listing alone: one
request wave when idle, and when not, the head is read beside the lease-taking write
instead of before it. A root without the summary (older formats, or an ``_every``
waiter) is decided from the head as above; a client keeps the last head it found idle
(:class:`IdleCheck`): blobs never change under their id, so a warm client's idle pass
is then the root and the inbox listing alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._concurrency import gather_reads
from ._errors import BlobNotFound
from ._index import RunIndex
from ._layout import is_blob_id, shard_of
from ._lease import lease_is_live
from ._triggers import EVERY_EVENT
from ._view import StoreView

if TYPE_CHECKING:
    from ._definitions import Registry
    from ._stores import Store


PREFETCH_MAX = 8
"""Journal blobs (packs, mostly) a root names for the next pass to read ahead at most."""


class IdleCheck:
    """Decides idle passes of one client; remembers the last head found idle."""

    def __init__(self) -> None:
        self._head_id: str | None = None
        self._head: dict[str, Any] | None = None
        #: The root version this client's last commit wrote, and the inbox items it
        #: consumed: deleted by that client's cleanup, they are no work for a pass.
        self._committed: tuple[str | None, frozenset[str]] = (None, frozenset())

    def committed(self, version: str | None, consumed: list[str]) -> None:
        """Remember what this client's commit wrote (its root version) and consumed."""
        self._committed = (version, frozenset(consumed))

    async def nothing_to_do(
        self, store: Store, registry: Registry, now: float
    ) -> tuple[bool, StoreView | None]:
        """``(True, None)`` if a pass would do nothing, else ``(False, a view to reuse)``.

        The view returned holds the root as read (its head loaded or not); None when a
        commit replaced what was being read, so the normal path reads afresh.
        """
        found: list[Any] = await gather_reads(lambda: StoreView.read(store), store.inbox_list)
        view: StoreView = found[0]
        view.inbox = found[1]
        version, consumed = self._committed
        left = consumed if view.version == version and version is not None else frozenset()
        if any(i not in left for i, _ in view.inbox) or lease_is_live(view.root, now):
            return False, view
        hint = _read_hint(view.root)
        if hint is not None:
            fingerprint, due = hint
            quiet = (
                fingerprint == registry.fingerprint()
                and (due is None or due > now)
                and not registry.started_by_event(EVERY_EVENT)
            )
            return (True, None) if quiet else (False, view)
        head_id: str | None = view.root.get("head")
        try:
            if head_id is not None and head_id == self._head_id and self._head is not None:
                head = self._head  # never handed to a view: nothing mutates it
            else:
                await view.load_head()
                head = view.head
            index = RunIndex(head)
            if not _quiet(head, index, registry, now):
                return False, view
            (shard,) = index.wait_shards([EVERY_EVENT])
            if index.waits.ids[shard] is not None:  # a run may wait for ``_every``
                if not view.head_loaded:
                    await view.load_head()
                if await view.has_waiters(EVERY_EVENT):
                    return False, view
        except BlobNotFound:  # a commit replaced the head since the root was read
            return False, None
        if head is not self._head:
            self._head_id, self._head = head_id, head
        return True, None


def _quiet(head: dict[str, Any], index: RunIndex, registry: Registry, now: float) -> bool:
    """Whether a head (and its index) has nothing for a pass at ``now`` (``_every``
    waiters aside)."""
    return not (
        head["fp"] != registry.fingerprint()
        or head.get("pending")
        or index.next_run
        or index.due_shards(now)
        or registry.started_by_event(EVERY_EVENT)
    )


def root_hint(head: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of ``head`` a commit writes into the root, or None when there is none.

    None when a run may wait for ``_every`` (its wait shard is not empty): whether a
    pass is idle then depends on a shard the root cannot summarise.
    """
    if head["waits"][shard_of(EVERY_EVENT, len(head["waits"]))] is not None:
        return None
    if head.get("pending") or head.get("next_run"):
        hint: dict[str, Any] = {"fp": head["fp"], "due": 0}
        journals = list(dict.fromkeys(rec["j"] for rec in (head.get("next_run") or {}).values()))
        if journals:
            hint["pf"] = journals[:PREFETCH_MAX]
        return hint
    times = [t for t in head["timer_min"] if t is not None]
    return {"fp": head["fp"], "due": min(times) if times else None}


def prefetch_hint(root: dict[str, Any]) -> list[str]:
    """The journal blobs the root says the next pass resumes (its ``"pf"``), if valid."""
    hint = root.get("idle")
    ids = hint.get("pf") if isinstance(hint, dict) else None
    if not isinstance(ids, list) or len(ids) > PREFETCH_MAX:
        return []
    return [i for i in ids if isinstance(i, str) and is_blob_id(i)]


def _read_hint(root: dict[str, Any]) -> tuple[str, float | None] | None:
    """The root's summary of its head, if it has a valid one (else None: read the head)."""
    hint = root.get("idle")
    if root.get("head") is None or not isinstance(hint, dict):
        return None
    fingerprint, due = hint.get("fp"), hint.get("due")
    if not isinstance(fingerprint, str):
        return None
    if due is not None and (type(due) not in (int, float)):
        return None
    return fingerprint, due
