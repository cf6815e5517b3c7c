"""State calls of the run context: ``get_state``, ``set_state``, ``update_state``, lists."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from . import _json
from ._context_core import ContextCore
from ._errors import InvalidStateError
from ._list_state import same_json as _same

logger = logging.getLogger("ttflow_async")

_ABSENT: list[Any] = []


def check_state_name(name: object) -> str:
    """Reject names that are not strings or that are reserved for the engine."""
    if not isinstance(name, str) or not name:
        raise InvalidStateError(f"a state name must be a non-empty string, got {name!r}")
    if name.startswith("_"):
        raise InvalidStateError(
            f"state name {name!r} is reserved: names beginning with '_' belong to the engine; "
            "choose a name without the leading underscore"
        )
    return name


class StateMixin(ContextCore):
    """Journaled reads and writes of the store's named states."""

    async def get_state(self, name: str, default: Any = None) -> Any:
        """Read a state value; on replay, returns the value first read."""
        check_state_name(name)
        frame, entry = self._next("gs", name)
        if entry is None:
            found, value = await self._host.read_state(name)
            self._shared.fresh_reads[name] = (found, value)
            entry = frame.append("gs", name, [value] if found else _ABSENT.copy())
        recorded = entry[2]
        return _json.copy_json(recorded[0]) if recorded else default

    async def set_state(self, name: str, value: Any) -> None:
        """Write a state value; emits ``state_changed_<name>`` when the value changes."""
        check_state_name(name)
        new = _json.normalize(value, f"the value of state {name!r}")
        frame, entry = self._next("ss", name)
        if entry is not None:
            return
        found, old = await self._host.read_state(name)
        self._check_lost_update(name, found, old)
        self._write(name, found, old, new)
        frame.append("ss", name, None)

    async def update_state(self, name: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Apply ``fn(old) -> new`` to a state atomically among the runs of this pass.

        Nothing runs between the read and the write, so concurrent runs never lose
        each other's updates. Emits ``state_changed_<name>`` when the value changes, and
        returns the new value (on replay, the value written the first time).
        """
        check_state_name(name)
        if not callable(fn):
            raise InvalidStateError(f"update_state({name!r}, fn) needs a callable fn, got {fn!r}")
        frame, entry = self._next("us", name)
        if entry is None:
            found, old = await self._host.read_state(name)
            # No await from here to the write: this is what makes the update atomic.
            current = _json.copy_json(old) if found else _json.copy_json(default)
            produced = fn(current)
            if inspect.isawaitable(produced):
                if inspect.iscoroutine(produced):
                    produced.close()
                raise InvalidStateError(
                    f"update_state({name!r}, fn): fn must be a plain function old -> new, "
                    "not a coroutine function (an await would break the atomic update)"
                )
            new = _json.normalize(produced, f"the value fn returned for state {name!r}")
            self._write(name, found, old, new)
            entry = frame.append("us", name, [new])
        return _json.copy_json(entry[2][0])

    async def add_list_state(self, name: str, value: Any, max_length: int | None = None) -> None:
        """Append ``value`` to the list state ``name``, keeping the last ``max_length``.

        Costs O(1) for the list, not a copy of it: the consecutive appends of one run
        within a wave emit one ``state_changed_<name>`` (``old`` before the first of
        them, ``new`` after the last), and the trace records the items appended.
        """
        check_state_name(name)
        item = _json.normalize(value, f"the value appended to state {name!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise InvalidStateError(f"max_length must be a positive int, got {max_length!r}")
        frame, entry = self._next("al", name)
        if entry is not None:
            return
        changed = await self._host.append_state(name, item, max_length, self._run.run_id)
        # The run's earlier read no longer tells what it last saw: its own append changed it.
        self._shared.fresh_reads.pop(name, None)
        if changed:
            last = self._shared.open_append
            if last is not None and last[0] == name and last[2] == max_length:
                last[1].append(item)
            else:
                last = [name, [item], max_length]
                self._run.state_appends.append(last)
                self._shared.open_append = last
        frame.append("al", name, None)

    def _check_lost_update(self, name: str, found: bool, old: Any) -> None:
        seen = self._shared.fresh_reads.get(name)
        if seen is not None and not (seen[0] == found and _same(seen[1], old)):
            logger.warning(
                "run %s of workflow %r read state %r, awaited, and then set it, but another "
                "run changed %r in between: that run's update is lost. Use "
                "c.update_state(name, fn) for a read-modify-write.",
                self._run.run_id,
                self._run.workflow_name,
                name,
                name,
            )

    def _write(self, name: str, found: bool, old: Any, new: Any) -> None:
        self._host.write_state(name, new)
        if name in self._shared.fresh_reads:
            self._shared.fresh_reads[name] = (True, new)
        if found and _same(old, new):
            return
        self._shared.open_append = None
        old_value = _json.copy_json(old) if found else None
        from ._records import StateChange

        self._run.state_changes.append(StateChange(name=name, old=old_value, new=new))
        self._host.emit(f"state_changed_{name}", {"old": old_value, "new": _json.copy_json(new)})
