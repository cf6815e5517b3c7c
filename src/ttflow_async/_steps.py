"""Side-effect calls: attempts, retries on durable timers, at-most-once starts, outcomes.

A call's journal entry was taken when the call was made (see
:meth:`RunContext._call_sideeffect`); this module runs it when it is awaited. The body
journals its own calls into a nested frame, set for its task in :data:`current_frame`,
so concurrent bodies (``asyncio.gather``, task groups) never share a cursor.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from . import _json
from ._definitions import SideeffectDef
from ._errors import InvalidStateError, SideeffectInterrupted
from ._journal import (
    Frame,
    close_done,
    close_failed,
    current_asyncio_task,
    current_frame,
    current_task_id,
    is_closed,
)
from ._retry import encode_error, qualified_name, rebuild_error

if TYPE_CHECKING:
    from ._context import RunContext


async def run_sideeffect(
    context: RunContext,
    definition: SideeffectDef,
    parent: Frame,
    entry: list[Any],
    step: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if entry[0] == "er":
        raise rebuild_error(entry[2], definition.name)
    if is_closed(entry):
        return _restore(definition, entry[2])
    policy = definition.retry
    while True:
        meta: dict[str, Any] = entry[4]
        attempt = int(meta.get("attempt", 1))
        due = meta.get("due")
        if due is not None:
            if context._host.now() < due:
                raise context._suspend(_retry_waiting(definition, due, attempt))
            del meta["due"]
        failure: Exception | None = None
        if definition.at_most_once:
            position = parent.position(step)
            failure = await _start_attempt(context, definition, meta, position, attempt)
        if failure is None:
            task = current_asyncio_task()
            owner = current_task_id() if task is None else id(task)
            spawned = task is not None and owner != parent.owner
            if task is not None and spawned:
                context._shared.spawned.add(task)
            nested = parent.child(entry[3], step, owner)
            token = current_frame.set((context, nested))
            try:
                if definition.is_async:
                    result = await definition.fn(context, *args, **kwargs)
                else:
                    call = functools.partial(definition.fn, context, *args, **kwargs)
                    result = await anyio.to_thread.run_sync(call)
            except Exception as exc:
                failure = exc
            finally:
                current_frame.reset(token)
                if task is not None and spawned:
                    context._shared.spawned.discard(task)
            if context._shared.nondeterminism is not None:
                raise context._shared.nondeterminism
            if failure is not None and context._shared.finished:
                # The run ended while this call went on in its own task (gather):
                # what it raised says nothing about the side effect; not journaled.
                raise failure
            if failure is None:
                try:
                    stored = _encode(definition, result)
                except InvalidStateError as exc:
                    close_failed(entry, encode_error(exc))
                    raise
                close_done(entry, stored)
                return _restore(definition, stored)
        retry = False
        try:
            retry = (
                policy is not None and attempt < policy.max_attempts and policy.retryable(failure)
            )
        except Exception as exc:  # a failing retry_on predicate is the error raised
            failure = exc
        if not retry or policy is None:
            close_failed(entry, encode_error(failure))
            raise failure
        due = context._host.now() + policy.delay(attempt)
        entry[3] = []
        entry[4] = {"attempt": attempt + 1, "due": due}


async def _start_attempt(
    context: RunContext,
    definition: SideeffectDef,
    meta: dict[str, Any],
    position: str,
    attempt: int,
) -> Exception | None:
    """Make an at-most-once attempt's start durable; an interrupted one is a failure."""
    starts = int(meta.get("starts", 0))
    marker = f"{context._run.run_id}/{position}/{attempt}"
    if starts:
        marker += f"/{starts}"
    # Only a run that was committed before this pass can have been started by a pass
    # that died: a run created in this pass has a fresh id.
    if context._run.journal_blob is not None and await context._host.attempt_interrupted(marker):
        meta["starts"] = starts + 1
        return SideeffectInterrupted(
            f"attempt {attempt} of at-most-once side effect {definition.name!r} in run "
            f"{context._run.run_id} was started by a pass that did not commit its outcome; "
            "it is not run again (catch SideeffectInterrupted, or give the side effect a "
            "retry policy to try a new attempt)",
            error_type=qualified_name(SideeffectInterrupted),
            error_message=f"attempt {attempt} of {definition.name!r} was interrupted",
        )
    meta["starts"] = starts + 1
    await context._host.mark_attempt(marker)
    return None


def _retry_waiting(definition: SideeffectDef, due: float, attempt: int) -> dict[str, Any]:
    return {
        "kind": "timer",
        "due": due,
        "retry": {"sideeffect": definition.name, "attempt": attempt},
    }


def _encode(definition: SideeffectDef, result: Any) -> Any:
    # A result of exactly the annotated int, str or bool is stored as it is: what the
    # adapter would make of it.
    if definition.result_adapter is not None and type(result) is not definition.result_scalar:
        try:
            result = definition.result_adapter.dump_python(result, mode="json", warnings=False)
        except Exception as exc:
            raise InvalidStateError(
                f"the result of side effect {definition.name!r} cannot be stored as JSON: {exc}"
            ) from exc
    if type(result) is int or type(result) is bool:
        return result
    return _json.normalize(result, f"the result of side effect {definition.name!r}")


def _restore(definition: SideeffectDef, stored: Any) -> Any:
    value = _json.copy_json(stored)
    if definition.result_adapter is None or type(value) is definition.result_scalar:
        return value
    return definition.result_adapter.validate_python(value)
