"""What the entry points (CLI, Lambda handler, dashboard) say and refuse, in one place.

The engine's own messages are written for Python callers (they name ``lock_timeout=``);
the entry points answer people and HTTP clients, so the lock wording, the names that
may not come from outside and the shortening of echoed names live here.
"""

from __future__ import annotations

import json
from typing import Any

from ._triggers import EVERY_EVENT, STATE_CHANGED_PREFIX, WORKFLOWS_CHANGED_EVENT

__all__ = ["external_name_problem", "locked_sentence", "short", "strict_json_loads"]

MAX_ECHO = 60
MAX_NAME = 256


def short(text: str, limit: int = MAX_ECHO) -> str:
    """``repr(text)``, cut to about ``limit`` characters (lone surrogates escaped)."""
    shown = repr(text[:limit])
    return shown if len(text) <= limit else f"{shown[:-1]}...{shown[-1]} ({len(text)} characters)"


def external_name_problem(name: object, what: str) -> str | None:
    """Why ``name`` cannot be a trigger or event sent from outside; ``None`` if it can.

    Engine events (``state_changed_<name>``, ``workflows_changed``, ``_every`` and any
    name beginning with ``_``) are raised by the engine only: accepting them from a
    request would let anyone start state triggers with invented values.
    """
    if not isinstance(name, str) or not name:
        return f"{what} must be a non-empty string."
    if len(name) > MAX_NAME:
        return f"{what} is {len(name)} characters long; the limit is {MAX_NAME}."
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        return f"{what} {short(name)} contains a lone surrogate, which is not valid text."
    if name.startswith(("_", STATE_CHANGED_PREFIX)) or name in (
        WORKFLOWS_CHANGED_EVENT,
        EVERY_EVENT,
    ):
        return (
            f"{what} {short(name)} is reserved for the engine; "
            "send a trigger or user event of your own instead."
        )
    return None


def locked_sentence(*, queued: bool, what: str, otherwise: str) -> str:
    """One sentence for a ``StateLockedError`` met by an entry point.

    Args:
        queued: whether the trigger or event is stored in the inbox.
        what: what was sent ("the trigger", "the event").
        otherwise: what to do when nothing was queued (for example
            "try again later or pass --lock-timeout").
    """
    if queued:
        return (
            f"Another runner holds the lock, so {what} is queued in the inbox "
            "and fires exactly once in a later pass."
        )
    return f"Another runner holds the lock and nothing was queued; {otherwise}."


def strict_json_loads(text: str) -> Any:
    """Parse JSON from outside strictly: no ``NaN`` or infinities, no unbounded nesting.

    Raises:
        ValueError: the text is not strict JSON; the message says why.
    """

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed in strict JSON")

    try:
        return json.loads(text, parse_constant=reject_constant)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
