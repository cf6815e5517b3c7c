"""The stored records: one place that knows every key the engine writes and reads.

The layout module (:mod:`._layout`) owns the structure (root, head, shards, capped
logs); this module owns the small records stored inside it. Keys are short because
they are repeated in every shard and log segment; each record is a ``TypedDict``
with a constructor (``*_entry``/``*_rec``) and, where users see it, a decoder into
the public pydantic record.

========================  ===================================================
record                    keys
========================  ===================================================
run record (index)        w workflow, since, wait, j journal blob or pack,
                          js [start, end] in the pack, st started, p parent run id
journal blob              args, entries, logs, wake
history entry             w, r run id, t time, s status, l logs, res result,
                          em error message, tb traceback, st started, p parent
event log entry           n name, a args, t time
trace                     id, t time, tr trigger, x executions
trace execution           w, r, s, tb triggered by, sc state changes [n, old, new],
                          op operations reached
inbox item                k "trigger"|"event", n name, a args, t time, key
========================  ===================================================
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from . import _json
from ._errors import CorruptStateError

if TYPE_CHECKING:
    from typing import Literal, NotRequired, TypedDict

    from ._records import EventLogEntry, RunHistoryEntry, StateChange, Trace

    # The stored records' shapes, for the type checker only: building a TypedDict at
    # import compiles each of its annotations (~1 ms for these, in every fresh process).

    class RunRec(TypedDict):
        """A suspended run in the index: what it waits for and where its journal is."""

        w: str
        since: float
        wait: dict[str, Any]
        j: str | None
        js: NotRequired[list[int]]
        st: NotRequired[float]
        p: NotRequired[str | None]

    class JournalBlob(TypedDict):
        """A suspended run's replay state."""

        args: Any
        entries: list[Any]
        logs: list[str]
        wake: dict[str, Any] | None

    class HistoryEntry(TypedDict):
        """A finished run in the run history."""

        w: str
        r: str
        t: float
        s: str
        l: list[str]  # noqa: E741 - the stored key
        res: NotRequired[Any]
        em: NotRequired[str | None]
        tb: NotRequired[str | None]
        st: NotRequired[float]
        p: NotRequired[str | None]

    class EventEntry(TypedDict):
        """A delivered event in the event log."""

        n: str
        a: Any
        t: float

    class TraceExecution_(TypedDict):
        """One execution inside a stored trace."""

        w: str
        r: str
        s: str
        tb: str
        sc: list[list[Any]]
        op: NotRequired[list[str]]
        p: NotRequired[str]
        sa: NotRequired[list[list[Any]]]

    class TraceEntry(TypedDict):
        """The stored trace of one pass."""

        id: str
        t: float
        tr: str | None
        x: list[TraceExecution_]

    class InboxItem(TypedDict):
        """A trigger or event stored without the lease."""

        k: Literal["trigger", "event"]
        n: str
        a: Any
        t: float
        key: NotRequired[str | None]


TRACEBACK_BYTES = 16_384
"""A kept traceback is cut to this many UTF-8 bytes, keeping the innermost frames."""


# -- run records and journals ------------------------------------------------------------


def run_rec(
    workflow: str,
    *,
    since: float,
    wait: dict[str, Any],
    started: float,
    parent: str | None = None,
) -> RunRec:
    """A run record for the index (its journal id is set at commit)."""
    rec: RunRec = {"w": workflow, "since": since, "wait": wait, "j": None, "st": started}
    if parent is not None:
        rec["p"] = parent
    return rec


def rec_started(rec: Mapping[str, Any]) -> float:
    """When the run first started (older stores kept only the time of suspension)."""
    return float(rec.get("st", rec["since"]))


def journal_blob(
    args: Any, entries: list[Any], logs: list[str], wake: dict[str, Any] | None
) -> JournalBlob:
    """A journal blob."""
    return {"args": args, "entries": entries, "logs": logs, "wake": wake}


def decode_journal(blob_id: str, value: Any, where: str) -> JournalBlob:
    """Check a decoded journal blob, or raise CorruptStateError naming it."""
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("entries"), list)
        or not isinstance(value.get("logs"), list)
        or "args" not in value
    ):
        raise CorruptStateError(
            f"journal blob {blob_id} of {where} is not a run journal; the store was left "
            "untouched: restore the blob from a backup, or cancel the run that uses it"
        )
    return cast("JournalBlob", value)


# -- history, events, traces -------------------------------------------------------------


def history_entry(
    workflow: str,
    run_id: str,
    *,
    now: float,
    status: str,
    logs: list[str],
    result: Any = None,
    error_message: str | None = None,
    error_traceback: str | None = None,
    started: float | None = None,
    parent: str | None = None,
) -> HistoryEntry:
    """A history entry for a finished (or cancelled) run."""
    entry: HistoryEntry = {"w": workflow, "r": run_id, "t": now, "s": status, "l": logs}
    if result is not None:
        entry["res"] = result
    if error_message is not None:
        entry["em"] = error_message
    if error_traceback is not None:
        entry["tb"] = error_traceback
    if started is not None:
        entry["st"] = started
    if parent is not None:
        entry["p"] = parent
    return entry


