"""``c.parallel`` and ``c.map``: branches with their own journal scopes, and their result.

A batch is one journal entry ``["ba", name, state]``. ``state["b"]`` holds one record
per branch: ``s`` its status (``p`` not started yet, ``w`` started and suspended,
``ok``, ``err``, ``ns`` never started), ``e`` its own journal entries while it is not
finished, ``r`` its result, ``x`` its journaled error. Once the batch completes,
``state["end"]`` holds the completion reason and the branches' entries are dropped, so
a finished batch replays in one step and no finished branch ever runs again.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from . import _json
from ._errors import NondeterminismError
from ._journal import Suspend
from ._retry import encode_error, rebuild_error

if TYPE_CHECKING:
    from ._context import RunContext

CompletionReason = Literal["all_completed", "min_successful_reached", "failure_tolerance_exceeded"]
ItemStatus = Literal["succeeded", "failed", "not_started"]


@dataclass(frozen=True)
class CompletionConfig:
    """When a batch is complete before every branch has run.

    Args:
        min_successful: complete as soon as this many branches succeeded.
        tolerated_failure_count: fail as soon as more branches than this failed.
        tolerated_failure_percentage: fail as soon as failures exceed this share
            (0-100) of all branches.

    Raises:
        ValueError: a negative count, or a percentage outside 0-100.
    """

    min_successful: int | None = None
    tolerated_failure_count: int | None = None
    tolerated_failure_percentage: float | None = None

    def __post_init__(self) -> None:
        for label, value, low in (
            ("min_successful", self.min_successful, 1),
            ("tolerated_failure_count", self.tolerated_failure_count, 0),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < low
            ):
                raise ValueError(
                    f"CompletionConfig({label}=...) must be an int >= {low}, got {value!r}"
                )
        pct = self.tolerated_failure_percentage
        if pct is not None and (
            isinstance(pct, bool)
            or not isinstance(pct, int | float)
            or not math.isfinite(pct)
            or not 0 <= pct <= 100
        ):
            raise ValueError(
                "CompletionConfig(tolerated_failure_percentage=...) must be within 0-100, "
                f"got {pct!r}"
            )

    @property
    def tolerates(self) -> bool:
        """Whether a failure tolerance is configured."""
        return (
            self.tolerated_failure_count is not None
            or self.tolerated_failure_percentage is not None
        )


@dataclass(frozen=True)
class BatchItem:
    """One branch of a batch: ``index``, ``status``, ``result`` and ``error``."""

    index: int
    status: ItemStatus
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class BatchResult:
    """The outcome of ``c.parallel`` or ``c.map``."""

    items: list[BatchItem]
    status: Literal["succeeded", "failed"]
    completion_reason: CompletionReason
    success_count: int = field(init=False)
    failure_count: int = field(init=False)
    total_count: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "success_count", len(self.succeeded()))
        object.__setattr__(self, "failure_count", len(self.failed()))
        object.__setattr__(self, "total_count", len(self.items))

    @property
    def has_failure(self) -> bool:
        """Whether any branch failed."""
        return any(item.status == "failed" for item in self.items)

    def succeeded(self) -> list[BatchItem]:
        """The items that succeeded, in index order."""
        return [item for item in self.items if item.status == "succeeded"]

    def failed(self) -> list[BatchItem]:
        """The items that failed, in index order."""
        return [item for item in self.items if item.status == "failed"]

    def get_results(self) -> list[Any]:
        """The results of the items that succeeded, in index order."""
        return [item.result for item in self.succeeded()]

    def get_errors(self) -> list[BaseException]:
        """The errors of the items that failed, in index order."""
        return [item.error for item in self.failed() if item.error is not None]

    def throw_if_error(self) -> None:
        """Raise the first failed item's error, if any item failed."""
        for item in self.failed():
            if item.error is not None:
                raise item.error


