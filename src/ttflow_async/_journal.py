"""The replay journal of one run: entries matched by position, O(1) per step.

A journal is a JSON list of entries ``[kind, name, result]``, read through *frames*:
a frame is a cursor over one list of entries. The workflow body reads the root frame;
a side-effect body and each branch of a ``c.parallel``/``c.map`` read their own
nested frame, so concurrent bodies never move each other's cursor.

A side effect's position is taken when the call is made (in program order), not when
it completes. Its entry is *open*, ``["se", name, None, [nested...], meta]``, while
its body has not completed: the calls inside the body are journaled in the nested
list, so that when the body runs again (it suspended, or it waits to be retried) they
replay from there; ``meta`` keeps the attempt number, a pending retry's due time and
the at-most-once start count. Once the body completes, the entry is closed to
``["se", name, result]``; a body that raised for good becomes
``["er", name, error]`` with the error's type, message and args. Either replays in one
step without running the body or any of its nested calls again. Journals written by
earlier engines may hold ``["fe", name, None]`` (a failure that was not journaled):
its body runs again on replay.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import anyio

from ._errors import NondeterminismError

if TYPE_CHECKING:
    import asyncio

Entry = list[Any]


class Suspend(BaseException):
    """Unwinds a run that must wait. A BaseException, so ``except Exception`` can't eat it."""

    def __init__(self, waiting: dict[str, Any]) -> None:
        super().__init__(waiting)
        self.waiting = waiting


KIND_NAMES = {
    "gs": "get_state",
    "ss": "set_state",
    "us": "update_state",
    "al": "add_list_state",
    "lg": "log",
    "ev": "event",
    "pa": "pause_once",
    "we": "wait_event",
    "sl": "sleep",
    "se": "side effect",
    "er": "side effect",
    "fe": "side effect",
    "ba": "parallel/map",
    "pt": "patched",
    "iv": "invoke",
    "cb": "create_callback",
    "cr": "callback result",
}

SIDEEFFECT_KINDS = ("se", "er", "fe")


def describe(kind: str, name: str | None) -> str:
    """A readable name for a journal step, e.g. ``side effect 'notify'``."""
    label = KIND_NAMES.get(kind, kind)
    return f"{label} {name!r}" if name is not None else label


class Frame:
    """A cursor over one list of journal entries (the workflow's, a body's or a branch's).

    ``path`` is the position of the list's first entry's parent, as indices from the
    root (``()`` for the workflow's own list); ``owner`` is the id of the task allowed
    to make calls in this frame.
    """

    __slots__ = ("entries", "owner", "path", "pos", "run_id", "workflow_name")

    def __init__(
        self,
        entries: list[Entry],
        *,
        run_id: str,
        workflow_name: str,
        path: tuple[int | str, ...] = (),
        owner: int | None = None,
    ) -> None:
        self.entries = entries
        self.pos = 0
        self.path = path
        self.owner = owner
        self.run_id = run_id
        self.workflow_name = workflow_name

    def child(self, entries: list[Entry], step: int | str, owner: int | None) -> Frame:
        """A frame over nested entries found under ``step`` of this frame."""
        return Frame(
            entries,
            run_id=self.run_id,
            workflow_name=self.workflow_name,
            path=(*self.path, step),
            owner=owner,
        )

    def position(self, index: int | None = None) -> str:
        """The position of entry ``index`` (default: the next one), as ``a.b.c``."""
        at = self.pos if index is None else index
        return ".".join(str(p) for p in (*self.path, at))

    def _mismatch(self, kind: str, name: str | None, found: Entry) -> NondeterminismError:
        top = self.path[0] if self.path else self.pos
        nested = f" (nested step {self.position()})" if self.path else ""
        return NondeterminismError(
            f"replay of run {self.run_id} of workflow {self.workflow_name!r} reached "
            f"{describe(kind, name)} at position {top}{nested}, but its journal recorded "
            f"{describe(found[0], found[1])} there: the code changed under a suspended run. "
            "The run stays suspended (status 'blocked') and resumes once code compatible "
            "with its journal is deployed (c.patched() lets new code branch around old "
            "journals)."
        )

    def peek(self) -> Entry | None:
        """The next recorded entry, without consuming it."""
        return self.entries[self.pos] if self.pos < len(self.entries) else None

    def next(self, kind: str, name: str | None) -> Entry | None:
        """Match the next recorded step; None when execution has gone past the journal."""
        if self.pos >= len(self.entries):
            return None
        entry = self.entries[self.pos]
        if entry[0] != kind or entry[1] != name:
            raise self._mismatch(kind, name, entry)
        self.pos += 1
        return entry

    def append(self, kind: str, name: str | None, result: Any) -> Entry:
        """Record a new step at the current position."""
        entry: Entry = [kind, name, result]
        self.entries.append(entry)
        self.pos += 1
        return entry

    def reserve_sideeffect(self, name: str) -> tuple[Entry, int]:
        """Match or record a side effect at the next position.

        Returns ``(entry, index)``, the entry's index in this frame (its position is
        ``position(index)``). The entry is closed (``se`` of length 3 or ``er``) when
        the call replays from the journal; otherwise it is open, with its nested
        entries at ``entry[3]`` and its meta at ``entry[4]``.
        """
        index = self.pos
        if index < len(self.entries):
            entry = self.entries[index]
            if entry[0] not in SIDEEFFECT_KINDS or entry[1] != name:
                raise self._mismatch("se", name, entry)
            self.pos += 1
            if entry[0] == "er" or (entry[0] == "se" and len(entry) == 3):
                return entry, index
            if entry[0] == "fe" or len(entry) < 4:
                entry[:] = ["se", name, None, [], {}]
            elif len(entry) == 4:
                entry.append({})
            return entry, index
        entry = ["se", name, None, [], {}]
        self.entries.append(entry)
        self.pos += 1
        return entry, index


def is_closed(entry: Entry) -> bool:
    """Whether a side-effect entry holds its outcome (a result or a journaled error)."""
    return entry[0] == "er" or (entry[0] == "se" and len(entry) == 3)


def close_done(entry: Entry, result: Any) -> None:
    """Close a side-effect entry with its result (its nested entries are dropped)."""
    entry[:] = ["se", entry[1], result]


def close_failed(entry: Entry, error: dict[str, Any]) -> None:
    """Close a side-effect entry with a journaled error."""
    entry[:] = ["er", entry[1], error]


def current_task_id() -> int:
    """An id of the running task; asyncio's C lookup first, anyio's on other backends."""
    import asyncio  # loaded by the event loop by now; kept off ``import ttflow_async``

    try:
        return id(asyncio.current_task())
    except RuntimeError:
        return anyio.get_current_task().id


def current_asyncio_task() -> asyncio.Task[Any] | None:
    """The running asyncio task, or None on another backend."""
    import asyncio

    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


# The frame a side-effect body journals into, per task, with the context it belongs to:
# concurrent bodies each see their own (a task copies the variable when it is created,
# so gather/TaskGroup children start from their creator's frame and set their own
# while their body runs).
current_frame: ContextVar[tuple[object, Frame] | None] = ContextVar(
    "ttflow_async_frame", default=None
)
