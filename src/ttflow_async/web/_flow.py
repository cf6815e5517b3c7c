"""The event → workflow flow and state producers/consumers.

Derived from two public sources only: the registered workflows (who declares which
trigger) and the execution traces (what actually started or woke a run, and which
states each run changed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ._models import FlowEdgeOut, FlowOut, StateFlowOut, TraceOut, TriggerKind, WorkflowOut

EVERY_EVENT = "_every"
STATE_CHANGED_PREFIX = "state_changed_"

# Words the engine uses in ``triggered_by`` for wake-ups that are not an event.
_WAKEUP_WORDS = frozenset({"_resume", "_timer"})


def _source_of(workflow: WorkflowOut) -> tuple[str, TriggerKind]:
    """The event or trigger name that starts ``workflow``, and its kind."""
    trigger = workflow.trigger
    if trigger.kind == "state":
        return STATE_CHANGED_PREFIX + trigger.name, "state"
    if trigger.kind == "every":
        return EVERY_EVENT, "every"
    return trigger.name, trigger.kind


def _guess_kind(source: str, trigger_names: set[str]) -> TriggerKind:
    """The kind of a source seen only in traces (a woken wait, say)."""
    if source == EVERY_EVENT:
        return "every"
    if source.startswith(STATE_CHANGED_PREFIX):
        return "state"
    if source in trigger_names:
        return "trigger"
    return "event"


def build_flow(workflows: Iterable[WorkflowOut], traces: Iterable[TraceOut]) -> FlowOut:
    """Combine registrations and traces into edges and state producers/consumers.

    Args:
        workflows: The registered workflows.
        traces: The execution traces, in any order.

    Returns:
        Edges sorted by source then workflow, and states sorted by name.
    """
    registered: dict[tuple[str, str], TriggerKind] = {}
    consumers: dict[str, set[str]] = {}
    trigger_names: set[str] = set()
    for workflow in workflows:
        source, kind = _source_of(workflow)
        registered[(source, workflow.name)] = kind
        if kind == "trigger":
            trigger_names.add(source)
        if workflow.trigger.kind == "state":
            consumers.setdefault(workflow.trigger.name, set()).add(workflow.name)

    observed: Counter[tuple[str, str]] = Counter()
    producers: dict[str, set[str]] = {}
    for trace in traces:
        for execution in trace.executions:
            source = execution.triggered_by
            if source not in _WAKEUP_WORDS:
                observed[(source, execution.workflow_name)] += 1
            if source.startswith(STATE_CHANGED_PREFIX):
                state = source.removeprefix(STATE_CHANGED_PREFIX)
                consumers.setdefault(state, set()).add(execution.workflow_name)
            for change in execution.state_changes:
                producers.setdefault(change.name, set()).add(execution.workflow_name)

    edges = [
        FlowEdgeOut(
            source=source,
            source_kind=registered.get((source, workflow)) or _guess_kind(source, trigger_names),
            workflow=workflow,
            registered=(source, workflow) in registered,
            observed=observed[(source, workflow)],
        )
        for source, workflow in sorted(set(registered) | set(observed))
    ]
    states = [
        StateFlowOut(
            name=name,
            producers=sorted(producers.get(name, ())),
            consumers=sorted(consumers.get(name, ())),
        )
        for name in sorted(set(producers) | set(consumers))
    ]
    return FlowOut(edges=edges, states=states)