def check_options(
    name: str | None, max_concurrency: int | None, completion: CompletionConfig | None
) -> None:
    """Validate a batch's options where they are given (ValueError)."""
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"a batch name must be a non-empty string, got {name!r}")
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
    if completion is not None and not isinstance(completion, CompletionConfig):
        raise ValueError(f"completion= takes a CompletionConfig, got {completion!r}")


def new_state(count: int) -> dict[str, Any]:
    """The journal state of a batch of ``count`` branches, none started."""
    return {"n": count, "b": [{"s": "p"} for _ in range(count)], "end": None}


def batch_waiting(name: str | None, waits: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``waiting_for`` of a batch whose branches wait as ``waits`` say (index order)."""
    waiting: dict[str, Any] = {
        "kind": "batch",
        "name": name,
        "waiting": [],
        "due": None,
        "events": [],
    }
    for index, wait in enumerate(waits):
        add_waiting(waiting, index, wait)
    return waiting


def add_waiting(waiting: dict[str, Any], index: int, wait: dict[str, Any], **extra: Any) -> None:
    """Add one suspended branch to a batch's ``waiting_for`` (due, events, next_run too)."""
    waiting["waiting"].append({"index": index, "waiting_for": wait, **extra})
    kind = wait.get("kind")
    due = wait.get("deadline") if kind == "event" else wait.get("due")
    if due is not None and (waiting["due"] is None or due < waiting["due"]):
        waiting["due"] = due
    events: list[str] = waiting["events"]
    if kind == "event":
        names = [wait["name"]]
    elif kind == "batch":
        names = list(wait.get("events") or [])
    else:
        names = [wait["event"]] if wait.get("event") else []
    events.extend(n for n in names if n not in events)
    if kind == "next_run" or (kind == "batch" and wait.get("next_run")):
        waiting["next_run"] = True


def _counts(state: dict[str, Any]) -> tuple[int, int]:
    """How many branches of a batch succeeded and failed."""
    succeeded = failed = 0
    for branch in state["b"]:
        if branch["s"] == "ok":
            succeeded += 1
        elif branch["s"] == "err":
            failed += 1
    return succeeded, failed


def _outcome(
    succeeded: int, failed: int, total: int, config: CompletionConfig
) -> CompletionReason | None:
    """Whether a batch with these counts of finished branches is complete, and why."""
    if config.min_successful is not None and succeeded >= config.min_successful:
        return "min_successful_reached"
    count = config.tolerated_failure_count
    pct = config.tolerated_failure_percentage
    if (count is not None and failed > count) or (pct is not None and failed * 100 > pct * total):
        return "failure_tolerance_exceeded"
    if succeeded + failed == total:
        return "all_completed"
    return None


def _status(
    reason: CompletionReason, state: dict[str, Any], config: CompletionConfig
) -> Literal["succeeded", "failed"]:
    if reason == "failure_tolerance_exceeded":
        return "failed"
    if reason == "min_successful_reached":
        return "succeeded"
    succeeded, failed = _counts(state)
    if config.min_successful is not None and succeeded < config.min_successful:
        return "failed"
    if config.tolerates:
        return "succeeded"
    return "failed" if failed else "succeeded"


def _result(
    state: dict[str, Any],
    config: CompletionConfig,
    name: str | None,
    live_errors: dict[int, BaseException],
) -> BatchResult:
    end = state["end"]
    items: list[BatchItem] = []
    for index, branch in enumerate(state["b"]):
        status = branch["s"]
        if status == "ok":
            items.append(BatchItem(index, "succeeded", result=_json.copy_json(branch.get("r"))))
        elif status == "err":
            error = live_errors.get(index) or rebuild_error(
                branch["x"], f"branch {index} of {name or 'a batch'}"
            )
            items.append(BatchItem(index, "failed", error=error))
        else:
            items.append(BatchItem(index, "not_started"))
    reason: CompletionReason = end["reason"]
    return BatchResult(
        items, status=end.get("status") or _status(reason, state, config), completion_reason=reason
    )


async def run_batch(
    state: dict[str, Any],
    calls: list[Callable[[RunContext], Awaitable[Any]]],
    child: Callable[[int, list[Any]], RunContext],
    *,
    name: str | None,
    max_concurrency: int | None,
    completion: CompletionConfig,
    item_names: list[str] | None,
    suspend: Callable[[dict[str, Any]], Suspend],
    mismatch: Callable[[int, int], NondeterminismError],
) -> BatchResult:
    """Run the batch's unfinished branches; return its result or suspend the run."""
    if state["n"] != len(calls):
        raise mismatch(state["n"], len(calls))
    live_errors: dict[int, BaseException] = {}
    if state["end"] is not None:
        return _result(state, completion, name, live_errors)
    branches: list[dict[str, Any]] = state["b"]
    todo = iter([i for i, b in enumerate(branches) if b["s"] in ("p", "w")])
    waits: dict[int, dict[str, Any]] = {}
    reason: list[CompletionReason] = []
    # Kept as branches finish: the check after each one is O(1), not a scan of them all.
    finished = dict(zip(("ok", "err"), _counts(state), strict=True))

    async def run_branch(index: int) -> None:
        branch = branches[index]
        branch["s"] = "w"
        context = child(index, branch.setdefault("e", []))
        try:
            value = await calls[index](context)
            value = _json.normalize(value, f"the result of branch {index}")
        except Suspend as suspended:
            waits[index] = context._suspension.waiting if context._suspension else suspended.waiting
            return
        except Exception as exc:
            if context.nondeterminism is not None:
                raise context.nondeterminism from None
            branch.clear()
            branch.update(s="err", x=encode_error(exc))
            live_errors[index] = exc
        else:
            branch.clear()
            branch.update(s="ok", r=value)
        finished[branch["s"]] += 1
        if not reason:
            reached = _outcome(finished["ok"], finished["err"], len(branches), completion)
            if reached is not None and reached != "all_completed":
                reason.append(reached)
                # The branches still running are cancelled (they end up "ns", not
                # started); no worker starts another.
                me = asyncio.current_task()
                for task in tasks:
                    if task is not me:
                        task.cancel()

    async def worker() -> None:
        for index in todo:
            if reason:
                return
            await run_branch(index)

    pending = sum(1 for b in branches if b["s"] in ("p", "w"))
    workers = min(max_concurrency or pending, pending)
    # asyncio's own task group: spawning a task there costs a fifth of what it costs in
    # anyio's (measured: 4 against 18 µs), and a batch spawns one per branch. Cancelling
    # the task that awaits it (a run timeout, an aborted pass) cancels the workers.
    import asyncio  # here: ``import ttflow_async`` does not load asyncio

    tasks: list[asyncio.Task[None]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks.extend(
                group.create_task(worker(), name="ttflow-async batch worker")
                for _ in range(workers)
            )
    except BaseExceptionGroup as failures:
        raise _first(failures) from None
    if not reason:
        if waits:
            waiting = batch_waiting(name, [])
            for index in sorted(waits):
                extra = {"name": item_names[index]} if item_names else {}
                add_waiting(waiting, index, waits[index], **extra)
            raise suspend(waiting)
        reached = _outcome(finished["ok"], finished["err"], len(branches), completion)
        reason.append(reached or "all_completed")
    for branch in branches:
        if branch["s"] not in ("ok", "err"):
            branch.clear()
            branch["s"] = "ns"
    state["end"] = {"reason": reason[0], "status": _status(reason[0], state, completion)}
    return _result(state, completion, name, live_errors)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception a failed batch re-raises: the first that is not a cancellation."""
    cancelled = anyio.get_cancelled_exc_class()
    leaves: list[BaseException] = []

    def collect(g: BaseExceptionGroup[BaseException]) -> None:
        for exc in g.exceptions:
            if isinstance(exc, BaseExceptionGroup):
                collect(exc)
            else:
                leaves.append(exc)

    collect(group)
    for exc in leaves:
        if not isinstance(exc, cancelled):
            return exc
    return leaves[0]