def to_history_record(entry: HistoryEntry) -> RunHistoryEntry:
    """The public record of a history entry."""
    from ._records import RunHistoryEntry, to_datetime

    return RunHistoryEntry(
        workflow_name=entry["w"],
        run_id=entry["r"],
        timestamp=to_datetime(entry["t"]),
        status=cast(Any, entry["s"]),
        result=entry.get("res"),
        error_message=entry.get("em"),
        error_traceback=entry.get("tb"),
        parent_run_id=entry.get("p"),
    )


def event_entry(name: str, args: Any, now: float) -> EventEntry:
    """An event log entry."""
    return {"n": name, "a": args, "t": now}


def to_event_record(entry: EventEntry) -> EventLogEntry:
    """The public record of an event log entry."""
    from ._records import EventLogEntry, to_datetime

    return EventLogEntry(event_name=entry["n"], args=entry["a"], timestamp=to_datetime(entry["t"]))


def trace_execution(
    workflow: str,
    run_id: str,
    status: str,
    triggered_by: str,
    changes: list[StateChange],
    operations: list[str] | None = None,
    parent: str | None = None,
    appends: list[list[Any]] | None = None,
) -> TraceExecution_:
    """One execution of a trace."""
    execution: TraceExecution_ = {
        "w": workflow,
        "r": run_id,
        "s": status,
        "tb": triggered_by,
        "sc": [[c.name, c.old, c.new] for c in changes],
    }
    if operations:
        execution["op"] = operations
    if parent is not None:
        execution["p"] = parent
    if appends:
        # [name, items, max_length]: what was appended, never the whole list (old
        # readers ignore the key).
        execution["sa"] = appends
    return execution


def trace_entry(
    trace_id: str, started: float, trigger: str | None, executions: list[TraceExecution_]
) -> TraceEntry:
    """The trace of one pass."""
    return {"id": trace_id, "t": started, "tr": trigger, "x": executions}


def to_trace_record(entry: TraceEntry) -> Trace:
    """The public record of a stored trace."""
    from ._records import StateAppend, StateChange, Trace, TraceExecution, to_datetime

    return Trace(
        trace_id=entry["id"],
        timestamp=to_datetime(entry["t"]),
        trigger_name=entry["tr"],
        executions=[
            TraceExecution(
                workflow_name=x["w"],
                run_id=x["r"],
                status=cast(Any, x["s"]),
                triggered_by=x["tb"],
                state_changes=[StateChange(name=n, old=o, new=v) for n, o, v in x["sc"]],
                state_appends=[
                    StateAppend(name=n, values=v, max_length=m) for n, v, m in x.get("sa") or []
                ],
                operations=list(x.get("op") or []),
                parent_run_id=x.get("p"),
            )
            for x in entry["x"]
        ],
    )


# -- inbox items -------------------------------------------------------------------------

_sequence = itertools.count()
_process_tag = os.urandom(4).hex()


def new_inbox_id() -> str:
    """A unique inbox id that sorts in arrival order (wall time, then a process counter).

    Ordering uses the real time of the machine, not the engine's clock: an injected test
    clock that stands still must not shuffle the items of one sender.
    """
    return f"{time.time_ns():020d}-{next(_sequence):012d}-{_process_tag}{os.urandom(6).hex()}"


def inbox_item(
    kind: Literal["trigger", "event"], name: str, args: Any, *, now: float, key: str | None
) -> tuple[str, bytes]:
    """An inbox id (sorted by arrival) and the item's bytes."""
    item: InboxItem = {"k": kind, "n": name, "a": args, "t": now}
    if key is not None:
        item["key"] = key
    return new_inbox_id(), _json.dumps(item)


def decode_inbox_item(item_id: str, data: bytes, where: str) -> InboxItem:
    """Decode an inbox item, or raise CorruptStateError naming it (it is not deleted)."""
    problem = None
    item: Any = None
    try:
        item = _json.loads(data)
    except ValueError as exc:
        problem = f"it is not valid JSON ({exc})"
    if problem is None:
        if not isinstance(item, dict) or item.get("k") not in ("trigger", "event"):
            problem = "it is not a trigger or event record"
        elif not isinstance(item.get("n"), str) or not item["n"]:
            problem = f"its name {item.get('n')!r} is not a non-empty string"
        elif item.get("key") is not None and not isinstance(item["key"], str):
            problem = f"its key {item.get('key')!r} is not a string"
        else:
            try:
                _json.normalize(item.get("a"), "its args")
            except CorruptStateError:
                raise
            except Exception as exc:
                problem = str(exc)
    if problem is not None:
        raise CorruptStateError(
            f"inbox item {item_id} of {where} cannot be read: {problem}. It was left in "
            "place; delete it from the inbox (or fix it) and run again"
        )
    return cast("InboxItem", item)


def cut_traceback(text: str) -> str:
    """Keep at most :data:`TRACEBACK_BYTES` UTF-8 bytes of a traceback, from its end."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= TRACEBACK_BYTES:
        return text
    return encoded[-TRACEBACK_BYTES:].decode("utf-8", "ignore")
