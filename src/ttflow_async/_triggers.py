"""Triggers: what starts a workflow.

Triggers and events are two namespaces, as in ttflow: a string trigger is fired only by
``client.run(name)``; events (user events, ``state_changed_<name>``,
``workflows_changed``, ``_every``) start workflows registered with
:func:`event_trigger`, :func:`state_trigger` or :func:`every_trigger`.
"""

from __future__ import annotations

from typing import Literal

from ._errors import WorkflowDefinitionError

TriggerKind = Literal["trigger", "event", "every", "state"]

EVERY_EVENT = "_every"
WORKFLOWS_CHANGED_EVENT = "workflows_changed"
STATE_CHANGED_PREFIX = "state_changed_"


class Trigger:
    """What starts a workflow: its ``kind`` and ``name`` (immutable, compared by value).

    A plain class rather than a frozen dataclass: building a dataclass costs ~1 ms at
    import, which every fresh process (a cron tick, a Lambda cold start) pays.
    """

    __slots__ = ("kind", "name")
    kind: TriggerKind
    name: str

    def __init__(self, kind: TriggerKind, name: str) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "name", name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Trigger cannot be changed (cannot assign to {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Trigger cannot be changed (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Trigger)
        return (self.kind, self.name) == (other.kind, other.name)

    def __hash__(self) -> int:
        return hash((self.kind, self.name))

    def __repr__(self) -> str:
        return f"Trigger(kind={self.kind!r}, name={self.name!r})"

    def __reduce__(self) -> tuple[type[Trigger], tuple[TriggerKind, str]]:
        return (Trigger, (self.kind, self.name))  # copy and pickle rebuild it whole

    @property
    def event_name(self) -> str | None:
        """The event that fires this trigger, or None for a plain string trigger."""
        if self.kind == "trigger":
            return None
        if self.kind == "every":
            return EVERY_EVENT
        if self.kind == "state":
            return STATE_CHANGED_PREFIX + self.name
        return self.name


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise WorkflowDefinitionError(f"{what} needs a non-empty string name, got {name!r}")
    return name


def event_trigger(event_name: str) -> Trigger:
    """Start the workflow whenever the event ``event_name`` is delivered."""
    return Trigger("event", _check_name(event_name, "event_trigger()"))


def every_trigger() -> Trigger:
    """Start the workflow at every ``run()``."""
    return Trigger("every", EVERY_EVENT)


def state_trigger(state_name: str) -> Trigger:
    """Start the workflow whenever ``set_state(state_name, ...)`` changes the value."""
    return Trigger("state", _check_name(state_name, "state_trigger()"))


def named_trigger(name: str) -> Trigger:
    """A plain trigger fired by ``client.run(name)``."""
    return Trigger("trigger", _check_name(name, "a trigger"))
