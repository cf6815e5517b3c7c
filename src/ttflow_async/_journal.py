"""The replay journal of one run: entries matched by position, O(1) per step.

A journal is a JSON list of entries ``[kind, name, result]``. A side effect whose body
has not completed yet is an *open* entry ``["se", name, None, [nested entries...]]``:
the calls inside its body are journaled in that nested list, so that when the body
runs again (it suspended, or the run was replayed) they replay from there. Once the
body completes, the entry is closed to ``["se", name, result]`` and its nested entries
are dropped: a cached side effect replays in one step and none of its nested calls
run again. A side effect whose body raised becomes ``["fe", name, None]``: exceptions
are not journaled, so on replay its body runs again.
"""

from __future__ import annotations

from typing import Any

from ._errors import NondeterminismError

Entry = list[Any]

KIND_NAMES = {
    "gs": "get_state",
    "ss": "set_state",
    "al": "add_list_state",
    "lg": "log",
    "ev": "event",
    "pa": "pause_once",
    "we": "wait_event",
    "sl": "sleep",
    "se": "side effect",
    "fe": "side effect",
}


def describe(kind: str, name: str | None) -> str:
    """A readable name for a journal step, e.g. ``side effect 'notify'``."""
    label = KIND_NAMES.get(kind, kind)
    return f"{label} {name!r}" if name is not None else label


class _Frame:
    __slots__ = ("entries", "pos")

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self.pos = 0


class Journal:
    """A cursor over a run's journal entries (nested frames for side-effect bodies)."""

    def __init__(self, entries: list[Entry], *, run_id: str, workflow_name: str) -> None:
        self.entries = entries
        self.run_id = run_id
        self.workflow_name = workflow_name
        self._stack = [_Frame(entries)]

    def _mismatch(self, kind: str, name: str | None, found: Entry) -> NondeterminismError:
        depth = " > ".join(str(frame.pos + 1) for frame in self._stack)
        return NondeterminismError(
            f"replay of run {self.run_id} of workflow {self.workflow_name!r} reached "
            f"{describe(kind, name)} at step {depth}, but its journal recorded "
            f"{describe(found[0], found[1])} there: the code changed under a suspended run. "
            "The run stays suspended (status 'blocked') and resumes once code compatible "
            "with its journal is deployed."
        )

    def next(self, kind: str, name: str | None) -> Entry | None:
        """Match the next recorded step; None when execution has gone past the journal."""
        frame = self._stack[-1]
        if frame.pos >= len(frame.entries):
            return None
        entry = frame.entries[frame.pos]
        if entry[0] != kind or entry[1] != name:
            raise self._mismatch(kind, name, entry)
        frame.pos += 1
        return entry

    def append(self, kind: str, name: str | None, result: Any) -> Entry:
        """Record a new step at the current position."""
        frame = self._stack[-1]
        entry: Entry = [kind, name, result]
        frame.entries.append(entry)
        frame.pos += 1
        return entry

    def enter_sideeffect(self, name: str) -> tuple[Entry, bool]:
        """Match or record a side effect; returns ``(entry, cached)``.

        When not cached, the entry is open and its nested frame is entered: call
        :meth:`leave_sideeffect` when the body ends, however it ends.
        """
        frame = self._stack[-1]
        if frame.pos < len(frame.entries):
            entry = frame.entries[frame.pos]
            if entry[0] not in ("se", "fe") or entry[1] != name:
                raise self._mismatch("se", name, entry)
            frame.pos += 1
            if entry[0] == "se" and len(entry) == 3:
                return entry, True
            if len(entry) != 4:
                entry[:] = ["se", name, None, []]
        else:
            entry = ["se", name, None, []]
            frame.entries.append(entry)
            frame.pos += 1
        self._stack.append(_Frame(entry[3]))
        return entry, False

    def leave_sideeffect(self, entry: Entry, *, outcome: str, result: Any = None) -> None:
        """Leave a side effect's frame: ``outcome`` is "done", "failed" or "suspended"."""
        self._stack.pop()
        if outcome == "done":
            entry[:] = ["se", entry[1], result]
        elif outcome == "failed":
            entry[:] = ["fe", entry[1], None]
