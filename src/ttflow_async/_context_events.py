"""Logs, events and waits of the run context: ``log``, ``event``, ``wait_event``, ``sleep``."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from . import _json
from ._context_core import ContextCore
from ._errors import EventWaitTimeout, InvalidStateError

workflow_logger = logging.getLogger("ttflow_async.workflow")


def check_event_name(name: object) -> str:
    """Reject event names that are not strings or that are reserved for the engine."""
    if not isinstance(name, str) or not name:
        raise InvalidStateError(f"an event name must be a non-empty string, got {name!r}")
    if name.startswith("_"):
        raise InvalidStateError(
            f"event name {name!r} is reserved: names beginning with '_' belong to the engine"
        )
    return name


def to_seconds(duration: float | timedelta, what: str) -> float:
    """Seconds from a number or a timedelta."""
    if isinstance(duration, timedelta):
        return duration.total_seconds()
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        return float(duration)
    raise TypeError(f"{what} takes seconds (int or float) or a timedelta, got {duration!r}")


class EventsMixin(ContextCore):
    """What a run says (log lines, events) and the waits that suspend it."""

    async def log(self, message: Any) -> None:
        """Append a line to this run's log (once: not again on replay)."""
        text = message if isinstance(message, str) else str(message)
        frame, entry = self._next("lg", None)
        if entry is not None:
            return
        self._run.logs.append(text)
        workflow_logger.info(
            "%s", text, extra={"run_id": self._run.run_id, "workflow": self._run.workflow_name}
        )
        frame.append("lg", None, None)

    async def event(self, name: str, args: Any = None) -> None:
        """Emit a user event, delivered in the next wave of this ``run()`` (once)."""
        check_event_name(name)
        payload = _json.normalize(args, f"the args of event {name!r}")
        frame, entry = self._next("ev", name)
        if entry is not None:
            return
        self._host.emit(name, payload)
        frame.append("ev", name, None)

    async def pause_once(self) -> None:
        """Suspend here; the run resumes at the next ``run()``."""
        frame, entry = self._next("pa", None)
        if entry is not None:
            return
        frame.append("pa", None, None)
        raise self._suspend({"kind": "next_run"})

    async def wait_event(
        self,
        name: str,
        timeout: float | timedelta | None = None,  # noqa: ASYNC109 - a durable timeout
    ) -> Any:
        """Suspend until an event or trigger ``name`` is delivered; return its args.

        With ``timeout``, raises :class:`EventWaitTimeout` once it has passed.
        """
        if not isinstance(name, str) or not name:
            raise InvalidStateError(f"wait_event() needs a non-empty event name, got {name!r}")
        if name.startswith("_"):
            raise InvalidStateError(
                f"wait_event({name!r}): names beginning with '_' are the engine's own events; "
                "use pause_once() to resume at the next run()"
            )
        seconds = None if timeout is None else to_seconds(timeout, "wait_event(timeout=...)")
        frame, entry = self._next("we", name)
        now = self._host.now()
        began_earlier = entry is not None
        if entry is None:
            deadline = None if seconds is None else now + seconds
            entry = frame.append("we", name, {"deadline": deadline})
        wait = entry[2]
        if "args" in wait:
            return _json.copy_json(wait["args"])
        if wait.get("timed_out"):
            raise self._timeout(name, seconds)
        wake = self._shared.wake
        # Only a wait that began before this execution can take the delivery that woke
        # the run (a wait reached now began after it); every such wait for that name
        # takes it (branches of a batch may wait for the same event).
        if began_earlier and wake is not None and wake.get("name") == name:
            wait["args"] = _json.copy_json(wake["args"])
            self._run.wake = None
            return _json.copy_json(wait["args"])
        deadline = wait.get("deadline")
        if deadline is not None and now >= deadline:
            wait["timed_out"] = True
            raise self._timeout(name, seconds)
        raise self._suspend({"kind": "event", "name": name, "deadline": deadline})

    def _timeout(self, name: str, seconds: float | None) -> EventWaitTimeout:
        after = f" after {seconds:g} seconds" if seconds is not None else ""
        return EventWaitTimeout(
            f"run {self._run.run_id} waited for event {name!r}{after} and it did not come; "
            "catch EventWaitTimeout in the workflow to handle the timeout"
        )

    async def sleep(self, duration: float | timedelta, name: str | None = None) -> None:
        """A durable timer: the run resumes at the first ``run()`` at or after the due time.

        ``name`` names the timer in ``paused_runs()``, traces and the dashboard.
        """
        seconds = to_seconds(duration, "sleep()")
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidStateError(f"sleep(name=...) takes a non-empty string, got {name!r}")
        frame, entry = self._next("sl", None)
        now = self._host.now()
        if entry is None:
            entry = frame.append("sl", None, {"due": now + seconds})
        timer = entry[2]
        if timer.get("done"):
            return
        if now >= timer["due"]:
            timer["done"] = True
            return
        waiting: dict[str, Any] = {"kind": "timer", "due": timer["due"]}
        if name is not None:
            waiting["name"] = name
        raise self._suspend(waiting)
