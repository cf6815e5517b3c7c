"""Inspection on the client: runs, history, logs, state and the lease, read without a lock."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import _format, _json, _packs
from ._client_core import ClientCore
from ._context import check_state_name
from ._lease import lease_is_live
from ._view import StoreView

if TYPE_CHECKING:
    from ._records import EventLogEntry, LockInfo, PausedRun, RunHistoryEntry, RunInfo, Trace

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ENGINE_WAIT_KEYS = {"events", "next_run", "event", "deadline"}


def _public_waiting(wait: dict[str, Any]) -> dict[str, Any]:
    """What ``paused_runs()`` shows of a stored wait (times as datetimes, engine keys out)."""
    kind = wait["kind"]
    if kind == "event":
        public: dict[str, Any] = {"kind": "event", "name": wait["name"]}
        if wait.get("deadline") is not None:
            public["timeout_at"] = _ceil_datetime(wait["deadline"])
        return public
    if kind == "blocked":
        return {"kind": "blocked", "error_message": wait.get("error_message")}
    public = {"kind": kind}
    for key, value in wait.items():
        if key in _ENGINE_WAIT_KEYS or key == "kind":
            continue
        if kind == "batch" and key in ("due", "concurrent"):
            continue  # the index's earliest due time, not part of the public shape
        if key == "due":
            public["due"] = None if value is None else _ceil_datetime(value)
        elif key == "waiting" and isinstance(value, list):
            public["waiting"] = [
                {**item, "waiting_for": _public_waiting(item["waiting_for"])}
                if isinstance(item, dict) and isinstance(item.get("waiting_for"), dict)
                else item
                for item in value
            ]
        else:
            public[key] = value
    return public


def _ceil_datetime(epoch: float) -> datetime:
    """A UTC datetime at or after ``epoch``, to the microsecond."""
    micros = math.ceil(epoch * 1_000_000)
    moment = _EPOCH + timedelta(microseconds=micros)
    while moment.timestamp() < epoch:
        moment += timedelta(microseconds=1)
    return moment


class InspectionMixin(ClientCore):
    """Read-only views of the store; none takes the lease."""

    async def paused_runs(self) -> list[PausedRun]:
        """Every suspended run and what it waits for, oldest first."""
        from ._records import PausedRun, to_datetime

        async def read(view: StoreView) -> list[PausedRun]:
            runs = await view.all_suspended()
            return sorted(
                (
                    PausedRun(
                        workflow_name=rec["w"],
                        run_id=run_id,
                        since=to_datetime(rec["since"]),
                        waiting_for=_public_waiting(rec["wait"]),
                        parent_run_id=rec.get("p"),
                    )
                    for run_id, rec in runs.items()
                ),
                key=lambda r: (r.since, r.run_id),
            )

        return await self._inspect(read)

    async def run_history(self) -> list[RunHistoryEntry]:
        """Finished runs (the most recent 1000), oldest first."""

        async def read(view: StoreView) -> list[RunHistoryEntry]:
            return [_format.to_history_record(e) for e in await view.history.read(view.fetch)]

        return await self._inspect(read)

    async def event_log(self) -> list[EventLogEntry]:
        """Delivered events (the most recent 1000), oldest first."""

        async def read(view: StoreView) -> list[EventLogEntry]:
            return [_format.to_event_record(e) for e in await view.events.read(view.fetch)]

        return await self._inspect(read)

    async def traces(self) -> list[Trace]:
        """Execution traces of the most recent 500 ``run()`` calls, oldest first."""

        async def read(view: StoreView) -> list[Trace]:
            return [_format.to_trace_record(t) for t in await view.traces.read(view.fetch)]

        return await self._inspect(read)

    async def run_logs(self, run_id: str) -> list[str]:
        """The log lines of a suspended or finished run; ``[]`` for an unknown id."""

        async def read(view: StoreView) -> list[str]:
            for entry in reversed(await view.history.read(view.fetch)):
                if entry["r"] == run_id:
                    return list(entry["l"])
            rec = (await view.all_suspended()).get(run_id)
            if rec is None:
                return []
            (journal,) = await _packs.read(view.fetch, [rec], view.store.description)
            return list(journal["logs"]) if journal is not None else []

        return await self._inspect(read)

    async def get_run(self, run_id: str) -> RunInfo | None:
        """A suspended run, or one still in the run history; ``None`` otherwise."""
        from ._records import RunInfo, to_datetime

        async def read(view: StoreView) -> RunInfo | None:
            rec = (await view.all_suspended()).get(run_id)
            if rec is not None:
                wait = rec["wait"]
                blocked = wait["kind"] == "blocked"
                return RunInfo(
                    run_id=run_id,
                    workflow_name=rec["w"],
                    status="blocked" if blocked else "paused",
                    error_message=wait.get("error_message") if blocked else None,
                    started_at=to_datetime(_format.rec_started(rec)),
                    updated_at=to_datetime(rec["since"]),
                    waiting_for=_public_waiting(wait),
                    parent_run_id=rec.get("p"),
                )
            for entry in reversed(await view.history.read(view.fetch)):
                if entry["r"] == run_id:
                    started = entry.get("st")
                    return RunInfo(
                        run_id=run_id,
                        workflow_name=entry["w"],
                        status=entry["s"],
                        result=entry.get("res"),
                        error_message=entry.get("em"),
                        error_traceback=entry.get("tb"),
                        started_at=None if started is None else to_datetime(started),
                        updated_at=to_datetime(entry["t"]),
                        waiting_for=None,
                        parent_run_id=entry.get("p"),
                    )
            return None

        return await self._inspect(read)

    async def get_state(self, name: str, default: Any = None) -> Any:
        """Read a state value outside a run."""
        check_state_name(name)

        async def read(view: StoreView) -> Any:
            found, value = await view.read_state(name)
            return _json.copy_json(value) if found else default

        return await self._inspect(read)

    async def is_locked(self) -> bool:
        """Whether a live lease is held on the store."""
        view = await self._read(StoreView.read)
        return lease_is_live(view.root, self.clock())

    async def lock_info(self) -> LockInfo | None:
        """Who holds the store's lease and until when, or ``None`` when it is free."""
        view = await self._read(StoreView.read)
        if not lease_is_live(view.root, self.clock()):
            return None
        lease = view.root["lease"]
        from ._records import LockInfo, to_datetime

        return LockInfo(owner=str(lease["owner"]), expires_at=to_datetime(lease["expires"]))

    async def next_wakeup(self) -> datetime | None:
        """The earliest time a sleeping run or a wait timeout falls due, or None.

        Rounded up to the microsecond, so a scheduler (or a test clock) set to it is at
        or after the due time, never just short of it.
        """

        async def read(view: StoreView) -> datetime | None:
            due = view.next_due()
            return None if due is None else _ceil_datetime(due)

        return await self._inspect(read)
