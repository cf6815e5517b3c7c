"""Triggers: what starts a workflow.

Triggers and events are two namespaces, as in ttflow: a string trigger is fired only by
``client.run(name)``; events (user events, ``state_changed_<name>``,
``workflows_changed``, ``_every``) start workflows registered with
:func:`event_trigger`, :func:`state_trigger` or :func:`every_trigger`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._errors import WorkflowDefinitionError

TriggerKind = Literal["trigger", "event", "every", "state"]

EVERY_EVENT = "_every"
WORKFLOWS_CHANGED_EVENT = "workflows_changed"
STATE_CHANGED_PREFIX = "state_changed_"


@dataclass(frozen=True)
class Trigger:
    """What starts a workflow: its ``kind`` and ``name``."""

    kind: TriggerKind
    name: str

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
