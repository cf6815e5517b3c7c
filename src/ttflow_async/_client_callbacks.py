"""Callbacks on the client: complete, fail or heartbeat an open callback (no lock)."""

from __future__ import annotations

from typing import Any

from . import _json
from ._client_core import ClientCore
from ._errors import InvalidStateError, UnknownCallbackError
from ._view import StoreView


class CallbacksMixin(ClientCore):
    """What an external system calls to answer a callback a run waits for."""

    async def _complete(self, callback_id: str, payload: dict[str, Any]) -> None:
        """Queue a completion or heartbeat of an open callback (no lock)."""
        if not isinstance(callback_id, str) or not callback_id or callback_id.startswith("child:"):
            raise UnknownCallbackError(f"a callback id must be a non-empty string: {callback_id!r}")

        async def is_open(view: StoreView) -> bool:
            entry = await view.callback(callback_id)
            return entry is not None and entry.get("s") == "open"

        # A callback created by a pass of this client still in progress (a submitter
        # completing at once) is not committed yet; that pass drains the completion.
        in_flight = any(callback_id in p.open_callbacks for p in self._passes)
        async with self._connected():
            if not in_flight and not await self._inspect(is_open):
                raise UnknownCallbackError(
                    f"no open callback has id {callback_id!r} in {self.store.description} "
                    "(unknown, already completed, timed out, or its run ended); nothing was sent"
                )
            await self._guarded(lambda: self._queue("event", f"_cb:{callback_id}", payload))

    async def complete_callback(self, callback_id: str, result: Any = None) -> None:
        """Complete a callback with ``result`` (no lock; delivered by the next ``run()``)."""
        value = _json.normalize(result, f"the result of callback {callback_id!r}")
        await self._complete(callback_id, {"op": "complete", "result": value})

    async def fail_callback(self, callback_id: str, error: str) -> None:
        """Fail a callback: its ``result()`` raises CallbackFailed with ``error``."""
        if not isinstance(error, str):
            raise InvalidStateError(f"fail_callback() takes an error string, got {error!r}")
        _json.normalize(error, "the error of fail_callback()")
        await self._complete(callback_id, {"op": "fail", "error": error})

    async def heartbeat_callback(self, callback_id: str) -> None:
        """Record a heartbeat of a callback (restarts its heartbeat timeout)."""
        await self._complete(callback_id, {"op": "heartbeat"})
