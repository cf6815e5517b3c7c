"""What a pass offers the runs it executes: state, events, children, callbacks, markers.

:class:`PassBase` holds the state of one pass; :class:`PassHost` adds the
:class:`~._context.RunHost` side (what a running workflow calls) and the callbacks map.
The execution of runs (:mod:`._runner_exec`), the waves (:mod:`._runner_waves`) and the
pass driver with its commit (:mod:`._runner`) build on it, in that order.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from . import _json
from ._composition import callback_due, child_key
from ._context import RunState
from ._definitions import Registry
from ._errors import BlobNotFound, InvalidStateError, WorkflowDefinitionError
from ._ids import random_uuid
from ._lease import Lease
from ._list_state import ListAppends
from ._pass_options import MARKER_PREFIX, PassOptions
from ._retry import qualified_name
from ._view import Rec, StoreView

if TYPE_CHECKING:
    from ._records import RunStatus

logger = logging.getLogger("ttflow_async")


class PassAborted(BaseException):
    """Unwinds a run when the engine or the store failed under it; the pass aborts.

    A ``BaseException``, so a workflow's ``except Exception`` cannot turn an engine
    failure into a committed, failed run.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class Delivery:
    """A trigger or event to deliver in a wave.

    This module's records are plain classes: building a dataclass costs ~0.5 ms, which
    the first pass of every fresh process would pay (issue 14).
    """

    __slots__ = ("args", "inbox_id", "key", "kind", "name")

    def __init__(
        self,
        kind: Literal["trigger", "event", "child"],
        name: str,
        args: Any,
        inbox_id: str | None = None,
        key: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.args = args
        self.inbox_id = inbox_id
        self.key = key

    def __repr__(self) -> str:
        return f"Delivery(kind={self.kind!r}, name={self.name!r}, inbox_id={self.inbox_id!r})"


class RunOutcome:
    """What became of one run in this pass (recorded at the commit)."""

    def __init__(
        self, run: RunState, triggered_by: str, started: float, parent: str | None = None
    ) -> None:
        self.run = run
        self.triggered_by = triggered_by
        self.started = started
        self.parent = parent
        self.operations: list[str] = []
        self.status: RunStatus = "paused"
        self.error_message: str | None = None
        self.error_traceback: str | None = None
        self.result: Any = None
        self.rec: Rec | None = None


def marker_blob_id(marker: str) -> str:
    """The blob id of an at-most-once attempt marker (never collected as garbage)."""
    return MARKER_PREFIX + hashlib.sha256(marker.encode()).hexdigest()[:40]


class PassBase:
    """The state of one ``run()``: it owns the lease and the view until it commits."""

    def __init__(
        self,
        registry: Registry,
        lease: Lease,
        view: StoreView,
        options: PassOptions,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        on_under_way: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.options = options
        self.clock = options.clock
        self.on_progress = on_progress
        #: Called once the pass holds the lease and has read its head and inbox.
        self.on_under_way = on_under_way
        self.executions_finished = 0
        self.executions_scheduled = 0
        self.lease = lease
        self.view = view
        self.store = view.store
        self.outcomes: dict[str, RunOutcome] = {}
        self.emitted: list[tuple[str, Any]] = []
        self.list_appends = ListAppends()
        self.children: list[Delivery] = []
        self.child_parents: dict[str, str] = {}
        self.open_callbacks: set[str] = set()  # created by this pass, not committed yet
        self.suspended_now: list[tuple[str, Rec]] = []
        self.consumed: list[str] = []
        self.seen_inbox: set[str] = set()
        self.markers: set[str] = set()
        self.started = self.clock()
        self.gc_due = False
        self.changed = False
        self.waves = 0
        self.abort_error: Exception | None = None

    def _report_progress(self) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(self.executions_finished, self.executions_scheduled)
            except Exception:  # a display callback must never break a pass
                logger.exception("the on_progress callback failed")


class PassHost(PassBase):
    """The :class:`~._context.RunHost` of the runs of a pass, and its callbacks map."""

    def _abort(self, exc: Exception) -> PassAborted:
        if self.abort_error is None:
            self.abort_error = exc
        return PassAborted(exc)

    async def read_state(self, name: str) -> tuple[bool, Any]:
        try:
            found = await self.view.read_state(name)
        except Exception as exc:
            raise self._abort(exc) from exc
        self.list_appends.read(name)
        return found

    def write_state(self, name: str, value: Any) -> None:
        self.list_appends.written(name)
        self.view.write_state(name, value)

    async def append_state(self, name: str, item: Any, max_length: int | None, run_id: str) -> bool:
        try:
            return await self.list_appends.append(
                self.view, self.emitted, name, item, max_length, run_id
            )
        except InvalidStateError:
            raise
        except Exception as exc:
            raise self._abort(exc) from exc

    def emit(self, name: str, args: Any) -> None:
        self.emitted.append((name, args))

    def now(self) -> float:
        return self.clock()

    async def start_child(self, workflow_name: str, args: Any, parent: str) -> str:
        """Start a child run in the next wave; returns its run id."""
        if workflow_name not in self.registry.workflows:
            raise WorkflowDefinitionError(
                f"invoke({workflow_name!r}): no workflow of that name is registered; "
                "check the name against client.workflows"
            )
        run_id = random_uuid()
        await self.create_callback(child_key(run_id), {"r": parent, "s": "open", "k": "child"})
        payload = {"run_id": run_id, "parent": parent, "args": args}
        self.children.append(Delivery("child", workflow_name, payload))
        return run_id

    async def callback_entry(self, key: str) -> dict[str, Any] | None:
        """The callbacks-map entry of ``key`` (a callback id or ``child:<run id>``)."""
        try:
            return await self.view.callback(key)
        except Exception as exc:
            raise self._abort(exc) from exc

    async def create_callback(self, key: str, entry: dict[str, Any]) -> None:
        """Add an entry to the callbacks map (committed with the pass)."""
        await self.callback_entry(key)
        self.view.callbacks.put(key, entry)
        if entry.get("k") != "child":
            self.open_callbacks.add(key)

    async def forget_callback(self, key: str) -> None:
        """Drop a finished callback (or child) from the callbacks map."""
        await self.callback_entry(key)
        self.view.callbacks.delete(key)

    async def _ended(self, run: RunState, outcome: RunOutcome, error: Any) -> None:
        """A run finished: close its callbacks; a child tells its parent's entry and wakes it."""
        for callback_id in _callback_ids(run.entries):
            await self.forget_callback(callback_id)
        if outcome.parent is None:
            return
        key = child_key(run.run_id)
        entry = await self.callback_entry(key)
        ended: dict[str, Any] = {"status": outcome.status, "result": outcome.result}
        if isinstance(error, BaseException):
            ended["error_type"] = qualified_name(type(error))
            ended["error_message"] = str(error)
        if entry is not None:
            self.view.callbacks.put(key, {**entry, "s": "done", "o": ended})
        self.emit(f"_child:{run.run_id}", ended)

    async def _callback_deliveries(self, deliveries: list[Delivery], now: float) -> list[Delivery]:
        """Apply completions and heartbeats to the callbacks map; drop those too late."""
        kept: list[Delivery] = []
        for delivery in deliveries:
            if delivery.kind != "event" or not delivery.name.startswith("_cb:"):
                kept.append(delivery)
                continue
            callback_id = delivery.name[4:]
            entry = await self.view.callback(callback_id)
            op = delivery.args.get("op") if isinstance(delivery.args, dict) else None
            due = None if entry is None else callback_due(entry)
            if entry is None or entry.get("s") != "open" or (due is not None and now >= due):
                logger.warning(
                    "dropped a %s of callback %s: it is unknown, already completed or timed "
                    "out (the first completion delivered wins)",
                    op or "message",
                    callback_id,
                )
                self.changed = True
                continue
            if op == "heartbeat":
                entry["hb"] = now
            elif op == "fail":
                entry.update(s="done", o={"error": str(delivery.args.get("error"))})
            else:
                entry.update(s="done", o={"result": delivery.args.get("result")})
            self.view.callbacks.touch(callback_id)
            self.changed = True
            kept.append(delivery)
        return kept

    async def mark_attempt(self, marker: str) -> None:
        """Make the start of an at-most-once attempt durable before its body runs."""
        blob_id = marker_blob_id(marker)
        try:
            await self.store.put_blobs({blob_id: _json.dumps({"m": marker, "t": self.now()})})
        except Exception as exc:
            raise self._abort(exc) from exc
        self.markers.add(blob_id)

    async def attempt_interrupted(self, marker: str) -> bool:
        """Whether an earlier pass started this attempt and died before its outcome."""
        blob_id = marker_blob_id(marker)
        try:
            await self.store.get_blobs([blob_id])
        except BlobNotFound:
            return False
        except Exception as exc:
            raise self._abort(exc) from exc
        self.markers.add(blob_id)
        return True


def _callback_ids(entries: list[Any]) -> list[str]:
    """The ids of the callbacks a journal created (its branches and bodies included)."""
    found: list[str] = []
    for entry in entries:
        if not isinstance(entry, list) or not entry:
            continue
        if entry[0] == "cb" and len(entry) > 2 and isinstance(entry[2], dict):
            found.append(str(entry[2].get("id")))
        for part in entry[2:]:
            if isinstance(part, list):
                found += _callback_ids(part)
            elif isinstance(part, dict):
                for value in part.values():
                    if isinstance(value, list):
                        found += _callback_ids(value)
    return found
