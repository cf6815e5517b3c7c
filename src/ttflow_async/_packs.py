"""Journal packs (format 3): the journals of runs suspended together, in shared blobs.

A commit that suspends at least :data:`PACK_MIN` runs stores their journals in packs
(blob kind ``jp``) of at most :data:`PACK_MAX` journals and about :data:`PACK_BYTES`
bytes. A pack is a JSON array of journals; each run record keeps the byte range of its
own element (``"js": [start, end]``), so one read brings the journals of every run
suspended together (one request on S3 for a fan-out resumed at once, where one blob per
journal made it one request per run) and each journal is decoded on its own.

The head's ``packs`` map counts the live journals of each pack. A journal is released
when its run resumes, ends or is cancelled; the pack becomes garbage with its last
journal, so every commit still deletes what the new head no longer references. A run
record without ``js`` names a journal blob of its own: what formats 1 and 2 wrote, and
what a commit that suspends a single run still writes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from . import _format, _json
from ._errors import CorruptStateError
from ._layout import new_id

PACK_MIN = 2
"""A commit suspending fewer runs than this writes one journal blob per run."""

PACK_MAX = 256
"""Journals in one pack at most."""

PACK_BYTES = 1 << 20
"""A pack is closed once it holds this many bytes (a larger journal has one of its own)."""

Fetch = Callable[[Iterable[str]], Awaitable[dict[str, Any]]]


def is_pack(blob_id: str) -> bool:
    """Whether a blob id names a journal pack (kept undecoded by the view)."""
    return blob_id.startswith("jp-")


def stage(
    journals: list[tuple[dict[str, Any], bytes]],
    new_blobs: dict[str, bytes],
    packs: dict[str, int],
) -> None:
    """Stage the encoded journals of one commit; sets each run record's ``j`` (and ``js``).

    ``packs`` is the head's live-count map, updated in place with the new packs.
    """
    if len(journals) < PACK_MIN:
        for rec, data in journals:
            rec["j"] = _plain(data, new_blobs)
        return
    group: list[tuple[dict[str, Any], bytes]] = []
    size = 0
    for rec, data in journals:
        if len(data) >= PACK_BYTES:
            rec["j"] = _plain(data, new_blobs)
            continue
        if group and (len(group) >= PACK_MAX or size + len(data) > PACK_BYTES):
            _write_pack(group, new_blobs, packs)
            group, size = [], 0
        group.append((rec, data))
        size += len(data) + 1
    if len(group) >= PACK_MIN:
        _write_pack(group, new_blobs, packs)
    elif group:
        group[0][0]["j"] = _plain(group[0][1], new_blobs)


def _plain(data: bytes, new_blobs: dict[str, bytes]) -> str:
    blob_id = new_id("j")
    new_blobs[blob_id] = data
    return blob_id


def _write_pack(
    group: list[tuple[dict[str, Any], bytes]],
    new_blobs: dict[str, bytes],
    packs: dict[str, int],
) -> None:
    pack_id = new_id("jp")
    parts = [b"["]
    offset = 1
    for i, (rec, data) in enumerate(group):
        if i:
            parts.append(b",")
            offset += 1
        parts.append(data)
        rec["j"] = pack_id
        rec["js"] = [offset, offset + len(data)]
        offset += len(data)
    parts.append(b"]")
    new_blobs[pack_id] = b"".join(parts)
    packs[pack_id] = len(group)


async def read(fetch: Fetch, recs: list[dict[str, Any]], where: str) -> list[Any]:
    """The decoded journal of each run record (None for a record without one), in order."""
    blobs = await fetch(rec["j"] for rec in recs if rec["j"])
    found: list[Any] = []
    for rec in recs:
        blob_id = rec["j"]
        if not blob_id:
            found.append(None)
            continue
        value = blobs[blob_id]
        span = rec.get("js")
        if span is not None:
            value = _element(blob_id, value, span, where)
        found.append(_format.decode_journal(blob_id, value, where))
    return found


def _element(pack_id: str, data: Any, span: Any, where: str) -> Any:
    if (
        isinstance(data, bytes)
        and isinstance(span, list)
        and len(span) == 2
        and all(type(i) is int for i in span)
        and 0 < span[0] < span[1] < len(data)
    ):
        try:
            return _json.loads(data[span[0] : span[1]])
        except ValueError:
            pass
    raise CorruptStateError(
        f"journal pack {pack_id} of {where} has no journal at bytes {span!r:.40}; the store "
        "was left untouched: restore the blob from a backup, or cancel the run that uses it"
    )


def release(head: dict[str, Any], garbage: set[str], blob_id: str | None, packed: bool) -> None:
    """A run's journal is no longer needed: its blob, or its pack's last journal, is garbage."""
    if not blob_id:
        return
    if not packed:
        garbage.add(blob_id)
        return
    packs = dict(head.get("packs") or {})
    live = packs.get(blob_id)
    if isinstance(live, int) and live > 1:
        packs[blob_id] = live - 1
    else:  # the last one (a count missing means a damaged map: collection decides)
        if live is not None:
            garbage.add(blob_id)
        packs.pop(blob_id, None)
    head["packs"] = packs
