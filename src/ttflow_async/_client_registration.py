"""Registration on the client: ``@client.workflow``, ``@client.sideeffect``, ``workflows``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

from ._client_core import ClientCore
from ._context import RunContext
from ._definitions import (
    SideeffectDecorator,
    WorkflowFunction,
    check_timeout,
    make_sideeffect,
    make_workflow,
    sideeffect_caller,
)
from ._retry import RetryPolicy
from ._triggers import Trigger, named_trigger

if TYPE_CHECKING:
    from ._records import WorkflowInfo

P = ParamSpec("P")
R = TypeVar("R")


class RegistrationMixin(ClientCore):
    """Registering workflows and side effects, and listing the registered workflows."""

    @overload
    def workflow(
        self, trigger: Callable[P, Coroutine[Any, Any, R]], /
    ) -> WorkflowFunction[P, R]: ...

    @overload
    def workflow(
        self,
        trigger: str | Trigger | None = None,
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], WorkflowFunction[P, R]]: ...

    def workflow(
        self,
        trigger: str | Trigger | Callable[..., Coroutine[Any, Any, Any]] | None = None,
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Any:
        """Register an ``async def`` workflow; its trigger defaults to its name.

        Usable as ``@client.workflow`` or ``@client.workflow(trigger=..., name=...,
        timeout=seconds)``; ``timeout`` is the run's time budget per pass.
        """
        budget = check_timeout(timeout)

        def register(fn: Callable[..., Coroutine[Any, Any, Any]]) -> WorkflowFunction[..., Any]:
            wf_name = name or getattr(fn, "__name__", None)
            if isinstance(trigger, Trigger):
                resolved = trigger
            elif isinstance(trigger, str):
                resolved = named_trigger(trigger or str(wf_name))
            else:
                resolved = named_trigger(str(wf_name))
            definition = make_workflow(
                fn, name, resolved, registered=self._registry.workflows, timeout=budget
            )
            self._registry.workflows[definition.name] = definition
            return WorkflowFunction(definition)

        if callable(trigger) and not isinstance(trigger, Trigger):
            return register(trigger)
        return register

    @overload
    def sideeffect(
        self, fn: Callable[Concatenate[RunContext, P], Coroutine[Any, Any, R]], /
    ) -> Callable[Concatenate[RunContext, P], Coroutine[Any, Any, R]]: ...

    @overload
    def sideeffect(
        self, fn: Callable[Concatenate[RunContext, P], R], /
    ) -> Callable[Concatenate[RunContext, P], Coroutine[Any, Any, R]]: ...

    @overload
    def sideeffect(
        self,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        at_most_once: bool = False,
    ) -> SideeffectDecorator: ...

    def sideeffect(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        at_most_once: bool = False,
    ) -> Any:
        """Register a side effect: its result is journaled and not recomputed on replay.

        Usable as ``@client.sideeffect`` or ``@client.sideeffect(name=..., retry=
        RetryPolicy(...), at_most_once=True)``.
        """

        def register(func: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
            definition = make_sideeffect(func, name, retry=retry, at_most_once=at_most_once)
            self._registry.sideeffects[definition.name] = definition
            return sideeffect_caller(definition, RunContext)

        if fn is not None:
            return register(fn)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValueError(f"@client.sideeffect(retry=...) takes a RetryPolicy, got {retry!r}")
        return register

    @property
    def workflows(self) -> list[WorkflowInfo]:
        """The registered workflows."""
        from ._records import TriggerInfo, WorkflowInfo

        return [
            WorkflowInfo(
                name=w.name,
                description=w.description,
                trigger=TriggerInfo(kind=w.trigger.kind, name=w.trigger.name),
            )
            for w in self._registry.workflows.values()
        ]
