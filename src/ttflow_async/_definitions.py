"""Workflow and side-effect definitions: validation and registration only, no I/O."""

from __future__ import annotations

import collections.abc
import functools
import hashlib
import inspect
import math
import sys
import typing
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from ._errors import SideeffectUsageError, WorkflowDefinitionError, WorkflowDirectCallError
from ._retry import RetryPolicy
from ._source import source_of
from ._triggers import Trigger

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from ._context import RunContext

P = ParamSpec("P")
R = TypeVar("R")

_PASS_THROUGH: tuple[Any, ...] = (
    inspect.Parameter.empty,
    Any,
    object,
    dict,
    collections.abc.Mapping,
    typing.Dict,  # noqa: UP006 - an annotation users may still write
)


def _code_fingerprint(fn: Callable[..., Any]) -> str:
    try:
        source = source_of(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        source = repr((code.co_code, code.co_consts, code.co_names)) if code else repr(fn)
    return hashlib.sha256(source.encode()).hexdigest()


def _portable_typeddict(annotation: Any) -> Any:
    """pydantic needs typing_extensions.TypedDict before Python 3.12: rebuild it as one."""
    if sys.version_info >= (3, 12) or not typing.is_typeddict(annotation):
        return annotation
    import typing_extensions  # only here: it costs a fresh process ~5 ms to import

    hints = typing.get_type_hints(annotation)
    required = getattr(annotation, "__required_keys__", frozenset(hints))
    fields = {
        k: (v if k in required else typing_extensions.NotRequired[v]) for k, v in hints.items()
    }
    return typing_extensions.TypedDict(annotation.__name__, fields)  # type: ignore[operator]


def _args_adapter(fn: Callable[..., Any], param: inspect.Parameter) -> TypeAdapter[Any] | None:
    annotation: Any = param.annotation
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(fn).get(param.name, Any)
        except Exception:  # an unresolvable forward reference: pass args through
            return None
    if annotation in _PASS_THROUGH or typing.get_origin(annotation) in (
        dict,
        collections.abc.Mapping,
    ):
        return None
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(_portable_typeddict(annotation))
    except Exception as exc:
        raise WorkflowDefinitionError(
            f"workflow {fn.__name__!r}: cannot validate args annotated {annotation!r} ({exc}); "
            "annotate args with a pydantic model, a dataclass, a TypedDict, dict or Any"
        ) from exc


def _return_scalar(fn: Callable[..., Any]) -> type | None:
    try:
        annotation = typing.get_type_hints(fn).get("return")
    except Exception:
        return None
    return annotation if annotation in (int, str, bool) else None


def _return_adapter(fn: Callable[..., Any]) -> TypeAdapter[Any] | None:
    try:
        annotation = typing.get_type_hints(fn).get("return", Any)
    except Exception:  # an unresolvable forward reference: plain JSON results
        return None
    if annotation in (Any, object, type(None), None):
        return None
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(_portable_typeddict(annotation))
    except Exception:
        return None


class SideeffectDecorator(Protocol):
    """What ``@client.sideeffect(...)`` returns: a decorator keeping the signature.

    The decorated function takes the same parameters and returns a coroutine of the
    same result (a plain ``def`` side effect becomes awaitable too).
    """

    @overload
    def __call__(
        self, fn: Callable[Concatenate[RunContext, P], Coroutine[Any, Any, R]], /
    ) -> Callable[Concatenate[RunContext, P], Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(
        self, fn: Callable[Concatenate[RunContext, P], R], /
    ) -> Callable[Concatenate[RunContext, P], Coroutine[Any, Any, R]]: ...


class WorkflowFunction(Generic[P, R]):
    """What ``@client.workflow()`` leaves in place of the function.

    It cannot be called directly: workflows run only through ``client.run()``.
    """

    def __init__(self, definition: WorkflowDef) -> None:
        self.definition = definition
        functools.update_wrapper(self, definition.fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        raise WorkflowDirectCallError(
            f"workflow {self.definition.name!r} cannot be called directly; start it with "
            f"await client.run({self.definition.trigger.name!r}, args) "
            "(or emit the event it listens to)"
        )


class WorkflowDef:
    """A registered workflow.

    This module's records are plain classes, not dataclasses: building a dataclass
    costs ~0.5-1.4 ms at import, which every fresh process pays (issue 14).
    """

    def __init__(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        trigger: Trigger,
        description: str | None,
        takes_args: bool,
        args_adapter: TypeAdapter[Any] | None,
        fingerprint: str,
        timeout: float | None = None,
    ) -> None:
        self.name = name
        self.fn = fn
        self.trigger = trigger
        self.description = description
        self.takes_args = takes_args
        self.args_adapter = args_adapter
        self.fingerprint = fingerprint
        #: The run's time budget in seconds (``@client.workflow(timeout=...)``), if any.
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"WorkflowDef(name={self.name!r}, trigger={self.trigger!r})"

    def convert_args(self, args: Any) -> Any:
        """Validate and convert incoming args; raises ValueError naming the field."""
        if self.args_adapter is None:
            return args
        from pydantic import ValidationError

        try:
            return self.args_adapter.validate_python(args)
        except ValidationError as exc:
            raise ValueError(f"invalid args for workflow {self.name!r}: {exc}") from None


class SideeffectDef:
    """A registered side effect."""

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        is_async: bool,
        result_adapter: TypeAdapter[Any] | None,
        fingerprint: str,
        retry: RetryPolicy | None = None,
        at_most_once: bool = False,
        result_scalar: type | None = None,
    ) -> None:
        self.name = name
        self.fn = fn
        self.is_async = is_async
        self.result_adapter = result_adapter
        self.fingerprint = fingerprint
        self.retry = retry
        self.at_most_once = at_most_once
        #: The return annotation when it is ``int``, ``str`` or ``bool``: a result of
        #: exactly that type is stored and restored without the adapter (which would
        #: leave it as is).
        self.result_scalar = result_scalar

    def __repr__(self) -> str:
        return f"SideeffectDef(name={self.name!r})"


def check_timeout(timeout: object) -> float | None:
    """A workflow's time budget: None, or a finite number of seconds > 0 (else ValueError)."""
    if timeout is None:
        return None
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(
            f"@client.workflow(timeout=...) must be a finite number of seconds > 0, got {timeout!r}"
        )
    return float(timeout)


def _settling(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a workflow so that it ends the way its context says it ended.

    A task group (``asyncio.TaskGroup``, anyio) of side-effect calls that suspended
    raises a group of suspensions: the run is suspended, not failed. A call that
    suspended while the workflow went on (``gather(..., return_exceptions=True)``)
    suspends the run too.
    """

    @functools.wraps(fn)
    async def run(context: Any, *args: Any) -> Any:
        settle = getattr(context, "settle", None)
        try:
            value = await fn(context, *args)
        except BaseExceptionGroup as group:
            settled = settle(group) if settle is not None else group
            if settled is group:
                raise
            raise settled from None
        pending = getattr(context, "_suspension", None)
        if pending is not None:
            raise pending
        return value

    return run


def make_workflow(
    fn: Callable[..., Any],
    name: str | None,
    trigger: Trigger,
    *,
    registered: dict[str, Any],
    timeout: float | None = None,
) -> WorkflowDef:
    """Validate a workflow function and build its definition."""
    if isinstance(fn, WorkflowFunction):
        fn = fn.definition.fn
    if not inspect.iscoroutinefunction(fn):
        raise WorkflowDefinitionError(
            f"workflow {getattr(fn, '__name__', fn)!r} must be an async def function "
            "(async def my_flow(c: RunContext, args: dict) -> None: ...)"
        )
    name = name or fn.__name__
    if name in registered:
        raise WorkflowDefinitionError(
            f"a workflow named {name!r} is already registered; give one of them another name"
        )
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(params) not in (1, 2):
        raise WorkflowDefinitionError(
            f"workflow {name!r} must take (c) or (c, args), but takes {len(params)} "
            "positional parameters"
        )
    takes_args = len(params) == 2
    adapter = _args_adapter(fn, params[1]) if takes_args else None
    fingerprint = hashlib.sha256(
        f"{name}|{trigger.kind}|{trigger.name}|{_code_fingerprint(fn)}".encode()
    ).hexdigest()
    return WorkflowDef(
        name=name,
        fn=_settling(fn),
        trigger=trigger,
        description=inspect.getdoc(fn),
        takes_args=takes_args,
        args_adapter=adapter,
        fingerprint=fingerprint,
        timeout=check_timeout(timeout),
    )


def make_sideeffect(
    fn: Callable[..., Any],
    name: str | None,
    *,
    retry: RetryPolicy | None = None,
    at_most_once: bool = False,
) -> SideeffectDef:
    """Validate a side-effect function and build its definition."""
    if not callable(fn):
        raise WorkflowDefinitionError(f"a side effect must be a function, got {fn!r}")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ValueError(f"@client.sideeffect(retry=...) takes a RetryPolicy, got {retry!r}")
    if not isinstance(at_most_once, bool):
        raise ValueError(
            f"@client.sideeffect(at_most_once=...) takes True or False, got {at_most_once!r}"
        )
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"@client.sideeffect(name=...) takes a non-empty string, got {name!r}")
    name = name or fn.__name__
    return SideeffectDef(
        name=name,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        result_adapter=_return_adapter(fn),
        fingerprint=hashlib.sha256(f"{name}|{_code_fingerprint(fn)}".encode()).hexdigest(),
        retry=retry,
        at_most_once=at_most_once,
        result_scalar=_return_scalar(fn),
    )


def sideeffect_caller(
    definition: SideeffectDef, context_type: type[RunContext]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The callable that replaces a side-effect function: checks usage, returns a coroutine.

    The call takes its journal position at once (program order), so concurrent calls
    (``asyncio.gather``, task groups) replay exactly.
    """

    @functools.wraps(definition.fn)
    def call(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        if not args or not isinstance(args[0], context_type):
            raise SideeffectUsageError(
                f"side effect {definition.name!r} must be called with the RunContext first: "
                f"await {definition.name}(c, ...)"
            )
        return args[0]._call_sideeffect(definition, args[1:], kwargs)

    return call


class Registry:
    """Every workflow and side effect of one client."""

    def __init__(self) -> None:
        self.workflows: dict[str, WorkflowDef] = {}
        self.sideeffects: dict[str, SideeffectDef] = {}

    def fingerprint(self) -> str:
        """Changes when any workflow's or side effect's name, trigger or code changes."""
        parts = sorted(w.fingerprint for w in self.workflows.values())
        parts += sorted("se:" + s.fingerprint for s in self.sideeffects.values())
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def string_triggers(self) -> set[str]:
        """Names fired by ``client.run(name)``."""
        return {w.trigger.name for w in self.workflows.values() if w.trigger.kind == "trigger"}

    def started_by_trigger(self, name: str) -> list[WorkflowDef]:
        """Workflows started by ``client.run(name)``."""
        return [
            w
            for w in self.workflows.values()
            if w.trigger.kind == "trigger" and w.trigger.name == name
        ]

    def started_by_event(self, event_name: str) -> list[WorkflowDef]:
        """Workflows started by the event ``event_name``."""
        return [w for w in self.workflows.values() if w.trigger.event_name == event_name]
