"""``add_list_state`` within a pass: appends in place and one change event per run and wave.

A naive append copies the whole list, compares it, and emits ``state_changed_<name>``
with a copy of the list before and after, so a loop of appends is quadratic in time and
in what the event log and the trace store. Here the consecutive appends of one run to
one state within a wave extend one event: its ``old`` is the value before the first of
them and its ``new`` the list itself, appended to in place for as long as nothing else
can hold it. Events are delivered only after the wave, so a state trigger sees what it
would have seen of the last of those events, once.

A list is appended to in place only while it is *private*: referenced by the view and
by the ``new`` of an event not yet delivered, by nothing else. A read of the state (the
reader may keep the value, a journal entry does), a write, another run's append and the
end of the wave each end that: the next append copies the list once and goes on in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _json
from ._errors import InvalidStateError

if TYPE_CHECKING:
    from ._view import StoreView

__all__ = ["ListAppends", "same_json"]


def same_json(old: Any, new: Any) -> bool:
    """Whether two normalised values are the same JSON (``1`` and ``1.0`` differ)."""
    return bool(old == new) and _json.dumps(old) == _json.dumps(new)


def _appended(base: list[Any], item: Any, max_length: int | None) -> list[Any]:
    new = [*base, item]
    return new[-max_length:] if max_length is not None else new


def _append_changes(current: list[Any], item: Any, max_length: int | None) -> bool:
    """Whether appending ``item`` (keeping the last ``max_length``) changes ``current``."""
    if max_length is None or len(current) != max_length:
        return True  # it grows, or shrinks to max_length
    # A full list loses its oldest item: unchanged only when every item equals the new one.
    return not all(same_json(value, item) for value in current)


class _Slot:
    """The change event of the appends one run made to one state in the current wave
    (a plain class: no dataclass built at import)."""

    __slots__ = ("args", "private", "run_id", "wave")

    def __init__(
        self, run_id: str, wave: list[tuple[str, Any]], args: dict[str, Any], private: bool
    ) -> None:
        self.run_id = run_id
        #: The host's list of events emitted in the wave the event belongs to.
        self.wave = wave
        #: The event's ``{"old": ..., "new": ...}``; ``new`` is the state's current list.
        self.args = args
        #: Whether nothing but the view and this event holds ``args["new"]``.
        self.private = private


class ListAppends:
    """The in-place list appends of one pass and their coalesced change events."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    def read(self, name: str) -> None:
        """The state was read: the reader may keep the list, so it is no longer private."""
        slot = self._slots.get(name)
        if slot is not None:
            slot.private = False

    def written(self, name: str) -> None:
        """The state was written otherwise: later appends start a new event."""
        self._slots.pop(name, None)

    async def append(
        self,
        view: StoreView,
        emitted: list[tuple[str, Any]],
        name: str,
        item: Any,
        max_length: int | None,
        run_id: str,
    ) -> bool:
        """Append ``item`` to the list state ``name``; whether the value changed.

        ``emitted`` is the host's list of the events of the current wave (replaced by a
        new list at each wave); the change event goes there, or an earlier event of the
        same run and wave is extended.
        """
        slot = self._slots.get(name)
        if slot is not None and slot.wave is emitted and slot.run_id == run_id:
            # Every write of the pass goes through the host, which drops the slot: the
            # list of the slot is the state's value, its shard loaded and already dirty.
            current = slot.args["new"]
            if not _append_changes(current, item, max_length):
                return False
            if slot.private:
                current.append(item)
                if max_length is not None and len(current) > max_length:
                    del current[: len(current) - max_length]
            else:
                new = _appended(current, item, max_length)
                view.write_state(name, new)
                slot.args["new"] = new
                slot.private = True
            return True
        found, current = await view.read_state(name)
        if found and current is not None and not isinstance(current, list):
            raise InvalidStateError(
                f"add_list_state({name!r}) needs a list state, but {name!r} holds a "
                f"{type(current).__name__}; use set_state() or another name"
            )
        new = _appended(current or [], item, max_length)
        if found and same_json(current, new):
            return False
        view.write_state(name, new)
        # ``current`` is never appended to in place again: the new list replaced it.
        args: dict[str, Any] = {"old": current if found else None, "new": new}
        emitted.append((f"state_changed_{name}", args))
        self._slots[name] = _Slot(run_id=run_id, wave=emitted, args=args, private=True)
        return True
