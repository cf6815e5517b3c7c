"""The event → workflow flow and state producers/consumers.

Derived from two public sources only: the registered workflows (who declares which
trigger) and the execution traces (what actually started or woke a run, which states
each run changed, and which run invoked which child run).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from ._models import (
    FlowEdgeOut,
    FlowOut,
    InvocationEdgeOut,
    StateFlowOut,
    TraceOut,
    TriggerKind,
    WorkflowOut,
)

EVERY_EVENT = "_every"
STATE_CHANGED_PREFIX = "state_changed_"

# Words the engine uses in ``triggered_by`` for wake-ups that are not an event, and for
# child runs (drawn as invocation edges from the parent's workflow instead).
_WAKEUP_WORDS = frozenset({"_resume", "_timer", "_invoke"})
# Per-run wake-ups: a finished child wakes its parent, an answered callback its run.
_WAKEUP_PREFIXES = ("_child:", "_cb:")


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


def unknown_parents(traces: Iterable[TraceOut]) -> set[str]:
    """The parent run ids of traced child runs whose parent runs no trace shows.

    A parent executes in the pass that starts its child, so only a trace pushed out of
    the capped log hides it; the caller looks those runs up elsewhere.
    """
    executed: set[str] = set()
    parents: set[str] = set()
    for trace in traces:
        for execution in trace.executions:
            executed.add(execution.run_id)
            if execution.parent_run_id is not None:
                parents.add(execution.parent_run_id)
    return parents - executed


def _invocations(
    traces: Iterable[TraceOut], run_workflows: Mapping[str, str]
) -> list[InvocationEdgeOut]:
    """Parent workflow → child workflow edges, counting distinct child runs."""
    workflow_of = dict(run_workflows)
    children: dict[str, tuple[str, str]] = {}
    for trace in traces:
        for execution in trace.executions:
            workflow_of[execution.run_id] = execution.workflow_name
            if execution.parent_run_id is not None:
                children[execution.run_id] = (execution.parent_run_id, execution.workflow_name)
    counts: Counter[tuple[str, str]] = Counter()
    for parent_run, child_workflow in children.values():
        parent_workflow = workflow_of.get(parent_run)
        if parent_workflow is not None:
            counts[(parent_workflow, child_workflow)] += 1
    return [
        InvocationEdgeOut(parent=parent, child=child, observed=counts[(parent, child)])
        for parent, child in sorted(counts)
    ]


def build_flow(
    workflows: Iterable[WorkflowOut],
    traces: Iterable[TraceOut],
    run_workflows: Mapping[str, str] | None = None,
) -> FlowOut:
    """Combine registrations and traces into edges, invocations and state producers/consumers.

    Args:
        workflows: The registered workflows.
        traces: The execution traces, in any order.
        run_workflows: The workflow of parent runs no trace shows (see
            ``unknown_parents``), by run id.

    Returns:
        Edges sorted by source then workflow, invocations sorted by parent then child,
        and states sorted by name.
    """
    traces = list(traces)
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
            if source not in _WAKEUP_WORDS and not source.startswith(_WAKEUP_PREFIXES):
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
    return FlowOut(
        edges=edges, states=states, invocations=_invocations(traces, run_workflows or {})
    )
